package e2e

// The error file reports a failure only while it lasts: removed by the
// next successful sync even when that sync fetched nothing, and never
// written for a --one-time run that was asked to stop.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestErrorFileRemovedByIdleSuccess: the remote becomes unreachable (the
// error file appears), then reachable again with nothing new: the next
// idle poll succeeds, and the file goes, although nothing was fetched.
func TestErrorFileRemovedByIdleSuccess(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 1)
	root := newRoot(t)
	errFile := filepath.Join(root, "error.json")
	p := start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--max-failures=-1", "--error-file=error.json"})...)
	waitForLink(t, p, filepath.Join(root, "link"), hs[0])

	away := up.Dir() + ".away"
	if err := os.Rename(up.Dir(), away); err != nil {
		t.Fatal(err)
	}
	waitFor(t, syncDeadline, func() bool { return exists(errFile) }, "the error file while the remote is gone")
	if err := os.Rename(away, up.Dir()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, syncDeadline, func() bool { return !exists(errFile) }, "the error file removed by an idle poll that succeeded")
	if got := linkHash(t, filepath.Join(root, "link")); got != hs[0] {
		t.Fatalf("link moved to %s", got)
	}
}

// TestOneTimeStoppedBySIGTERM: a --one-time run stopped by SIGTERM in the
// middle of its sync exits 0 and writes no error file: being asked to stop
// is not a failure.
func TestOneTimeStoppedBySIGTERM(t *testing.T) {
	t.Parallel()
	up, _ := linearRepo(t, 1)
	root := newRoot(t)
	errFile := filepath.Join(t.TempDir(), "error.json")
	w := gitWrapper(t, wrapperOpts{SleepCmd: "fetch", Sleep: time.Minute})
	p := start(t, concat(syncArgs(up, root), []string{"--one-time", "--git=" + w.Path, "--error-file=" + errFile})...)
	waitFor(t, syncDeadline, func() bool { return w.SleepPid() != 0 }, "the fetch to start")
	if code := p.Stop(); code != 0 {
		t.Fatalf("SIGTERM during --one-time: exit %d, want 0\n%s", code, tail(p.Logs(), 20))
	}
	if exists(errFile) {
		b, _ := os.ReadFile(errFile)
		t.Errorf("error file written for a requested stop:\n%s", b)
	}
}

// TestFailedCheckoutLeavesNoHalfBuiltTree: when the checkout of a new
// commit fails, its half-built worktree is removed at once, not left for a
// later cleanup.
func TestFailedCheckoutLeavesNoHalfBuiltTree(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 1)
	root := newRoot(t)
	mustSyncOnce(t, up, root)
	next := up.Commit(map[string]string{"file.txt": "next\n"}, "next")
	failing := writeScript(t, "git", `if [ "$1" = reset ]; then echo "checkout sabotaged" >&2; exit 1; fi
exec `+realGit+` "$@"
`)
	res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time", "--git=" + failing, "--stale-worktree-timeout=1h"})...)
	if res.Code != 1 {
		t.Fatalf("want exit 1 for a failed checkout, got %s", res)
	}
	if exists(worktreePath(root, next)) {
		t.Errorf("the half-built worktree of %s was left after the failed checkout", next)
	}
	if got := linkHash(t, filepath.Join(root, "link")); got != hs[0] {
		t.Errorf("link moved to %s after a failed build", got)
	}
}

// TestErrorFileForInvalidConfiguration: a configuration that parses but is
// invalid is reported in --error-file too, as upstream does, so a tool that
// watches the file learns why git-sync did not start.
func TestErrorFileForInvalidConfiguration(t *testing.T) {
	t.Parallel()
	up, _ := linearRepo(t, 1)
	errFile := filepath.Join(t.TempDir(), "error.json")
	res := runOnce(t, concat(syncArgs(up, newRoot(t)), []string{"--period=1ms", "--error-file=" + errFile})...)
	if res.Code != 1 {
		t.Fatalf("want exit 1 for --period=1ms, got %s", res)
	}
	r, raw, ok := readErrorFile(errFile)
	if !ok {
		t.Fatalf("no error file for an invalid configuration (%q)", raw)
	}
	if r.Msg != "invalid configuration" || !strings.Contains(r.Err, "--period") {
		t.Errorf("error file = %s, want the invalid --period reported", raw)
	}
}
