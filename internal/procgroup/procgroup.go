// Package procgroup runs child processes in their own process group so that a
// timeout or shutdown ends the whole tree (git's helpers, ssh, hook
// scripts and whatever they started), not just the direct child.
//
// git and hook scripts routinely fork: git fetch runs git-remote-https,
// git-upload-pack or ssh, a shell hook runs its own commands. Killing only
// the direct child leaves those running, holding pipes open and locks taken,
// which is exactly what breaks the next sync attempt.
//
// A group is first asked to stop with SIGTERM: git removes its lock files
// (shallow.lock, index.lock, ...) in its signal handler, so a fetch stopped
// at a deadline leaves a repository the next attempt can use. Whatever is
// still running after a short grace is killed with SIGKILL.
package procgroup

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Grace is how long a group gets between SIGTERM and SIGKILL. git needs
// milliseconds to clean up; the bound only matters for programs that ignore
// SIGTERM.
const Grace = time.Second

// waitDelay bounds how long Wait keeps reading the pipes of a stopped group:
// a grandchild that escaped into its own group could otherwise hold them
// open forever. It is longer than Grace so that the group's SIGKILL comes
// first.
const waitDelay = Grace + time.Second

// pollEvery is how often stopGroup checks whether the group has gone.
const pollEvery = 10 * time.Millisecond

// Prepare makes cmd (created with exec.CommandContext) start in a new process
// group and, when its context ends, stop that whole group: SIGTERM, then
// SIGKILL after Grace.
func Prepare(cmd *exec.Cmd) {
	Isolate(cmd)
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		pgid := cmd.Process.Pid
		if err := syscall.Kill(-pgid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		go stopGroup(pgid)
		return nil
	}
}

// stopGroup waits up to Grace for process group pgid, which has just been
// sent SIGTERM, to empty, then kills whatever is left of it.
func stopGroup(pgid int) {
	deadline := time.Now().Add(Grace)
	for time.Now().Before(deadline) {
		// Signal 0 probes for any member of the group (a zombie leader
		// that its parent has not reaped yet still counts).
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(pollEvery)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// Isolate makes cmd start in a new process group, for KillGroup to end.
// Prepare does this too; Isolate alone suits a process that outlives any
// one context.
func Isolate(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.WaitDelay = waitDelay
}

// KillGroup kills the process group led by cmd's process, if it was started.
// Callers use it after Wait returns, to reap background children a hook left
// behind in its group.
func KillGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
