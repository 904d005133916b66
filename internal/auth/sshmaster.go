package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gitsync/internal/procgroup"
	"gitsync/internal/redact"
)

// Lifetimes of a kept SSH connection (see the package doc, "Kept SSH
// connection").
const (
	// maxMasterAge bounds how long one master is kept: a key revoked on
	// the server side (not rotated in the mounted file) stops working
	// within this time, and a renewal costs one handshake.
	maxMasterAge = 10 * time.Minute
	// masterSetupWait bounds how long a Refresh waits for a new master to
	// authenticate; git's ssh connects on its own meanwhile.
	masterSetupWait = 10 * time.Second
	// masterDrainMax bounds how long a replaced master may finish the
	// sessions it still carries (it exits on its own when they are done).
	masterDrainMax = 2 * time.Minute
	// masterRetryFirst and masterRetryMax space out the attempts after a
	// master could not be set up (unless a watched file changes first).
	masterRetryFirst = 30 * time.Second
	masterRetryMax   = maxMasterAge
	// maxRefusingSyncs is how many syncs in a row may see the server refuse
	// a session on the kept connection before it is given up for the run.
	maxRefusingSyncs = 3
	// masterStopWait bounds how long Close waits for a master to exit.
	masterStopWait = 3 * time.Second
)

// levelMaster is the verbosity of routine master events.
const levelMaster = slog.Level(-2)

// controlName is ssh's ControlPath token for the socket's name: a hash of
// the local host, remote host, port and user (and ProxyJump), so that
// connections to other hosts (submodules) never share the --repo master.
// It expands to 40 hex digits, and ssh first binds the socket under that
// name plus "." and 16 random characters before renaming it.
const (
	controlName       = "%C"
	controlNameMaxLen = 40 + 1 + 16
)

// keptSSH keeps one OpenSSH master connection to the --repo host, started
// by git-sync as its own child, for git's ssh commands to share.
type keptSSH struct {
	log     *slog.Logger
	metrics Metrics
	dir     string   // where the control socket lives (owner-only)
	command string   // shell command that runs a master in the foreground
	dest    string   // what the master connects to, as given to ssh
	env     []string // the master's environment
	files   []sshFile

	mu         sync.Mutex
	cur        *sshMaster
	draining   []*sshMaster
	sums       map[string][32]byte // watched files when cur was started
	renewWhy   string              // reason for the next start, when one replaced another
	retryAt    time.Time
	backoff    time.Duration
	failLogged bool
	refusing   int // consecutive syncs in which the server refused a session
	refusalLog bool
	disabled   bool
	closed     bool
}

// sshMaster is one master process.
type sshMaster struct {
	cmd        *exec.Cmd
	cancel     context.CancelFunc
	pid        int
	started    time.Time
	done       chan struct{} // closed when the process has been reaped
	sock       string        // the control socket, once the master is up
	drainUntil time.Time
	refused    atomic.Int64 // sessions the server refused (from ssh's stderr)
	seen       int64        // refused, as of the last Refresh
	tail       *lineTail
}

// newKeptSSH returns the keeper, or nil when no master can be kept for
// these options (see sshSharingPossible).
func newKeptSSH(log *slog.Logger, m Metrics, dir string, o SSHOptions, dest sshDest, env []string, files []sshFile) *keptSSH {
	return &keptSSH{
		log: log, metrics: m, dir: dir,
		command: sshMasterCommand(o, dest),
		dest:    dest.String(),
		env:     env,
		files:   files,
		backoff: masterRetryFirst,
	}
}

// socket is the control socket of the current master, or "" when none is
// up (not started, still authenticating, or given up).
func (k *keptSSH) socket() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur == nil || k.closed {
		return ""
	}
	select {
	case <-k.cur.done:
		return ""
	default:
	}
	return k.cur.sock
}

// fileSums hashes the contents of the watched files ("" content for a
// missing one), so that a rotated key or known-hosts file, however it is
// replaced (Kubernetes swaps a symlink), renews the master.
func (k *keptSSH) fileSums() map[string][32]byte {
	sums := make(map[string][32]byte, len(k.files))
	for _, f := range k.files {
		b, err := os.ReadFile(f.path)
		if err != nil {
			b = []byte("\x00missing")
		}
		sums[f.flag+"\x00"+f.path] = sha256.Sum256(b)
	}
	return sums
}

// changedFile names the reason for a renewal: the first watched file whose
// contents differ, or "".
func (k *keptSSH) changedFile(now map[string][32]byte) string {
	for _, f := range k.files {
		key := f.flag + "\x00" + f.path
		if now[key] != k.sums[key] {
			if f.flag == "--ssh-known-hosts-file" {
				return "known_hosts"
			}
			return "key_file"
		}
	}
	return ""
}

// ensure is called before every sync: it reaps masters that ended,
// replaces the master when a watched file changed or it is too old, and
// starts one when there is none (waiting a bounded time for it to
// authenticate). Nothing here fails a sync: without a master, git's ssh
// connects on its own.
func (k *keptSSH) ensure(ctx context.Context) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed || k.disabled {
		return
	}
	now := time.Now()
	k.reapDraining(now)
	sums := k.fileSums()

	if m := k.cur; m != nil {
		select {
		case <-m.done:
			k.log.Log(ctx, levelMaster, "kept SSH connection ended; starting another", "dest", k.dest, "ssh", m.tail.String())
			k.setCur(nil)
			k.renewWhy = "lost"
		default:
		}
	}
	if m := k.cur; m != nil {
		if k.checkRefusals(ctx, m) {
			return
		}
		why := k.changedFile(sums)
		if why == "" && now.Sub(m.started) > maxMasterAge {
			why = "age"
		}
		if why != "" {
			k.log.Log(ctx, levelMaster, "renewing the kept SSH connection", "dest", k.dest, "reason", why)
			k.retire(m)
			k.setCur(nil)
			k.renewWhy = why
			k.retryAt = time.Time{}
		}
	}
	if k.cur != nil {
		if k.cur.sock == "" {
			k.waitReady(ctx, k.cur, 0) // still authenticating
		}
		return
	}
	if k.sums != nil && k.changedFile(sums) != "" {
		k.retryAt = time.Time{} // new key or host keys: try at once
	}
	if now.Before(k.retryAt) {
		return
	}
	k.sums = sums
	k.start(ctx)
}

// checkRefusals logs, once, that the server refuses sessions on the kept
// connection (sshd's MaxSessions), in which case ssh connected on its own
// for them; after maxRefusingSyncs syncs in a row with refusals it gives
// the master up for the rest of the run. It reports whether it did.
func (k *keptSSH) checkRefusals(ctx context.Context, m *sshMaster) bool {
	n := m.refused.Load()
	if n == m.seen {
		k.refusing = 0
		return false
	}
	m.seen = n
	k.refusing++
	if !k.refusalLog {
		k.refusalLog = true
		k.log.Info("the server refused a session on the kept SSH connection (sshd's MaxSessions?); ssh made a connection of its own for it",
			"dest", k.dest)
	}
	if k.refusing < maxRefusingSyncs {
		return false
	}
	k.log.Info("the server keeps refusing sessions on the kept SSH connection; using a new connection per poll from now on",
		"dest", k.dest)
	k.retire(m)
	k.setCur(nil)
	k.disabled = true
	return true
}

// start starts a master and waits a bounded time for it to come up.
func (k *keptSSH) start(ctx context.Context) {
	removeControlSockets(k.dir)
	m, err := startMaster(k.command, k.env, k.log)
	if err != nil {
		k.failed(ctx, err.Error())
		return
	}
	k.cur = m
	k.waitReady(ctx, m, masterSetupWait)
}

// waitReady waits up to limit (and half of what is left of ctx) for m's
// control socket. When m ends instead, the attempt has failed.
func (k *keptSSH) waitReady(ctx context.Context, m *sshMaster, limit time.Duration) {
	if deadline, ok := ctx.Deadline(); ok {
		limit = min(limit, time.Until(deadline)/2)
	}
	deadline := time.Now().Add(limit)
	for {
		sock, pid := findControlSocket(k.dir)
		if sock != "" && pid == m.pid {
			m.sock = sock
			k.up(ctx, m)
			return
		}
		if sock != "" {
			// GIT_SSH_COMMAND ran ssh as a child of another process: that
			// ssh would not end with git-sync.
			k.log.Info("GIT_SSH_COMMAND does not exec ssh (the master is not git-sync's child); no kept SSH connection for this run",
				"dest", k.dest)
			_ = muxStop(sock)
			k.retire(m)
			k.setCur(nil)
			k.disabled = true
			return
		}
		select {
		case <-m.done:
			k.setCur(nil)
			k.failed(ctx, m.tail.String())
			return
		default:
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			return // still connecting: looked at again before the next sync
		}
		select {
		case <-m.done:
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// up records a master that came up.
func (k *keptSSH) up(ctx context.Context, m *sshMaster) {
	if k.renewWhy != "" {
		k.metrics.SSHKeptConnectionRenewal(k.renewWhy)
		k.renewWhy = ""
	}
	k.failLogged = false
	k.backoff = masterRetryFirst
	k.metrics.SSHKeptConnection(true)
	k.log.Log(ctx, levelMaster, "kept SSH connection up", "dest", k.dest, "pid", m.pid)
}

// failed records a master that could not be set up: said once at the
// default verbosity until one works again, retried after a growing pause.
func (k *keptSSH) failed(ctx context.Context, why string) {
	why = redact.Text(strings.TrimSpace(why))
	if !k.failLogged {
		k.failLogged = true
		k.log.Info("could not set up a kept SSH connection; git's ssh connects on its own for each poll until one works",
			"dest", k.dest, "ssh", why, "retry_in", k.backoff)
	} else {
		k.log.Log(ctx, levelMaster, "could not set up a kept SSH connection", "dest", k.dest, "ssh", why, "retry_in", k.backoff)
	}
	k.retryAt = time.Now().Add(k.backoff)
	k.backoff = min(2*k.backoff, masterRetryMax)
}

// setCur replaces the current master, keeping the gauge in step.
func (k *keptSSH) setCur(m *sshMaster) {
	k.cur = m
	k.metrics.SSHKeptConnection(m != nil && m.sock != "")
}

// retire stops m from taking new sessions; it exits once the sessions it
// carries are done (a master started with -N does), and is ended after
// masterDrainMax at the latest.
func (k *keptSSH) retire(m *sshMaster) {
	if m.sock == "" || muxStop(m.sock) != nil {
		m.cancel()
	}
	m.drainUntil = time.Now().Add(masterDrainMax)
	k.draining = append(k.draining, m)
}

// reapDraining forgets retired masters that ended and ends those past
// their time.
func (k *keptSSH) reapDraining(now time.Time) {
	kept := k.draining[:0]
	for _, m := range k.draining {
		select {
		case <-m.done:
			continue
		default:
		}
		if now.After(m.drainUntil) {
			m.cancel()
		}
		kept = append(kept, m)
	}
	k.draining = kept
}

// close ends every master and waits (bounded) for them to exit.
func (k *keptSSH) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	all := k.draining
	if k.cur != nil {
		all = append(all, k.cur)
	}
	k.setCur(nil)
	k.draining = nil
	for _, m := range all {
		m.cancel()
	}
	deadline := time.After(masterStopWait)
	for _, m := range all {
		select {
		case <-m.done:
		case <-deadline:
			return
		}
	}
}

// startMaster runs command (a master in the foreground, see
// sshMasterCommand) through the shell, as git runs GIT_SSH_COMMAND.
//
// The master must never outlive git-sync. On SIGTERM, Close ends it. On a
// SIGKILL of git-sync alone, the kernel sends it SIGTERM (the parent-death
// signal), on which ssh closes the connection and removes its socket. The
// parent-death signal fires when the thread that started the child ends,
// not only the process, so the child is started from a goroutine locked to
// its thread, which stays blocked in Wait for the child's whole life. The
// master runs in a process group of its own (terminal signals are
// git-sync's to handle; ending the group also ends a ProxyCommand it runs).
// ControlPersist is never used: it makes ssh fork into the background,
// where neither would reach it.
func startMaster(command string, env []string, log *slog.Logger) (*sshMaster, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = env
	procgroup.Prepare(cmd)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	m := &sshMaster{cmd: cmd, cancel: cancel, started: time.Now(), done: make(chan struct{}), tail: &lineTail{}}
	m.tail.onLine = func(line string) {
		if strings.Contains(line, "open failed") {
			m.refused.Add(1)
		}
		log.Log(context.Background(), slog.Level(-3), "ssh master", "line", redact.Text(line))
	}
	cmd.Stderr = m.tail
	started := make(chan error, 1)
	go func() {
		// Never unlocked: this thread ends with the goroutine, after the
		// master has been reaped.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(m.done)
	}()
	if err := <-started; err != nil {
		cancel()
		return nil, fmt.Errorf("start ssh master: %w", err)
	}
	m.pid = cmd.Process.Pid
	return m, nil
}

// findControlSocket returns the control socket in dir (the only entry
// whose name is ssh's 40-hex-digit %C) and the pid of the master that
// answers on it, or "" when there is none or nobody answers yet.
func findControlSocket(dir string) (string, int) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", 0
	}
	for _, e := range entries {
		if !isControlName(e.Name()) {
			continue
		}
		sock := filepath.Join(dir, e.Name())
		pid, err := muxAlivePID(sock)
		if err == nil {
			return sock, pid
		}
	}
	return "", 0
}

// removeControlSockets removes control sockets (and ssh's temporary names
// for them) that a master killed without its cleanup left in dir: ssh
// would refuse to create its socket over them. Only git-sync's own
// masters use dir, and none is listening when this runs.
func removeControlSockets(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name, _, _ := strings.Cut(e.Name(), ".")
		if isControlName(name) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// isControlName reports whether name is what %C expands to.
func isControlName(name string) bool {
	if len(name) != 40 {
		return false
	}
	return strings.Trim(name, "0123456789abcdef") == ""
}

// lineTail is an io.Writer for a child's stderr: it calls onLine for each
// complete line and keeps the last few for messages.
type lineTail struct {
	onLine  func(string)
	mu      sync.Mutex
	partial []byte
	last    []string
}

const tailLines = 5

func (t *lineTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := strings.IndexByte(string(t.partial), '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(t.partial[:i]), "\r")
		t.partial = t.partial[i+1:]
		if line == "" {
			continue
		}
		if t.onLine != nil {
			t.onLine(line)
		}
		t.last = append(t.last, line)
		if len(t.last) > tailLines {
			t.last = t.last[1:]
		}
	}
	if len(t.partial) > 4096 {
		t.partial = t.partial[:0]
	}
	return len(p), nil
}

// String is the last lines written, joined.
func (t *lineTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.Join(t.last, "; ")
	if len(t.partial) > 0 {
		s = strings.TrimPrefix(s+"; "+string(t.partial), "; ")
	}
	return s
}
