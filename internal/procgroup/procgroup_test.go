package procgroup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/proctest"
)

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// killAtEnd makes sure process group pgid is gone when the test ends, so a
// failing test leaves no sleeping processes behind.
func killAtEnd(t *testing.T, pgid int) {
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
}

// shell returns a command running script with sh, with dir as $1.
func shell(ctx context.Context, script, dir string) *exec.Cmd {
	if ctx == nil {
		return exec.Command("/bin/sh", "-c", script, "sh", dir)
	}
	return exec.CommandContext(ctx, "/bin/sh", "-c", script, "sh", dir)
}

// signalOf is the signal that ended a process, or 0 if it exited.
func signalOf(ps *os.ProcessState) syscall.Signal {
	ws := ps.Sys().(syscall.WaitStatus)
	if !ws.Signaled() {
		return 0
	}
	return ws.Signal()
}

func TestPrepareStartsANewProcessGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, "sleep", "600")
	Prepare(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	killAtEnd(t, pid)

	pgid, err := syscall.Getpgid(pid)
	if err != nil {
		t.Fatal(err)
	}
	if pgid != pid {
		t.Errorf("child's process group = %d, want its own (%d)", pgid, pid)
	}
	if own := syscall.Getpgrp(); pgid == own {
		t.Errorf("child shares the test's process group %d", own)
	}
	cancel()
	if err := cmd.Wait(); err == nil {
		t.Error("Wait after cancel = nil, want the context's error")
	}
}

// The group gets SIGTERM first, so every member that handles it can clean
// up (git removes its lock files this way) before anything is killed.
func TestPrepareSendsSIGTERMToTheWholeGroup(t *testing.T) {
	dir := t.TempDir()
	const script = `
trap 'echo leader > "$1/leader.cleaned"; exit 0' TERM
sh -c 'trap "echo child > \"$1/child.cleaned\"; exit 0" TERM
	echo $$ > "$1/child.pid"
	sleep 600 & wait' child "$1" &
echo $$ > "$1/leader.pid"
wait
`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := shell(ctx, script, dir)
	Prepare(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, cmd.Process.Pid)
	proctest.ReadPID(t, filepath.Join(dir, "leader.pid"))
	child := proctest.ReadPID(t, filepath.Join(dir, "child.pid"))

	start := time.Now()
	cancel()
	err := cmd.Wait()
	t.Logf("Wait after %v: %v", time.Since(start), err)
	if err == nil {
		t.Error("Wait after cancel = nil, want the context's error")
	}
	if signalOf(cmd.ProcessState) != 0 {
		t.Errorf("leader: %v, want an exit from its TERM trap", cmd.ProcessState)
	}
	// The leader wrote its file before exiting; the child may still be
	// running its trap.
	if !exists(filepath.Join(dir, "leader.cleaned")) {
		t.Error("leader.cleaned missing: the leader did not get SIGTERM before it was killed")
	}
	proctest.Poll(t, "the child's TERM trap to write child.cleaned", func() bool { return exists(filepath.Join(dir, "child.cleaned")) })
	proctest.Poll(t, "the child to exit", func() bool { return proctest.Gone(child) })
}

// Members that ignore SIGTERM, the leader and a grandchild alike, are
// killed with SIGKILL once Grace has passed.
func TestPrepareKillsWhatIgnoresSIGTERMAfterGrace(t *testing.T) {
	dir := t.TempDir()
	const script = `
trap '' TERM
sh -c 'trap "" TERM; echo $$ > "$1/grandchild.pid"; while :; do sleep 1; done' grandchild "$1" &
echo $$ > "$1/leader.pid"
while :; do sleep 1; done
`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := shell(ctx, script, dir)
	Prepare(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, cmd.Process.Pid)
	proctest.ReadPID(t, filepath.Join(dir, "leader.pid"))
	grandchild := proctest.ReadPID(t, filepath.Join(dir, "grandchild.pid"))

	start := time.Now()
	cancel()
	err := cmd.Wait()
	elapsed := time.Since(start)
	t.Logf("Wait after %v: %v", elapsed, err)
	if elapsed < Grace {
		t.Errorf("leader ended %v after cancel, before the %v grace", elapsed, Grace)
	}
	if signalOf(cmd.ProcessState) != syscall.SIGKILL {
		t.Errorf("leader: %v, want killed by SIGKILL", cmd.ProcessState)
	}
	proctest.Poll(t, "the grandchild that ignores SIGTERM to be killed", func() bool { return proctest.Gone(grandchild) })
}

// A grandchild that escaped into its own session keeps the command's
// stdout open; Wait must still return soon after the leader is gone,
// whether the leader exited by itself or was stopped by the context.
func TestWaitReturnsWhileAGrandchildHoldsThePipes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		cancel bool
	}{
		{"leader exits", `echo hello; echo $$ > "$1/leader.pid"`, false},
		{"context ends", `echo hello; echo $$ > "$1/leader.pid"; sleep 600`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			script := `setsid sh -c 'echo $$ > "$1/escaped.pid"; exec sleep 600' escaped "$1" &
` + tc.script
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := shell(ctx, script, dir)
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			Prepare(cmd)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			killAtEnd(t, cmd.Process.Pid)
			escaped := proctest.ReadPID(t, filepath.Join(dir, "escaped.pid"))
			killAtEnd(t, escaped)
			if pgid, _ := syscall.Getpgid(escaped); pgid == cmd.Process.Pid {
				t.Fatal("the grandchild did not leave the group; the test proves nothing")
			}
			proctest.ReadPID(t, filepath.Join(dir, "leader.pid"))

			start := time.Now()
			if tc.cancel {
				cancel()
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			bound := waitDelay + 5*time.Second
			select {
			case err := <-done:
				t.Logf("Wait after %v: %v", time.Since(start), err)
				if !tc.cancel && !errors.Is(err, exec.ErrWaitDelay) {
					t.Errorf("Wait = %v, want exec.ErrWaitDelay", err)
				}
			case <-time.After(bound):
				t.Fatalf("Wait still blocked %v after the leader ended", bound)
			}
			if got := stdout.String(); got != "hello\n" {
				t.Errorf("stdout = %q, want the leader's output", got)
			}
			if proctest.Gone(escaped) {
				t.Error("the escaped grandchild was killed; it is outside the group and should not be")
			}
		})
	}
}

// KillGroup ends what a finished command left running in its group.
func TestKillGroupKillsBackgroundChildrenOfAFinishedCommand(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := shell(ctx, `sleep 600 </dev/null >/dev/null 2>&1 & echo $! > "$1/bg.pid"`, dir)
	Prepare(cmd)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, cmd.Process.Pid)
	bg := proctest.ReadPID(t, filepath.Join(dir, "bg.pid"))
	if proctest.Gone(bg) {
		t.Fatal("the background child is gone before KillGroup; the test proves nothing")
	}
	KillGroup(cmd)
	proctest.Poll(t, "the background child to be killed", func() bool { return proctest.Gone(bg) })
}

func TestKillGroupIgnoresACommandThatNeverStarted(t *testing.T) {
	cmd := exec.Command("/nonexistent/program")
	Isolate(cmd)
	if err := cmd.Start(); err == nil {
		t.Fatal("starting a missing program succeeded")
	}
	KillGroup(cmd) // must not panic
	KillGroup(exec.Command("true"))
}

// Isolate only moves the child into its own group: it installs nothing that
// signals that group. Under exec.CommandContext the context's end still
// kills the leader (os/exec's default), but the rest of the group is left
// for KillGroup.
func TestIsolateDoesNotStopTheGroup(t *testing.T) {
	dir := t.TempDir()
	const script = `
trap 'exit 0' TERM
sh -c 'trap "echo > \"$1/member.termed\"" TERM
	echo $$ > "$1/member.pid"
	while :; do sleep 1; done' member "$1" </dev/null >/dev/null 2>&1 &
echo $$ > "$1/leader.pid"
wait
`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := shell(ctx, script, dir)
	Isolate(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	leader := cmd.Process.Pid
	killAtEnd(t, leader)
	proctest.ReadPID(t, filepath.Join(dir, "leader.pid"))
	member := proctest.ReadPID(t, filepath.Join(dir, "member.pid"))
	if pgid, err := syscall.Getpgid(member); err != nil || pgid != leader {
		t.Fatalf("member's process group = %d (%v), want the leader's %d", pgid, err, leader)
	}

	cancel()
	_ = cmd.Wait()
	if signalOf(cmd.ProcessState) != syscall.SIGKILL {
		t.Errorf("leader: %v, want os/exec's SIGKILL (an exit means its TERM trap ran: the group was signalled)", cmd.ProcessState)
	}
	if proctest.Gone(member) {
		t.Fatal("the group member died when the context ended")
	}
	KillGroup(cmd)
	proctest.Poll(t, "KillGroup to end the member", func() bool { return proctest.Gone(member) })
	if exists(filepath.Join(dir, "member.termed")) {
		t.Error("the group member got SIGTERM")
	}
}
