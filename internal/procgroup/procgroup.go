// Package procgroup runs child processes in their own process group so that a
// timeout or shutdown kills the whole tree (git's helpers, ssh, hook
// scripts and whatever they started), not just the direct child.
//
// git and hook scripts routinely fork: git fetch runs git-remote-https or ssh,
// a shell hook runs its own commands. Killing only the direct child leaves
// those running, holding pipes open and locks taken, which is exactly what
// breaks the next sync attempt.
package procgroup

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// waitDelay bounds how long Wait keeps reading the pipes of a killed group:
// a grandchild that escaped into its own group could otherwise hold them
// open forever.
const waitDelay = 2 * time.Second

// Prepare makes cmd (created with exec.CommandContext) start in a new process
// group and, when its context ends, kill that whole group with SIGKILL.
func Prepare(cmd *exec.Cmd) {
	Isolate(cmd)
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
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
