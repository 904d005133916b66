package e2e

// GET /status, --max-staleness, /livez and the backoff on HTTP 429
// (issue 12).

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// statusDoc fetches /status as JSON.
func statusDoc(t testing.TB, addr string) map[string]any {
	t.Helper()
	code, body, err := httpGet(addr, "/status")
	if err != nil || code != 200 {
		t.Fatalf("GET /status: %d %v %q", code, err, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("GET /status is not JSON: %v\n%s", err, body)
	}
	return m
}

// isStamp reports whether v is an RFC 3339 time in UTC.
func isStamp(v any) bool {
	s, ok := v.(string)
	if !ok || !strings.HasSuffix(s, "Z") {
		return false
	}
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

func statusCode(t testing.TB, addr, path string) int {
	t.Helper()
	code, _, err := httpGet(addr, path)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func TestStatusAndStaleness(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 1)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	addr := freeAddr(t)
	w := gitWrapper(t, wrapperOpts{SleepCmd: "fetch", SleepFirst: 1, Sleep: 2 * time.Second})
	p := start(t, concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=200ms", "--max-failures=-1",
		"--max-staleness=1500ms", "--error-file=error.json", "--git=" + w.Path})...)

	// Before the first sync: the endpoint answers, with nulls.
	waitFor(t, 10*time.Second, func() bool { c, _, err := httpGet(addr, "/status"); return err == nil && c == 200 }, "/status to answer")
	m := statusDoc(t, addr)
	if exists(link) {
		t.Fatalf("the first sync ended before /status was read; this test needs it to be slow")
	}
	for _, k := range []string{"hash", "published_at", "last_attempt", "last_success", "last_error", "worktrees", "next_attempt"} {
		if v, ok := m[k]; !ok || v != nil {
			t.Errorf("before the first sync: %s = %v (present: %v), want null", k, v, ok)
		}
	}
	if m["repo"] != up.URL() || m["ref"] != "HEAD" || m["link"] != link || m["consecutive_failures"] != 0.0 || m["version"] == "" {
		t.Errorf("before the first sync: %v", m)
	}
	if c := statusCode(t, addr, "/"); c != 503 {
		t.Errorf("/ before the first sync: %d, want 503", c)
	}
	if c := statusCode(t, addr, "/livez"); c != 200 {
		t.Errorf("/livez during a normal first sync: %d, want 200", c)
	}

	// After a success.
	waitForLink(t, p, link, hs[0])
	waitFor(t, 10*time.Second, func() bool { return statusDoc(t, addr)["last_success"] != nil }, "last_success")
	m = statusDoc(t, addr)
	if m["hash"] != hs[0] || !isStamp(m["published_at"]) || !isStamp(m["last_success"]) || !isStamp(m["last_attempt"]) ||
		m["consecutive_failures"] != 0.0 || m["last_error"] != nil {
		t.Errorf("after the first sync: %v", m)
	}
	if wts, _ := m["worktrees"].([]any); len(wts) != 1 || wts[0] != hs[0] {
		t.Errorf("worktrees = %v, want [%s]", m["worktrees"], hs[0])
	}
	waitFor(t, 10*time.Second, func() bool { return isStamp(statusDoc(t, addr)["next_attempt"]) }, "next_attempt")
	if c := statusCode(t, addr, "/"); c != 200 {
		t.Errorf("/ after the first sync: %d, want 200", c)
	}

	// After failures: the upstream disappears.
	moved := up.Dir() + ".gone"
	if err := os.Rename(up.Dir(), moved); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		m = statusDoc(t, addr)
		f, _ := m["consecutive_failures"].(float64)
		return f >= 2 && m["last_error"] != nil
	}, "failures in /status")
	if m["hash"] != hs[0] || !isStamp(m["last_success"]) {
		t.Errorf("after failures the published state is gone: %v", m)
	}
	// last_error is what the error file says, message and error.
	data, err := os.ReadFile(filepath.Join(root, "error.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct{ Msg, Err string }
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if le, _ := m["last_error"].(string); !strings.HasPrefix(le, rep.Msg+": ") || !strings.Contains(le, "fetch") && !strings.Contains(le, "ls-remote") && !strings.Contains(le, "repository") {
		t.Errorf("last_error = %q; error file: %+v", le, rep)
	}
	if n := metric(t, addr, "git_sync_consecutive_failures"); n < 2 {
		t.Errorf("git_sync_consecutive_failures = %v, want at least 2", n)
	}
	if metric(t, addr, "git_sync_last_attempt_timestamp_seconds") <= metric(t, addr, "git_sync_last_success_timestamp_seconds") {
		t.Error("the last attempt is not after the last success while failing")
	}

	// --max-staleness: / fails once the last success is older than 1.5s,
	// and the published tree stays.
	waitFor(t, 10*time.Second, func() bool { return statusCode(t, addr, "/") == 503 }, "/ to fail with a stale tree")
	if got := linkHash(t, link); got != hs[0] {
		t.Errorf("the link moved to %s while stale", got)
	}
	if c := statusCode(t, addr, "/livez"); c != 200 {
		t.Errorf("/livez while failing: %d, want 200 (failing is not stuck)", c)
	}
	if err := os.Rename(moved, up.Dir()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return statusCode(t, addr, "/") == 200 }, "/ to recover after a success")
	m = statusDoc(t, addr)
	if m["consecutive_failures"] != 0.0 || m["last_error"] != nil {
		t.Errorf("after recovering: %v", m)
	}
}

// A git that hangs is killed at --sync-timeout: the loop is not stuck, so
// /livez stays 200 throughout, and /status says what happened.
func TestLivezWithHungGit(t *testing.T) {
	t.Parallel()
	up, _ := linearRepo(t, 1)
	root := newRoot(t)
	addr := freeAddr(t)
	w := gitWrapper(t, wrapperOpts{SleepCmd: "fetch", Sleep: time.Hour})
	p := start(t, concat(syncArgs(up, root), []string{"--http-bind=" + addr, "--period=100ms", "--max-failures=-1",
		"--sync-timeout=1s", "--git=" + w.Path})...)
	waitFor(t, 10*time.Second, func() bool { return w.CountCalls("fetch") >= 1 }, "git fetch to hang")
	if c := statusCode(t, addr, "/livez"); c != 200 {
		t.Errorf("/livez while git hangs within --sync-timeout: %d, want 200", c)
	}
	waitFor(t, 15*time.Second, func() bool {
		le, _ := statusDoc(t, addr)["last_error"].(string)
		return strings.Contains(le, "timed out")
	}, "/status to report the timeout")
	waitFor(t, 15*time.Second, func() bool { return w.CountCalls("fetch") >= 2 }, "the next attempt after the timeout")
	if c := statusCode(t, addr, "/livez"); c != 200 {
		t.Errorf("/livez after git was killed: %d, want 200", c)
	}
	if !p.Running() {
		t.Error("git-sync exited")
	}
}

// A remote answering HTTP 429 makes git-sync back off and say so.
func TestBackoffOnTooManyRequests(t *testing.T) {
	t.Parallel()
	up := gittest.NewRepo(t)
	h0 := up.Commit(map[string]string{"a": "1"}, "c1")
	srv := gittest.HTTPServer(t, filepath.Dir(up.Dir()), gittest.HTTPOptions{})
	root := newRoot(t)
	addr := freeAddr(t)
	p := start(t, "--repo="+srv.URL(filepath.Base(up.Dir())), "--root="+root, "--link=link", "--period=100ms",
		"--max-failures=-1", "--http-bind="+addr)
	waitForLink(t, p, filepath.Join(root, "link"), h0)
	srv.SetFailStatus(http.StatusTooManyRequests)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(p.Logs(), "slow down (HTTP 429)") }, "the backoff to be logged")
	// The wait after the first 429 is at least the period; after the second,
	// twice that: next_attempt moves away.
	waitFor(t, 10*time.Second, func() bool {
		m := statusDoc(t, addr)
		f, _ := m["consecutive_failures"].(float64)
		next, _ := m["next_attempt"].(string)
		last, _ := m["last_attempt"].(string)
		tn, err1 := time.Parse(time.RFC3339Nano, next)
		tl, err2 := time.Parse(time.RFC3339Nano, last)
		return f >= 3 && err1 == nil && err2 == nil && tn.Sub(tl) >= 350*time.Millisecond
	}, "the wait to grow on repeated 429s (period 100ms)")
	srv.SetFailStatus(0)
	waitFor(t, 10*time.Second, func() bool { return statusDoc(t, addr)["consecutive_failures"] == 0.0 }, "recovery")
}
