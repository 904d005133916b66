// Package status keeps what an operator wants to know about a running
// git-sync and serves it: GET /status as JSON (or, for a browser, a small
// HTML page), the staleness test behind readiness with --max-staleness, and
// the liveness test behind /livez.
//
// The sync loop reports facts (an attempt started or ended, when the next
// one is due), the logger reports every error it logs (the same Report the
// --error-file receives), and everything that is on disk (the published
// hash, when it was published, the worktrees kept) is read from disk when
// asked, so that what /status says is what readers see, whoever changed it.
// Nothing here runs on the idle poll path but a few assignments under a
// mutex.
package status

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"gitsync/internal/config"
	"gitsync/internal/errorfile"
	"gitsync/internal/redact"
)

// Options describes the sync whose state a Tracker keeps.
type Options struct {
	Repo, Ref string
	// Link is the absolute path of --link; the published hash and its time
	// are read from it.
	Link string
	// WorktreesDir holds one directory per kept worktree, named by hash.
	WorktreesDir string
	Version      string
	// SyncTimeout plus LiveGrace is how long an attempt may run before
	// /livez says the loop is stuck.
	SyncTimeout, LiveGrace time.Duration
	// MaxStaleness, when positive, is how old the last success may be
	// while readiness still answers 200.
	MaxStaleness time.Duration
	// Subject returns the subject line of a commit, for the HTML page. May
	// be nil.
	Subject func(ctx context.Context, hash string) (string, error)
}

// Tracker holds the state of the sync loop. Its methods are safe for
// concurrent use; the zero Options (before Configure) serve a state with
// no repository.
type Tracker struct {
	mu          sync.Mutex
	opts        Options
	running     time.Time // start of the attempt in progress, zero when none
	lastAttempt time.Time // end of the last attempt
	lastSuccess time.Time
	next        time.Time
	failures    int
	lastErr     string

	subjectHash, subject string // cache of the HTML page's commit subject
}

// New returns a Tracker with no options yet: the logger needs one before
// the configuration of the repository is known.
func New() *Tracker { return &Tracker{} }

// Configure sets what the Tracker describes.
func (t *Tracker) Configure(opts Options) {
	t.mu.Lock()
	t.opts = opts
	t.mu.Unlock()
}

// AttemptStarted records that a sync attempt began at now.
func (t *Tracker) AttemptStarted(now time.Time) {
	t.mu.Lock()
	t.running, t.next = now, time.Time{}
	t.mu.Unlock()
}

// AttemptFinished records the end of the attempt in progress: err is nil
// for a success (an idle poll included).
func (t *Tracker) AttemptFinished(now time.Time, err error) {
	t.mu.Lock()
	t.running, t.lastAttempt = time.Time{}, now
	if err != nil {
		t.failures++
	} else {
		t.failures = 0
		t.lastSuccess = now
	}
	t.mu.Unlock()
}

// NextAttempt records when the next attempt is due; the zero time means
// none is scheduled (git-sync waits only for triggers).
func (t *Tracker) NextAttempt(at time.Time) {
	t.mu.Lock()
	t.next = at
	t.mu.Unlock()
}

// ErrorLogged records an error record of the logger; its signature fits
// errorfile.Tap.
func (t *Tracker) ErrorLogged(r errorfile.Report) {
	text := r.Msg
	if r.Err != "" {
		text += ": " + r.Err
	}
	t.mu.Lock()
	t.lastErr = redact.Text(text)
	t.mu.Unlock()
}

// ErrorCleared forgets the last error, when the --error-file is removed
// after a success.
func (t *Tracker) ErrorCleared() {
	t.mu.Lock()
	t.lastErr = ""
	t.mu.Unlock()
}

// Gauges returns the values of the metrics git_sync_last_attempt_timestamp_seconds,
// git_sync_last_success_timestamp_seconds and git_sync_consecutive_failures.
func (t *Tracker) Gauges() (lastAttempt, lastSuccess time.Time, failures int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastAttempt, t.lastSuccess, t.failures
}

// Fresh reports whether the last success is recent enough for readiness:
// always with no --max-staleness, otherwise when a success happened within
// it.
func (t *Tracker) Fresh(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.opts.MaxStaleness <= 0 {
		return true
	}
	return !t.lastSuccess.IsZero() && now.Sub(t.lastSuccess) <= t.opts.MaxStaleness
}

// Live reports whether the loop is alive: false only while an attempt has
// run longer than --sync-timeout plus the grace, which the attempt's own
// timeout should have made impossible.
func (t *Tracker) Live(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.running.IsZero() || now.Sub(t.running) <= t.opts.SyncTimeout+t.opts.LiveGrace
}

// Snapshot is the JSON document of GET /status. Pointers are null while
// there is no value.
type Snapshot struct {
	Repo                string   `json:"repo"`
	Ref                 string   `json:"ref"`
	Link                string   `json:"link"`
	Hash                *string  `json:"hash"`
	PublishedAt         *string  `json:"published_at"`
	LastAttempt         *string  `json:"last_attempt"`
	LastSuccess         *string  `json:"last_success"`
	ConsecutiveFailures int      `json:"consecutive_failures"`
	LastError           *string  `json:"last_error"`
	Worktrees           []string `json:"worktrees"`
	NextAttempt         *string  `json:"next_attempt"`
	Version             string   `json:"version"`
}

// Snapshot returns the state now, reading the link and the worktrees from
// disk.
func (t *Tracker) Snapshot() Snapshot {
	t.mu.Lock()
	o := t.opts
	s := Snapshot{
		Repo: CleanRepo(o.Repo), Ref: o.Ref, Link: o.Link, Version: o.Version,
		LastAttempt:         stamp(t.lastAttempt),
		LastSuccess:         stamp(t.lastSuccess),
		ConsecutiveFailures: t.failures,
		NextAttempt:         stamp(t.next),
	}
	if t.lastErr != "" {
		e := t.lastErr
		s.LastError = &e
	}
	t.mu.Unlock()
	if hash, at, ok := published(o.Link); ok {
		s.Hash, s.PublishedAt = &hash, stamp(at)
	}
	s.Worktrees = worktrees(o.WorktreesDir)
	return s
}

// stamp renders t in RFC 3339, UTC; nil for the zero time.
func stamp(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// published reads the hash the link points at and when the link was made
// (git-sync replaces the link by renaming a new one over it, so its own
// modification time is the time of publishing).
func published(link string) (hash string, at time.Time, ok bool) {
	if link == "" {
		return "", time.Time{}, false
	}
	target, err := os.Readlink(link)
	if err != nil {
		return "", time.Time{}, false
	}
	fi, err := os.Lstat(link)
	if err != nil {
		return "", time.Time{}, false
	}
	hash = filepath.Base(target)
	if !config.IsCommitHash(hash) {
		return "", time.Time{}, false
	}
	return hash, fi.ModTime(), true
}

// worktrees lists the hashes with a worktree on disk, sorted; nil (null)
// when there is none.
func worktrees(dir string) []string {
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && config.IsCommitHash(e.Name()) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// CleanRepo returns --repo with the user information and the query of a
// URL removed, not just masked: /status may be shown to people who have
// no business knowing that credentials are configured.
func CleanRepo(repo string) string {
	u, err := url.Parse(repo)
	if err != nil || u.Scheme == "" || !strings.Contains(repo, "://") {
		return redact.Text(repo)
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

// ServeHTTP serves GET /status: the HTML page when the client prefers
// text/html (a browser) unless the query says format=json, JSON otherwise.
func (t *Tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	snap := t.Snapshot()
	if wantsHTML(r.Header.Get("Accept")) && r.URL.Query().Get("format") != "json" {
		t.writePage(w, r, snap)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(snap)
}

// wantsHTML reports whether an Accept header asks for HTML before JSON.
// Browsers send text/html first; curl sends */* and gets JSON.
func wantsHTML(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt := strings.TrimSpace(strings.SplitN(part, ";", 2)[0])
		switch mt {
		case "text/html", "application/xhtml+xml":
			return true
		case "application/json":
			return false
		}
	}
	return false
}

// ServeLive serves /livez: 200 unless the loop is stuck.
func (t *Tracker) ServeLive(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !t.Live(time.Now()) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("stuck: a sync attempt has run past --sync-timeout\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// commitSubject returns the subject of hash, asking git once per hash.
func (t *Tracker) commitSubject(ctx context.Context, hash string) string {
	t.mu.Lock()
	if t.subjectHash == hash {
		s := t.subject
		t.mu.Unlock()
		return s
	}
	fn := t.opts.Subject
	t.mu.Unlock()
	if fn == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	subj, err := fn(ctx, hash)
	if err != nil {
		return ""
	}
	t.mu.Lock()
	t.subjectHash, t.subject = hash, subj
	t.mu.Unlock()
	return subj
}
