// Package e2e holds black-box tests of the git-sync binary: TestMain builds
// ./cmd/git-sync once, and every test runs it as a user would, against real
// upstream repositories from internal/gittest, and checks only what a user
// can observe (the link, the files behind it, exit codes, logs, the HTTP
// endpoint, the error and touch files).
//
// This file is the harness the other *_test.go files share:
//
//   - running the binary: runOnce / runWith (to completion, returning a
//     result with exit code, stdout, stderr), start / startWith (in the
//     background, as a *Proc with Stop = SIGTERM, Kill = SIGKILL of the
//     whole process tree, Wait, Running, Logs; logs are printed when the
//     test fails and the process is stopped at cleanup), childEnv (the
//     isolated environment every child gets: fresh HOME, no system git
//     config, no GIT_*/GITSYNC_* from the machine);
//   - waiting: waitFor / poll (poll every 20ms until a deadline; never a
//     fixed sleep standing in for synchronisation), holdsFor (assert that
//     something stays true for a window), waitForLink;
//   - reading the on-disk contract: linkHash, tryLinkHash, worktreePath,
//     assertPublished, assertCompleteTree / checkCompleteTree, gitIn,
//     inode, exists, processAlive;
//   - HTTP: freeAddr, freePort, httpGet, metricsText, parseMetrics,
//     metricValue (a small parser of the Prometheus text format), metric,
//     tryMetric, waitForMetric;
//   - logs: parseLogs, errorRecords;
//   - scripts: writeScript, gitWrapper (a --git program that execs the real
//     git, recording each call and optionally delaying one subcommand);
//   - setups: syncArgs, concat, newRoot.
//
// core_test.go adds mustSyncOnce, linearRepo, mustWrite and mustSymlink.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// gitSyncBin is the absolute path of the binary TestMain built.
var gitSyncBin string

// realGit is the absolute path of the git program on PATH; wrapper scripts
// exec it.
var realGit string

// Timeouts used across the suite. Deadlines are generous because the suite
// runs many git-sync processes in parallel on small CI machines; the
// contract's own timings (e.g. "a new commit is published well within 3 s")
// are checked by the tests that are about them.
const (
	// syncDeadline bounds waiting for something a running git-sync should
	// do within a few periods (publish a commit, count a metric).
	syncDeadline = 15 * time.Second
	// runDeadline bounds one runOnce invocation.
	runDeadline = 90 * time.Second
	// stopDeadline bounds how long a SIGTERMed git-sync may take to exit.
	stopDeadline = 15 * time.Second
	// pollInterval is waitFor's polling period.
	pollInterval = 20 * time.Millisecond
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	realGit, err = exec.LookPath("git")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: git is not on PATH; install git (Debian: apt-get install -y git)")
		return 1
	}
	realGit, _ = filepath.Abs(realGit)
	dir, err := os.MkdirTemp("", "gitsync-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Tests that run git-sync as another user need to reach the binary.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	gitSyncBin = filepath.Join(dir, "git-sync")
	build := exec.Command(goTool(), "build", "-o", gitSyncBin, "./cmd/git-sync")
	build.Dir = moduleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: building ./cmd/git-sync in %s: %v\n%s\n", build.Dir, err, out)
		return 1
	}
	return m.Run()
}

// goTool returns the go command that is running these tests.
func goTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// moduleRoot returns the directory holding go.mod (two levels above this
// package's directory, where `go test` runs it).
func moduleRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "../.."
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return "../.."
		}
	}
}

// ---------------------------------------------------------------------------
// Environment and running the binary.

// childEnv returns the isolated environment git-sync runs with: the test
// process's environment minus every GIT_*, GITSYNC_* (and thus GIT_SYNC_*),
// HOME and SSH agent variable, plus a fresh HOME under t.TempDir(),
// GIT_CONFIG_NOSYSTEM=1 and LC_ALL=C. Callers append "KEY=value" entries;
// later entries win.
func childEnv(t testing.TB) []string {
	t.Helper()
	home := t.TempDir()
	env := gittest.CleanEnviron(os.Environ())
	return append(env, "HOME="+home, "GIT_CONFIG_NOSYSTEM=1")
}

// runOpts tunes runWith and startWith. The zero value runs the binary with
// childEnv in the test's working directory.
type runOpts struct {
	// Env entries ("KEY=value") appended to childEnv.
	Env []string
	// Dir is the child's working directory (default: the test's).
	Dir string
	// Timeout overrides runDeadline for runWith.
	Timeout time.Duration
	// Name labels a Proc in failure output (default "git-sync").
	Name string
	// Cred, if set, runs startWith's process as another user.
	Cred *syscall.Credential
	// Bin is the binary to run instead of the one TestMain built (e.g. a
	// build with the race detector).
	Bin string
}

// bin returns the binary o asks for.
func (o runOpts) bin() string {
	if o.Bin != "" {
		return o.Bin
	}
	return gitSyncBin
}

// result is the outcome of a run to completion.
type result struct {
	Code   int    // exit status; -1 if killed by a signal
	Stdout string // everything written to stdout
	Stderr string // everything written to stderr (the JSON log lines)
}

// String summarises r for failure messages.
func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s\n--- stderr:\n%s", r.Code, tail(r.Stdout, 60), tail(r.Stderr, 60))
}

// runOnce runs git-sync with args to completion in the isolated environment
// and returns its exit code and output. It fails the test if the binary
// cannot be started or runs longer than runDeadline.
func runOnce(t testing.TB, args ...string) result {
	t.Helper()
	return runWith(t, runOpts{}, args...)
}

// runWith is runOnce with options (extra environment, working directory,
// timeout).
func runWith(t testing.TB, o runOpts, args ...string) result {
	t.Helper()
	timeout := o.Timeout
	if timeout == 0 {
		timeout = runDeadline
	}
	cmd := exec.Command(o.bin(), args...)
	cmd.Env = append(childEnv(t), o.Env...)
	cmd.Dir = o.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting git-sync: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(timeout):
		killTree(cmd.Process.Pid)
		<-done
		t.Fatalf("git-sync %s did not exit within %v\n--- stderr:\n%s",
			strings.Join(args, " "), timeout, tail(stderr.String(), 60))
	}
	res := result{Stdout: stdout.String(), Stderr: stderr.String()}
	res.Code = exitCode(err)
	if res.Code == -2 {
		t.Fatalf("git-sync: %v", err)
	}
	return res
}

// exitCode maps cmd.Wait's error to an exit status: the code, -1 when the
// process died of a signal, -2 for errors that are not exit statuses.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1
		}
		return ee.ExitCode()
	}
	return -2
}

// Proc is a git-sync process running in the background. Its stderr and
// stdout go to files in t.TempDir(); they are printed (the last lines) when
// the test fails. The test's cleanup stops the process (SIGTERM, then
// SIGKILL of its whole process tree) if it is still running.
type Proc struct {
	t       testing.TB
	name    string
	cmd     *exec.Cmd
	logPath string
	outPath string
	done    chan struct{}
	mu      sync.Mutex
	code    int
	waitErr error
}

// start runs git-sync with args in the background in the isolated
// environment.
func start(t testing.TB, args ...string) *Proc {
	t.Helper()
	return startWith(t, runOpts{}, args...)
}

// startWith is start with options (extra environment, working directory,
// name for failure output).
func startWith(t testing.TB, o runOpts, args ...string) *Proc {
	t.Helper()
	dir := t.TempDir()
	p := &Proc{
		t:       t,
		name:    o.Name,
		logPath: filepath.Join(dir, "stderr.log"),
		outPath: filepath.Join(dir, "stdout.log"),
		done:    make(chan struct{}),
	}
	if p.name == "" {
		p.name = "git-sync"
	}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	outf, err := os.Create(p.outPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(o.bin(), args...)
	p.cmd.Env = append(childEnv(t), o.Env...)
	p.cmd.Dir = o.Dir
	if o.Cred != nil {
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.Cred}
	}
	p.cmd.Stderr = logf
	p.cmd.Stdout = outf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		outf.Close()
		t.Fatalf("starting git-sync: %v", err)
	}
	go func() {
		err := p.cmd.Wait()
		logf.Close()
		outf.Close()
		p.mu.Lock()
		p.waitErr = err
		p.code = exitCode(err)
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.Running() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(stopDeadline):
				t.Errorf("%s (pid %d) ignored SIGTERM for %v; killing it", p.name, p.Pid(), stopDeadline)
				p.Kill()
			}
		}
		if t.Failed() {
			t.Logf("%s (pid %d, args %q) exit %d; last log lines:\n%s",
				p.name, p.Pid(), args, p.ExitCode(), tail(p.Logs(), 80))
		}
	})
	return p
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// ExitCode is the exit status once the process has exited (-1 if it died
// of a signal), and 0 while it runs.
func (p *Proc) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.code
}

// Logs returns everything the process wrote to stderr so far.
func (p *Proc) Logs() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// Stdout returns everything the process wrote to stdout so far.
func (p *Proc) Stdout() string {
	b, _ := os.ReadFile(p.outPath)
	return string(b)
}

// LogPath is the file holding the process's stderr.
func (p *Proc) LogPath() string { return p.logPath }

// Stop sends SIGTERM and waits for the exit; it returns the exit code and
// fails the test if the process takes longer than stopDeadline.
func (p *Proc) Stop() int {
	p.t.Helper()
	if p.Running() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(stopDeadline):
		p.t.Fatalf("%s (pid %d) did not exit within %v of SIGTERM", p.name, p.Pid(), stopDeadline)
	}
	return p.ExitCode()
}

// Kill kills the process and every process it started (git, hooks, their
// children), the way a container runtime does when it SIGKILLs a container,
// and waits for the main process to be reaped. Nothing gets a chance to
// clean up.
func (p *Proc) Kill() {
	if p.Running() {
		killTree(p.Pid())
	}
	<-p.done
}

// Wait waits for the process to exit on its own and returns the exit code;
// it fails the test if that takes longer than timeout.
func (p *Proc) Wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s (pid %d) did not exit within %v\n%s", p.name, p.Pid(), timeout, tail(p.Logs(), 40))
	}
	return p.ExitCode()
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// killTree SIGKILLs pid and all of its descendants. It first stops the whole
// tree with SIGSTOP (repeating until no new descendants appear, so nothing
// can fork past it), then kills every stopped process. Processes git-sync
// put in their own process groups are found through /proc, not the group.
func killTree(pid int) {
	seen := map[int]bool{pid: true}
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	for range 50 {
		grew := false
		for _, d := range descendants(pid) {
			if !seen[d] {
				seen[d] = true
				grew = true
				_ = syscall.Kill(d, syscall.SIGSTOP)
			}
		}
		if !grew {
			break
		}
	}
	for p := range seen {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// descendants lists the live descendants of pid by reading /proc.
func descendants(pid int) []int {
	parent := map[int][]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, _, ok := procStat(child)
		if !ok {
			continue
		}
		parent[ppid] = append(parent[ppid], child)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range parent[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// procStat reads the parent pid and the state letter of pid from
// /proc/PID/stat.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may itself contain spaces
	// and parentheses: parse from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	if err != nil {
		return 0, 0, false
	}
	return ppid, fields[0][0], true
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------------------
// Waiting.

// waitFor polls cond every 20ms until it returns true, and fails the test
// with msg (formatted with args) if that does not happen within timeout.
// Use it instead of sleeps whenever a test waits for git-sync to do
// something.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	if !poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for: %s", timeout, fmt.Sprintf(msg, args...))
	}
}

// poll is waitFor returning whether cond became true instead of failing.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
}

// holdsFor checks cond every 20ms for the whole window and reports false
// as soon as it fails. It is for asserting that something does NOT happen
// (e.g. no fetch while idle), where a bounded observation window is the
// assertion itself.
func holdsFor(window time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(window)
	for time.Now().Before(deadline) {
		if !cond() {
			return false
		}
		time.Sleep(pollInterval)
	}
	return cond()
}

// waitForLink waits until link names hash (basename of its target) and
// returns; it fails the test after syncDeadline. If p is not nil and exits
// meanwhile, it fails at once with p's logs.
func waitForLink(t testing.TB, p *Proc, link, hash string) {
	t.Helper()
	waitFor(t, syncDeadline, func() bool {
		if p != nil && !p.Running() {
			t.Fatalf("git-sync exited (code %d) while waiting for %s -> %s\n%s", p.ExitCode(), link, hash, tail(p.Logs(), 40))
		}
		return tryLinkHash(link) == hash
	}, "link %s to name %s (it names %q)", link, hash, tryLinkHash(link))
}

// ---------------------------------------------------------------------------
// The on-disk contract.

// tryLinkHash returns the last path element of link's target, or "" if
// link cannot be read (absent, not a symlink).
func tryLinkHash(link string) string {
	target, err := os.Readlink(link)
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

// linkHash returns the last path element of link's target (the published
// hash, per the contract) and fails the test if link is not a symlink.
func linkHash(t testing.TB, link string) string {
	t.Helper()
	target, err := os.Readlink(link)
	if err != nil {
		t.Fatalf("reading link: %v", err)
	}
	return filepath.Base(target)
}

// worktreePath is where the contract puts the worktree of hash.
func worktreePath(root, hash string) string {
	return filepath.Join(root, ".worktrees", hash)
}

// assertPublished checks the published-link contract for hash: link is a
// symlink with a relative target whose basename is hash; it resolves to
// ROOT/.worktrees/HASH; that worktree's .git is a file pointing at the
// repository with a relative path; and `git -C link rev-parse HEAD` prints
// hash.
func assertPublished(t testing.TB, root, link, hash string) {
	t.Helper()
	target, err := os.Readlink(link)
	if err != nil {
		t.Fatalf("link: %v", err)
	}
	if filepath.IsAbs(target) {
		t.Errorf("link target %q is absolute, want relative", target)
	}
	if got := filepath.Base(target); got != hash {
		t.Errorf("link target %q: basename %s, want %s", target, got, hash)
	}
	resolved, err := filepath.EvalSymlinks(link)
	if err != nil {
		t.Fatalf("link %s does not resolve: %v", link, err)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatalf("root: %v", err)
	}
	if want := worktreePath(realRoot, hash); resolved != want {
		t.Errorf("link resolves to %s, want %s", resolved, want)
	}
	dotGit := filepath.Join(resolved, ".git")
	fi, err := os.Lstat(dotGit)
	if err != nil {
		t.Fatalf("worktree .git: %v", err)
	}
	if !fi.Mode().IsRegular() {
		t.Errorf("worktree .git is %v, want a regular file", fi.Mode())
	} else {
		b, _ := os.ReadFile(dotGit)
		gitdir, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir: ")
		if !ok || filepath.IsAbs(gitdir) {
			t.Errorf("worktree .git = %q, want \"gitdir: <relative path>\"", b)
		}
	}
	if got := gitIn(t, link, "rev-parse", "HEAD"); got != hash {
		t.Errorf("git -C link rev-parse HEAD = %s, want %s", got, hash)
	}
}

// assertCompleteTree checks that dir holds exactly the files of commit hash
// in upstream (same set of paths as `git ls-tree -r`, ignoring the
// worktree's .git file) and that every file's content matches (all of them
// when there are at most 200, else a sample of every 25th plus the last).
func assertCompleteTree(t testing.TB, up *gittest.Repo, dir, hash string) {
	t.Helper()
	if err := checkCompleteTree(up, dir, hash); err != nil {
		t.Error(err)
	}
}

// checkCompleteTree is assertCompleteTree returning an error.
func checkCompleteTree(up *gittest.Repo, dir, hash string) error {
	out, err := up.TryGit("ls-tree", "-r", "-z", hash)
	if err != nil {
		return err
	}
	type blob struct{ path, oid string }
	var want []blob
	for _, ent := range strings.Split(out, "\x00") {
		if ent == "" {
			continue
		}
		meta, path, _ := strings.Cut(ent, "\t")
		f := strings.Fields(meta)
		if len(f) == 3 && f[1] == "blob" {
			want = append(want, blob{path, f[2]})
		}
	}
	// Resolve a link once, so the whole check reads one tree.
	dir, err = filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	have, err := listFiles(dir)
	if err != nil {
		return err
	}
	wantPaths := make([]string, len(want))
	for i, b := range want {
		wantPaths[i] = b.path
	}
	sort.Strings(wantPaths)
	if strings.Join(have, "\n") != strings.Join(wantPaths, "\n") {
		return fmt.Errorf("tree at %s: %d files, want %d (commit %s); first difference: %s",
			dir, len(have), len(wantPaths), hash, firstDiff(have, wantPaths))
	}
	for i, b := range want {
		if len(want) > 200 && i%25 != 0 && i != len(want)-1 {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, b.path))
		if err != nil {
			return err
		}
		wantContent, err := up.TryGit("cat-file", "blob", b.oid)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(got)) != wantContent {
			return fmt.Errorf("tree at %s: %s = %q, want %q (commit %s)", dir, b.path, got, wantContent, hash)
		}
	}
	return nil
}

// listFiles returns the sorted slash-separated paths of the regular files
// and symlinks under dir, skipping the top-level .git entry.
func listFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == ".git" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// firstDiff describes the first element where two sorted lists differ.
func firstDiff(a, b []string) string {
	for i := 0; i < len(a) || i < len(b); i++ {
		switch {
		case i >= len(a):
			return "missing " + b[i]
		case i >= len(b):
			return "unexpected " + a[i]
		case a[i] != b[i]:
			return fmt.Sprintf("have %s, want %s", a[i], b[i])
		}
	}
	return "none"
}

// gitIn runs git with args in dir, in an isolated environment, and returns
// its trimmed stdout; it fails the test on error.
func gitIn(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := gittest.RunGit(dir, gitEnv, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// gitEnv is the environment gitIn runs git with: no system config, an empty
// global config, and nothing from the machine's GIT_* variables. It is
// built once; HOME points at a directory that never exists, which git
// tolerates.
var gitEnv = append(gittest.CleanEnviron(os.Environ()),
	"HOME=/nonexistent-e2e-home",
	"GIT_CONFIG_NOSYSTEM=1",
	"GIT_CONFIG_GLOBAL=/dev/null",
	"GIT_TERMINAL_PROMPT=0",
	// Published trees are owned by the user running the tests, but keep
	// the checks independent of who owns the temp dirs.
	"GIT_CONFIG_COUNT=1",
	"GIT_CONFIG_KEY_0=safe.directory",
	"GIT_CONFIG_VALUE_0=*",
)

// inode returns the inode number of path (following no symlink) and fails
// the test if it cannot be read.
func inode(t testing.TB, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// exists reports whether path exists (without following a final symlink).
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// ---------------------------------------------------------------------------
// HTTP and metrics.

// freeAddr returns a 127.0.0.1:PORT address that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	n, _ := strconv.Atoi(port)
	return n
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// httpGet fetches http://addr/path and returns the status code and body.
// A connection error is returned as err (status 0).
func httpGet(addr, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metricsText fetches /metrics from addr and fails the test unless it
// answers 200.
func metricsText(t testing.TB, addr string) string {
	t.Helper()
	code, body, err := httpGet(addr, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d, err %v\n%s", code, err, body)
	}
	return body
}

// sample is one line of the Prometheus text exposition format.
type sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// parseMetrics parses the Prometheus text format (comments and blank lines
// skipped; optional timestamps ignored). Malformed lines are returned as
// errors rather than skipped, so a broken exposition fails the test.
func parseMetrics(text string) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseSample(line string) (sample, error) {
	s := sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, errors.New("no name")
	}
	s.Name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.IndexByte(rest, '=')
			if eq <= 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
				return s, errors.New("bad label")
			}
			key := strings.TrimSpace(rest[:eq])
			rest = rest[eq+2:]
			var val strings.Builder
			closed := false
			for j := 0; j < len(rest); j++ {
				c := rest[j]
				if c == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[j])
					}
					continue
				}
				if c == '"' {
					rest = rest[j+1:]
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return s, errors.New("unterminated label value")
			}
			s.Labels[key] = val.String()
		}
	}
	f := strings.Fields(rest)
	if len(f) < 1 || len(f) > 2 {
		return s, errors.New("bad value")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, err
	}
	s.Value = v
	return s, nil
}

// metricValue returns the sum of the values of the samples named name whose
// labels include every key/value pair in labels (given as "key", "value",
// ...), and whether any sample matched.
func metricValue(text, name string, labels ...string) (float64, bool, error) {
	samples, err := parseMetrics(text)
	if err != nil {
		return 0, false, err
	}
	var sum float64
	found := false
	for _, s := range samples {
		if s.Name != name || !hasLabels(s.Labels, labels) {
			continue
		}
		sum += s.Value
		found = true
	}
	return sum, found, nil
}

func hasLabels(have map[string]string, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		if have[want[i]] != want[i+1] {
			return false
		}
	}
	return true
}

// metric fetches /metrics from addr and returns the value of name with
// labels (see metricValue); a metric that is absent reads as 0. It fails
// the test if /metrics cannot be read or parsed.
func metric(t testing.TB, addr, name string, labels ...string) float64 {
	t.Helper()
	v, _, err := metricValue(metricsText(t, addr), name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// tryMetric is metric returning -1 on any error, for use in waitFor
// conditions.
func tryMetric(addr, name string, labels ...string) float64 {
	code, body, err := httpGet(addr, "/metrics")
	if err != nil || code != http.StatusOK {
		return -1
	}
	v, _, err := metricValue(body, name, labels...)
	if err != nil {
		return -1
	}
	return v
}

// waitForMetric waits until metric name{labels} at addr satisfies cond.
func waitForMetric(t testing.TB, addr string, cond func(float64) bool, what string, name string, labels ...string) {
	t.Helper()
	var last float64
	if !poll(syncDeadline, func() bool {
		last = tryMetric(addr, name, labels...)
		return last >= 0 && cond(last)
	}) {
		t.Fatalf("%s: %s%v (last value %v)", what, name, labels, last)
	}
}

// ---------------------------------------------------------------------------
// Logs.

// parseLogs parses git-sync's stderr as JSON lines. Lines that are not JSON
// objects are returned in bad (the contract says every line is one).
func parseLogs(logs string) (records []map[string]any, bad []string) {
	for _, line := range strings.Split(logs, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			bad = append(bad, line)
			continue
		}
		records = append(records, m)
	}
	return records, bad
}

// isErrorRecord reports whether a log record is an error: its level is
// "error" (any case), or it has no level/verbosity and carries an error
// value (the logr style upstream uses).
func isErrorRecord(r map[string]any) bool {
	if lv, ok := r["level"]; ok {
		if s, ok := lv.(string); ok {
			return strings.EqualFold(s, "error")
		}
		return false
	}
	_, hasErr := r["error"]
	if !hasErr {
		_, hasErr = r["err"]
	}
	return hasErr
}

// errorRecords returns the error records in logs, each re-encoded as one
// JSON line for messages. Non-JSON lines count as errors too (they break
// the logging contract and may be panics).
func errorRecords(logs string) []string {
	records, bad := parseLogs(logs)
	var out []string
	for _, r := range records {
		if isErrorRecord(r) {
			b, _ := json.Marshal(r)
			out = append(out, string(b))
		}
	}
	for _, line := range bad {
		out = append(out, "non-JSON line: "+line)
	}
	return out
}

// ---------------------------------------------------------------------------
// Scripts and git wrappers.

// writeScript writes an executable /bin/sh script named name into a fresh
// temp dir and returns its path. body follows the "#!/bin/sh" line.
func writeScript(t testing.TB, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// wrapper is a --git program made by gitWrapper.
type wrapper struct {
	// Path is the script to pass as --git.
	Path string
	// CallLog gets one line per invocation: the git arguments.
	CallLog string
	// Dir holds the wrapper's state (counters, pid files).
	Dir string
}

// wrapperOpts configures gitWrapper.
type wrapperOpts struct {
	// SleepCmd is the git subcommand (e.g. "fetch") to delay.
	SleepCmd string
	// SleepFirst is how many invocations of SleepCmd are delayed (0 = all).
	SleepFirst int
	// Sleep is how long each delayed invocation sleeps before running git
	// (a `sleep` child of the script, in the script's process group; its
	// pid is written to Dir/sleep.pid).
	Sleep time.Duration
	// Extra shell lines run before git on every invocation (e.g. to record
	// configuration); $REAL is the real git.
	Extra string
}

// gitWrapper writes a --git wrapper that records every call in CallLog,
// optionally delays some calls, and then execs the real git with the same
// arguments.
func gitWrapper(t testing.TB, o wrapperOpts) wrapper {
	t.Helper()
	dir := t.TempDir()
	w := wrapper{Dir: dir, CallLog: filepath.Join(dir, "calls.log")}
	var b strings.Builder
	fmt.Fprintf(&b, "REAL=%q\nSTATE=%q\n", realGit, dir)
	b.WriteString(`echo "$*" >> "$STATE/calls.log"` + "\n")
	b.WriteString(o.Extra + "\n")
	if o.SleepCmd != "" {
		secs := strconv.FormatFloat(o.Sleep.Seconds(), 'f', 3, 64)
		fmt.Fprintf(&b, `if [ "$1" = %q ]; then
	n=$(cat "$STATE/count" 2>/dev/null || echo 0)
	n=$((n+1))
	echo "$n" > "$STATE/count"
	if [ %d -eq 0 ] || [ "$n" -le %d ]; then
		sleep %s &
		echo $! > "$STATE/sleep.pid"
		wait $!
	fi
fi
`, o.SleepCmd, o.SleepFirst, o.SleepFirst, secs)
	}
	b.WriteString(`exec "$REAL" "$@"` + "\n")
	w.Path = filepath.Join(dir, "git-wrapper")
	if err := os.WriteFile(w.Path, []byte("#!/bin/sh\n"+b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

// Calls returns the argument lines of every invocation so far.
func (w wrapper) Calls() []string {
	b, _ := os.ReadFile(w.CallLog)
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// CountCalls returns how many invocations had sub as their first argument.
func (w wrapper) CountCalls(sub string) int {
	n := 0
	for _, c := range w.Calls() {
		if f := strings.Fields(c); len(f) > 0 && f[0] == sub {
			n++
		}
	}
	return n
}

// SleepPid returns the pid of the last delaying `sleep` child, or 0.
func (w wrapper) SleepPid() int {
	b, err := os.ReadFile(filepath.Join(w.Dir, "sleep.pid"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// ---------------------------------------------------------------------------
// Common setups.

// syncArgs returns the usual arguments for syncing up into root with the
// link named "link": --repo, --root, --link.
func syncArgs(up *gittest.Repo, root string) []string {
	return []string{"--repo=" + up.URL(), "--root=" + root, "--link=link"}
}

// concat concatenates argument lists.
func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// newRoot returns a not-yet-existing root path under a fresh temp dir.
func newRoot(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "root")
}
