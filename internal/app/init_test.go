package app

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestForwardedSignals(t *testing.T) {
	fwd := forwardedSignals()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGWINCH, syscall.SIGSEGV, 34, 64} {
		if !slices.Contains(fwd, os.Signal(sig)) {
			t.Errorf("%v (%d) is not forwarded", sig, int(sig))
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPROF, syscall.SIGKILL, syscall.SIGSTOP} {
		if slices.Contains(fwd, os.Signal(sig)) {
			t.Errorf("%v (%d) is forwarded", sig, int(sig))
		}
	}
}

// startChild starts a shell running script as a direct child of the test
// process (os.StartProcess, so that nothing but supervise waits for it).
func startChild(t *testing.T, script string, stdin *os.File) *os.Process {
	t.Helper()
	return startChildOut(t, script, stdin, nil)
}

// startChildOut is startChild with the child's stdout.
func startChildOut(t *testing.T, script string, stdin, stdout *os.File) *os.Process {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	if stdin == nil {
		stdin, _ = os.Open(os.DevNull)
	}
	p, err := os.StartProcess(sh, []string{"sh", "-c", script}, &os.ProcAttr{Files: []*os.File{stdin, stdout, os.Stderr}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// superviseAsync runs supervise in the background with real SIGCHLD
// notifications and the given forwarding channels.
func superviseAsync(t *testing.T, child *os.Process, fwd []chan os.Signal) <-chan int {
	t.Helper()
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	t.Cleanup(func() { signal.Stop(chld) })
	done := make(chan int, 1)
	go func() { done <- supervise(child, chld, fwd) }()
	return done
}

func waitStatus(t *testing.T, done <-chan int) int {
	t.Helper()
	select {
	case s := <-done:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("supervise did not return after its child exited")
		return 0
	}
}

// TestSuperviseReapsAndReturnsStatus has other children (standing in for
// orphans re-parented to PID 1) exit at once, so that their SIGCHLDs merge,
// then the child itself; supervise must return the child's status and have
// reaped every other child on the way.
func TestSuperviseReapsAndReturnsStatus(t *testing.T) {
	othersIn, othersGo, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	childIn, childGo, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var others []*os.Process
	for range 5 {
		others = append(others, startChild(t, "read x; exit 0", othersIn))
	}
	othersIn.Close()
	child := startChild(t, "read x; exit 7", childIn)
	childIn.Close()
	done := superviseAsync(t, child, nil)

	othersGo.Close() // all five exit together
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range others {
		for !exitedOrReaped(p.Pid) {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d did not exit", p.Pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	childGo.Close()
	if s := waitStatus(t, done); s != 7 {
		t.Errorf("status %d, want 7", s)
	}
	for _, p := range others {
		var ws syscall.WaitStatus
		if pid, err := syscall.Wait4(p.Pid, &ws, syscall.WNOHANG, nil); !errors.Is(err, syscall.ECHILD) {
			t.Errorf("pid %d was not reaped by supervise (wait4: %d, %v)", p.Pid, pid, err)
		}
	}
}

// exitedOrReaped reports whether pid is a zombie or gone.
func exitedOrReaped(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// TestSuperviseUnderForwardingFlood keeps every forwarding channel full and
// checks that supervise still sees its child exit, and that a forwarded
// SIGTERM reaches the child.
func TestSuperviseUnderForwardingFlood(t *testing.T) {
	ready, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	child := startChildOut(t, "trap 'exit 42' TERM; echo ready; while :; do sleep 0.01; done", nil, readyW)
	readyW.Close()
	// Wait for the trap to be set: the read returns once the child wrote.
	if _, err := ready.Read(make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	ready.Close()
	fwd := make([]chan os.Signal, 10)
	for i := range fwd {
		fwd[i] = make(chan os.Signal, 1)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// SIGWINCH is ignored by sh: a harmless flood.
		for {
			for _, c := range fwd[1:] {
				select {
				case <-stop:
					return
				case c <- syscall.SIGWINCH:
				default:
				}
			}
		}
	}()
	done := superviseAsync(t, child, fwd)
	fwd[0] <- syscall.SIGTERM
	if s := waitStatus(t, done); s != 42 {
		t.Errorf("status %d, want 42 (the child's TERM trap)", s)
	}
}
