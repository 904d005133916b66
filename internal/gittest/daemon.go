package gittest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gitsync/internal/procgroup"
)

// serverStartTimeout bounds how long a test server may take to accept
// connections.
const serverStartTimeout = 10 * time.Second

// Daemon is a git daemon serving the git:// protocol.
type Daemon struct {
	port int
}

// GitDaemon runs `git daemon` on 127.0.0.1 at a random port, exporting every
// repository under baseDir (git://127.0.0.1:PORT/NAME is baseDir/NAME),
// read-write, until the test ends. It returns once the daemon accepts
// connections. For a Repo r: GitDaemon(t, filepath.Dir(r.Dir())).URL(
// filepath.Base(r.Dir())).
func GitDaemon(t testing.TB, baseDir string) *Daemon {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("gittest: git not found on PATH (install it: apt-get install -y git): %v", err)
	}
	abs, err := filepath.Abs(baseDir)
	if err != nil {
		t.Fatalf("gittest: %v", err)
	}
	var lastErr error
	// The port is picked free, then handed to git daemon; another process
	// may take it in between, so try a few ports.
	for attempt := 0; attempt < 5; attempt++ {
		port, err := serverFreePort()
		if err != nil {
			t.Fatalf("gittest: %v", err)
		}
		args := []string{"daemon",
			"--reuseaddr", "--export-all", "--informative-errors",
			"--enable=receive-pack",
			"--listen=127.0.0.1", "--port=" + strconv.Itoa(port),
			"--base-path=" + abs,
			abs,
		}
		proc, err := startServerProcess(t, gitPath, args, serverEnv(abs), port, nil)
		if err == nil {
			t.Cleanup(proc.stop)
			return &Daemon{port: port}
		}
		lastErr = err
	}
	t.Fatalf("gittest: start git daemon: %v", lastErr)
	return nil
}

// Port is the daemon's TCP port on 127.0.0.1.
func (d *Daemon) Port() int { return d.port }

// URL is the git:// address of repository name under the base directory.
func (d *Daemon) URL(name string) string {
	return fmt.Sprintf("git://127.0.0.1:%d/%s", d.port, strings.TrimPrefix(filepath.ToSlash(name), "/"))
}

// serverFreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func serverFreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// serverProcess is a test server child, in its own process group.
type serverProcess struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	cancel context.CancelFunc
	done   chan struct{}
	out    *serverOutput
}

// startServerProcess starts prog with args and env and waits until
// 127.0.0.1:port accepts a connection (and, when ready is not nil, until
// ready accepts what the connection reads). It fails if the process exits
// first. The process's output is logged when the test fails.
func startServerProcess(t testing.TB, prog string, args, env []string, port int, ready func(net.Conn) error) (*serverProcess, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, prog, args...)
	procgroup.Prepare(cmd)
	cmd.Env = env
	out := &serverOutput{}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	p := &serverProcess{t: t, name: filepath.Base(prog), cmd: cmd, cancel: cancel, done: make(chan struct{}), out: out}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(serverStartTimeout)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for {
		select {
		case <-p.done:
			cancel()
			return nil, fmt.Errorf("%s exited before accepting connections: %v\n%s", p.name, cmd.ProcessState, out.String())
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			if ready != nil {
				_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
				err = ready(conn)
			}
			conn.Close()
			if err == nil {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s does not accept connections on %s after %v: %v\n%s", p.name, addr, serverStartTimeout, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the process group and waits for it; on a failed test it logs
// the server's output.
func (p *serverProcess) stop() {
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Logf("gittest: %s did not exit after SIGKILL", p.name)
	}
	if p.t.Failed() {
		p.t.Logf("gittest: %s output:\n%s", p.name, p.out.String())
	}
}

// serverOutput is a bytes.Buffer safe for concurrent writes and reads.
type serverOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *serverOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *serverOutput) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serverEnv is the environment of a test server's process: PATH, a fixed
// locale, HOME (git reads nothing there: see serverGitConfigEnv).
func serverEnv(home string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "HOME=" + home}
	return append(env, serverGitConfigEnv()...)
}
