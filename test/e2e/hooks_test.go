package e2e

// End-to-end tests of docs/CONTRACT.md, section 5 (hooks), and the hook parts
// of sections 3 and 6: exec hooks, the pre-publish hook, webhooks, retries
// with backoff, timeouts, latest-wins, hooks at startup, --one-time and the
// git_sync_hook_run_count_total metric. Hooks are real shell scripts that
// record what they saw into files; webhooks go to an httptest receiver (or a
// raw TCP peer) that records every request.
//
// The first part of this file holds helpers that signals_test.go and
// pid1_test.go use too.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// ---------------------------------------------------------------------------
// Helpers: files written by scripts.

// readLines returns the lines of the file at path (no trailing empty line),
// or nil when it does not exist yet.
func readLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// readPid reads a pid that a script wrote into path; 0 if there is none
// (yet).
func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// hookScript writes an executable /bin/sh hook script and returns its path
// and $STATE, a fresh directory the script can keep its files in (the body
// sees it as $STATE).
func hookScript(t testing.TB, body string) (path, state string) {
	t.Helper()
	state = t.TempDir()
	path = writeScript(t, "hook", fmt.Sprintf("STATE=%q\n", state)+body)
	return path, state
}

// countingHook is an exec hook script that fails its first FailFirst runs
// and then succeeds. Every run appends one line to $STATE/runs:
// "N HASH UNIXTIME LINKHASH" (N counts runs from 1; LINKHASH is the
// basename of the link's target when the run started, "none" when there is
// no link).
type countingHook struct {
	Path  string
	State string
}

// hookRun is one parsed line of a countingHook's log.
type hookRun struct {
	N    int
	Hash string
	At   time.Time
	Link string
}

// newCountingHook writes a countingHook; link is the --link path whose
// target each run records ("" to record "none").
func newCountingHook(t testing.TB, failFirst int, link string) countingHook {
	t.Helper()
	if link == "" {
		link = "/nonexistent"
	}
	path, state := hookScript(t, fmt.Sprintf(`LINK=%q
n=$(cat "$STATE/n" 2>/dev/null || echo 0)
n=$((n+1))
echo "$n" > "$STATE/n"
l=$(readlink "$LINK" 2>/dev/null) && l=$(basename "$l") || l=none
echo "$n $GITSYNC_HASH $(date +%%s.%%N) $l" >> "$STATE/runs"
[ "$n" -gt %d ]
`, link, failFirst))
	return countingHook{Path: path, State: state}
}

// Runs parses the runs so far.
func (h countingHook) Runs(t testing.TB) []hookRun {
	t.Helper()
	var out []hookRun
	for _, line := range readLines(filepath.Join(h.State, "runs")) {
		f := strings.Fields(line)
		if len(f) != 4 {
			t.Fatalf("hook log line %q: want 4 fields", line)
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			t.Fatalf("hook log line %q: %v", line, err)
		}
		out = append(out, hookRun{N: n, Hash: f[1], At: unixTime(t, f[2]), Link: f[3]})
	}
	return out
}

// unixTime parses the output of `date +%s.%N`.
func unixTime(t testing.TB, s string) time.Time {
	t.Helper()
	secs, frac, _ := strings.Cut(s, ".")
	sec, err1 := strconv.ParseInt(secs, 10, 64)
	nsec, err2 := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("bad time %q", s)
	}
	return time.Unix(sec, nsec)
}

// checkGaps checks that consecutive times are at least min and at most max
// apart (a retry after the backoff, not sooner and not much later).
func checkGaps(t testing.TB, what string, times []time.Time, min, max time.Duration) {
	t.Helper()
	for i := 1; i < len(times); i++ {
		if d := times[i].Sub(times[i-1]); d < min || d > max {
			t.Errorf("%s: attempt %d came %v after attempt %d, want between %v and %v", what, i+1, d, i, min, max)
		}
	}
}

// ---------------------------------------------------------------------------
// Helpers: metrics.

// hookRuns returns git_sync_hook_run_count_total{name,status} at addr
// (name "" sums every hook).
func hookRuns(t testing.TB, addr, name, status string) float64 {
	t.Helper()
	labels := []string{"status", status}
	if name != "" {
		labels = append(labels, "name", name)
	}
	return metric(t, addr, "git_sync_hook_run_count_total", labels...)
}

// waitForHookRuns waits until git_sync_hook_run_count_total{name,status}
// at addr equals want.
func waitForHookRuns(t testing.TB, addr, name, status string, want float64) {
	t.Helper()
	labels := []string{"status", status}
	if name != "" {
		labels = append(labels, "name", name)
	}
	waitForMetric(t, addr, func(v float64) bool { return v == want },
		fmt.Sprintf("hook %q %s runs to reach %v", name, status, want), "git_sync_hook_run_count_total", labels...)
}

// syncCount returns the number of sync attempts so far
// (git_sync_count_total over every status), -1 if /metrics cannot be read.
func syncCount(addr string) float64 {
	return tryMetric(addr, "git_sync_count_total")
}

// waitIdlePolls waits until git-sync at addr has made n more idle polls
// (git_sync_count_total{status="noop"}) than when called. Tests use it to
// let a long-running git-sync go round its loop before asserting that
// something did not happen again.
func waitIdlePolls(t testing.TB, addr string, n int) {
	t.Helper()
	start := metric(t, addr, "git_sync_count_total", "status", "noop")
	waitForMetric(t, addr, func(v float64) bool { return v >= start+float64(n) },
		fmt.Sprintf("%d idle polls", n), "git_sync_count_total", "status", "noop")
}

// commitAndWaitSynced makes a commit in up and waits until git-sync p has
// published it through link and finished that sync: the touch file (which
// git-sync touches after handing the new hash to the post-publish hooks)
// is removed before the commit and waited for afterwards. The previous sync
// must have touched the file already when this is called, and idle polls
// do not touch it, so its reappearance belongs to the new commit.
func commitAndWaitSynced(t testing.TB, p *Proc, up *gittest.Repo, link, touch, content string) string {
	t.Helper()
	waitFor(t, syncDeadline, func() bool { return exists(touch) }, "the touch file of the previous sync")
	if err := os.Remove(touch); err != nil {
		t.Fatal(err)
	}
	h := up.Commit(map[string]string{"README": content + "\n"}, content)
	waitForLink(t, p, link, h)
	waitFor(t, syncDeadline, func() bool { return exists(touch) }, "the touch file after publishing %s", h)
	return h
}

// metricsArgs returns the flags that serve /metrics on addr.
func metricsArgs(addr string) []string {
	return []string{"--http-bind=" + addr, "--http-metrics"}
}

// ---------------------------------------------------------------------------
// Helpers: webhook receivers.

// webhookCall is one request a receiver got.
type webhookCall struct {
	Method string
	Hash   string // the Gitsync-Hash header
	At     time.Time
}

// webhookReceiver is an httptest server that records every request and
// answers with the status its answer function picks.
type webhookReceiver struct {
	URL    string
	mu     sync.Mutex
	calls  []webhookCall
	answer func(ctx context.Context, n int, hash string) int
}

// newWebhookReceiver starts a receiver. answer gets the request number n
// (from 1) and the hash, and returns the status to answer with; it may
// block to make the receiver hang, until ctx ends (the client gave up or
// the test is over). The test's cleanup stops the server.
func newWebhookReceiver(t testing.TB, answer func(ctx context.Context, n int, hash string) int) *webhookReceiver {
	t.Helper()
	rc := &webhookReceiver{answer: answer}
	base, cancel := context.WithCancel(context.Background())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, stop := context.WithCancel(r.Context())
		defer stop()
		defer context.AfterFunc(base, stop)()
		rc.mu.Lock()
		rc.calls = append(rc.calls, webhookCall{Method: r.Method, Hash: r.Header.Get("Gitsync-Hash"), At: time.Now()})
		n := len(rc.calls)
		f := rc.answer
		rc.mu.Unlock()
		code := f(ctx, n, r.Header.Get("Gitsync-Hash"))
		if ctx.Err() != nil {
			return
		}
		w.WriteHeader(code)
	}))
	rc.URL = srv.URL + "/hook"
	t.Cleanup(func() {
		cancel()
		srv.Close()
	})
	return rc
}

// setAnswer replaces the answer function for later requests.
func (rc *webhookReceiver) setAnswer(f func(ctx context.Context, n int, hash string) int) {
	rc.mu.Lock()
	rc.answer = f
	rc.mu.Unlock()
}

// Calls returns the requests so far.
func (rc *webhookReceiver) Calls() []webhookCall {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.calls)
}

// count returns how many requests arrived.
func (rc *webhookReceiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.calls)
}

// answerStatus answers every request with code.
func answerStatus(code int) func(context.Context, int, string) int {
	return func(context.Context, int, string) int { return code }
}

// answerHang never answers: it returns only when the client gives up or
// the test ends.
func answerHang(ctx context.Context, _ int, _ string) int {
	<-ctx.Done()
	return http.StatusOK
}

// ---------------------------------------------------------------------------
// Exec hook.

func TestExecHookEnvironmentAndWorkdir(t *testing.T) {
	t.Parallel()
	up, h1 := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	addr := freeAddr(t)
	hook, state := hookScript(t, `{
	echo "hash=$GITSYNC_HASH"
	echo "pwd=$(pwd -P)"
	echo "marker=$E2E_HOOK_MARKER"
	echo "config=$(git config --global --get e2e.hookkey)"
	echo "head=$(git rev-parse HEAD)"
} > "$STATE/env.$GITSYNC_HASH" 2>&1
echo "$GITSYNC_HASH" >> "$STATE/runs"
echo "written by the hook" > hook-output.txt
`)
	p := startWith(t, runOpts{Env: []string{"E2E_HOOK_MARKER=from-git-sync-env"}},
		concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=100ms",
			"--exechook-command=" + hook, "--exechook-backoff=1s",
			`--git-config=e2e.hookkey:from git-sync's config`})...)
	waitForLink(t, p, link, h1)
	waitForHookRuns(t, addr, "exechook", "success", 1)

	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	checkEnv := func(hash string) {
		t.Helper()
		got := map[string]string{}
		for _, l := range readLines(filepath.Join(state, "env."+hash)) {
			k, v, _ := strings.Cut(l, "=")
			got[k] = v
		}
		want := map[string]string{
			"hash":   hash,
			"pwd":    worktreePath(realRoot, hash),
			"marker": "from-git-sync-env",
			"config": "from git-sync's config",
			"head":   hash,
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("hook for %s: %s = %q, want %q", hash, k, got[k], v)
			}
		}
	}
	checkEnv(h1)

	// The hook's file in the worktree is not a reason to rebuild, and idle
	// polls do not run the hook again.
	waitIdlePolls(t, addr, 10)
	if runs := readLines(filepath.Join(state, "runs")); len(runs) != 1 {
		t.Errorf("after idle polls the hook ran %d times (%q), want once", len(runs), runs)
	}
	if n := metric(t, addr, "git_sync_count_total", "status", "success"); n != 1 {
		t.Errorf("git_sync_count_total{success} = %v after idle polls, want 1 (a file the hook wrote must not cause a rebuild)", n)
	}
	if b, err := os.ReadFile(filepath.Join(link, "hook-output.txt")); err != nil || !strings.Contains(string(b), "written by the hook") {
		t.Errorf("the hook's output file in the published tree: %q, %v", b, err)
	}
	assertPublished(t, root, link, h1)

	// A new commit runs the hook again, in the new worktree.
	h2 := up.Commit(map[string]string{"README": "second\n"}, "second")
	waitForLink(t, p, link, h2)
	waitForHookRuns(t, addr, "exechook", "success", 2)
	if runs := readLines(filepath.Join(state, "runs")); !slices.Equal(runs, []string{h1, h2}) {
		t.Errorf("hook runs = %q, want [%s %s]", runs, h1, h2)
	}
	checkEnv(h2)
}

// TestHooksNotRerunOnRebuild checks that rebuilding a damaged worktree for
// a hash whose hooks already succeeded republishes it without firing the
// hooks again.
func TestHooksNotRerunOnRebuild(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	addr := freeAddr(t)
	hook := newCountingHook(t, 0, "")
	rc := newWebhookReceiver(t, answerStatus(http.StatusOK))
	p := start(t, concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=100ms",
		"--exechook-command=" + hook.Path, "--webhook-url=" + rc.URL})...)
	waitForLink(t, p, link, h)
	waitForHookRuns(t, addr, "exechook", "success", 1)
	waitForHookRuns(t, addr, "webhook", "success", 1)

	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(worktreePath(realRoot, h)); err != nil {
		t.Fatal(err)
	}
	waitForMetric(t, addr, func(v float64) bool { return v == 2 }, "the rebuild of the removed worktree",
		"git_sync_count_total", "status", "success")
	waitIdlePolls(t, addr, 5)
	assertPublished(t, root, link, h)
	if runs := hook.Runs(t); len(runs) != 1 {
		t.Errorf("exec hook runs = %+v, want 1: not again after the rebuild", runs)
	}
	if n := rc.count(); n != 1 {
		t.Errorf("webhook calls = %d, want 1: not again after the rebuild", n)
	}
}

func TestExecHookRetriesUntilSuccess(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	addr := freeAddr(t)
	hook := newCountingHook(t, 2, "")
	p := start(t, concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=100ms",
		"--exechook-command=" + hook.Path, "--exechook-backoff=1s"})...)
	waitForLink(t, p, filepath.Join(root, "link"), h)
	waitForHookRuns(t, addr, "exechook", "success", 1)
	waitIdlePolls(t, addr, 5)

	runs := hook.Runs(t)
	if len(runs) != 3 {
		t.Fatalf("hook ran %d times, want 3 (two failures, then a success and no more)", len(runs))
	}
	var times []time.Time
	for _, r := range runs {
		if r.Hash != h {
			t.Errorf("run %d for %s, want %s", r.N, r.Hash, h)
		}
		times = append(times, r.At)
	}
	checkGaps(t, "exechook retries with --exechook-backoff=1s", times, 750*time.Millisecond, 2800*time.Millisecond)
	if n := hookRuns(t, addr, "exechook", "error"); n != 2 {
		t.Errorf("exechook error runs = %v, want 2", n)
	}
}

func TestExecHookTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	addr := freeAddr(t)
	// The first run hangs with a background child and a foreground child;
	// later runs succeed.
	hook, state := hookScript(t, `n=$(cat "$STATE/n" 2>/dev/null || echo 0)
n=$((n+1))
echo "$n" > "$STATE/n"
echo "$n $GITSYNC_HASH $(date +%s.%N)" >> "$STATE/runs"
if [ "$n" -eq 1 ]; then
	echo $$ > "$STATE/sh.pid"
	sleep 300 &
	echo $! > "$STATE/bg.pid"
	sleep 301 &
	echo $! > "$STATE/fg.pid"
	wait
fi
`)
	p := start(t, concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=100ms",
		"--exechook-command=" + hook, "--exechook-timeout=1s", "--exechook-backoff=1s"})...)
	waitForLink(t, p, filepath.Join(root, "link"), h)
	waitForHookRuns(t, addr, "exechook", "success", 1)
	if n := hookRuns(t, addr, "exechook", "error"); n != 1 {
		t.Errorf("exechook error runs = %v, want 1 (the timed-out run)", n)
	}
	for _, name := range []string{"sh.pid", "bg.pid", "fg.pid"} {
		pid := readPid(filepath.Join(state, name))
		if pid == 0 {
			t.Fatalf("the first hook run did not record %s", name)
		}
		waitFor(t, 5*time.Second, func() bool { return !processAlive(pid) },
			"the timed-out hook's process %s (pid %d) to be killed", name, pid)
	}
	runs := readLines(filepath.Join(state, "runs"))
	if len(runs) != 2 {
		t.Fatalf("hook runs = %q, want 2", runs)
	}
	t1 := unixTime(t, strings.Fields(runs[0])[2])
	t2 := unixTime(t, strings.Fields(runs[1])[2])
	// timeout (1s) + backoff (1s) between the starts (as the scripts saw
	// them: a loaded machine can delay a script's first command a little).
	if d := t2.Sub(t1); d < 1500*time.Millisecond || d > 6*time.Second {
		t.Errorf("the retry started %v after the hung run, want about 2s (1s timeout + 1s backoff)", d)
	}
}

// TestHookLatestWins checks that when newer commits are published while a
// hook runs or fails, the next attempt is for the newest hash only, for the
// exec hook and the webhook alike.
func TestHookLatestWins(t *testing.T) {
	t.Parallel()
	// Each setup returns the flags for its hook, and functions to read the
	// attempted hashes in order, the hashes whose attempt succeeded, and to
	// let attempts finish and succeed from now on.
	type setup struct {
		flags     []string
		attempts  func() []string
		successes func() []string
		release   func()
	}
	execRunning := func(t *testing.T) setup {
		hook, state := hookScript(t, `echo "$GITSYNC_HASH" >> "$STATE/starts"
while [ -e "$STATE/block" ]; do sleep 0.02; done
echo "$GITSYNC_HASH" >> "$STATE/ok"
`)
		mustWrite(t, filepath.Join(state, "block"), "")
		return setup{
			flags:     []string{"--exechook-command=" + hook, "--exechook-timeout=60s", "--exechook-backoff=1s"},
			attempts:  func() []string { return readLines(filepath.Join(state, "starts")) },
			successes: func() []string { return readLines(filepath.Join(state, "ok")) },
			release:   func() { os.Remove(filepath.Join(state, "block")) },
		}
	}
	execFailing := func(t *testing.T) setup {
		hook, state := hookScript(t, `echo "$GITSYNC_HASH" >> "$STATE/starts"
[ -e "$STATE/fail" ] && exit 1
echo "$GITSYNC_HASH" >> "$STATE/ok"
`)
		mustWrite(t, filepath.Join(state, "fail"), "")
		return setup{
			flags:     []string{"--exechook-command=" + hook, "--exechook-backoff=1s"},
			attempts:  func() []string { return readLines(filepath.Join(state, "starts")) },
			successes: func() []string { return readLines(filepath.Join(state, "ok")) },
			release:   func() { os.Remove(filepath.Join(state, "fail")) },
		}
	}
	webhook := func(t *testing.T, blocking bool) setup {
		var mu sync.Mutex
		var ok []string
		released := make(chan struct{})
		rc := newWebhookReceiver(t, func(ctx context.Context, n int, hash string) int {
			if blocking {
				select {
				case <-released:
				case <-ctx.Done():
					return http.StatusOK
				}
			} else {
				select {
				case <-released:
				default:
					return http.StatusInternalServerError
				}
			}
			mu.Lock()
			ok = append(ok, hash)
			mu.Unlock()
			return http.StatusOK
		})
		return setup{
			flags: []string{"--webhook-url=" + rc.URL, "--webhook-timeout=60s", "--webhook-backoff=1s"},
			attempts: func() []string {
				var hs []string
				for _, c := range rc.Calls() {
					hs = append(hs, c.Hash)
				}
				return hs
			},
			successes: func() []string {
				mu.Lock()
				defer mu.Unlock()
				return slices.Clone(ok)
			},
			release: func() { close(released) },
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) setup
		// running: the first attempt is still in flight when the newer
		// commits are published, so the second attempt must be for the
		// newest hash exactly.
		running bool
	}{
		{"exechook running", execRunning, true},
		{"exechook failing", execFailing, false},
		{"webhook running", func(t *testing.T) setup { return webhook(t, true) }, true},
		{"webhook failing", func(t *testing.T) setup { return webhook(t, false) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up, h1 := gittest.NewRepoWithCommit(t)
			root := newRoot(t)
			link := filepath.Join(root, "link")
			touch := filepath.Join(root, "synced")
			s := tc.setup(t)
			p := start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--touch-file=synced"}, s.flags)...)
			waitForLink(t, p, link, h1)
			waitFor(t, syncDeadline, func() bool { return len(s.attempts()) >= 1 }, "the first hook attempt")
			h2 := commitAndWaitSynced(t, p, up, link, touch, "two")
			h3 := commitAndWaitSynced(t, p, up, link, touch, "three")
			if !tc.running {
				// Let an attempt for h2 that may be in flight end first:
				// attempts never overlap, so once one for h3 has started,
				// every later one must be for h3 too.
				waitFor(t, syncDeadline, func() bool { return slices.Contains(s.attempts(), h3) }, "a (failing) attempt for %s", h3)
			}
			s.release()
			waitFor(t, syncDeadline, func() bool { return slices.Contains(s.successes(), h3) }, "a successful attempt for the newest hash %s", h3)

			order := map[string]int{h1: 1, h2: 2, h3: 3}
			attempts := s.attempts()
			for i := 1; i < len(attempts); i++ {
				if order[attempts[i]] < order[attempts[i-1]] {
					t.Errorf("attempt %d is for an older hash than attempt %d: %q (h1..h3 = %s %s %s)", i+1, i, attempts, h1, h2, h3)
				}
			}
			if tc.running && (len(attempts) != 2 || attempts[0] != h1 || attempts[1] != h3) {
				t.Errorf("attempts = %q, want [h1 h3] = [%s %s]: after the running attempt, only the newest hash", attempts, h1, h3)
			}
			switch ok := s.successes(); {
			case tc.running && !slices.Equal(ok, []string{h1, h3}):
				t.Errorf("successful attempts = %q, want [%s %s]", ok, h1, h3)
			case !tc.running && !slices.Equal(ok, []string{h3}):
				t.Errorf("successful attempts = %q, want only [%s]", ok, h3)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Pre-publish hook.

func TestPrePublishHook(t *testing.T) {
	t.Parallel()
	up, h1 := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	pre, preState := hookScript(t, fmt.Sprintf(`LINK=%q
l=$(readlink "$LINK" 2>/dev/null) && l=$(basename "$l") || l=none
echo "$GITSYNC_HASH $(pwd -P) $l" >> "$STATE/runs"
echo "$GITSYNC_HASH" > prepublished.txt
`, link))
	post, postState := hookScript(t, `echo "$GITSYNC_HASH $(cat prepublished.txt 2>/dev/null || echo missing)" >> "$STATE/runs"
`)
	args := concat(syncArgs(up, root), []string{"--period=100ms",
		"--pre-publish-exechook-command=" + pre, "--pre-publish-exechook-backoff=1s",
		"--exechook-command=" + post, "--exechook-backoff=1s"})

	// Watch the link: whenever it names a commit, that commit's tree must
	// already hold the pre-publish hook's output.
	var (
		mu       sync.Mutex
		seen     []string
		problems []string
	)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		last := ""
		for {
			select {
			case <-stop:
				return
			default:
			}
			t1, err := os.Readlink(link)
			if err == nil {
				b, rerr := os.ReadFile(filepath.Join(filepath.Dir(link), t1, "prepublished.txt"))
				t2, _ := os.Readlink(link)
				if t1 == t2 {
					hash := filepath.Base(t1)
					mu.Lock()
					if hash != last {
						seen = append(seen, hash)
						last = hash
					}
					if rerr != nil || strings.TrimSpace(string(b)) != hash {
						problems = append(problems, fmt.Sprintf("link names %s but its prepublished.txt is %q (%v)", hash, b, rerr))
					}
					mu.Unlock()
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	defer func() {
		close(stop)
		<-watched
	}()

	p := start(t, args...)
	hashes := []string{h1}
	waitForLink(t, p, link, h1)
	for i := 2; i <= 3; i++ {
		h := up.Commit(map[string]string{"README": fmt.Sprintf("commit %d\n", i)}, fmt.Sprintf("c%d", i))
		waitForLink(t, p, link, h)
		hashes = append(hashes, h)
	}
	waitFor(t, syncDeadline, func() bool { return len(readLines(filepath.Join(postState, "runs"))) == 3 }, "three post-publish hook runs")

	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	preRuns := readLines(filepath.Join(preState, "runs"))
	if len(preRuns) != 3 {
		t.Fatalf("pre-publish hook runs = %q, want one per commit", preRuns)
	}
	for i, line := range preRuns {
		f := strings.Fields(line)
		wantLink := "none"
		if i > 0 {
			wantLink = hashes[i-1]
		}
		if want := []string{hashes[i], worktreePath(realRoot, hashes[i]), wantLink}; !slices.Equal(f, want) {
			t.Errorf("pre-publish run %d: (hash, cwd, link) = %q, want %q (it runs in the new worktree before the link flips)", i+1, f, want)
		}
	}
	for i, line := range readLines(filepath.Join(postState, "runs")) {
		if want := hashes[i] + " " + hashes[i]; line != want {
			t.Errorf("post-publish run %d saw (hash, prepublished.txt) = %q, want %q", i+1, line, want)
		}
	}
	mu.Lock()
	for i, pr := range problems {
		if i == 5 {
			t.Errorf("... and %d more such observations", len(problems)-i)
			break
		}
		t.Error(pr)
	}
	if !slices.Contains(seen, hashes[1]) || !slices.Contains(seen, hashes[2]) {
		t.Errorf("the link watcher saw %q, want every published hash", seen)
	}
	mu.Unlock()

	// A restart with the hash already published fires the post-publish
	// hook again but not the pre-publish hook.
	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	p2 := start(t, args...)
	waitFor(t, syncDeadline, func() bool { return len(readLines(filepath.Join(postState, "runs"))) == 4 },
		"the post-publish hook at startup with the hash already published")
	if n := len(readLines(filepath.Join(preState, "runs"))); n != 3 {
		t.Errorf("pre-publish hook ran %d times in total, want 3: not at startup when the hash is already published", n)
	}
	if !p2.Running() {
		t.Errorf("git-sync exited: %d", p2.ExitCode())
	}
}

func TestPrePublishHookFailure(t *testing.T) {
	t.Parallel()
	t.Run("one-time publishes and exits 1", func(t *testing.T) {
		t.Parallel()
		up, h := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		link := filepath.Join(root, "link")
		hook := newCountingHook(t, 1000, link)
		args := concat(syncArgs(up, root), []string{"--one-time", "--pre-publish-exechook-command=" + hook.Path,
			"--pre-publish-exechook-backoff=1s"})
		res := runOnce(t, args...)
		if res.Code != 1 {
			t.Errorf("--one-time with a failing pre-publish hook: want exit 1, got %s", res)
		}
		assertPublished(t, root, link, h)
		if runs := hook.Runs(t); len(runs) != 1 || runs[0].Hash != h || runs[0].Link != "none" {
			t.Errorf("pre-publish runs = %+v, want exactly one, for %s, before the link existed", runs, h)
		}
		// Again with the hash already published: the pre-publish hook is not
		// triggered, so it is not waited for and cannot fail the run.
		res = runOnce(t, args...)
		if res.Code != 0 {
			t.Errorf("--one-time with the hash already published: want exit 0, got %s", res)
		}
		if runs := hook.Runs(t); len(runs) != 1 {
			t.Errorf("the pre-publish hook ran again (%d runs) although the hash was already published", len(runs))
		}
		assertPublished(t, root, link, h)
	})
	t.Run("retried in the background after publishing", func(t *testing.T) {
		t.Parallel()
		up, h := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		link := filepath.Join(root, "link")
		addr := freeAddr(t)
		hook := newCountingHook(t, 2, link)
		p := start(t, concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=100ms",
			"--pre-publish-exechook-command=" + hook.Path, "--pre-publish-exechook-backoff=1s"})...)
		waitForLink(t, p, link, h)
		waitForHookRuns(t, addr, "", "success", 1)
		waitIdlePolls(t, addr, 5)
		runs := hook.Runs(t)
		if len(runs) != 3 {
			t.Fatalf("pre-publish hook ran %d times, want 3 (two failures, one success)", len(runs))
		}
		var times []time.Time
		for i, r := range runs {
			wantLink := h
			if i == 0 {
				wantLink = "none"
			}
			if r.Hash != h || r.Link != wantLink {
				t.Errorf("run %d: hash %s with the link naming %s, want %s with %s (published despite the failure)", r.N, r.Hash, r.Link, h, wantLink)
			}
			times = append(times, r.At)
		}
		checkGaps(t, "pre-publish retries with backoff 1s", times, 750*time.Millisecond, 2800*time.Millisecond)
		if n := hookRuns(t, addr, "", "error"); n != 2 {
			t.Errorf("hook error runs = %v, want 2", n)
		}
		if n := metric(t, addr, "git_sync_count_total", "status", "success"); n != 1 {
			t.Errorf("git_sync_count_total{success} = %v, want 1 (background retries are not syncs)", n)
		}
		if !p.Running() {
			t.Errorf("git-sync exited (%d) after a pre-publish hook failure", p.ExitCode())
		}
	})
}

// ---------------------------------------------------------------------------
// Webhook.

func TestWebhook(t *testing.T) {
	t.Parallel()
	t.Run("method, header, one call per hash", func(t *testing.T) {
		t.Parallel()
		up, h1 := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		link := filepath.Join(root, "link")
		addr := freeAddr(t)
		rc := newWebhookReceiver(t, answerStatus(http.StatusOK))
		p := start(t, concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=100ms",
			"--webhook-url=" + rc.URL, "--webhook-method=PUT", "--webhook-backoff=1s"})...)
		waitForLink(t, p, link, h1)
		waitFor(t, syncDeadline, func() bool { return rc.count() == 1 }, "the webhook for %s", h1)
		h2 := up.Commit(map[string]string{"README": "two\n"}, "two")
		waitForLink(t, p, link, h2)
		waitForHookRuns(t, addr, "webhook", "success", 2)
		waitIdlePolls(t, addr, 10)
		calls := rc.Calls()
		want := []webhookCall{{Method: "PUT", Hash: h1}, {Method: "PUT", Hash: h2}}
		if len(calls) != len(want) {
			t.Fatalf("webhook calls = %+v, want %+v (none on idle polls)", calls, want)
		}
		for i := range want {
			if calls[i].Method != want[i].Method || calls[i].Hash != want[i].Hash {
				t.Errorf("webhook call %d = %s Gitsync-Hash: %s, want %s %s", i+1, calls[i].Method, calls[i].Hash, want[i].Method, want[i].Hash)
			}
		}
	})
	t.Run("retried until the success status", func(t *testing.T) {
		t.Parallel()
		up, h := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		addr := freeAddr(t)
		rc := newWebhookReceiver(t, func(_ context.Context, n int, _ string) int {
			if n <= 2 {
				return http.StatusOK // not the configured success status
			}
			return http.StatusNoContent
		})
		p := start(t, concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=100ms",
			"--webhook-url=" + rc.URL, "--webhook-success-status=204", "--webhook-backoff=1s"})...)
		waitForLink(t, p, filepath.Join(root, "link"), h)
		waitForHookRuns(t, addr, "webhook", "success", 1)
		waitIdlePolls(t, addr, 5)
		calls := rc.Calls()
		if len(calls) != 3 {
			t.Fatalf("webhook calls = %+v, want 3 (two wrong statuses, then 204)", calls)
		}
		var times []time.Time
		for i, c := range calls {
			if c.Method != http.MethodPost || c.Hash != h {
				t.Errorf("call %d = %s Gitsync-Hash: %s, want POST (the default) %s", i+1, c.Method, c.Hash, h)
			}
			times = append(times, c.At)
		}
		checkGaps(t, "webhook retries with --webhook-backoff=1s", times, 750*time.Millisecond, 2800*time.Millisecond)
		if n := hookRuns(t, addr, "webhook", "error"); n != 2 {
			t.Errorf("webhook error runs = %v, want 2", n)
		}
	})
	t.Run("hung receiver times out and is retried", func(t *testing.T) {
		t.Parallel()
		up, h := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		addr := freeAddr(t)
		rc := newWebhookReceiver(t, func(ctx context.Context, n int, hash string) int {
			if n == 1 {
				return answerHang(ctx, n, hash)
			}
			return http.StatusOK
		})
		p := start(t, concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=100ms",
			"--webhook-url=" + rc.URL, "--webhook-timeout=1s", "--webhook-backoff=1s"})...)
		waitForLink(t, p, filepath.Join(root, "link"), h)
		waitForHookRuns(t, addr, "webhook", "success", 1)
		if n := hookRuns(t, addr, "webhook", "error"); n != 1 {
			t.Errorf("webhook error runs = %v, want 1 (the timed-out call)", n)
		}
		calls := rc.Calls()
		if len(calls) != 2 {
			t.Fatalf("webhook calls = %+v, want 2", calls)
		}
		if d := calls[1].At.Sub(calls[0].At); d < 1800*time.Millisecond || d > 6*time.Second {
			t.Errorf("the retry came %v after the hung call, want about 2s (1s timeout + 1s backoff)", d)
		}
	})
	for _, status := range []string{"0", "-1"} {
		t.Run("fire and forget "+status, func(t *testing.T) {
			t.Parallel()
			up, h1 := gittest.NewRepoWithCommit(t)
			root := newRoot(t)
			link := filepath.Join(root, "link")
			addr := freeAddr(t)
			// First a receiver that never answers, then one that answers
			// with an error: both are successes when nobody waits for the
			// answer.
			rc := newWebhookReceiver(t, answerHang)
			p := start(t, concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=100ms",
				"--webhook-url=" + rc.URL, "--webhook-success-status=" + status,
				"--webhook-timeout=1s", "--webhook-backoff=1s"})...)
			waitForLink(t, p, link, h1)
			waitForHookRuns(t, addr, "webhook", "success", 1)
			rc.setAnswer(answerStatus(http.StatusInternalServerError))
			h2 := up.Commit(map[string]string{"README": "two\n"}, "two")
			waitForLink(t, p, link, h2)
			waitForHookRuns(t, addr, "webhook", "success", 2)
			waitIdlePolls(t, addr, 5)
			var hs []string
			for _, c := range rc.Calls() {
				hs = append(hs, c.Hash)
			}
			if !slices.Equal(hs, []string{h1, h2}) {
				t.Errorf("webhook calls for %q, want exactly one per hash [%s %s] (no retries)", hs, h1, h2)
			}
			if n := hookRuns(t, addr, "webhook", "error"); n != 0 {
				t.Errorf("webhook error runs = %v, want 0 with --webhook-success-status=%s", n, status)
			}
		})
	}
	t.Run("bare HTTP/1.1 response closed by the peer", func(t *testing.T) {
		t.Parallel()
		up, h := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		addr := freeAddr(t)
		hashes := rawWebhookPeer(t, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nthanks, no length given\n")
		p := start(t, concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=100ms",
			"--webhook-url=" + hashes.URL, "--webhook-backoff=1s"})...)
		waitForLink(t, p, filepath.Join(root, "link"), h)
		waitForHookRuns(t, addr, "webhook", "success", 1)
		waitIdlePolls(t, addr, 5)
		if got := hashes.Hashes(); !slices.Equal(got, []string{h}) {
			t.Errorf("the peer got requests for %q, want exactly [%s]", got, h)
		}
		if n := hookRuns(t, addr, "webhook", "error"); n != 0 {
			t.Errorf("webhook error runs = %v, want 0", n)
		}
	})
}

// rawPeer is a TCP server speaking just enough HTTP/1.1 by hand: it reads
// a request's head, records its Gitsync-Hash header, writes a fixed
// response and closes the connection.
type rawPeer struct {
	URL    string
	mu     sync.Mutex
	hashes []string
}

// Hashes returns the Gitsync-Hash of every request so far.
func (p *rawPeer) Hashes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.hashes)
}

func rawWebhookPeer(t testing.TB, response string) *rawPeer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{URL: "http://" + l.Addr().String() + "/hook"}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				hash := ""
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					line = strings.TrimRight(line, "\r\n")
					if line == "" {
						break
					}
					if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Gitsync-Hash") {
						hash = strings.TrimSpace(v)
					}
				}
				p.mu.Lock()
				p.hashes = append(p.hashes, hash)
				p.mu.Unlock()
				_, _ = c.Write([]byte(response))
			}()
		}
	}()
	return p
}

// ---------------------------------------------------------------------------
// Hooks at startup, hooks that hang, --one-time, metrics.

func TestHooksFireAtStartupWithPublishedHash(t *testing.T) {
	t.Parallel()
	for _, oneTime := range []bool{false, true} {
		name := "long-running"
		if oneTime {
			name = "one-time"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			up, h := gittest.NewRepoWithCommit(t)
			root := newRoot(t)
			// A previous run published h and died before notifying anyone.
			mustSyncOnce(t, up, root)
			execHook := newCountingHook(t, 0, "")
			pre := newCountingHook(t, 0, "")
			rc := newWebhookReceiver(t, answerStatus(http.StatusOK))
			args := concat(syncArgs(up, root), []string{"--period=100ms",
				"--exechook-command=" + execHook.Path, "--webhook-url=" + rc.URL,
				"--pre-publish-exechook-command=" + pre.Path})
			if oneTime {
				res := runOnce(t, append(args, "--one-time")...)
				if res.Code != 0 {
					t.Fatalf("want exit 0, got %s", res)
				}
			} else {
				addr := freeAddr(t)
				p := start(t, append(args, metricsArgs(addr)...)...)
				waitFor(t, syncDeadline, func() bool { return len(execHook.Runs(t)) >= 1 && rc.count() >= 1 },
					"the exec hook and the webhook at startup")
				waitIdlePolls(t, addr, 5)
				if !p.Running() {
					t.Fatalf("git-sync exited: %d", p.ExitCode())
				}
			}
			if runs := execHook.Runs(t); len(runs) != 1 || runs[0].Hash != h {
				t.Errorf("exec hook runs = %+v, want one for %s", runs, h)
			}
			if calls := rc.Calls(); len(calls) != 1 || calls[0].Hash != h {
				t.Errorf("webhook calls = %+v, want one for %s", calls, h)
			}
			if runs := pre.Runs(t); len(runs) != 0 {
				t.Errorf("the pre-publish hook ran %+v, want no run when the hash is already published", runs)
			}
			assertPublished(t, root, filepath.Join(root, "link"), h)
		})
	}
}

func TestHungHooksDoNotBlockSync(t *testing.T) {
	t.Parallel()
	up, h1 := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	touch := filepath.Join(root, "synced")
	hook, state := hookScript(t, `echo "$GITSYNC_HASH" >> "$STATE/runs"
sleep 300
`)
	rc := newWebhookReceiver(t, answerHang)
	p := start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--touch-file=synced",
		"--exechook-command=" + hook, "--exechook-timeout=60s",
		"--webhook-url=" + rc.URL, "--webhook-timeout=60s"})...)
	waitForLink(t, p, link, h1)
	waitFor(t, syncDeadline, func() bool { return len(readLines(filepath.Join(state, "runs"))) == 1 && rc.count() == 1 },
		"both hooks to be hanging for the first commit")
	for i := 2; i <= 4; i++ {
		commitAndWaitSynced(t, p, up, link, touch, fmt.Sprintf("commit %d", i))
	}
	if n := len(readLines(filepath.Join(state, "runs"))); n != 1 {
		t.Errorf("the hung exec hook was started %d times, want 1 (still running its first attempt)", n)
	}
	if n := rc.count(); n != 1 {
		t.Errorf("the hung webhook was called %d times, want 1 (still waiting for its first answer)", n)
	}
}

func TestOneTimeWaitsForHooks(t *testing.T) {
	t.Parallel()
	const (
		execOK   = 1 // an exec hook that succeeds after half a second
		execFail = 2 // an exec hook that fails after half a second
		execHang = 3 // an exec hook that outlives --exechook-timeout=2s
	)
	const webhookHang = -1 // a receiver that never answers
	for _, tc := range []struct {
		name    string
		exec    int // 0 = no exec hook
		webhook int // status the receiver answers; 0 = no webhook
		flags   []string
		code    int
	}{
		{name: "exechook succeeds", exec: execOK, code: 0},
		{name: "exechook fails", exec: execFail, code: 1},
		{name: "exechook times out", exec: execHang, code: 1},
		{name: "webhook succeeds", webhook: http.StatusOK, code: 0},
		{name: "webhook fails", webhook: http.StatusInternalServerError, code: 1},
		{name: "webhook times out", webhook: webhookHang, code: 1},
		{name: "webhook fire and forget", webhook: http.StatusInternalServerError, flags: []string{"--webhook-success-status=0"}, code: 0},
		{name: "webhook fire and forget, no answer", webhook: webhookHang, flags: []string{"--webhook-success-status=-1"}, code: 0},
		{name: "both, webhook fails", exec: execOK, webhook: http.StatusBadGateway, code: 1},
		{name: "both, exechook fails", exec: execFail, webhook: http.StatusOK, code: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up, h := gittest.NewRepoWithCommit(t)
			root := newRoot(t)
			args := concat(syncArgs(up, root), []string{"--one-time"}, tc.flags)
			var state string
			if tc.exec != 0 {
				end := "exit 0"
				switch tc.exec {
				case execFail:
					end = "exit 1"
				case execHang:
					end = "sleep 300"
				}
				var hook string
				hook, state = hookScript(t, fmt.Sprintf(`echo "$GITSYNC_HASH" >> "$STATE/runs"
echo $$ > "$STATE/pid"
sleep 0.5
echo done > "$STATE/finished"
%s
`, end))
				args = append(args, "--exechook-command="+hook, "--exechook-timeout=2s", "--exechook-backoff=1s")
			}
			var rc *webhookReceiver
			if tc.webhook != 0 {
				answer := answerStatus(tc.webhook)
				if tc.webhook == webhookHang {
					answer = answerHang
				}
				rc = newWebhookReceiver(t, answer)
				args = append(args, "--webhook-url="+rc.URL, "--webhook-timeout=1s", "--webhook-backoff=1s")
			}
			began := time.Now()
			res := runOnce(t, args...)
			if res.Code != tc.code {
				t.Errorf("want exit %d, got %s", tc.code, res)
			}
			if d := time.Since(began); d > 10*time.Second {
				t.Errorf("git-sync --one-time took %v; hooks must get exactly one attempt, bounded by their timeouts", d)
			}
			assertPublished(t, root, filepath.Join(root, "link"), h)
			if tc.exec != 0 {
				if runs := readLines(filepath.Join(state, "runs")); !slices.Equal(runs, []string{h}) {
					t.Errorf("exec hook runs = %q, want exactly one for %s", runs, h)
				}
				if tc.exec != execHang && !exists(filepath.Join(state, "finished")) {
					t.Errorf("git-sync --one-time exited before its exec hook finished")
				}
				if pid := readPid(filepath.Join(state, "pid")); pid != 0 && len(liveGroupMembers(pid)) != 0 {
					t.Errorf("the exec hook's processes outlived git-sync --one-time: %v", liveGroupMembers(pid))
				}
			}
			if rc != nil {
				if calls := rc.Calls(); len(calls) != 1 || calls[0].Hash != h {
					t.Errorf("webhook calls = %+v, want exactly one for %s", calls, h)
				}
			}
		})
	}
}

func TestHookRunCountMetric(t *testing.T) {
	t.Parallel()
	up, h1 := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	addr := freeAddr(t)
	execHook := newCountingHook(t, 1, "")
	rc := newWebhookReceiver(t, func(_ context.Context, n int, _ string) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	p := start(t, concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=100ms",
		"--exechook-command=" + execHook.Path, "--exechook-backoff=1s",
		"--webhook-url=" + rc.URL, "--webhook-backoff=1s"})...)
	waitForLink(t, p, link, h1)
	waitForHookRuns(t, addr, "exechook", "success", 1)
	waitForHookRuns(t, addr, "webhook", "success", 1)
	h2 := up.Commit(map[string]string{"README": "two\n"}, "two")
	waitForLink(t, p, link, h2)
	waitForHookRuns(t, addr, "exechook", "success", 2)
	waitForHookRuns(t, addr, "webhook", "success", 2)
	waitIdlePolls(t, addr, 5)

	samples, err := parseMetrics(metricsText(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, s := range samples {
		if s.Name == "git_sync_hook_run_count_total" {
			got[s.Labels["name"]+"/"+s.Labels["status"]] += s.Value
		}
	}
	want := map[string]float64{"exechook/success": 2, "exechook/error": 1, "webhook/success": 2, "webhook/error": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("git_sync_hook_run_count_total{name/status=%s} = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if n := len(execHook.Runs(t)); n != 3 {
		t.Errorf("exec hook ran %d times, want 3", n)
	}
	if n := rc.count(); n != 3 {
		t.Errorf("webhook called %d times, want 3", n)
	}
}

// ---------------------------------------------------------------------------
// Process helpers for signals_test.go and pid1_test.go.

// procGroup reads the process group id of pid from /proc/PID/stat.
func procGroup(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 {
		return 0, false
	}
	pgid, err := strconv.Atoi(f[2])
	return pgid, err == nil
}

// liveGroupMembers lists the processes of process group pgid that are
// still alive (zombies, which are dead but not yet reaped, do not count).
func liveGroupMembers(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, ok := procGroup(pid); ok && g == pgid && processAlive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// signalPending reports whether sig is pending for the whole process pid
// (sent but not yet taken by any of its threads), from the ShdPnd mask in
// /proc/PID/status.
func signalPending(pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ShdPnd:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}
