package status

import (
	"fmt"
	"html/template"
	"net/http"
	"time"
)

// refreshSeconds is how often the page reloads itself.
const refreshSeconds = 5

// pageData is what the page template shows.
type pageData struct {
	Refresh     int
	Repo, Ref   string
	Link        string
	Hash        string // full hash, "" when nothing is published
	ShortHash   string
	Subject     string
	PublishedAt string
	SinceOK     string // "3m12s ago", "never"
	Failures    int
	LastError   string
	NextAttempt string
	Worktrees   []string
	Version     string
	Healthy     bool
}

// page is self-contained: inline style, no script, no external asset; it
// reloads itself with a meta refresh.
var page = template.Must(template.New("status").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>git-sync {{if .ShortHash}}{{.ShortHash}}{{else}}(nothing published){{end}}</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:52em;padding:0 1em;color:#1b1f24;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .2em}
.sub{color:#57606a;margin:0 0 1.2em;word-break:break-all}
.state{display:inline-block;padding:.1em .6em;border-radius:1em;font-weight:600;color:#fff}
.ok{background:#1a7f37}.bad{background:#cf222e}
table{border-collapse:collapse;width:100%}
th{text-align:left;font-weight:600;padding:.35em 1em .35em 0;vertical-align:top;white-space:nowrap;color:#57606a}
td{padding:.35em 0;vertical-align:top;word-break:break-word}
code,pre{font-family:ui-monospace,monospace;font-size:.93em}
pre{white-space:pre-wrap;margin:0;background:#fff0f0;border:1px solid #ffcecb;padding:.5em;border-radius:4px}
footer{margin-top:1.5em;color:#57606a;font-size:.85em}
</style>
</head>
<body>
<h1>git-sync <span class="state {{if .Healthy}}ok{{else}}bad{{end}}">{{if .Healthy}}in sync{{else}}failing{{end}}</span></h1>
<p class="sub">{{.Repo}} &middot; {{.Ref}}</p>
<table>
<tr><th>Published</th><td>{{if .Hash}}<code id="hash" title="{{.Hash}}">{{.ShortHash}}</code> <span id="subject">{{.Subject}}</span>{{else}}<span id="hash">nothing yet</span>{{end}}</td></tr>
<tr><th>Published at</th><td>{{if .PublishedAt}}{{.PublishedAt}}{{else}}&mdash;{{end}}</td></tr>
<tr><th>Last success</th><td id="since">{{.SinceOK}}</td></tr>
<tr><th>Failures in a row</th><td id="failures">{{.Failures}}</td></tr>
<tr><th>Last error</th><td>{{if .LastError}}<pre id="last-error">{{.LastError}}</pre>{{else}}<span id="last-error">none</span>{{end}}</td></tr>
<tr><th>Next attempt</th><td>{{if .NextAttempt}}{{.NextAttempt}}{{else}}&mdash;{{end}}</td></tr>
<tr><th>Link</th><td><code>{{.Link}}</code></td></tr>
<tr><th>Worktrees</th><td>{{range .Worktrees}}<code>{{.}}</code><br>{{else}}&mdash;{{end}}</td></tr>
</table>
<footer>{{.Version}} &middot; refreshes every {{.Refresh}} s &middot; <a href="status?format=json">JSON</a></footer>
</body>
</html>
`))

// writePage renders snap as the HTML page.
func (t *Tracker) writePage(w http.ResponseWriter, r *http.Request, snap Snapshot) {
	now := time.Now()
	d := pageData{
		Refresh: refreshSeconds, Repo: snap.Repo, Ref: snap.Ref, Link: snap.Link,
		Failures: snap.ConsecutiveFailures, Worktrees: snap.Worktrees, Version: snap.Version,
		SinceOK: "never", Healthy: snap.ConsecutiveFailures == 0 && snap.LastError == nil,
	}
	if snap.Hash != nil {
		d.Hash = *snap.Hash
		d.ShortHash = d.Hash[:12]
		d.Subject = t.commitSubject(r.Context(), d.Hash)
	}
	if snap.PublishedAt != nil {
		d.PublishedAt = *snap.PublishedAt
	}
	if snap.LastSuccess != nil {
		if at, err := time.Parse(time.RFC3339Nano, *snap.LastSuccess); err == nil {
			d.SinceOK = ago(now.Sub(at)) + " (" + at.Format(time.RFC3339) + ")"
		}
	}
	if snap.LastError != nil {
		d.LastError = *snap.LastError
	}
	if snap.NextAttempt != nil {
		d.NextAttempt = *snap.NextAttempt
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = page.Execute(w, d)
}

// ago renders a duration for people: whole seconds, "just now" below one.
func ago(d time.Duration) string {
	if d < time.Second {
		return "just now"
	}
	return fmt.Sprintf("%v ago", d.Truncate(time.Second))
}
