package status

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitsync/internal/errorfile"
)

const h1 = "0123456789abcdef0123456789abcdef01234567"
const h2 = "89abcdef0123456789abcdef0123456789abcdef"

func getJSON(t *testing.T, tr *Tracker) map[string]any {
	t.Helper()
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /status: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSnapshotFollowsTheLoopAndTheDisk(t *testing.T) {
	root := t.TempDir()
	link := filepath.Join(root, "link")
	wt := filepath.Join(root, ".worktrees")
	tr := New()
	tr.Configure(Options{Repo: "https://user:pw@example.com/r.git?token=x", Ref: "main", Link: link, WorktreesDir: wt, Version: "v-test"})

	m := getJSON(t, tr)
	for _, k := range []string{"hash", "published_at", "last_attempt", "last_success", "last_error", "worktrees", "next_attempt"} {
		if v, ok := m[k]; !ok || v != nil {
			t.Errorf("before any sync: %s = %v (present %v), want null", k, v, ok)
		}
	}
	if m["repo"] != "https://example.com/r.git" || m["consecutive_failures"] != 0.0 || m["version"] != "v-test" {
		t.Errorf("before any sync: %v", m)
	}

	// A publish as repo does it: a worktree, then the link.
	for _, h := range []string{h1, h2} {
		if err := os.MkdirAll(filepath.Join(wt, h), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(".worktrees/"+h2, link); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	tr.AttemptStarted(t0)
	tr.AttemptFinished(t0.Add(time.Second), nil)
	tr.NextAttempt(t0.Add(11 * time.Second))
	m = getJSON(t, tr)
	if m["hash"] != h2 || m["last_success"] != "2026-01-02T02:04:06Z" || m["last_attempt"] != m["last_success"] ||
		m["next_attempt"] != "2026-01-02T02:04:16Z" || m["published_at"] == nil {
		t.Errorf("after a success: %v", m)
	}
	if wts, _ := m["worktrees"].([]any); len(wts) != 2 || wts[0] != h1 || wts[1] != h2 {
		t.Errorf("worktrees = %v, want both on disk", m["worktrees"])
	}

	tr.AttemptStarted(t0.Add(20 * time.Second))
	if m = getJSON(t, tr); m["next_attempt"] != nil {
		t.Errorf("during an attempt next_attempt = %v, want null", m["next_attempt"])
	}
	tr.ErrorLogged(errorfile.Report{Msg: "sync failed", Err: "fetch https://u:pw@example.com/r: exit status 128"})
	tr.AttemptFinished(t0.Add(21*time.Second), errors.New("x"))
	m = getJSON(t, tr)
	if m["consecutive_failures"] != 1.0 || m["last_success"] != "2026-01-02T02:04:06Z" {
		t.Errorf("after a failure: %v", m)
	}
	if e, _ := m["last_error"].(string); e != "sync failed: fetch https://REDACTED@example.com/r: exit status 128" {
		t.Errorf("last_error = %q", e)
	}
	tr.ErrorCleared()
	if m = getJSON(t, tr); m["last_error"] != nil {
		t.Errorf("after the error file is removed: last_error = %v", m["last_error"])
	}
}

func TestFreshAndLive(t *testing.T) {
	tr := New()
	now := time.Now()
	if !tr.Fresh(now) {
		t.Error("with no --max-staleness, not fresh")
	}
	tr.Configure(Options{MaxStaleness: time.Minute, SyncTimeout: time.Minute, LiveGrace: 10 * time.Second})
	if tr.Fresh(now) {
		t.Error("fresh before any success")
	}
	tr.AttemptFinished(now, nil)
	if !tr.Fresh(now.Add(time.Minute)) || tr.Fresh(now.Add(time.Minute+time.Millisecond)) {
		t.Error("staleness is not measured from the last success")
	}
	if !tr.Live(now.Add(time.Hour)) {
		t.Error("not live with no attempt running")
	}
	tr.AttemptStarted(now)
	if !tr.Live(now.Add(70*time.Second)) || tr.Live(now.Add(70*time.Second+time.Millisecond)) {
		t.Error("liveness does not fail exactly past --sync-timeout plus the grace")
	}
	tr.AttemptFinished(now.Add(2*time.Hour), errors.New("x"))
	if !tr.Live(now.Add(3 * time.Hour)) {
		t.Error("not live after the attempt ended")
	}
}

func TestCleanRepo(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@example.com/r.git?private_token=x#frag": "https://example.com/r.git",
		"https://TOKEN@example.com/r":                            "https://example.com/r",
		"git@example.com:org/r.git":                              "git@example.com:org/r.git",
		"ssh://git@example.com/r":                                "ssh://example.com/r",
		"/srv/repos/r":                                           "/srv/repos/r",
	} {
		if got := CleanRepo(in); got != want {
			t.Errorf("CleanRepo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPageForBrowsers(t *testing.T) {
	root := t.TempDir()
	link := filepath.Join(root, "link")
	if err := os.Symlink(".worktrees/"+h1, link); err != nil {
		t.Fatal(err)
	}
	tr := New()
	tr.Configure(Options{Repo: "https://example.com/r", Ref: "main", Link: link,
		Subject: func(_ context.Context, h string) (string, error) { return "subject <of> " + h[:4], nil }})
	tr.AttemptFinished(time.Now(), nil)
	tr.ErrorLogged(errorfile.Report{Msg: "sync failed", Err: "<script>alert(1)</script>"})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/status", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	tr.ServeHTTP(rec, req)
	body := rec.Body.String()
	if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("Content-Type %q", rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{h1[:12], "subject &lt;of&gt; 0123", "&lt;script&gt;", `http-equiv="refresh"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "src=", "href=\"http"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q (script or external asset)", bad)
		}
	}
}
