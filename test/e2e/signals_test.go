package e2e

// End-to-end tests of the signal handling in docs/CONTRACT.md, section 3:
// --sync-on-signal (its name, short-name and number forms; a signal while
// idle syncs at once; signals during a sync cause exactly one more sync),
// and SIGTERM/SIGINT (prompt exit 0, running git and hook process groups
// killed, the published link intact).

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// holdingGit returns a --git wrapper whose ls-remote and fetch block while
// the file wrapper.Dir/hold exists. Each blocked invocation first appends
// its shell's pid (which leads the process group git-sync gave it) to
// wrapper.Dir/held.
func holdingGit(t testing.TB) wrapper {
	t.Helper()
	return gitWrapper(t, wrapperOpts{Extra: `case "$1" in
ls-remote|fetch)
	if [ -e "$STATE/hold" ]; then
		echo $$ >> "$STATE/held"
		while [ -e "$STATE/hold" ]; do sleep 0.02; done
	fi
	;;
esac`})
}

// sendSignal sends sig to p and fails the test if that is not possible.
func (p *Proc) sendSignal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("sending %v to %s: %v", sig, p.name, err)
	}
}

// sendSignalDelivered sends sig to p and waits until the kernel has handed it
// to one of p's threads (it is no longer pending), so that git-sync's
// handler has it before the test goes on.
func (p *Proc) sendSignalDelivered(sig syscall.Signal) {
	p.t.Helper()
	p.sendSignal(sig)
	waitFor(p.t, syncDeadline, func() bool { return !signalPending(p.Pid(), sig) }, "%v to be delivered to pid %d", sig, p.Pid())
}

func TestSyncOnSignal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		flag string
		sig  syscall.Signal
	}{
		{"SIGHUP", syscall.SIGHUP},
		{"HUP", syscall.SIGHUP},
		{"1", syscall.SIGHUP},
		{"USR1", syscall.SIGUSR1},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			t.Parallel()
			up, h1 := gittest.NewRepoWithCommit(t)
			root := newRoot(t)
			link := filepath.Join(root, "link")
			addr := freeAddr(t)
			p := start(t, concat(syncArgs(up, root), metricsArgs(addr),
				[]string{"--period=1h", "--sync-on-signal=" + tc.flag})...)
			waitForLink(t, p, link, h1)
			waitForMetric(t, addr, func(v float64) bool { return v == 1 }, "the first sync", "git_sync_count_total")

			// While idle, a signal starts a sync at once (the period is
			// an hour).
			began := time.Now()
			p.sendSignal(tc.sig)
			waitForMetric(t, addr, func(v float64) bool { return v == 2 }, "a sync after the signal", "git_sync_count_total")
			if d := time.Since(began); d > 5*time.Second {
				t.Errorf("the signalled sync took %v to happen", d)
			}
			if n := metric(t, addr, "git_sync_count_total", "status", "noop"); n != 1 {
				t.Errorf("git_sync_count_total{noop} = %v, want 1 (nothing changed upstream)", n)
			}

			// With a new commit upstream, the signal publishes it.
			h2 := up.Commit(map[string]string{"README": "two\n"}, "two")
			p.sendSignal(tc.sig)
			waitForLink(t, p, link, h2)
			assertPublished(t, root, link, h2)
			if !p.Running() {
				t.Fatalf("git-sync exited (%d) after %v", p.ExitCode(), tc.sig)
			}
		})
	}
}

func TestSyncOnSignalDuringSync(t *testing.T) {
	t.Parallel()
	up, h1 := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	addr := freeAddr(t)
	w := holdingGit(t)
	p := start(t, concat(syncArgs(up, root), metricsArgs(addr),
		[]string{"--period=1h", "--sync-on-signal=SIGHUP", "--git=" + w.Path})...)
	waitForLink(t, p, link, h1)
	waitForMetric(t, addr, func(v float64) bool { return v == 1 }, "the first sync", "git_sync_count_total")

	// Start a sync and hold it in git, then signal three times.
	hold := filepath.Join(w.Dir, "hold")
	mustWrite(t, hold, "")
	h2 := up.Commit(map[string]string{"README": "two\n"}, "two")
	p.sendSignalDelivered(syscall.SIGHUP)
	waitFor(t, syncDeadline, func() bool { return len(readLines(filepath.Join(w.Dir, "held"))) == 1 }, "the signalled sync to block in git")
	for range 3 {
		p.sendSignalDelivered(syscall.SIGHUP)
	}
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	waitForLink(t, p, link, h2)
	waitForMetric(t, addr, func(v float64) bool { return v >= 3 }, "one more sync after the one the signals arrived during", "git_sync_count_total")
	if !holdsFor(1500*time.Millisecond, func() bool { return syncCount(addr) == 3 }) {
		t.Errorf("git_sync_count_total went past 3 (now %v): signals during a sync must cause exactly one more", syncCount(addr))
	}
	if n := metric(t, addr, "git_sync_count_total", "status", "success"); n != 2 {
		t.Errorf("git_sync_count_total{success} = %v, want 2 (the first sync and the one publishing %s)", n, h2)
	}
	assertPublished(t, root, link, h2)
}

// TestStopSignals checks that SIGTERM and SIGINT stop git-sync within a
// couple of seconds with exit 0 whatever it is doing, kill the process
// group of a running git or exec hook, and leave the link intact.
func TestStopSignals(t *testing.T) {
	t.Parallel()
	// A scenario starts git-sync, brings it into some state after the
	// first publish, and returns the process groups that must be gone
	// after the exit (0 for none).
	type scenario func(t *testing.T, up *gittest.Repo, root string) (p *Proc, pgid int)
	scenarios := []struct {
		name string
		run  scenario
	}{
		{"idle", func(t *testing.T, up *gittest.Repo, root string) (*Proc, int) {
			p := start(t, concat(syncArgs(up, root), []string{"--period=100ms"})...)
			waitForLink(t, p, filepath.Join(root, "link"), up.Head("HEAD"))
			return p, 0
		}},
		{"git running", func(t *testing.T, up *gittest.Repo, root string) (*Proc, int) {
			w := holdingGit(t)
			p := start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--git=" + w.Path})...)
			waitForLink(t, p, filepath.Join(root, "link"), up.Head("HEAD"))
			mustWrite(t, filepath.Join(w.Dir, "hold"), "")
			var pid int
			waitFor(t, syncDeadline, func() bool {
				pid = readPid(filepath.Join(w.Dir, "held"))
				return pid != 0
			}, "git to block")
			return p, pid
		}},
		{"exechook hanging", func(t *testing.T, up *gittest.Repo, root string) (*Proc, int) {
			hook, state := hookScript(t, `sleep 300 &
sleep 301 &
echo $$ > "$STATE/pid"
wait
`)
			p := start(t, concat(syncArgs(up, root), []string{"--period=100ms",
				"--exechook-command=" + hook, "--exechook-timeout=120s"})...)
			waitForLink(t, p, filepath.Join(root, "link"), up.Head("HEAD"))
			var pid int
			waitFor(t, syncDeadline, func() bool {
				pid = readPid(filepath.Join(state, "pid"))
				return pid != 0
			}, "the exec hook to start")
			return p, pid
		}},
		{"webhook hanging", func(t *testing.T, up *gittest.Repo, root string) (*Proc, int) {
			rc := newWebhookReceiver(t, answerHang)
			p := start(t, concat(syncArgs(up, root), []string{"--period=100ms",
				"--webhook-url=" + rc.URL, "--webhook-timeout=120s"})...)
			waitForLink(t, p, filepath.Join(root, "link"), up.Head("HEAD"))
			waitFor(t, syncDeadline, func() bool { return rc.count() == 1 }, "the webhook call")
			return p, 0
		}},
	}
	for _, s := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGTERM", syscall.SIGTERM}, {"SIGINT", syscall.SIGINT}} {
		sig := s.sig
		for _, sc := range scenarios {
			t.Run(s.name+" "+sc.name, func(t *testing.T) {
				t.Parallel()
				up, h := gittest.NewRepoWithCommit(t)
				root := newRoot(t)
				p, pgid := sc.run(t, up, root)
				if pgid != 0 {
					if g, ok := procGroup(pgid); !ok || g != pgid {
						t.Fatalf("pid %d is not a running process group leader (group %d, %v)", pgid, g, ok)
					}
				}
				began := time.Now()
				p.sendSignal(sig)
				code := p.Wait(stopDeadline)
				took := time.Since(began)
				if code != 0 {
					t.Errorf("exit %d after %v, want 0", code, sig)
				}
				if took > 3*time.Second {
					t.Errorf("git-sync took %v to exit after %v, want a second or two", took, sig)
				}
				if pgid != 0 {
					// SIGKILL takes effect asynchronously: allow a moment.
					ok := poll(time.Second, func() bool { return len(liveGroupMembers(pgid)) == 0 })
					if !ok {
						t.Errorf("processes of the running child's process group %d survived git-sync: %v", pgid, liveGroupMembers(pgid))
						for _, pid := range liveGroupMembers(pgid) {
							_ = syscall.Kill(pid, syscall.SIGKILL)
						}
					}
				}
				assertPublished(t, root, filepath.Join(root, "link"), h)
				if strings.Contains(p.Logs(), "panic") {
					t.Errorf("git-sync panicked:\n%s", tail(p.Logs(), 40))
				}
			})
		}
	}
}
