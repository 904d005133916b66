package e2e

// SSH against OpenSSH sshd on a random 127.0.0.1 port (internal/gittest):
// ssh:// and scp-like URLs, several --ssh-key-file for a repository and a
// submodule on different servers, host key checking (unknown and changed
// host keys are clear errors; off when asked), a user's GIT_SSH_COMMAND
// extended rather than replaced, batch mode, and an arbitrary UID without a
// home directory (--add-user).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// sshArgs are the usual flags for syncing url with s's key and known hosts.
func sshArgs(s *gittest.SSHServer, url, root string) []string {
	return []string{
		"--repo=" + url, "--root=" + root, "--link=link",
		"--ssh-key-file=" + s.KeyFile(), "--ssh-known-hosts-file=" + s.KnownHostsFile(),
	}
}

// sshWrapper writes an ssh program for a user's GIT_SSH_COMMAND that
// records its arguments (one per line, then a "--" line) and execs ssh.
func sshWrapper(t *testing.T) (path, argLog string) {
	t.Helper()
	dir := t.TempDir()
	argLog = filepath.Join(dir, "ssh-args.log")
	path = writeScript(t, "ssh-wrapper", fmt.Sprintf(`for a in "$@"; do printf '%%s\n' "$a" >> %q; done
echo -- >> %q
exec ssh "$@"
`, argLog, argLog))
	return path, argLog
}

func TestAuthSSH(t *testing.T) {
	t.Parallel()
	srv := gittest.SSHD(t, gittest.SSHDOptions{})
	up, h1 := gittest.NewRepoWithCommit(t)

	t.Run("ssh URL", func(t *testing.T) {
		t.Parallel()
		up, h1 := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		link := filepath.Join(root, "link")
		p := start(t, append(sshArgs(srv, srv.URL(up.Dir()), root), "--period=100ms")...)
		waitForLink(t, p, link, h1)
		assertPublished(t, root, link, h1)
		h2 := up.Commit(map[string]string{"README": "two\n"}, "c2")
		waitForLink(t, p, link, h2)
		assertCompleteTree(t, up, link, h2)
	})

	// The scp-like form names no port: the user's GIT_SSH_COMMAND brings
	// an ssh config that does. git-sync must keep it and add its own
	// options (key, batch mode, host checking) after it.
	t.Run("scp-like URL and user GIT_SSH_COMMAND", func(t *testing.T) {
		t.Parallel()
		wrap, argLog := sshWrapper(t)
		root := newRoot(t)
		res := runWith(t, runOpts{Env: []string{"GIT_SSH_COMMAND=" + wrap + " -F " + srv.ClientConfigFile()}},
			append(sshArgs(srv, srv.SCPURL(up.Dir()), root), "--one-time")...)
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		assertPublished(t, root, filepath.Join(root, "link"), h1)
		b, err := os.ReadFile(argLog)
		if err != nil {
			t.Fatalf("the user's ssh program was not run: %v", err)
		}
		first, _, _ := strings.Cut(string(b), "--\n")
		args := strings.Split(strings.TrimSpace(first), "\n")
		if len(args) < 2 || args[0] != "-F" || args[1] != srv.ClientConfigFile() {
			t.Errorf("ssh args %q do not start with the user's -F %s", args, srv.ClientConfigFile())
		}
		joined := "\n" + strings.Join(args, "\n") + "\n"
		// The key may be given as -i FILE or -o IdentityFile=FILE.
		if !strings.Contains(joined, "\n-i\n"+srv.KeyFile()+"\n") && !strings.Contains(joined, "\nIdentityFile="+srv.KeyFile()+"\n") {
			t.Errorf("ssh args lack the key %s: %q", srv.KeyFile(), args)
		}
		for _, want := range []string{
			"\nBatchMode=yes\n",
			"\nStrictHostKeyChecking=yes\n",
			"\nUserKnownHostsFile=" + srv.KnownHostsFile() + "\n",
		} {
			if !strings.Contains(joined, want) {
				t.Errorf("ssh args lack %q: %q", strings.TrimSpace(want), args)
			}
		}
	})

	// Key and known-hosts paths with blanks, quotes and ssh's %-tokens
	// reach ssh intact (quoted for the shell, escaped for ssh's own
	// parsing and %-expansion).
	for _, c := range []struct{ name, dir, key, kh string }{
		{"blanks and quotes", "my keys/it's", "id \"x\"", "known hosts \"x\""},
		{"percent signs", "keys %h %d", "id %r", "known_hosts %u"},
	} {
		t.Run("paths with "+c.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), c.dir)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			key := filepath.Join(dir, c.key)
			authCopyFile(t, srv.KeyFile(), key, 0o600, os.Getuid(), os.Getgid())
			kh := filepath.Join(dir, c.kh)
			authCopyFile(t, srv.KnownHostsFile(), kh, 0o644, os.Getuid(), os.Getgid())
			root := newRoot(t)
			res := runOnce(t, "--repo="+srv.URL(up.Dir()), "--root="+root, "--link=link", "--one-time",
				"--ssh-key-file="+key, "--ssh-known-hosts-file="+kh, "-v=5")
			if res.Code != 0 {
				t.Fatalf("want exit 0, got %s", res)
			}
			assertPublished(t, root, filepath.Join(root, "link"), h1)
		})
	}

	// A key with a passphrase cannot be used without a prompt: ssh runs in
	// batch mode, so the sync fails at once instead of waiting for input.
	t.Run("batch mode", func(t *testing.T) {
		t.Parallel()
		key := filepath.Join(t.TempDir(), "id_locked")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		begin := time.Now()
		res := runWith(t, runOpts{Timeout: 30 * time.Second},
			"--repo="+srv.URL(up.Dir()), "--root="+newRoot(t), "--link=link", "--one-time",
			"--ssh-key-file="+key, "--ssh-known-hosts-file="+srv.KnownHostsFile())
		if res.Code != 1 {
			t.Fatalf("want exit 1 with a passphrase-protected key, got %s", res)
		}
		if d := time.Since(begin); d > 20*time.Second {
			t.Errorf("failing took %v: something waited for input", d)
		}
	})

	t.Run("known hosts", func(t *testing.T) {
		t.Parallel()
		other := gittest.SSHD(t, gittest.SSHDOptions{})
		otherKH, err := os.ReadFile(other.KnownHostsFile())
		if err != nil {
			t.Fatal(err)
		}
		// other's host key under srv's address: a changed host key.
		_, otherKey, _ := strings.Cut(strings.TrimSpace(string(otherKH)), " ")
		changed := fmt.Sprintf("[127.0.0.1]:%d %s\n", srv.Port(), otherKey)
		cases := []struct {
			name, content string
			want          []string
		}{
			{"unknown host", "", []string{"Host key verification failed"}},
			{"changed host key", changed, []string{"REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key verification failed"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				kh := filepath.Join(t.TempDir(), "known_hosts")
				if err := os.WriteFile(kh, []byte(c.content), 0o644); err != nil {
					t.Fatal(err)
				}
				root := newRoot(t)
				res := runOnce(t, "--repo="+srv.URL(up.Dir()), "--root="+root, "--link=link", "--one-time",
					"--ssh-key-file="+srv.KeyFile(), "--ssh-known-hosts-file="+kh, "--error-file=error.json")
				if res.Code != 1 {
					t.Fatalf("want exit 1, got %s", res)
				}
				errFile, _ := os.ReadFile(filepath.Join(root, "error.json"))
				for _, w := range c.want {
					if !strings.Contains(res.Stderr, w) {
						t.Errorf("the logs do not say %q:\n%s", w, tail(res.Stderr, 20))
					}
					if !strings.Contains(string(errFile), w) {
						t.Errorf("the error file does not say %q:\n%s", w, errFile)
					}
				}
				if after, _ := os.ReadFile(kh); string(after) != c.content {
					t.Errorf("the known hosts file changed (a host key was accepted):\n%s", after)
				}
				if exists(filepath.Join(root, "link")) {
					t.Error("published from a host that failed verification")
				}
			})
		}
		t.Run("missing file", func(t *testing.T) {
			t.Parallel()
			missing := filepath.Join(t.TempDir(), "no_known_hosts")
			res := runOnce(t, "--repo="+srv.URL(up.Dir()), "--root="+newRoot(t), "--link=link", "--one-time",
				"--ssh-key-file="+srv.KeyFile(), "--ssh-known-hosts-file="+missing)
			if res.Code != 1 || !strings.Contains(res.Stderr, missing) {
				t.Fatalf("want exit 1 naming %s, got %s", missing, res)
			}
		})
		t.Run("off", func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			root := newRoot(t)
			res := runWith(t, runOpts{Env: []string{"HOME=" + home}},
				"--repo="+srv.URL(up.Dir()), "--root="+root, "--link=link", "--one-time",
				"--ssh-key-file="+srv.KeyFile(), "--ssh-known-hosts=false",
				"--ssh-known-hosts-file="+filepath.Join(t.TempDir(), "absent"))
			if res.Code != 0 {
				t.Fatalf("want exit 0 with --ssh-known-hosts=false, got %s", res)
			}
			assertPublished(t, root, filepath.Join(root, "link"), h1)
			if exists(filepath.Join(home, ".ssh")) {
				t.Error("ssh wrote into HOME/.ssh")
			}
		})
	})
}

// TestAuthSSHSeveralKeys: a superproject on one sshd and its submodule on
// another, each accepting only its own key. Both keys given (flag repeated,
// or the :-separated environment form) authenticate both; one key alone
// does not reach the submodule.
func TestAuthSSHSeveralKeys(t *testing.T) {
	t.Parallel()
	srvA := gittest.SSHD(t, gittest.SSHDOptions{})
	srvB := gittest.SSHD(t, gittest.SSHDOptions{})
	super := gittest.NewRepo(t)
	sub := gittest.NewRepo(t)
	sub.Commit(map[string]string{"sub.txt": "from B\n"}, "s1")
	super.Commit(map[string]string{"README": "super\n"}, "super 1")
	super.AddSubmodule(sub, "sub", "")
	// Point the submodule at server B (the fixture added it by path).
	super.Git("config", "--file", ".gitmodules", "submodule.sub.url", srvB.URL(sub.Dir()))
	h1 := super.Commit(nil, "submodule over ssh")

	kh := filepath.Join(t.TempDir(), "known_hosts")
	var both []byte
	for _, s := range []*gittest.SSHServer{srvA, srvB} {
		b, err := os.ReadFile(s.KnownHostsFile())
		if err != nil {
			t.Fatal(err)
		}
		both = append(both, b...)
	}
	if err := os.WriteFile(kh, both, 0o644); err != nil {
		t.Fatal(err)
	}
	base := func(root string) []string {
		return []string{"--repo=" + srvA.URL(super.Dir()), "--root=" + root, "--link=link",
			"--one-time", "--ssh-known-hosts-file=" + kh}
	}
	check := func(t *testing.T, root string) {
		t.Helper()
		link := filepath.Join(root, "link")
		assertPublished(t, root, link, h1)
		if b, err := os.ReadFile(filepath.Join(link, "sub", "sub.txt")); err != nil || string(b) != "from B\n" {
			t.Errorf("submodule from server B: sub.txt = %q, %v", b, err)
		}
	}

	t.Run("flag repeated", func(t *testing.T) {
		t.Parallel()
		root := newRoot(t)
		res := runOnce(t, append(base(root), "--ssh-key-file="+srvA.KeyFile(), "--ssh-key-file="+srvB.KeyFile())...)
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		check(t, root)
	})
	t.Run("environment list", func(t *testing.T) {
		t.Parallel()
		root := newRoot(t)
		res := runWith(t, runOpts{Env: []string{"GITSYNC_SSH_KEY_FILE=" + srvA.KeyFile() + ":" + srvB.KeyFile()}}, base(root)...)
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		check(t, root)
	})
	t.Run("one key only", func(t *testing.T) {
		t.Parallel()
		res := runOnce(t, append(base(newRoot(t)), "--ssh-key-file="+srvA.KeyFile())...)
		if res.Code != 1 {
			t.Fatalf("want exit 1 without server B's key, got %s", res)
		}
		if !strings.Contains(res.Stderr, "Permission denied") {
			t.Errorf("the logs do not carry ssh's refusal:\n%s", tail(res.Stderr, 20))
		}
	})
}

// freeUID returns a UID at or above from that has no passwd entry.
func freeUID(t *testing.T, from int) int {
	t.Helper()
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	used := map[int]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Split(l, ":"); len(f) > 2 {
			if n, err := strconv.Atoi(f[2]); err == nil {
				used[n] = true
			}
		}
	}
	for uid := from; ; uid++ {
		if !used[uid] {
			return uid
		}
	}
}

// TestAuthSSHArbitraryUIDWithoutHome runs git-sync as a UID that has no
// passwd entry and no HOME, as pods with an arbitrary UID do. ssh needs a
// passwd entry: --add-user appends one when /etc/passwd is writable, and
// the sync over ssh succeeds; when it is not writable, --add-user fails
// with a clear message. Not parallel: it changes /etc/passwd (restored from
// a backup when it ends).
func TestAuthSSHArbitraryUIDWithoutHome(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs git-sync as another UID and needs root (run the e2e tests as root, as CI does)")
	}
	srv := gittest.SSHD(t, gittest.SSHDOptions{})
	up, h1 := gittest.NewRepoWithCommit(t)
	backupPasswd(t)
	uid := freeUID(t, 12345)
	gid := uid

	pub := authPublicDir(t)
	bin := filepath.Join(pub, "git-sync")
	authCopyFile(t, gitSyncBin, bin, 0o755, 0, 0)
	key := filepath.Join(pub, "id")
	authCopyFile(t, srv.KeyFile(), key, 0o600, uid, gid)
	kh := filepath.Join(pub, "known_hosts")
	authCopyFile(t, srv.KnownHostsFile(), kh, 0o644, 0, 0)
	mkOwned := func(name string, mode os.FileMode) string {
		d := filepath.Join(pub, name)
		if err := os.Mkdir(d, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
		return d
	}
	tmp := mkOwned("tmp", 0o700)
	data := mkOwned("data", 0o755)
	// No HOME at all (CleanEnviron drops it).
	env := append(gittest.CleanEnviron(os.Environ()), "GIT_CONFIG_NOSYSTEM=1", "TMPDIR="+tmp)
	args := func(root string, extra ...string) []string {
		return append([]string{"--repo=" + srv.URL(up.Dir()), "--root=" + root, "--link=link", "--one-time",
			"--ssh-key-file=" + key, "--ssh-known-hosts-file=" + kh}, extra...)
	}

	t.Run("without --add-user", func(t *testing.T) {
		res := runAs(t, bin, uid, gid, env, args(filepath.Join(data, "root0"))...)
		if res.Code != 1 {
			t.Fatalf("want exit 1 (ssh has no passwd entry for UID %d), got %s", uid, res)
		}
		if !strings.Contains(res.Stderr, fmt.Sprintf("No user exists for uid %d", uid)) {
			t.Errorf("the logs do not carry ssh's complaint about the missing passwd entry:\n%s", tail(res.Stderr, 5))
		}
	})

	t.Run("with --add-user", func(t *testing.T) {
		if err := os.Chmod("/etc/passwd", 0o666); err != nil {
			t.Fatal(err)
		}
		root := filepath.Join(data, "root1")
		res := runAs(t, bin, uid, gid, env, args(root, "--add-user")...)
		if err := os.Chmod("/etc/passwd", 0o644); err != nil {
			t.Fatal(err)
		}
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		assertPublished(t, root, filepath.Join(root, "link"), h1)
		passwd, _ := os.ReadFile("/etc/passwd")
		if !strings.Contains(string(passwd), fmt.Sprintf(":%d:%d:", uid, gid)) {
			t.Errorf("/etc/passwd has no entry for %d:%d:\n%s", uid, gid, passwd)
		}
		if left := authPrivateDirs(tmp); len(left) > 0 {
			t.Errorf("credential directories left in TMPDIR: %q", left)
		}
	})

	t.Run("--add-user without write access", func(t *testing.T) {
		other := freeUID(t, uid+1)
		root := filepath.Join(pub, "root2")
		res := runAs(t, bin, other, other, append(env, "TMPDIR=/tmp"), args(root, "--add-user")...)
		if res.Code != 1 {
			t.Fatalf("want exit 1, got %s", res)
		}
		for _, want := range []string{"--add-user", "/etc/passwd", strconv.Itoa(other)} {
			if !strings.Contains(res.Stderr, want) {
				t.Errorf("the error does not mention %q:\n%s", want, res.Stderr)
			}
		}
		if !strings.Contains(res.Stderr, "not writable") && !strings.Contains(res.Stderr, "permission denied") {
			t.Errorf("the error does not say why:\n%s", res.Stderr)
		}
	})
}
