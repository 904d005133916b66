package gittest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The servers are tested with plain git commands, independent of Repo.

// srvTestEnv is an isolated environment for the client side git.
func srvTestEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid",
	}
	return append(env, extra...)
}

// srvTestGit runs git in dir and returns trimmed stdout, or the error with
// stderr.
func srvTestGit(dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", &srvTestGitError{args: args, err: err, stderr: stderr.String()}
	}
	return strings.TrimSpace(stdout.String()), nil
}

type srvTestGitError struct {
	args   []string
	err    error
	stderr string
}

func (e *srvTestGitError) Error() string {
	return "git " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.stderr
}

func srvTestMustGit(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	out, err := srvTestGit(dir, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// srvTestUpstream creates base/upstream (non-bare, one commit on main) and
// returns base and the commit hash.
func srvTestUpstream(t *testing.T) (base, head string) {
	t.Helper()
	base = t.TempDir()
	dir := filepath.Join(base, "upstream")
	env := srvTestEnv(t)
	srvTestMustGit(t, base, env, "init", "-q", "-b", "main", dir)
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srvTestMustGit(t, dir, env, "add", "file")
	srvTestMustGit(t, dir, env, "commit", "-q", "-m", "first")
	return base, srvTestMustGit(t, dir, env, "rev-parse", "HEAD")
}

// srvLsRemoteHead returns the hash ls-remote reports for refs/heads/main.
func srvLsRemoteHead(dir string, env []string, url string) (string, error) {
	out, err := srvTestGit(dir, env, "ls-remote", url, "refs/heads/main")
	if err != nil {
		return "", err
	}
	hash, _, _ := strings.Cut(out, "\t")
	return hash, nil
}

func srvWantLsRemote(t *testing.T, env []string, url, want string) {
	t.Helper()
	got, err := srvLsRemoteHead(t.TempDir(), env, url)
	if err != nil {
		t.Fatalf("ls-remote %s: %v", url, err)
	}
	if got != want {
		t.Fatalf("ls-remote %s = %q, want %q", url, got, want)
	}
}

func srvWantLsRemoteFails(t *testing.T, env []string, url, wantStderr string) {
	t.Helper()
	_, err := srvLsRemoteHead(t.TempDir(), env, url)
	if err == nil {
		t.Fatalf("ls-remote %s succeeded, want failure", url)
	}
	if !strings.Contains(err.Error(), wantStderr) {
		t.Fatalf("ls-remote %s failed without %q: %v", url, wantStderr, err)
	}
}

// srvWantClone clones url and checks the checked-out commit and file.
func srvWantClone(t *testing.T, env []string, url, want string) {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "clone")
	srvTestMustGit(t, filepath.Dir(dst), env, "clone", "-q", url, dst)
	if got := srvTestMustGit(t, dst, env, "rev-parse", "HEAD"); got != want {
		t.Fatalf("clone of %s is at %s, want %s", url, got, want)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "file")); err != nil || string(b) != "hello\n" {
		t.Fatalf("clone of %s: file = %q, %v", url, b, err)
	}
}

func TestHTTPServer(t *testing.T) {
	t.Parallel()
	base, head := srvTestUpstream(t)
	h := HTTPServer(t, base, HTTPOptions{})
	env := srvTestEnv(t)
	url := h.URL("upstream")
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("URL = %q", url)
	}
	srvWantLsRemote(t, env, url, head)
	srvWantClone(t, env, url, head)
	if h.Requests() == 0 {
		t.Fatal("Requests() = 0 after a clone")
	}
	if h.CAFile() != "" {
		t.Fatalf("CAFile() = %q without TLS", h.CAFile())
	}

	// Push works too (a branch, so the non-bare upstream accepts it).
	work := filepath.Join(t.TempDir(), "work")
	srvTestMustGit(t, filepath.Dir(work), env, "clone", "-q", url, work)
	if err := os.WriteFile(filepath.Join(work, "file2"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	srvTestMustGit(t, work, env, "add", "file2")
	srvTestMustGit(t, work, env, "commit", "-q", "-m", "second")
	srvTestMustGit(t, work, env, "push", "-q", url, "HEAD:refs/heads/pushed")
	if out := srvTestMustGit(t, work, env, "ls-remote", url, "refs/heads/pushed"); out == "" {
		t.Fatal("pushed branch not found")
	}

	h.SetFailStatus(503)
	srvWantLsRemoteFails(t, env, url, "503")
	h.SetFailStatus(0)
	srvWantLsRemote(t, env, url, head)

	srvWantLsRemoteFails(t, env, h.URL("missing"), "not found")
}

func TestHTTPServerBasicAuth(t *testing.T) {
	t.Parallel()
	base, head := srvTestUpstream(t)
	h := HTTPServer(t, base, HTTPOptions{Username: "alice", Password: "first"})
	env := srvTestEnv(t)
	withCreds := func(user, pass string) string {
		return strings.Replace(h.URL("upstream"), "://", "://"+user+":"+pass+"@", 1)
	}
	srvWantLsRemoteFails(t, env, h.URL("upstream"), "terminal prompts disabled")
	srvWantLsRemoteFails(t, env, withCreds("alice", "wrong"), "Authentication failed")
	if h.AuthFailures() == 0 {
		t.Fatal("AuthFailures() = 0 after refused requests")
	}
	srvWantLsRemote(t, env, withCreds("alice", "first"), head)
	srvWantClone(t, env, withCreds("alice", "first"), head)

	h.SetPassword("second")
	srvWantLsRemoteFails(t, env, withCreds("alice", "first"), "Authentication failed")
	srvWantLsRemote(t, env, withCreds("alice", "second"), head)

	h.SetCredentials("", "")
	srvWantLsRemote(t, env, h.URL("upstream"), head)
}

func TestHTTPServerTLS(t *testing.T) {
	t.Parallel()
	base, head := srvTestUpstream(t)
	h := HTTPServer(t, base, HTTPOptions{TLS: true, Username: "u", Password: "p"})
	url := h.URL("upstream")
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("URL = %q", url)
	}
	if _, err := os.Stat(h.CAFile()); err != nil {
		t.Fatalf("CAFile: %v", err)
	}
	withCreds := strings.Replace(url, "://", "://u:p@", 1)
	srvWantLsRemoteFails(t, srvTestEnv(t), withCreds, "certificate")
	env := srvTestEnv(t,
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.sslCAInfo", "GIT_CONFIG_VALUE_0="+h.CAFile())
	srvWantLsRemote(t, env, withCreds, head)
	srvWantClone(t, env, withCreds, head)
}

func TestGitDaemon(t *testing.T) {
	t.Parallel()
	base, head := srvTestUpstream(t)
	d := GitDaemon(t, base)
	url := d.URL("upstream")
	if want := "git://127.0.0.1:"; !strings.HasPrefix(url, want) || d.Port() == 0 {
		t.Fatalf("URL = %q, Port = %d", url, d.Port())
	}
	env := srvTestEnv(t)
	srvWantLsRemote(t, env, url, head)
	srvWantClone(t, env, url, head)
	srvWantLsRemoteFails(t, env, d.URL("missing"), "")
}

func TestSSHD(t *testing.T) {
	t.Parallel()
	base, head := srvTestUpstream(t)
	s := SSHD(t, SSHDOptions{})
	repo := filepath.Join(base, "upstream")
	env := srvTestEnv(t, "GIT_SSH_COMMAND="+s.SSHCommand())

	url := s.URL(repo)
	if !strings.HasPrefix(url, "ssh://"+s.User()+"@127.0.0.1:") || !strings.HasSuffix(url, repo) {
		t.Fatalf("URL = %q", url)
	}
	srvWantLsRemote(t, env, url, head)
	srvWantClone(t, env, url, head)

	scp := s.SCPURL(repo)
	if scp != s.User()+"@127.0.0.1:"+repo {
		t.Fatalf("SCPURL = %q", scp)
	}
	srvWantLsRemote(t, env, scp, head)
	srvWantClone(t, env, scp, head)

	// A key the server does not know is refused; AddKey authorizes one.
	sshWith := func(key, knownHosts string) []string {
		return srvTestEnv(t, "GIT_SSH_COMMAND=ssh -F "+sshdShellQuote(s.ClientConfigFile())+
			" -o BatchMode=yes -o IdentitiesOnly=yes -i "+sshdShellQuote(key)+
			" -o StrictHostKeyChecking=yes -o UserKnownHostsFile="+sshdShellQuote(knownHosts))
	}
	stranger := s.NewKey()
	srvWantLsRemoteFails(t, sshWith(stranger, s.KnownHostsFile()), url, "Permission denied")
	added := s.AddKey()
	srvWantLsRemote(t, sshWith(added, s.KnownHostsFile()), url, head)
	srvWantLsRemote(t, sshWith(added, s.KnownHostsFile()), scp, head)

	// The host key is checked.
	empty := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	srvWantLsRemoteFails(t, sshWith(added, empty), url, "Host key verification failed")
}

func TestSSHDRSAKeys(t *testing.T) {
	t.Parallel()
	base, head := srvTestUpstream(t)
	s := SSHD(t, SSHDOptions{KeyType: "rsa"})
	env := srvTestEnv(t, "GIT_SSH_COMMAND="+s.SSHCommand())
	srvWantLsRemote(t, env, s.URL(filepath.Join(base, "upstream")), head)
	b, err := os.ReadFile(s.KeyFile() + ".pub")
	if err != nil || !strings.HasPrefix(string(b), "ssh-rsa ") {
		t.Fatalf("user key is not RSA: %q, %v", b, err)
	}
}

// TestServersServeRepo serves a Repo fixture as the doc comments describe.
func TestServersServeRepo(t *testing.T) {
	t.Parallel()
	r, head := NewRepoWithCommit(t)
	base, name := filepath.Dir(r.Dir()), filepath.Base(r.Dir())
	h := HTTPServer(t, base, HTTPOptions{})
	d := GitDaemon(t, base)
	s := SSHD(t, SSHDOptions{})
	env := srvTestEnv(t, "GIT_SSH_COMMAND="+s.SSHCommand())
	for _, url := range []string{h.URL(name), d.URL(name), s.URL(r.Dir()), s.SCPURL(r.Dir())} {
		srvWantLsRemote(t, env, url, head)
	}
}
