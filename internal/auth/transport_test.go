package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitsync/internal/gittest"
	"gitsync/internal/redact"
	"gitsync/internal/secret"
)

// These tests give real git, talking to real servers, the configuration
// and environment Auth produces.

// upstreamRepo creates base/upstream with one commit, using plain git.
func upstreamRepo(t *testing.T) (base, head string) {
	t.Helper()
	base = t.TempDir()
	dir := filepath.Join(base, "upstream")
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid",
	}
	run := func(dir string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %q: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	run(base, "init", "-q", "-b", "main", dir)
	writeFile(t, filepath.Join(dir, "file"), "content\n")
	run(dir, "add", "file")
	run(dir, "commit", "-q", "-m", "first")
	return base, run(dir, "rev-parse", "HEAD")
}

// lsRemote runs git ls-remote url refs/heads/main in env.
func lsRemote(t *testing.T, env []string, url string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "ls-remote", url, "refs/heads/main")
	cmd.Env, cmd.Dir = env, t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git ls-remote %s: %w: %s", url, err, stderr.String())
	}
	hash, _, _ := strings.Cut(stdout.String(), "\t")
	return hash, nil
}

func wantLsRemote(t *testing.T, env []string, url, want string) {
	t.Helper()
	got, err := lsRemote(t, env, url)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("ls-remote %s = %q, want %q", url, got, want)
	}
}

func wantLsRemoteFails(t *testing.T, env []string, url, why string) {
	t.Helper()
	_, err := lsRemote(t, env, url)
	if err == nil || !strings.Contains(err.Error(), why) {
		t.Fatalf("ls-remote %s: %v, want failure with %q", url, err, why)
	}
}

func TestHTTPSWithPasswordFileAndCredential(t *testing.T) {
	base, head := upstreamRepo(t)
	repoSrv := gittest.HTTPServer(t, base, gittest.HTTPOptions{TLS: true, Username: "alice", Password: "pw-1"})
	libSrv := gittest.HTTPServer(t, base, gittest.HTTPOptions{Username: "bob", Password: "bob-pw"})
	pwFile := filepath.Join(t.TempDir(), "password")
	writeFile(t, pwFile, "pw-1\n")

	cfg := baseConfig(repoSrv.URL("upstream"))
	cfg.Username, cfg.PasswordFile = "alice", pwFile
	cfg.Credentials = []Credential{{URL: libSrv.BaseURL(), Username: "bob", Password: secret.New("bob-pw")}}
	a := newTestAuth(t, cfg, Options{})
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	trap, trapped := askpassTrap(t)
	env := childEnv(t, a, append(trap,
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.sslCAInfo", "GIT_CONFIG_VALUE_0="+repoSrv.CAFile())...)

	wantLsRemote(t, env, repoSrv.URL("upstream"), head)
	wantLsRemote(t, env, libSrv.URL("upstream"), head)
	// The repo's credentials are keyed on the repo URL only.
	wantLsRemoteFails(t, env, repoSrv.URL("upstream/.git"), "terminal prompts disabled")

	// Rotation: the server changes first, git fails until the file and a
	// Refresh catch up.
	repoSrv.SetPassword("pw-2")
	wantLsRemoteFails(t, env, repoSrv.URL("upstream"), "Authentication failed")
	writeFile(t, pwFile, "pw-2\n")
	wantLsRemoteFails(t, env, repoSrv.URL("upstream"), "Authentication failed")
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantLsRemote(t, env, repoSrv.URL("upstream"), head)
	if trapped() {
		t.Fatal("an askpass program was run")
	}
}

func TestHTTPWithAskpass(t *testing.T) {
	base, head := upstreamRepo(t)
	srv := gittest.HTTPServer(t, base, gittest.HTTPOptions{Username: "u", Password: "right"})
	ask := &askpassServer{respond: func(int) (int, string) { return http.StatusOK, "username=u\npassword=wrong\n" }}
	hs := httptest.NewServer(ask)
	defer hs.Close()
	cfg := baseConfig(srv.URL("upstream"))
	cfg.AskpassURL = hs.URL
	a := newTestAuth(t, cfg, Options{})
	env := childEnv(t, a)
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantLsRemoteFails(t, env, srv.URL("upstream"), "Authentication failed")
	ask.setRespond(func(int) (int, string) { return http.StatusOK, "username=u\npassword=right\n" })
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantLsRemote(t, env, srv.URL("upstream"), head)
}

func TestSSH(t *testing.T) {
	base, head := upstreamRepo(t)
	repo := filepath.Join(base, "upstream")
	s := gittest.SSHD(t, gittest.SSHDOptions{})
	trap, trapped := askpassTrap(t)
	// ssh must not need a usable HOME.
	trap = append(trap, "HOME=/nonexistent")

	// A key path that needs quoting.
	keyDir := filepath.Join(t.TempDir(), "key dir's")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(keyDir, "id key")
	b, err := os.ReadFile(s.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, key, string(b))

	t.Run("ssh URL", func(t *testing.T) {
		cfg := baseConfig(s.URL(repo))
		cfg.SSHKeyFiles = []string{DefaultSSHKeyFile, key}
		cfg.SSHKnownHostsFile = s.KnownHostsFile()
		a := newTestAuth(t, cfg, Options{})
		wantLsRemote(t, childEnv(t, a, trap...), s.URL(repo), head)
	})
	t.Run("scp-like with the user's GIT_SSH_COMMAND", func(t *testing.T) {
		cfg := baseConfig(s.SCPURL(repo))
		cfg.SSHKeyFiles = []string{s.KeyFile()}
		cfg.SSHKnownHostsFile = s.KnownHostsFile()
		userSSH := "ssh -F " + shellQuote(s.ClientConfigFile())
		a := newTestAuth(t, cfg, Options{Env: []string{"GIT_SSH_COMMAND=" + userSSH}})
		wantLsRemote(t, childEnv(t, a, trap...), s.SCPURL(repo), head)
	})
	t.Run("known hosts off", func(t *testing.T) {
		cfg := baseConfig(s.URL(repo))
		cfg.SSHKeyFiles = []string{s.KeyFile()}
		cfg.SSHKnownHosts = false
		cfg.SSHKnownHostsFile = filepath.Join(t.TempDir(), "missing")
		a := newTestAuth(t, cfg, Options{})
		wantLsRemote(t, childEnv(t, a, trap...), s.URL(repo), head)
	})
	t.Run("unknown host key", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		writeFile(t, kh, "")
		cfg := baseConfig(s.URL(repo))
		cfg.SSHKeyFiles = []string{s.KeyFile()}
		cfg.SSHKnownHostsFile = kh
		a := newTestAuth(t, cfg, Options{})
		wantLsRemoteFails(t, childEnv(t, a, trap...), s.URL(repo), "Host key verification failed")
	})
	t.Run("unauthorized key", func(t *testing.T) {
		cfg := baseConfig(s.URL(repo))
		cfg.SSHKeyFiles = []string{s.NewKey()}
		cfg.SSHKnownHostsFile = s.KnownHostsFile()
		a := newTestAuth(t, cfg, Options{})
		wantLsRemoteFails(t, childEnv(t, a, trap...), s.URL(repo), "Permission denied")
	})
	if trapped() {
		t.Fatal("an askpass program was run")
	}
}

// TestNoSecretsLeak configures every kind of credential, uses them, makes
// refreshes fail, and checks that no secret shows up in the environment,
// the git config entries, the private directory or the log at any level.
func TestNoSecretsLeak(t *testing.T) {
	secrets := []string{"sec-static-pw", "sec-file-pw", "sec-cred-pw", "sec-credfile-pw", "sec-askpass-pw", "ghs_token_1", "sec-query"}
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	credFile := filepath.Join(dir, "cred")
	writeFile(t, pwFile, "sec-file-pw\n")
	writeFile(t, credFile, "sec-credfile-pw\n")

	ask := &askpassServer{respond: func(int) (int, string) { return http.StatusOK, "username=a\npassword=sec-askpass-pw\n" }}
	askSrv := httptest.NewServer(ask)
	defer askSrv.Close()
	key := newRSAKey(t)
	gh := &fakeGitHub{pub: &key.PublicKey, issuer: float64(1), installationID: 2, lifetime: time.Hour}
	ghSrv := httptest.NewServer(gh)
	defer ghSrv.Close()
	keyPEM := pemPKCS1(key)

	cfg := baseConfig("https://h/org/repo")
	cfg.Username, cfg.PasswordFile = "u", pwFile
	cfg.Credentials = []Credential{
		{URL: "https://h/a", Username: "c1", Password: secret.New("sec-cred-pw")},
		{URL: "https://h/b", Username: "c2", PasswordFile: credFile},
	}
	cfg.AskpassURL = askSrv.URL + "/?token=sec-query"
	cfg.GitHubApp = GitHubApp{PrivateKey: secret.New(keyPEM), ApplicationID: 1, InstallationID: 2, BaseURL: ghSrv.URL + "/api/v3/"}
	var logs logBuffer
	a := newTestAuth(t, cfg, Options{Log: logs.logger()})
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	env := childEnv(t, a)
	wantCredential(t, env, "https://h/org/repo", GitHubAppUsername, "ghs_token_1")
	wantCredential(t, env, "https://h/a", "c1", "sec-cred-pw")
	wantCredential(t, env, "https://h/b/x", "c2", "sec-credfile-pw")
	wantNoCredential(t, env, "https://h/c")

	// Failing refreshes.
	ask.setRespond(func(int) (int, string) { return http.StatusForbidden, "password=sec-askpass-pw\n" })
	writeFile(t, pwFile, "sec-file-pw\nsec-static-pw\n")
	err := a.Refresh(context.Background())
	if err == nil {
		t.Fatal("Refresh succeeded")
	}
	a.log.Error("sync failed", "err", err)
	// As a careless caller might (AskpassURL is a plain string in Config:
	// whoever logs it must redact it themselves).
	logged := cfg
	logged.AskpassURL = redact.Text(cfg.AskpassURL)
	a.log.Info("config", "cfg", logged)

	check := func(what, s string) {
		t.Helper()
		for _, sec := range append(secrets, "PRIVATE KEY", keyPEM[40:80]) {
			if strings.Contains(s, sec) {
				t.Errorf("%s contains secret %q:\n%s", what, sec, s)
			}
		}
	}
	check("error", err.Error())
	check("Env()", strings.Join(a.Env(), "\n"))
	cj, _ := json.Marshal(a.GitConfig())
	check("GitConfig()", string(cj))
	check("log", logs.String())
	if !strings.Contains(logs.String(), "credential request") {
		t.Errorf("log at level -10 lacks the credential requests:\n%s", logs.String())
	}

	fi, err := os.Stat(a.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("private directory mode %v, want 0700", fi.Mode().Perm())
	}
	err = filepath.WalkDir(a.Dir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == a.Dir() {
			return err
		}
		check("file name", path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want owner-only", path, info.Mode().Perm())
		}
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			check(path, string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
