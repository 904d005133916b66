package e2e

// End-to-end tests of a second stop signal: the first SIGTERM or SIGINT
// stops git-sync cleanly with exit 0 (signals_test.go), which can take a
// few seconds; a second one makes it exit at once with 128+signal.

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// slowStop starts git-sync with an exec hook that leaves a process in a
// session of its own holding the hook's stderr: when git-sync kills the
// hook's group at shutdown, reading the hook's output only ends after the
// runner's grace period (seconds), so a clean stop is slow. It returns once
// the hook runs.
func slowStop(t *testing.T) (p *Proc, root, hash string) {
	t.Helper()
	up, h := gittest.NewRepoWithCommit(t)
	root = newRoot(t)
	// The orphan writes its pid once it is in its own session, out of
	// reach of the kill of the hook's process group.
	hook, state := hookScript(t, `setsid sh -c 'echo $$ > "$1/orphan"; exec sleep 30' sh "$STATE" >&2 &
echo $$ > "$STATE/pid"
sleep 300
`)
	p = start(t, concat(syncArgs(up, root), []string{"--period=100ms",
		"--exechook-command=" + hook, "--exechook-timeout=120s"})...)
	waitForLink(t, p, filepath.Join(root, "link"), h)
	var orphan int
	waitFor(t, syncDeadline, func() bool {
		orphan = readPid(filepath.Join(state, "orphan"))
		return orphan != 0 && readPid(filepath.Join(state, "pid")) != 0
	}, "the hook to start")
	t.Cleanup(func() { _ = syscall.Kill(orphan, syscall.SIGKILL) })
	return p, root, h
}

func TestSecondStopSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		first, second syscall.Signal
		code          int
	}{
		{"SIGTERM twice", syscall.SIGTERM, syscall.SIGTERM, 143},
		{"SIGTERM then SIGINT", syscall.SIGTERM, syscall.SIGINT, 130},
		{"SIGINT then SIGTERM", syscall.SIGINT, syscall.SIGTERM, 143},
		{"one SIGTERM", syscall.SIGTERM, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, root, h := slowStop(t)
			p.sendSignalDelivered(tc.first)
			waitFor(t, syncDeadline, func() bool { return strings.Contains(p.Logs(), "shutting down on signal") || !p.Running() },
				"git-sync to start stopping")
			began := time.Now()
			if tc.second != 0 {
				if !p.Running() {
					t.Fatalf("git-sync exited (%d) before the second signal; the clean stop was meant to be slow", p.ExitCode())
				}
				p.sendSignal(tc.second)
			}
			code := p.Wait(stopDeadline)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if tc.second != 0 && time.Since(began) > 1500*time.Millisecond {
				t.Errorf("took %v to exit after the second signal", time.Since(began))
			}
			assertPublished(t, root, filepath.Join(root, "link"), h)
		})
	}
}
