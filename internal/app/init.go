package app

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"reflect"
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
	// Before the child starts, so that none of its signals or its exit can
	// be missed. Each signal has a channel of its own: os/signal drops a
	// signal that finds its channel full, and with one shared channel a
	// burst of some signals (real-time ones queue in the kernel) could
	// crowd out a SIGTERM or the SIGCHLD of the child's exit. One slot per
	// signal merges repeats of the same signal, as the kernel does for
	// standard signals, but never loses one kind for another.
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	var fwd []chan os.Signal
	for _, sig := range forwardedSignals() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, sig)
		fwd = append(fwd, c)
	}
	child, err := os.StartProcess(self, argv, &os.ProcAttr{
		Env:   append(append([]string{}, env...), reaperEnv+"=1"),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "git-sync: error: start: %v\n", err)
		return exitFailure
	}
	return supervise(child, chld, fwd)
}

// supervise forwards the signals arriving on the fwd channels to child and
// reaps every exited process until child itself has exited, then returns
// child's exit status (128+N if a signal N killed it).
//
// SIGCHLD only says "some child changed state": the kernel merges those
// that arrive while one is pending, and os/signal drops those that find
// chld full. So a SIGCHLD is never counted or matched to a process: each
// wake-up is followed by a pass that collects every exited child. A pass
// starts after the notification that caused it was taken from chld, so an
// exit after the pass leaves a notification there, and the loop never
// waits for one that was dropped. Among several ready channels the select
// picks at random, so no stream of signals can starve the others.
func supervise(child *os.Process, chld <-chan os.Signal, fwd []chan os.Signal) int {
	cases := make([]reflect.SelectCase, 0, 1+len(fwd))
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(chld)})
	for _, c := range fwd {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
	}
	for {
		if status, exited := reapAll(child.Pid); exited {
			return status
		}
		chosen, v, _ := reflect.Select(cases)
		if chosen > 0 {
			// Signalling a child that has just exited fails harmlessly:
			// os.Process signals through a pidfd, never a reused pid.
			_ = child.Signal(v.Interface().(os.Signal))
		}
	}
}

// reapAll collects every exited child without blocking. It reports the
// exit status of the process childPid if that was among them.
func reapAll(childPid int) (status int, exited bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.ECHILD):
			// No child left at all: ours is gone without a status we
			// saw, which cannot happen unless something else reaped it.
			return exitFailure, true
		case err != nil || pid <= 0:
			return 0, false
		case pid == childPid && ws.Signaled():
			return 128 + int(ws.Signal()), true
		case pid == childPid && ws.Exited():
			return ws.ExitStatus(), true
		}
	}
}

// notForwarded are the signals PID 1 keeps to itself. Everything else that
// reaches it is meant for git-sync (a container runtime's SIGTERM, an
// operator's SIGHUP, the --sync-on-signal signal, whatever a git-sync that
// is not PID 1 would react to, even a kill -SEGV) and is forwarded.
var notForwarded = map[syscall.Signal]bool{
	// The init's own business: a child of its changed state.
	syscall.SIGCHLD: true,
	// The Go runtime's: goroutine preemption (the runtime sends it to its
	// own threads, many times a second under load) and the CPU profiler.
	syscall.SIGURG:  true,
	syscall.SIGPROF: true,
	// Cannot be caught.
	syscall.SIGKILL: true,
	syscall.SIGSTOP: true,
	// Reserved by C libraries for their threads (SIGCANCEL, SIGSETXID).
	32: true,
	33: true,
}

// lastSignal is the highest signal number on Linux (SIGRTMAX).
const lastSignal = 64

// forwardedSignals lists the signals supervise forwards: every signal but
// notForwarded.
func forwardedSignals() []os.Signal {
	var out []os.Signal
	for n := syscall.Signal(1); n <= lastSignal; n++ {
		if !notForwarded[n] {
			out = append(out, n)
		}
	}
	return out
}
