package e2e

// The kept SSH connection (internal/auth, sshmaster.go) against OpenSSH
// sshd on 127.0.0.1: polls and fetches share one login, and polls run no
// git (internal/lsremote opens sessions on the master); pushes are
// published; a rotated key file and a changed known-hosts file replace the
// connection (a host key that no longer matches fails closed); a server
// that allows one session at a time still syncs; and no ssh process
// outlives git-sync, whether it is stopped with SIGTERM or SIGKILLed alone.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// keptSSH is one git-sync syncing an SSH upstream with its own TMPDIR,
// where the kept connection's socket can be found.
type keptSSH struct {
	srv     *gittest.SSHServer
	up      *gittest.Repo
	h1      string
	root    string
	link    string
	tmp     string
	key     string // the mounted key file
	kh      string // the mounted known-hosts file
	addr    string // --http-bind, for /metrics
	git     wrapper
	p       *Proc
	initial []string // sshd logins before git-sync started
}

// startKeptSSH starts git-sync at --period=100ms against a new upstream on
// srv, with copies of srv's key and known-hosts files it may replace.
func startKeptSSH(t *testing.T, srv *gittest.SSHServer, extra ...string) *keptSSH {
	t.Helper()
	k := &keptSSH{srv: srv, root: newRoot(t), tmp: authShortTempDir(t, "gsk")}
	k.up, k.h1 = gittest.NewRepoWithCommit(t)
	k.link = filepath.Join(k.root, "link")
	secrets := t.TempDir()
	k.key = filepath.Join(secrets, "ssh")
	k.kh = filepath.Join(secrets, "known_hosts")
	authCopyFile(t, srv.KeyFile(), k.key, 0o600, os.Getuid(), os.Getgid())
	authCopyFile(t, srv.KnownHostsFile(), k.kh, 0o644, os.Getuid(), os.Getgid())
	k.git = gitWrapper(t, wrapperOpts{})
	var metricsArgs []string
	k.addr, metricsArgs = authMetricsArgs(t)
	k.initial = srv.Logins()
	args := concat([]string{
		"--repo=" + srv.URL(k.up.Dir()), "--root=" + k.root, "--link=link",
		"--ssh-key-file=" + k.key, "--ssh-known-hosts-file=" + k.kh,
		"--period=100ms", "--max-failures=-1", "--git=" + k.git.Path,
	}, metricsArgs, extra)
	k.p = startWith(t, runOpts{Env: []string{"TMPDIR=" + k.tmp}}, args...)
	waitForLink(t, k.p, k.link, k.h1)
	return k
}

// logins are the sshd logins since git-sync started.
func (k *keptSSH) logins() []string { return k.srv.Logins()[len(k.initial):] }

// masters are the live ssh masters git-sync runs (its children).
func (k *keptSSH) masters() []int { return sshMasters(k.p.Pid()) }

// sshMasters lists the live descendants of pid that are ssh masters.
func sshMasters(pid int) []int {
	var out []int
	for _, d := range descendants(pid) {
		if isSSHMaster(d) {
			out = append(out, d)
		}
	}
	return out
}

// isSSHMaster reports whether pid is a live ssh started as a master.
func isSSHMaster(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return err == nil && processAlive(pid) && strings.Contains(string(b), "ControlMaster=yes")
}

// anySSHFor reports the live processes whose command line mentions dir
// (every ssh git-sync starts names its control directory).
func anySSHFor(dir string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), dir) {
			continue
		}
		if pid, err := strconv.Atoi(e.Name()); err == nil && processAlive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

var controlName = regexp.MustCompile(`^[0-9a-f]{40}$`)

// controlSocket is the kept connection's socket under tmp, or "".
func controlSocket(tmp string) string {
	dirs, _ := filepath.Glob(filepath.Join(tmp, "git-sync-auth-*"))
	for _, d := range dirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if controlName.MatchString(e.Name()) {
				return filepath.Join(d, e.Name())
			}
		}
	}
	return ""
}

func TestAuthSSHKeptConnection(t *testing.T) {
	t.Parallel()
	srv := gittest.SSHD(t, gittest.SSHDOptions{})

	// One login for the first fetch, every poll since and a fetch of a
	// new commit.
	t.Run("polls and fetches share one login", func(t *testing.T) {
		t.Parallel()
		own := gittest.SSHD(t, gittest.SSHDOptions{}) // logins counted here only
		k := startKeptSSH(t, own)
		h2 := k.up.Commit(map[string]string{"README": "two\n"}, "c2")
		waitForLink(t, k.p, k.link, h2)
		assertCompleteTree(t, k.up, k.link, h2)
		// Polls run no git (they open a session on the master from
		// git-sync itself): sshd's sessions other than the fetches are
		// the polls.
		polls := func() int { return own.Sessions() - k.git.CountCalls("fetch") }
		waitFor(t, 30*time.Second, func() bool { return polls() >= 20 }, "20 polls (have %d)", polls())
		nPolls, fetches := polls(), k.git.CountCalls("fetch")
		if n := len(k.logins()); n != 1 {
			t.Errorf("%d polls and %d fetches made %d ssh logins, want 1\n%s", nPolls, fetches, n, tail(k.p.Logs(), 30))
		}
		lsRemote := 0
		for _, c := range k.git.Calls() {
			if strings.HasPrefix(c, "ls-remote ") && !strings.Contains(c, "--get-url") {
				lsRemote++
			}
		}
		if lsRemote != 0 {
			t.Errorf("%d of %d polls ran git ls-remote, want none (all over the kept connection)", lsRemote, nPolls)
		}
		if v := metric(t, k.addr, "git_sync_ssh_kept_connection"); v != 1 {
			t.Errorf("git_sync_ssh_kept_connection = %v, want 1", v)
		}
		if m := k.masters(); len(m) != 1 {
			t.Errorf("git-sync runs %d ssh masters, want 1", len(m))
		}
		if fi, err := os.Stat(controlSocket(k.tmp)); err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("control socket: %v, mode %v: want one only its owner can use", err, fi.Mode())
		} else if di, err := os.Stat(filepath.Dir(controlSocket(k.tmp))); err != nil || di.Mode().Perm() != 0o700 {
			t.Errorf("control socket's directory: %v, want mode 0700", err)
		}
	})

	// Kubernetes replaces a mounted secret by swapping files; the server
	// accepts only the new key from then on.
	t.Run("key rotation", func(t *testing.T) {
		t.Parallel()
		k := startKeptSSH(t, srv)
		waitFor(t, 10*time.Second, func() bool { return len(k.masters()) == 1 }, "a master")
		old := k.masters()[0]
		newKey := srv.NewKey()
		srv.SetKeys(srv.KeyFile(), newKey) // the other subtests keep theirs
		b, err := os.ReadFile(newKey)
		if err != nil {
			t.Fatal(err)
		}
		authWriteFile(t, k.key, string(b), 0o600)
		h2 := k.up.Commit(map[string]string{"README": "rotated\n"}, "c2")
		waitForLink(t, k.p, k.link, h2)
		fp := srv.Fingerprint(newKey)
		waitFor(t, 10*time.Second, func() bool {
			for _, l := range k.logins() {
				if l == fp {
					return true
				}
			}
			return false
		}, "a login with the new key %s (logins %v)", fp, k.logins())
		waitFor(t, 10*time.Second, func() bool { return !processAlive(old) }, "the old master %d to end", old)
		if v := metric(t, k.addr, "git_sync_ssh_kept_connection_renewals_total", "reason", "key_file"); v != 1 {
			t.Errorf("renewals for key_file = %v, want 1", v)
		}
		if m := k.masters(); len(m) != 1 {
			t.Errorf("git-sync runs %d ssh masters after the rotation, want 1", len(m))
		}
	})

	// The known-hosts file now holds another key for the server: the new
	// connection fails verification, and so does every poll after it.
	t.Run("host key change fails closed", func(t *testing.T) {
		t.Parallel()
		k := startKeptSSH(t, srv)
		other := gittest.SSHD(t, gittest.SSHDOptions{})
		otherKH, err := os.ReadFile(other.KnownHostsFile())
		if err != nil {
			t.Fatal(err)
		}
		_, otherKey, _ := strings.Cut(strings.TrimSpace(string(otherKH)), " ")
		authWriteFile(t, k.kh, "[127.0.0.1]:"+strconv.Itoa(srv.Port())+" "+otherKey+"\n", 0o644)
		// The commit comes once the change is seen: a poll already past
		// its check of the files may still use the connection verified
		// before, as ssh itself would.
		waitFor(t, syncDeadline, func() bool {
			return strings.Contains(k.p.Logs(), "Host key verification failed")
		}, "a host key verification failure in the logs\n%s", tail(k.p.Logs(), 20))
		k.up.Commit(map[string]string{"README": "unverified\n"}, "c2")
		waitFor(t, syncDeadline, func() bool {
			return strings.Count(k.p.Logs(), "Host key verification failed") >= 2
		}, "a poll after the commit to fail verification\n%s", tail(k.p.Logs(), 20))
		if !holdsFor(time.Second, func() bool { return tryLinkHash(k.link) == k.h1 }) {
			t.Fatalf("published from a host that failed verification")
		}
		if v := tryMetric(k.addr, "git_sync_ssh_kept_connection"); v != 0 {
			t.Errorf("git_sync_ssh_kept_connection = %v, want 0", v)
		}
	})

	// With one session at a time, a session held open elsewhere on the
	// kept connection makes the server refuse git's: ssh then connects on
	// its own, and git-sync says so once.
	t.Run("MaxSessions 1", func(t *testing.T) {
		t.Parallel()
		one := gittest.SSHD(t, gittest.SSHDOptions{MaxSessions: 1})
		k := startKeptSSH(t, one)
		h2 := k.up.Commit(map[string]string{"README": "two\n"}, "c2")
		waitForLink(t, k.p, k.link, h2)
		sock := controlSocket(k.tmp)
		if sock == "" {
			t.Fatalf("no control socket under %s", k.tmp)
		}
		startHold(t, one, sock)
		h3 := k.up.Commit(map[string]string{"README": "three\n"}, "c3")
		waitForLink(t, k.p, k.link, h3)
		waitFor(t, 10*time.Second, func() bool { return strings.Contains(k.p.Logs(), "refused a session") },
			"the refusal in the logs\n%s", tail(k.p.Logs(), 20))
		if n := strings.Count(k.p.Logs(), "refused a session"); n != 1 {
			t.Errorf("the refusal is logged %d times, want once", n)
		}
	})

	for _, how := range []string{"SIGTERM", "SIGKILL"} {
		t.Run("no ssh left after "+how, func(t *testing.T) {
			t.Parallel()
			k := startKeptSSH(t, srv)
			waitFor(t, 10*time.Second, func() bool { return len(k.masters()) == 1 }, "a master")
			master := k.masters()[0]
			dir := filepath.Dir(controlSocket(k.tmp))
			if how == "SIGTERM" {
				if code := k.p.Stop(); code != 0 {
					t.Errorf("exit code %d after SIGTERM, want 0", code)
				}
			} else {
				// git-sync alone, not its process tree.
				if err := syscall.Kill(k.p.Pid(), syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				<-k.p.Done()
			}
			waitFor(t, 10*time.Second, func() bool { return !processAlive(master) && len(anySSHFor(dir)) == 0 },
				"no ssh process after %s (master %d alive: %v; others %v)", how, master, processAlive(master), anySSHFor(dir))
		})
	}
}

// holdCommand is the remote command of startHold's session, unique to it.
const holdCommand = "sleep 30.7"

// startHold occupies a session on the master at sock: an ssh that can
// only use the master (it has no key), whose remote command sleeps. A
// session the server refused (one of git-sync's was open) makes it exit:
// it is then tried again.
func startHold(t *testing.T, srv *gittest.SSHServer, sock string) *exec.Cmd {
	t.Helper()
	for range 50 {
		cmd := exec.Command("ssh", "-o", "ControlMaster=no", "-o", "ControlPath="+sock,
			"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityFile=/dev/null",
			"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=/dev/null",
			"-p", strconv.Itoa(srv.Port()), srv.User()+"@127.0.0.1", holdCommand)
		done := make(chan struct{})
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = cmd.Wait(); close(done) }()
		holding := poll(10*time.Second, func() bool {
			select {
			case <-done:
				return true
			default:
			}
			return len(processesRunning(holdCommand)) > 0
		})
		select {
		case <-done:
			continue // refused: try again
		default:
		}
		if holding {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-done
				for _, pid := range processesRunning(holdCommand) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			})
			return cmd
		}
		_ = cmd.Process.Kill()
		<-done
	}
	t.Fatalf("could not hold a session on %s", sock)
	return nil
}

// processesRunning lists the live processes whose command line is
// command split at blanks.
func processesRunning(command string) []int {
	want := strings.Join(strings.Fields(command), "\x00") + "\x00"
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || string(b) != want {
			continue
		}
		if pid, err := strconv.Atoi(e.Name()); err == nil && processAlive(pid) {
			out = append(out, pid)
		}
	}
	return out
}
