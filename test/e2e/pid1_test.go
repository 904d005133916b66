package e2e

// End-to-end tests of git-sync as PID 1 (docs/CONTRACT.md, section 3): in a
// container without an init, orphaned processes are re-parented to git-sync,
// which must reap them so that no zombie accumulates, and signals must still
// reach the syncing process so that SIGTERM stops it cleanly with exit 0.
//
// The binary runs as PID 1 of a new PID namespace, started with
// `unshare --pid --fork --mount-proc` (needs root and util-linux, which
// .ci/run installs). The test watches it from outside through /proc.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// nsProc is git-sync running as PID 1 of its own PID namespace.
type nsProc struct {
	t       testing.TB
	cmd     *exec.Cmd // the unshare process
	logPath string
	done    chan struct{}
	code    int
	// InitPid is the pid, as seen from the test, of the namespace's PID 1:
	// the git-sync process started by unshare.
	InitPid int
}

// startAsPID1 runs git-sync with args as PID 1 of a new PID namespace (with
// its own /proc) in the isolated environment, and waits until it runs.
// The test's cleanup SIGKILLs the namespace's PID 1 (which kills everything
// in the namespace) if it is still running.
func startAsPID1(t testing.TB, args ...string) *nsProc {
	t.Helper()
	return startAsPID1Env(t, nil, args...)
}

// startAsPID1Env is startAsPID1 with env ("KEY=value") added to the
// isolated environment.
func startAsPID1Env(t testing.TB, env []string, args ...string) *nsProc {
	t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("unshare is not on PATH: install util-linux (Debian: apt-get install -y util-linux)")
	}
	p := &nsProc{t: t, logPath: filepath.Join(t.TempDir(), "stderr.log"), done: make(chan struct{})}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(unshare, append([]string{"--pid", "--fork", "--mount-proc", "--kill-child", gitSyncBin}, args...)...)
	p.cmd.Env = append(childEnv(t), env...)
	p.cmd.Stdout = logf
	p.cmd.Stderr = logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting unshare: %v", err)
	}
	go func() {
		err := p.cmd.Wait()
		logf.Close()
		p.code = exitCode(err)
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.running() {
			if p.InitPid != 0 {
				_ = syscall.Kill(p.InitPid, syscall.SIGKILL)
			}
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("git-sync as PID 1 (unshare pid %d, init pid %d) exit %d; last log lines:\n%s",
				p.cmd.Process.Pid, p.InitPid, p.code, tail(p.logs(), 80))
		}
	})
	waitFor(t, syncDeadline, func() bool {
		if !p.running() {
			// A quick --one-time run may finish before it is seen running;
			// its JSON log lines prove it did start.
			if strings.Contains(p.logs(), `"level":`) {
				return true
			}
			t.Fatalf("unshare exited with %d before git-sync started (the test needs root for a new PID namespace)\n%s", p.code, tail(p.logs(), 20))
		}
		for _, c := range childrenOf(p.cmd.Process.Pid) {
			if procComm(c) == filepath.Base(gitSyncBin) {
				p.InitPid = c
				return true
			}
		}
		return false
	}, "git-sync to start as PID 1 under unshare")
	return p
}

func (p *nsProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *nsProc) logs() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// wait waits for unshare to exit and returns its status (which is that of
// the namespace's PID 1).
func (p *nsProc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("git-sync as PID 1 did not exit within %v\n%s", timeout, tail(p.logs(), 40))
	}
	return p.code
}

// syncer returns the pid of the git-sync process that PID 1 runs as its
// child (the one doing the syncing), or 0 if there is none.
func (p *nsProc) syncer() int {
	for _, c := range childrenOf(p.InitPid) {
		if procComm(c) == filepath.Base(gitSyncBin) {
			return c
		}
	}
	return 0
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		var c int
		if _, err := fmt.Sscan(e.Name(), &c); err != nil {
			continue
		}
		if ppid, _, ok := procStat(c); ok && ppid == pid {
			out = append(out, c)
		}
	}
	return out
}

// procComm returns the command name of pid ("" if it is gone).
func procComm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// describe lists pids with their state and command, for failure messages.
func describe(pids []int) string {
	var parts []string
	for _, pid := range pids {
		_, state, _ := procStat(pid)
		parts = append(parts, fmt.Sprintf("%d(%c %s)", pid, state, procComm(pid)))
	}
	return strings.Join(parts, " ")
}

// zombiesUnder returns the zombies among the descendants of pid.
func zombiesUnder(pid int) []int {
	var out []int
	for _, d := range descendants(pid) {
		if _, state, ok := procStat(d); ok && state == 'Z' {
			out = append(out, d)
		}
	}
	return out
}

func TestPID1ReapsOrphans(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	// Every run leaves two orphans: a sleep in the hook's own process group
	// (git-sync kills that group once the hook exits, and the dead sleep is
	// then a child of PID 1), and one that escaped into its own session and
	// exits on its own a little later, after writing down its parent pid as
	// seen inside the namespace.
	// The hook waits until the second one has left its process group.
	hook, state := hookScript(t, `echo "$GITSYNC_HASH" >> "$STATE/runs"
sleep 0.1 >/dev/null 2>&1 &
o="$STATE/orphan.$(date +%s%N)"
setsid sh -c 'touch "$0"; sleep 0.2; cut -d" " -f4 /proc/$$/stat >> "$1/orphan-ppids"' "$o" "$STATE" >/dev/null 2>&1 &
while [ ! -e "$o" ]; do sleep 0.01; done
exit 0
`)
	p := startAsPID1(t, concat(syncArgs(up, root), []string{"--period=100ms",
		"--exechook-command=" + hook, "--exechook-backoff=1s"})...)
	waitFor(t, syncDeadline, func() bool { return p.running() && tryLinkHash(link) == h }, "the first publish (link -> %s)", h)

	// A new commit every 100ms for three seconds; count the zombies under
	// PID 1 as it goes.
	maxZombies := 0
	last := h
	tick := time.NewTicker(100 * time.Millisecond)
	for i := range 30 {
		<-tick.C
		last = up.Commit(map[string]string{"README": fmt.Sprintf("commit %d\n", i)}, fmt.Sprintf("c%d", i))
		maxZombies = max(maxZombies, len(zombiesUnder(p.InitPid)))
	}
	tick.Stop()
	waitFor(t, syncDeadline, func() bool { return p.running() && tryLinkHash(link) == last }, "the last commit %s to be published", last)
	waitFor(t, syncDeadline, func() bool {
		runs := readLines(filepath.Join(state, "runs"))
		return len(runs) > 0 && runs[len(runs)-1] == last
	}, "the hook to run for the last commit")

	// Once the last orphans are done (each reports its parent just before
	// it exits), PID 1 has no child but the syncing git-sync, and nothing
	// under it is a zombie.
	syncer := p.syncer()
	if syncer == 0 {
		t.Fatalf("PID 1 has no git-sync child: %s", describe(childrenOf(p.InitPid)))
	}
	var extra, zombies []int
	ok := poll(10*time.Second, func() bool {
		extra = nil
		for _, c := range childrenOf(p.InitPid) {
			if c != syncer {
				extra = append(extra, c)
			}
		}
		zombies = zombiesUnder(p.InitPid)
		reported := len(readLines(filepath.Join(state, "orphan-ppids"))) >= len(readLines(filepath.Join(state, "runs")))
		return reported && len(extra) == 0 && len(zombies) == 0
	})
	if !ok {
		t.Errorf("10s after the last hook run, PID 1 still has orphans [%s] and zombies under it [%s]", describe(extra), describe(zombies))
	}
	runs := readLines(filepath.Join(state, "runs"))
	if len(runs) < 5 {
		t.Errorf("the hook ran only %d times; the test wants many orphans", len(runs))
	}
	ppids := readLines(filepath.Join(state, "orphan-ppids"))
	if len(ppids) != len(runs) {
		t.Errorf("%d escaped orphans reported their parent, want one per hook run (%d)", len(ppids), len(runs))
	}
	for _, pp := range ppids {
		if pp != "1" {
			t.Errorf("an orphan's parent was %q, want 1 (it must be re-parented to git-sync as PID 1)", pp)
			break
		}
	}
	t.Logf("%d hook runs, %d escaped orphans, at most %d zombies seen at once while syncing", len(runs), len(ppids), maxZombies)

	// SIGTERM to PID 1 reaches the syncing process, which exits 0, and so
	// does PID 1.
	began := time.Now()
	if err := syscall.Kill(p.InitPid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(stopDeadline); code != 0 {
		t.Errorf("exit %d after SIGTERM to PID 1, want 0", code)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("git-sync as PID 1 took %v to exit after SIGTERM", d)
	}
	if !strings.Contains(p.logs(), "shutting down") {
		t.Errorf("the syncing process did not log a shutdown on the signal")
	}
	assertPublished(t, root, link, last)
}

func TestPID1ExitStatus(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	for _, tc := range []struct {
		name string
		args []string
		sig  syscall.Signal // sent to PID 1 once the link is published; 0 = none
		code int
	}{
		{"one-time success", []string{"--one-time"}, 0, 0},
		{"one-time failure", []string{"--one-time", "--ref=no-such-branch"}, 0, 1},
		{"SIGINT", []string{"--period=100ms"}, syscall.SIGINT, 0},
		{"SIGTERM while a hook hangs", []string{"--period=100ms", "--exechook-timeout=120s"}, syscall.SIGTERM, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := newRoot(t)
			link := filepath.Join(root, "link")
			args := concat(syncArgs(up, root), tc.args)
			var hookState string
			if strings.Contains(tc.name, "hook") {
				var hook string
				hook, hookState = hookScript(t, `echo $$ > "$STATE/pid"
sleep 300
`)
				args = append(args, "--exechook-command="+hook)
			}
			p := startAsPID1(t, args...)
			if tc.sig != 0 {
				waitFor(t, syncDeadline, func() bool { return p.running() && tryLinkHash(link) == h }, "the first publish")
				if hookState != "" {
					waitFor(t, syncDeadline, func() bool { return readPid(filepath.Join(hookState, "pid")) != 0 }, "the hook to start")
				}
				if err := syscall.Kill(p.InitPid, tc.sig); err != nil {
					t.Fatal(err)
				}
			}
			began := time.Now()
			if code := p.wait(runDeadline); code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if d := time.Since(began); tc.sig != 0 && d > 3*time.Second {
				t.Errorf("git-sync as PID 1 took %v to exit after %v", d, tc.sig)
			}
			if tc.code == 0 {
				assertPublished(t, root, link, h)
			}
		})
	}
}

// TestPID1ExitsUnderSignalFlood stops git-sync as PID 1 while a stream of
// other signals (which a --sync-on-signal could name, so PID 1 forwards
// them) keeps arriving. The child's SIGCHLD must not get
// lost among them: PID 1 has to notice that its child exited and exit too.
// A lost SIGCHLD is a matter of timing, so several runs go at once.
func TestPID1ExitsUnderSignalFlood(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	for run := range 6 {
		t.Run(strconv.Itoa(run), func(t *testing.T) {
			t.Parallel()
			root := newRoot(t)
			link := filepath.Join(root, "link")
			// One P, as in a container limited to one CPU (Go sizes
			// GOMAXPROCS from the cgroup's CPU limit): PID 1's signal
			// handling and its forwarding loop then take turns, and a
			// busy stream of signals can fill whatever buffer sits
			// between them.
			p := startAsPID1Env(t, []string{"GOMAXPROCS=1"}, concat(syncArgs(up, root), []string{"--period=100ms"})...)
			waitFor(t, syncDeadline, func() bool { return p.running() && tryLinkHash(link) == h }, "the first publish")

			stop := make(chan struct{})
			var flood sync.WaitGroup
			for g := range 2 {
				flood.Add(1)
				go func() {
					defer flood.Done()
					for i := g; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						if err := syscall.Kill(p.InitPid, floodSignals[i%len(floodSignals)]); err != nil {
							return // PID 1 is gone
						}
					}
				}()
			}
			defer func() {
				close(stop)
				flood.Wait()
			}()
			waitFor(t, syncDeadline, func() bool { return sigPending(p.InitPid) || !p.running() }, "signals to be pending at PID 1")
			if err := syscall.Kill(p.InitPid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(stopDeadline); code != 0 {
				t.Errorf("exit %d after SIGTERM to PID 1 under a signal flood, want 0", code)
			}
			assertPublished(t, root, link, h)
		})
	}
}

// floodSignals are signals that PID 1 forwards and that git-sync, not
// using them, ignores. Standard signals: the kernel keeps at most one of
// each pending, so a flood of them cannot exhaust the machine's queue of
// real-time signals.
var floodSignals = []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGWINCH,
	syscall.SIGIO, syscall.SIGPWR, syscall.SIGVTALRM, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGCONT, syscall.SIGPIPE}

// sigPending reports whether pid has signals pending (ShdPnd in
// /proc/PID/status).
func sigPending(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "ShdPnd:"); ok {
			return strings.Trim(strings.TrimSpace(rest), "0") != ""
		}
	}
	return false
}
