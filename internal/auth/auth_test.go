package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gitsync/internal/config"
	"gitsync/internal/secret"
)

// testSelf is the "git-sync executable" of these tests: a link to the test
// binary (which TestMain dispatches to HelperMain) in a directory whose name
// needs shell quoting.
var testSelf string

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == HelperArg {
		os.Exit(HelperMain(os.Args[2:], os.Environ(), os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "auth test's $self ")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testSelf = filepath.Join(dir, "git sync")
	if err := os.Symlink(exe, testSelf); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// metricsRecorder counts Metrics calls.
type metricsRecorder struct {
	mu       sync.Mutex
	askpass  map[string]int
	app      map[string]int
	sshUp    bool
	renewals map[string]int
}

func newMetricsRecorder() *metricsRecorder {
	return &metricsRecorder{askpass: map[string]int{}, app: map[string]int{}, renewals: map[string]int{}}
}

func (m *metricsRecorder) SSHKeptConnection(up bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sshUp = up
}

func (m *metricsRecorder) SSHKeptConnectionRenewal(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.renewals[reason]++
}

func (m *metricsRecorder) ssh() (up bool, renewals map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := map[string]int{}
	for k, v := range m.renewals {
		r[k] = v
	}
	return m.sshUp, r
}

func (m *metricsRecorder) AskpassCall(status string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.askpass[status]++
}

func (m *metricsRecorder) GitHubAppRefresh(status string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.app[status]++
}

func (m *metricsRecorder) counts() (askpassOK, askpassErr, appOK, appErr int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.askpass["success"], m.askpass["error"], m.app["success"], m.app["error"]
}

// logBuffer collects log output of every level.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.Level(-10)}))
}

// baseConfig is a Config with the defaults the config package applies to
// the auth fields.
func baseConfig(repo string) Config {
	return Config{
		Repo:              repo,
		SSHKeyFiles:       []string{DefaultSSHKeyFile},
		SSHKnownHosts:     true,
		SSHKnownHostsFile: "/etc/git-secret/known_hosts",
		GitHubApp:         GitHubApp{BaseURL: "https://api.github.com/"},
	}
}

func newTestAuth(t *testing.T, cfg Config, opts Options) *Auth {
	t.Helper()
	if opts.Self == "" {
		opts.Self = testSelf
	}
	a, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// askpassTrap is an askpass program that records being run. Tests put it
// everywhere git or ssh could find an askpass program, to prove they don't.
func askpassTrap(t *testing.T) (env []string, ran func() bool) {
	t.Helper()
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	prog := filepath.Join(dir, "askpass")
	writeFile(t, prog, "#!/bin/sh\necho trapped >> '"+marker+"'\necho trapped\n")
	if err := os.Chmod(prog, 0o755); err != nil {
		t.Fatal(err)
	}
	env = []string{"GIT_ASKPASS=" + prog, "SSH_ASKPASS=" + prog, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0"}
	return env, func() bool { _, err := os.Stat(marker); return err == nil }
}

// childEnv is the environment git-sync would give a git child: a clean base
// (plus base, standing for whatever git-sync's own environment holds), the
// private global config holding a.GitConfig(), then a.Env().
func childEnv(t *testing.T, a *Auth, base ...string) []string {
	t.Helper()
	home := t.TempDir()
	global := filepath.Join(home, "gitconfig")
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + global,
		// The helper is this test binary; with -race it would otherwise
		// linger a second at exit.
		"GORACE=atexit_sleep_ms=0",
	}
	for _, e := range a.GitConfig() {
		args := []string{"config", "--file", global}
		if e.Add {
			args = append(args, "--add")
		}
		args = append(args, e.Key, e.Value)
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %q: %v\n%s", args, err, out)
		}
	}
	env = append(env, base...)
	return append(env, a.Env()...)
}

// credentialFill runs `git credential fill` for url, as the user's wrappers
// and tests do to check what git-sync gives git.
func credentialFill(t *testing.T, env []string, url string) (map[string]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "credential", "fill")
	cmd.Env = env
	cmd.Dir = t.TempDir()
	cmd.Stdin = strings.NewReader("url=" + url + "\n\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("git credential fill %s: %w: %s", url, err, stderr.String())
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		k, v, _ := strings.Cut(l, "=")
		got[k] = v
	}
	return got, nil
}

func wantCredential(t *testing.T, env []string, url, user, pass string) {
	t.Helper()
	got, err := credentialFill(t, env, url)
	if err != nil {
		t.Fatal(err)
	}
	if got["username"] != user || got["password"] != pass {
		t.Fatalf("credential fill %s = %q/%q, want %q/%q", url, got["username"], got["password"], user, pass)
	}
}

func wantNoCredential(t *testing.T, env []string, url string) {
	t.Helper()
	got, err := credentialFill(t, env, url)
	if err == nil {
		t.Fatalf("credential fill %s = %q, want failure", url, got)
	}
	if !strings.Contains(err.Error(), "terminal prompts disabled") {
		t.Fatalf("credential fill %s failed for another reason: %v", url, err)
	}
}

func TestCredentialFill(t *testing.T) {
	dir := t.TempDir()
	carolFile := filepath.Join(dir, "carol")
	writeFile(t, carolFile, "carol-pw\n")
	cfg := baseConfig("https://git.example.com/org/repo.git")
	cfg.Username = "alice"
	cfg.Password = secret.New("alice-pw")
	cfg.Credentials = []Credential{
		{URL: "https://git.example.com/org/sub", Username: "bob", Password: secret.New("bob-pw")},
		{URL: "https://other.example.com:8443/", Username: "carol", PasswordFile: carolFile},
		{URL: "https://git.example.com/org/repo.git", Username: "dave", Password: secret.New("dave-pw")},
	}
	a := newTestAuth(t, cfg, Options{})
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	trap, trapped := askpassTrap(t)
	env := childEnv(t, a, trap...)

	wantCredential(t, env, "https://git.example.com/org/repo.git", "alice", "alice-pw")
	wantCredential(t, env, "https://git.example.com/org/repo.git/", "alice", "alice-pw")
	wantCredential(t, env, "https://GIT.EXAMPLE.COM:443/org/repo.git", "alice", "alice-pw")
	wantCredential(t, env, "https://alice@git.example.com/org/repo.git", "alice", "alice-pw")
	wantCredential(t, env, "https://git.example.com/org/repo.git/info/refs", "dave", "dave-pw")
	wantCredential(t, env, "https://git.example.com/org/sub", "bob", "bob-pw")
	wantCredential(t, env, "https://git.example.com/org/sub/lib.git", "bob", "bob-pw")
	wantCredential(t, env, "https://other.example.com:8443/any/thing.git", "carol", "carol-pw")
	wantCredential(t, env, "https://other.example.com:8443", "carol", "carol-pw")

	wantNoCredential(t, env, "https://git.example.com/org/subway")
	wantNoCredential(t, env, "https://git.example.com/org/other.git")
	wantNoCredential(t, env, "https://other.example.com/any/thing.git")
	wantNoCredential(t, env, "http://git.example.com/org/repo.git")
	wantNoCredential(t, env, "https://mallory@git.example.com/org/repo.git")
	if trapped() {
		t.Fatal("an askpass program was run")
	}
}

// TestCredentialFillAnyScheme: the --repo credentials answer git's request
// for the --repo URL whatever its scheme; file:// URLs, whose host is
// empty, are what upstream's own e2e wrappers ask about.
func TestCredentialFillAnyScheme(t *testing.T) {
	for _, repo := range []string{"file:///srv/git/repo", "file://localhost/srv/repo", "git://host/repo", "ssh://host:2222/repo"} {
		t.Run(repo, func(t *testing.T) {
			cfg := baseConfig(repo)
			cfg.SSHKnownHosts = false // ssh is not used, only its URL
			cfg.Username, cfg.Password = "alice", secret.New("alice-pw")
			cfg.Credentials = []Credential{{URL: "file:///srv/lib", Username: "bob", Password: secret.New("bob-pw")}}
			a := newTestAuth(t, cfg, Options{})
			if err := a.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			env := childEnv(t, a)
			wantCredential(t, env, repo, "alice", "alice-pw")
			wantCredential(t, env, repo+"/", "alice", "alice-pw")
			wantCredential(t, env, "file:///srv/lib/sub.git", "bob", "bob-pw")
			wantNoCredential(t, env, repo+"-other")
			wantNoCredential(t, env, "file:///srv/library")
		})
	}
}

func TestCredentialFillWithoutCredentials(t *testing.T) {
	a := newTestAuth(t, baseConfig("https://git.example.com/org/repo.git"), Options{})
	trap, trapped := askpassTrap(t)
	env := childEnv(t, a, trap...)
	wantNoCredential(t, env, "https://git.example.com/org/repo.git")
	if trapped() {
		t.Fatal("an askpass program was run")
	}
}

func TestCredentialHelperIsOnlyHelper(t *testing.T) {
	c := baseConfig("https://h/r")
	c.AskpassURL = "http://127.0.0.1:1/askpass"
	a := newTestAuth(t, c, Options{})
	cfg := a.GitConfig()
	if len(cfg) < 3 || cfg[0] != (config.GitConfigEntry{Key: "credential.helper"}) ||
		cfg[1].Key != "credential.helper" || !cfg[1].Add || !strings.HasPrefix(cfg[1].Value, "!") {
		t.Fatalf("GitConfig() = %+v", cfg)
	}
	// A helper configured before git-sync's entries (here: in the same
	// file) is reset by the empty value.
	env := childEnv(t, a)
	global := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GIT_CONFIG_GLOBAL="); ok {
			global = v
		}
	}
	b, err := os.ReadFile(global)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, global, "[credential]\n\thelper = \"!echo username=evil; echo password=evil; :\"\n"+string(b))
	wantNoCredential(t, env, "https://h/r")
}

// TestNoHelperWithoutCredentials: with nothing to serve there is no
// socket, no directory and no helper; git fails without asking anyone.
func TestNoHelperWithoutCredentials(t *testing.T) {
	tmp := t.TempDir()
	c := baseConfig("https://h/r")
	c.CookieFile = filepath.Join(tmp, "cookies") // not a credential for the helper
	writeFile(t, c.CookieFile, "")
	a := newTestAuth(t, c, Options{TempDir: tmp})
	if a.Dir() != "" {
		t.Errorf("Dir() = %q, want none", a.Dir())
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 1 {
		t.Errorf("New created %d entries in the temp dir, want none", len(ents)-1)
	}
	for _, e := range a.GitConfig() {
		if e.Key == "credential.helper" && e.Value != "" {
			t.Errorf("GitConfig() configures helper %q", e.Value)
		}
	}
	trap, trapped := askpassTrap(t)
	wantNoCredential(t, childEnv(t, a, trap...), "https://h/r")
	if trapped() {
		t.Fatal("an askpass program was run")
	}
}

func TestHelperStoreEraseAreNoOps(t *testing.T) {
	cfg := baseConfig("https://h/r")
	cfg.Username, cfg.Password = "u", secret.New("p")
	a := newTestAuth(t, cfg, Options{})
	env := childEnv(t, a)
	for _, op := range []string{"approve", "reject"} {
		cmd := exec.Command("git", "credential", op)
		cmd.Env = env
		cmd.Stdin = strings.NewReader("url=https://h/r\nusername=u\npassword=other\n\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git credential %s: %v\n%s", op, err, out)
		}
	}
	wantCredential(t, env, "https://h/r", "u", "p")

	var stdout, stderr bytes.Buffer
	if code := HelperMain([]string{"/nonexistent.sock", "store"}, nil, strings.NewReader("x=y\n\n"), &stdout, &stderr); code != 0 || stdout.Len() != 0 {
		t.Fatalf("store: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	if code := HelperMain([]string{"only-one"}, nil, strings.NewReader(""), &stdout, &stderr); code == 0 {
		t.Fatal("malformed call succeeded")
	}
}

func TestPasswordFileRotation(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	credFile := filepath.Join(dir, "cred")
	writeFile(t, pwFile, "first\n")
	writeFile(t, credFile, "cred-first\r\n")
	cfg := baseConfig("https://h/org/repo")
	cfg.Username = "u"
	cfg.PasswordFile = pwFile
	cfg.Credentials = []Credential{{URL: "https://h/lib", Username: "c", PasswordFile: credFile}}
	a := newTestAuth(t, cfg, Options{})
	env := childEnv(t, a)
	// Nothing before the first Refresh: New does not read the files.
	wantNoCredential(t, env, "https://h/org/repo")
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantCredential(t, env, "https://h/org/repo", "u", "first")
	wantCredential(t, env, "https://h/lib", "c", "cred-first")

	writeFile(t, pwFile, "second")
	writeFile(t, credFile, "cred-second\n")
	wantCredential(t, env, "https://h/org/repo", "u", "first") // until Refresh
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantCredential(t, env, "https://h/org/repo", "u", "second")
	wantCredential(t, env, "https://h/lib", "c", "cred-second")

	// A vanished or unusable file is an error; the last good value stays.
	if err := os.Remove(pwFile); err != nil {
		t.Fatal(err)
	}
	writeFile(t, credFile, "two\nlines\n")
	err := a.Refresh(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--password-file") || !strings.Contains(err.Error(), "line break") {
		t.Fatalf("Refresh = %v", err)
	}
	if strings.Contains(err.Error(), "lines") || strings.Contains(err.Error(), "second") {
		t.Fatalf("error reveals a password: %v", err)
	}
	wantCredential(t, env, "https://h/org/repo", "u", "second")
	wantCredential(t, env, "https://h/lib", "c", "cred-second")
}

// TestNew: New fails only for a configuration that can never work. Files
// that may still appear (password files, ssh keys, known hosts) are
// checked by every Refresh instead: refreshErr.
func TestNew(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	kh := filepath.Join(dir, "known_hosts")
	cookie := filepath.Join(dir, "cookies")
	for _, f := range []string{key, kh, cookie} {
		writeFile(t, f, "x\n")
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name       string
		modify     func(*Config, *Options)
		err        string
		refreshErr string
	}{
		{"https defaults", func(*Config, *Options) {}, "", ""},
		{"ssh repo with key and known hosts", func(c *Config, _ *Options) {
			c.Repo = "git@h:org/r"
			c.SSHKeyFiles = []string{key}
			c.SSHKnownHostsFile = kh
		}, "", ""},
		{"ssh repo, default key absent", func(c *Config, _ *Options) {
			c.Repo = "ssh://h/r"
			c.SSHKnownHostsFile = kh
		}, "", ""},
		{"ssh repo, missing key", func(c *Config, _ *Options) {
			c.Repo = "ssh://h/r"
			c.SSHKeyFiles = []string{missing}
			c.SSHKnownHostsFile = kh
		}, "", "--ssh-key-file " + missing + ": file not found"},
		{"ssh repo, missing known hosts", func(c *Config, _ *Options) {
			c.Repo = "ssh://h/r"
		}, "", "--ssh-known-hosts-file"},
		{"ssh repo, known hosts on without a file", func(c *Config, _ *Options) {
			c.Repo = "ssh://h/r"
			c.SSHKnownHostsFile = ""
		}, "--ssh-known-hosts-file is empty", ""},
		{"ssh repo, known hosts off", func(c *Config, _ *Options) {
			c.Repo = "ssh://h/r"
			c.SSHKnownHosts = false
		}, "", ""},
		{"https repo, missing key only noted", func(c *Config, _ *Options) {
			c.SSHKeyFiles = []string{missing}
		}, "", ""},
		{"relative self", func(_ *Config, o *Options) { o.Self = "git-sync" }, "absolute", ""},
		{"missing password file", func(c *Config, _ *Options) {
			c.Username, c.PasswordFile = "u", missing
		}, "", "--password-file"},
		{"missing credential password file", func(c *Config, _ *Options) {
			c.Credentials = []Credential{{URL: "https://h/", Username: "u", PasswordFile: missing}}
		}, "", "password-file"},
		{"bad credential URL", func(c *Config, _ *Options) {
			c.Credentials = []Credential{{URL: "h/x", Username: "u", Password: secret.New("p")}}
		}, "--credential 1", ""},
		{"password with newline", func(c *Config, _ *Options) {
			c.Username, c.Password = "u", secret.New("a\nb")
		}, "line break", ""},
		{"cookie file", func(c *Config, _ *Options) {
			c.CookieFile = cookie
		}, "", ""},
		{"missing cookie file", func(c *Config, _ *Options) {
			c.CookieFile = missing
		}, "--cookie-file", ""},
		{"bad GitHub App key", func(c *Config, _ *Options) {
			c.GitHubApp.PrivateKey = secret.New("not a key")
			c.GitHubApp.ApplicationID, c.GitHubApp.InstallationID = 1, 2
		}, "no PEM block", ""},
		{"missing GitHub App key file", func(c *Config, _ *Options) {
			c.GitHubApp.PrivateKeyFile = missing
			c.GitHubApp.ApplicationID, c.GitHubApp.InstallationID = 1, 2
		}, "--github-app-private-key-file", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig("https://h/org/repo")
			opts := Options{Self: testSelf}
			tt.modify(&cfg, &opts)
			a, err := New(cfg, opts)
			if tt.err != "" {
				if err == nil {
					a.Close()
					t.Fatalf("New succeeded, want error %q", tt.err)
				}
				if !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("New: %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "a\nb") {
					t.Fatalf("error reveals a password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer a.Close()
			err = a.Refresh(context.Background())
			switch {
			case tt.refreshErr == "" && err != nil:
				t.Fatalf("Refresh: %v", err)
			case tt.refreshErr != "" && (err == nil || !strings.Contains(err.Error(), tt.refreshErr)):
				t.Fatalf("Refresh: %v, want %q", err, tt.refreshErr)
			}
			if cfg.CookieFile != "" {
				found := false
				for _, e := range a.GitConfig() {
					found = found || e == config.GitConfigEntry{Key: "http.cookieFile", Value: cfg.CookieFile}
				}
				if !found {
					t.Fatalf("GitConfig() = %+v lacks http.cookieFile", a.GitConfig())
				}
			}
		})
	}
}

// TestLateFiles: a password file and an ssh key that appear after New make
// Refresh fail until they are there, then succeed.
func TestLateFiles(t *testing.T) {
	dir := t.TempDir()
	pw, key, kh := filepath.Join(dir, "pw"), filepath.Join(dir, "key"), filepath.Join(dir, "kh")
	cfg := baseConfig("ssh://h/r")
	cfg.Username, cfg.PasswordFile = "u", pw
	cfg.SSHKeyFiles, cfg.SSHKnownHostsFile = []string{key}, kh
	a := newTestAuth(t, cfg, Options{})
	if !strings.Contains(strings.Join(a.Env(), "\n"), "IdentityFile="+key) {
		t.Errorf("GIT_SSH_COMMAND lacks the key that is not there yet: %q", a.Env())
	}
	for i, f := range []string{pw, key, kh} {
		err := a.Refresh(context.Background())
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Fatalf("Refresh with %d of 3 files present = %v, want an error naming %s", i, err, f)
		}
		writeFile(t, f, "content\n")
	}
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh with every file present: %v", err)
	}
	wantCredential(t, childEnv(t, a), "ssh://h/r", "u", "content")
}

func TestEnvExtendsUserSSHCommand(t *testing.T) {
	cfg := baseConfig("https://h/r")
	a := newTestAuth(t, cfg, Options{Env: []string{"HOME=/x", "GIT_SSH_COMMAND=ssh -F /cfg", "OTHER=1"}})
	var got string
	for _, kv := range a.Env() {
		if v, ok := strings.CutPrefix(kv, "GIT_SSH_COMMAND="); ok {
			got = v
		}
	}
	want := "ssh -F /cfg -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/etc/git-secret/known_hosts"
	if got != want {
		t.Fatalf("GIT_SSH_COMMAND = %q, want %q", got, want)
	}
	for _, want := range []string{"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "SSH_ASKPASS_REQUIRE=never"} {
		found := false
		for _, kv := range a.Env() {
			found = found || kv == want
		}
		if !found {
			t.Errorf("Env() = %q lacks %q", a.Env(), want)
		}
	}
}

func TestClose(t *testing.T) {
	cfg := baseConfig("https://h/r")
	cfg.Username, cfg.Password = "u", secret.New("p")
	a, err := New(cfg, Options{Self: testSelf})
	if err != nil {
		t.Fatal(err)
	}
	env := childEnv(t, a)
	wantCredential(t, env, "https://h/r", "u", "p")
	dir := a.Dir()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("private directory still there after Close: %v", err)
	}
	start := time.Now()
	_, err = credentialFill(t, env, "https://h/r")
	if err == nil || !strings.Contains(err.Error(), "cannot reach git-sync") {
		t.Fatalf("credential fill after Close: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("credential fill after Close took %v", d)
	}
}

// TestConcurrentRequests has many helpers ask at once while Refresh
// rotates the password (run with -race).
func TestConcurrentRequests(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	writeFile(t, pwFile, "p0")
	cfg := baseConfig("https://h/r")
	cfg.Username, cfg.PasswordFile = "u", pwFile
	a := newTestAuth(t, cfg, Options{})
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var stdout, stderr bytes.Buffer
			req := "protocol=https\nhost=h\npath=r\n\n"
			if code := HelperMain([]string{filepath.Join(a.Dir(), socketName), "get"}, nil, strings.NewReader(req), &stdout, &stderr); code != 0 {
				errs <- fmt.Errorf("helper exit %d: %s", code, stderr.String())
				return
			}
			if !strings.HasPrefix(stdout.String(), "username=u\npassword=p") {
				errs <- fmt.Errorf("helper answered %q", stdout.String())
			}
		}()
	}
	for i := 1; i <= 5; i++ {
		writeFile(t, pwFile, fmt.Sprintf("p%d", i))
		if err := a.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRemoveStaleDirs(t *testing.T) {
	parent := t.TempDir()
	old := time.Now().Add(-time.Hour)
	mk := func(name string, listening, keepSocket bool, mtime time.Time) string {
		t.Helper()
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, socketName), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		if listening {
			t.Cleanup(func() { ln.Close() })
		} else {
			ln.SetUnlinkOnClose(!keepSocket)
			ln.Close()
		}
		if err := os.Chtimes(dir, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dead := mk(privateDirPrefix+"dead", false, true, old)
	noSocket := mk(privateDirPrefix+"nosocket", false, false, old)
	live := mk(privateDirPrefix+"live", true, true, old)
	recent := mk(privateDirPrefix+"recent", false, true, time.Now())
	other := mk("other-dead", false, true, old)
	removeStaleDirs(parent, time.Now())
	for dir, wantGone := range map[string]bool{dead: true, noSocket: true, live: false, recent: false, other: false} {
		_, err := os.Stat(dir)
		if gone := errors.Is(err, os.ErrNotExist); gone != wantGone {
			t.Errorf("%s: gone = %v, want %v", filepath.Base(dir), gone, wantGone)
		}
	}
}
