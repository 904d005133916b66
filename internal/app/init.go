package app

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// reaperEnv marks the child of runAsInit, so it does not become an init
// itself.
const reaperEnv = "GITSYNC_INIT_CHILD"

func isReaperChild(env []string) bool {
	for _, kv := range env {
		if kv == reaperEnv+"=1" {
			return true
		}
	}
	return false
}

// runAsInit is used when git-sync is PID 1 (a container without an init).
// Orphaned processes (hooks' background jobs, killed git's helpers) are
// re-parented to PID 1 and must be reaped, but reaping arbitrary children
// inside the process that also waits for its own git commands would steal
// their exit statuses. So PID 1 stays a minimal init: it starts git-sync
// again as its only child, forwards signals to it, reaps every process that
// exits, and exits with the child's status.
func runAsInit(argv, env []string) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "git-sync: error: find own executable: %v\n", err)
		return exitFailure
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	child, err := os.StartProcess(self, argv, &os.ProcAttr{
		Env:   append(append([]string{}, env...), reaperEnv+"=1"),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "git-sync: error: start: %v\n", err)
		return exitFailure
	}
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			_ = child.Signal(sig)
			continue
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			if pid == child.Pid {
				if status.Signaled() {
					return 128 + int(status.Signal())
				}
				return status.ExitStatus()
			}
		}
	}
	return exitFailure
}
