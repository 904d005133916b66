package gitcmd

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/proctest"
)

// stderrTail is how much of a session's stderr Start keeps.
const stderrTail = 4096

// newBlob makes a repository with one blob "hello\n" in a new directory and
// returns the directory and the blob's ID.
func newBlob(t *testing.T) (dir, id string) {
	t.Helper()
	r := runner(realGit(t), testEnv(t))
	ctx := context.Background()
	dir = t.TempDir()
	if _, err := r.Run(ctx, dir, "init", "--quiet"); err != nil {
		t.Fatal(err)
	}
	out, err := r.RunWithInput(ctx, dir, strings.NewReader("hello\n"), "hash-object", "-w", "--stdin")
	if err != nil {
		t.Fatal(err)
	}
	return dir, strings.TrimSpace(out)
}

// exchange writes one request line to the session and returns the response
// header line of git cat-file --batch, then reads the object's content.
func exchange(t *testing.T, s *Session, id string) string {
	t.Helper()
	if _, err := io.WriteString(s.Stdin, id+"\n"); err != nil {
		t.Fatal(err)
	}
	header, err := s.Stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the response: %v (stderr %q)", err, s.Stderr())
	}
	var size int
	if _, err := fmt.Sscanf(header, id+" blob %d\n", &size); err != nil {
		t.Fatalf("response header %q: %v", header, err)
	}
	if _, err := io.CopyN(io.Discard, s.Stdout, int64(size)+1); err != nil {
		t.Fatal(err)
	}
	return header
}

// closeWithin runs s.Close and fails the test if it takes longer than bound.
func closeWithin(t *testing.T, s *Session, bound time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatalf("Close still running after %v", bound)
	}
}

// A session is git like any other: the --git program, subcommand first, the
// runner's environment, its own process group. It keeps answering until
// its input ends, and then exits by itself.
func TestSessionRunsGitUntilEndOfInput(t *testing.T) {
	dir, id := newBlob(t)
	rec := newRecorder(t)
	env := testEnv(t)
	s, err := runner(rec.path, env).Start(dir, "cat-file", "--batch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-s.Pid(), syscall.SIGKILL) })

	for range 3 {
		exchange(t, s, id)
	}
	if got, want := rec.list(t, "argv"), []string{"cat-file", "--batch"}; !slices.Equal(got, want) {
		t.Errorf("wrapper's arguments = %q, want %q", got, want)
	}
	checkEnviron(t, rec, "Start", env)
	if pgid, err := syscall.Getpgid(s.Pid()); err != nil || pgid != s.Pid() {
		t.Errorf("session's process group = %d (%v), want its own (%d)", pgid, err, s.Pid())
	}

	closeWithin(t, s, closeGrace+5*time.Second)
	if ps := s.cmd.ProcessState; ps == nil || !ps.Success() {
		t.Errorf("git after Close: %v, want a clean exit on end of input", ps)
	}
}

// Close ends what git left running in its group after git itself exited.
func TestSessionCloseKillsLeftovers(t *testing.T) {
	dir, id := newBlob(t)
	pidDir := t.TempDir()
	git := script(t, fmt.Sprintf(`sleep 600 </dev/null >/dev/null 2>&1 &
echo $! > %s/leftover.pid
exec %s "$@"
`, pidDir, realGit(t)))
	s, err := runner(git, testEnv(t)).Start(dir, "cat-file", "--batch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-s.Pid(), syscall.SIGKILL) })
	leftover := proctest.ReadPID(t, filepath.Join(pidDir, "leftover.pid"))
	exchange(t, s, id)

	closeWithin(t, s, closeGrace+5*time.Second)
	if ps := s.cmd.ProcessState; ps == nil || !ps.Success() {
		t.Errorf("git after Close: %v, want a clean exit on end of input", ps)
	}
	proctest.Poll(t, "the leftover to be killed", func() bool { return proctest.Gone(leftover) })
}

// Close does not wait forever for a process that ignores the end of its
// input and SIGTERM: it kills it after closeGrace.
func TestSessionCloseKillsAProcessThatDoesNotExit(t *testing.T) {
	dir, id := newBlob(t)
	git := script(t, fmt.Sprintf(`trap '' TERM
%s "$@"
exec sleep 600
`, realGit(t)))
	s, err := runner(git, testEnv(t)).Start(dir, "cat-file", "--batch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-s.Pid(), syscall.SIGKILL) })
	exchange(t, s, id)

	start := time.Now()
	closeWithin(t, s, closeGrace+5*time.Second)
	if elapsed := time.Since(start); elapsed < closeGrace {
		t.Errorf("Close returned after %v, before the %v it promises", elapsed, closeGrace)
	}
	ws, _ := s.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("process after Close: %v, want killed by SIGKILL", s.cmd.ProcessState)
	}
}

// Kill, from another goroutine, ends a read that is waiting for git; reads
// and writes after it fail; calling it again and then Close is harmless.
func TestSessionKillEndsPendingIO(t *testing.T) {
	dir, _ := newBlob(t)
	s, err := runner(realGit(t), testEnv(t)).Start(dir, "cat-file", "--batch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-s.Pid(), syscall.SIGKILL) })

	read := make(chan error, 1)
	go func() {
		_, err := s.Stdout.ReadString('\n') // git has been asked nothing
		read <- err
	}()
	s.Kill()
	select {
	case err := <-read:
		if err == nil {
			t.Error("pending read succeeded after Kill")
		}
	case <-time.After(proctest.Timeout):
		t.Fatalf("pending read still blocked %v after Kill", proctest.Timeout)
	}
	proctest.Poll(t, "writes to fail after Kill", func() bool {
		_, err := io.WriteString(s.Stdin, "HEAD\n")
		return err != nil
	})
	s.Kill()
	closeWithin(t, s, closeGrace+5*time.Second)
}

// Stderr keeps only the end of what the process wrote, so a chatty
// long-lived process cannot grow git-sync's memory.
func TestSessionStderrKeepsTheTail(t *testing.T) {
	dir, id := newBlob(t)
	git := script(t, fmt.Sprintf(`i=0
while [ $i -lt 1000 ]; do i=$((i+1)); echo "remote: progress line $i" >&2; done
exec %s "$@"
`, realGit(t)))
	s, err := runner(git, testEnv(t)).Start(dir, "cat-file", "--batch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-s.Pid(), syscall.SIGKILL) })
	var all strings.Builder
	for i := 1; i <= 1000; i++ {
		fmt.Fprintf(&all, "remote: progress line %d\n", i)
	}
	want := all.String()[all.Len()-stderrTail:]

	exchange(t, s, id) // the chatter does not disturb the session
	proctest.Poll(t, "stderr to end with the last line", func() bool {
		return strings.HasSuffix(s.Stderr(), "line 1000\n")
	})
	if got := s.Stderr(); got != want {
		t.Errorf("Stderr() is %d bytes ending %q, want the last %d bytes written", len(got), got[max(0, len(got)-60):], stderrTail)
	}
	closeWithin(t, s, closeGrace+5*time.Second)
}

func TestTailBuffer(t *testing.T) {
	for _, tc := range []struct {
		writes []string
		want   string
	}{
		{nil, ""},
		{[]string{"abc"}, "abc"},
		{[]string{"abcdefgh"}, "abcdefgh"},
		{[]string{"abcdefghij"}, "cdefghij"},
		{[]string{"abcde", "fgh", "ij"}, "cdefghij"},
		{[]string{"abcdefghijklmnop", "q"}, "jklmnopq"},
	} {
		b := &tailBuffer{max: 8}
		for _, w := range tc.writes {
			if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
				t.Errorf("Write(%q) = %d, %v", w, n, err)
			}
		}
		if got := b.String(); got != tc.want {
			t.Errorf("after writes %q: %q, want %q", tc.writes, got, tc.want)
		}
	}
}
