package gitcmd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"

	"gitsync/internal/procgroup"
	"gitsync/internal/redact"
)

// closeGrace is how long Close waits for a session to exit on end of input.
const closeGrace = time.Second

// Session is a git process kept running between requests that are written
// to its stdin and answered on its stdout (a remote helper speaking
// stateless-connect, for instance). It is started like every other git
// command: the --git program, subcommand first, the runner's environment,
// its own process group.
type Session struct {
	Stdin  io.WriteCloser
	Stdout *bufio.Reader

	cmd    *exec.Cmd
	stderr *tailBuffer
	once   sync.Once
}

// Start starts git with args in dir and leaves it running. The caller owns
// the session and must Close it; nothing bounds its lifetime but Close (use
// Kill from a context's AfterFunc to bound one exchange).
func (r *Runner) Start(dir string, args ...string) (*Session, error) {
	cmd := exec.Command(r.Git, args...)
	cmd.Dir = dir
	cmd.Env = r.env()
	procgroup.Isolate(cmd)
	s := &Session{cmd: cmd, stderr: &tailBuffer{max: 4096}}
	cmd.Stderr = s.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start git %s: %w", redact.Text(strings.Join(args, " ")), err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start git %s: %w", redact.Text(strings.Join(args, " ")), err)
	}
	if r.Log.Enabled(context.Background(), LevelCommand) {
		r.Log.Log(context.Background(), LevelCommand, "starting git", "args", redact.Text(strings.Join(args, " ")), "dir", dir)
	}
	if err := cmd.Start(); err != nil {
		return nil, &Error{Args: args, Dir: dir, ExitCode: -1, Err: startError(dir, err)}
	}
	s.Stdin, s.Stdout = stdin, bufio.NewReader(stdout)
	return s, nil
}

// Kill kills the session's whole process group; pending and later reads
// and writes fail. It is safe to call from any goroutine, more than once.
func (s *Session) Kill() { procgroup.KillGroup(s.cmd) }

// Close ends the session: it closes stdin and gives the process a moment to
// exit by itself (a remote helper does on end of input, and then git reaps
// it), then kills whatever is left of the process group and reaps it.
func (s *Session) Close() {
	s.once.Do(func() {
		_ = s.Stdin.Close()
		exited := make(chan error, 1)
		go func() { exited <- s.cmd.Wait() }()
		select {
		case <-exited:
		case <-time.After(closeGrace):
			s.Kill()
			<-exited
		}
		s.Kill()
	})
}

// Stderr is the end of what the process wrote to stderr so far.
func (s *Session) Stderr() string { return s.stderr.String() }

// tailBuffer keeps the last max bytes written to it, so a long-lived
// process cannot grow git-sync's memory with its diagnostics.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// Pid is the process ID of the session's git process, which also names its
// process group.
func (s *Session) Pid() int { return s.cmd.Process.Pid }
