package e2e

// End-to-end tests of the publish gate (--publish-gate-command, issue 15):
// a gate that accepts publishes, one that refuses (or hangs past
// --publish-gate-timeout) keeps the current tree, reports the refusal in the
// log, the error file and git_sync_gate_rejections_total, removes the
// refused tree, and is not run again for a commit it already judged. The
// gate is a real shell script that records every run.

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// gateScript is a publish gate that accepts a tree whose status.txt says
// "good" and otherwise fails like a DAG import would. Every run appends
// "GITSYNC_HASH BASENAME-OF-PWD" to $STATE/runs.
type gateScript struct {
	Path, State string
}

func newGateScript(t testing.TB) gateScript {
	t.Helper()
	path, state := hookScript(t, `echo "$GITSYNC_HASH $(basename "$(pwd)")" >> "$STATE/runs"
echo "checking dags in $(pwd)"
if [ "$(cat status.txt)" = good ]; then exit 0; fi
echo "Broken DAG: [dags/etl.py] SyntaxError: invalid syntax" >&2
exit 3
`)
	return gateScript{Path: path, State: state}
}

// Runs returns how many times the gate ran for hash, failing the test if
// a run saw another hash's tree or no GITSYNC_HASH.
func (g gateScript) Runs(t testing.TB, hash string) int {
	t.Helper()
	n := 0
	for _, line := range readLines(filepath.Join(g.State, "runs")) {
		f := strings.Fields(line)
		if len(f) != 2 || f[0] != f[1] {
			t.Fatalf("gate run %q: want GITSYNC_HASH equal to the tree it ran in", line)
		}
		if f[0] == hash {
			n++
		}
	}
	return n
}

// gateCommit commits status.txt = status (what gateScript judges) and a
// DAG file that names note, so that every commit differs.
func gateCommit(up *gittest.Repo, status, note string) string {
	return up.Commit(map[string]string{"status.txt": status, "dags/etl.py": "print('" + note + "')\n"}, note)
}

func TestPublishGate(t *testing.T) {
	t.Parallel()
	up := gittest.NewRepo(t)
	a := gateCommit(up, "good", "first")
	root := newRoot(t)
	link := filepath.Join(root, "link")
	errFile := filepath.Join(root, "err.json")
	g := newGateScript(t)
	addr, metricArgs := authMetricsArgs(t)
	p := start(t, concat(syncArgs(up, root), metricArgs, []string{"--period=50ms", "--max-failures=0",
		"--error-file=err.json", "--publish-gate-command=" + g.Path})...)

	// Accept.
	waitForLink(t, p, link, a)
	assertPublished(t, root, link, a)
	if n := g.Runs(t, a); n != 1 {
		t.Fatalf("gate ran %d times for the accepted commit, want 1", n)
	}

	// Reject: the tree stays, the refusal is reported everywhere, the
	// refused tree goes.
	b := gateCommit(up, "bad", "broken")
	waitForMetric(t, addr, func(v float64) bool { return v == 1 }, "one rejection", "git_sync_gate_rejections_total")
	if got := linkHash(t, link); got != a {
		t.Fatalf("link moved to %s after a rejection, want %s", got, a)
	}
	assertPublished(t, root, link, a)
	var rep errorReport
	waitFor(t, syncDeadline, func() bool {
		r, _, ok := readErrorFile(errFile)
		rep = r
		return ok && strings.Contains(r.Err, b)
	}, "error file reporting the rejection of %s", b)
	for _, want := range []string{"publish gate refused " + b, "exit status 3", "Broken DAG: [dags/etl.py] SyntaxError", "checking dags in"} {
		if !strings.Contains(rep.Err, want) {
			t.Errorf("error file %q does not say %q", rep.Err, want)
		}
	}
	waitFor(t, syncDeadline, func() bool { return !exists(worktreePath(root, b)) }, "refused tree of %s removed", b)
	if recs := errorRecords(p.Logs()); len(recs) == 0 || !strings.Contains(strings.Join(recs, "\n"), "Broken DAG") {
		t.Fatalf("no error record with the gate's output in the log: %q", recs)
	}

	// The verdict is remembered: later polls neither gate nor rebuild b.
	polls := metric(t, addr, "git_sync_count_total", "status", "noop")
	waitForMetric(t, addr, func(v float64) bool { return v >= polls+5 }, "five more polls", "git_sync_count_total", "status", "noop")
	if n := g.Runs(t, b); n != 1 {
		t.Fatalf("gate ran %d times for the refused commit over several polls, want 1", n)
	}
	if v := metric(t, addr, "git_sync_gate_rejections_total"); v != 1 {
		t.Fatalf("rejections = %v after idle polls, want 1", v)
	}
	if !p.Running() || !exists(errFile) {
		t.Fatalf("after a rejection git-sync must keep running (max-failures=0) and keep the error file; running=%v", p.Running())
	}

	// A good commit after the refused one is published, and the error ends.
	d := gateCommit(up, "good", "fixed")
	waitForLink(t, p, link, d)
	assertPublished(t, root, link, d)
	waitFor(t, syncDeadline, func() bool { return !exists(errFile) }, "error file removed after a publish")

	// The ref moving back to the refused commit replays the verdict
	// without running the gate again.
	up.ResetHard(b)
	waitForMetric(t, addr, func(v float64) bool { return v == 2 }, "second rejection", "git_sync_gate_rejections_total")
	if n := g.Runs(t, b); n != 1 {
		t.Fatalf("gate ran %d times for %s after --ref came back to it, want 1 (remembered)", n, b)
	}
	if got := linkHash(t, link); got != d {
		t.Fatalf("link = %s, want %s kept", got, d)
	}
}

func TestPublishGateOneTime(t *testing.T) {
	t.Parallel()
	up := gittest.NewRepo(t)
	a := gateCommit(up, "good", "first")
	root := newRoot(t)
	link := filepath.Join(root, "link")
	g := newGateScript(t)
	gateArg := "--publish-gate-command=" + g.Path
	if got := mustSyncOnce(t, up, root, gateArg); got != a {
		t.Fatalf("published %s, want %s", got, a)
	}
	b := gateCommit(up, "bad", "broken")
	res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time", gateArg})...)
	if res.Code != 1 {
		t.Fatalf("--one-time with a refused commit: want exit 1, got %s", res)
	}
	if !strings.Contains(res.Stderr, "publish gate refused "+b) || !strings.Contains(res.Stderr, "Broken DAG") {
		t.Fatalf("stderr does not report the refusal with the gate's output:\n%s", res.Stderr)
	}
	assertPublished(t, root, link, a)
	if exists(worktreePath(root, b)) {
		t.Fatalf("refused tree %s left on disk", b)
	}
}

func TestPublishGateTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	up := gittest.NewRepo(t)
	a := gateCommit(up, "good", "first")
	root := newRoot(t)
	path, state := hookScript(t, `sleep 1000 &
echo $! > "$STATE/child"
echo "still importing"
sleep 1000
`)
	res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time",
		"--publish-gate-command=" + path, "--publish-gate-timeout=1s"})...)
	if res.Code != 1 {
		t.Fatalf("hung gate with --one-time: want exit 1, got %s", res)
	}
	if !strings.Contains(res.Stderr, "timed out after 1s") || !strings.Contains(res.Stderr, "still importing") {
		t.Fatalf("stderr does not say the gate timed out, with its output:\n%s", res.Stderr)
	}
	if exists(filepath.Join(root, "link")) {
		t.Fatalf("something was published although the gate never accepted")
	}
	if exists(worktreePath(root, a)) {
		t.Fatalf("refused tree %s left on disk", a)
	}
	child := readPid(filepath.Join(state, "child"))
	if child == 0 {
		t.Fatal("the gate's background child never started")
	}
	waitFor(t, 5*time.Second, func() bool { return !processAlive(child) }, "gate's background child %d killed with its group", child)
}
