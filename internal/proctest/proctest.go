// Package proctest holds what tests of process handling (gitcmd,
// procgroup) share: waiting for a state with a deadline, learning the pid
// a script reports, and telling whether a process has ended. It is used
// by tests only.
package proctest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Timeout bounds every wait for a state a test expects to reach.
const Timeout = 10 * time.Second

// Poll calls cond every 20 ms until it returns true, and fails the test if
// that does not happen within Timeout.
func Poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", Timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ReadPID waits for a script to write a process ID and a newline to path,
// and returns that ID. The process is killed when the test ends, in case a
// failure left it outside any group the test kills.
func ReadPID(t testing.TB, path string) int {
	t.Helper()
	var pid int
	Poll(t, filepath.Base(path), func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return true
	})
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// Gone reports whether process pid has exited: it no longer exists, or it
// is a zombie waiting for a parent (possibly init) to reap it.
func Gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses and
	// may itself contain spaces or parentheses.
	rest := b[bytes.LastIndexByte(b, ')')+1:]
	state := strings.Fields(string(rest))[0]
	return state == "Z" || state == "X"
}
