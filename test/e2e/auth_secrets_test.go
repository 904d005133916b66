package e2e

// Secrets never leak. For each way of giving credentials (password in
// --repo, --username with $GITSYNC_PASSWORD or --password-file, --credential
// for a submodule's server, --askpass-url, a GitHub App, an SSH key) one
// git-sync runs at -v=9 through a --git wrapper that holds every fetch for a
// moment, while the test
//
//   - reads /proc/*/cmdline of every process over and over (no secret in
//     any argv, and no git credential-cache anywhere),
//   - checks the logs, the error file after an authentication failure and
//     /metrics,
//   - checks the files under --root and HOME (no secret at all) and under
//     git-sync's TMPDIR (owner-only directory; a file holding a secret must
//     be owner-only),
//
// and, after git-sync exits, that its credential directory is gone and no
// helper or credential-cache daemon is left running.

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// leakScenario is one way of authenticating, ready to run.
type leakScenario struct {
	up   *gittest.Repo // commit here to make git-sync fetch
	h1   string        // upstream's first commit
	args []string      // flags beyond --root, --link and the loop's
	env  []string      // git-sync's extra environment
	// secrets lists everything that must not leak; it is called again
	// after the run for secrets that appear only then (e.g. JWTs).
	secrets func() []string
	// breakAuth makes the next syncs fail for lack of valid credentials;
	// fixAuth lets them succeed again. nil: the scenario skips that step.
	breakAuth, fixAuth func()
	// noHelper: nothing for git-sync's credential helper to serve (ssh
	// keys go to ssh directly), so it makes no credential directory.
	noHelper bool
}

// fixedSecrets returns a secrets func for a fixed list.
func fixedSecrets(s ...string) func() []string { return func() []string { return s } }

func TestAuthSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	scenarios := map[string]func(t *testing.T) leakScenario{
		"password in --repo": leakRepoURL,
		"GITSYNC_PASSWORD":   leakPasswordEnv,
		"password-file and --credential for a submodule": leakPasswordFileAndCredential,
		"askpass URL": leakAskpass,
		"GitHub App":  leakGitHubApp,
		"ssh key":     leakSSH,
	}
	// The scan must be able to fail: a process with a secret in its argv
	// is caught.
	t.Run("scanner self-check", func(t *testing.T) {
		t.Parallel()
		secret := authSecret(t, "self-check")
		scan := startCmdlineScan([]string{secret}, "")
		cmd := exec.Command("sh", "-c", "sleep 0.3", secret)
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		if leaks, _, _, _ := scan.Stop(); len(leaks) == 0 {
			t.Fatal("the /proc scan missed a secret in a command line")
		}
	})
	for name, mk := range scenarios {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runLeakCheck(t, mk(t))
		})
	}
}

// runLeakCheck runs git-sync for sc and checks every place a secret could
// leak to.
func runLeakCheck(t *testing.T, sc leakScenario) {
	tmp := authShortTempDir(t, "gs-leak-")
	home := t.TempDir()
	root := newRoot(t)
	link := filepath.Join(root, "link")
	// Every fetch waits, so the scan sees git-sync's children in full.
	w := gitWrapper(t, wrapperOpts{SleepCmd: "fetch", Sleep: 300 * time.Millisecond})
	addr, margs := authMetricsArgs(t)
	secrets := sc.secrets()

	scan := startCmdlineScan(secrets, w.Path)
	defer scan.Stop()
	p := startWith(t, runOpts{Env: append(append([]string{}, sc.env...), "TMPDIR="+tmp, "HOME="+home)},
		concat([]string{"--root=" + root, "--link=link", "--git=" + w.Path,
			"--period=100ms", "--max-failures=-1", "--error-file=error.json", "-v=9"},
			sc.args, margs)...)
	waitForLink(t, p, link, sc.h1)

	// While it runs: one owner-only private directory in TMPDIR (none
	// without credentials to serve, unless --repo is SSH: the directory
	// then holds the kept connection's control socket), and no secret in
	// a file another user could read.
	dirs := authPrivateDirs(tmp)
	sshRepo := false
	for _, a := range sc.args {
		sshRepo = sshRepo || strings.HasPrefix(a, "--repo=ssh://")
	}
	if want := map[bool]int{false: 1, true: 0}[sc.noHelper && !sshRepo]; len(dirs) != want {
		t.Errorf("credential directories in TMPDIR: %q, want %d", dirs, want)
	}
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm() != 0o700 {
			t.Errorf("credential directory %s has mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
	checkTmpFiles := func(when string) {
		for _, f := range filesWithSecrets(t, tmp, secrets) {
			if f.Mode&0o077 != 0 {
				t.Errorf("%s: %s (mode %v) holds %q and is not owner-only", when, f.Path, f.Mode, f.Secrets)
			}
		}
	}
	checkTmpFiles("while running")

	// An authentication failure: the error file must explain without
	// quoting a secret.
	if sc.breakAuth != nil {
		sc.breakAuth()
		errFile := filepath.Join(root, "error.json")
		sc.up.Commit(map[string]string{"README": "while broken\n"}, "broken")
		var content []byte
		waitFor(t, syncDeadline, func() bool {
			authWaitRunning(t, p)
			var err error
			content, err = os.ReadFile(errFile)
			return err == nil && len(content) > 0
		}, "the error file after an authentication failure")
		if found := findSecrets(string(content), sc.secrets()); len(found) > 0 {
			t.Errorf("the error file holds secrets %q:\n%s", found, content)
		}
		var doc map[string]any
		if err := json.Unmarshal(content, &doc); err != nil {
			t.Errorf("the error file is not JSON: %v\n%s", err, content)
		}
		sc.fixAuth()
	}
	h2 := sc.up.Commit(map[string]string{"README": "after\n"}, "after")
	waitForLink(t, p, link, h2)

	all := sc.secrets()
	if found := findSecrets(metricsText(t, addr), all); len(found) > 0 {
		t.Errorf("/metrics holds secrets %q", found)
	}
	leaks, marked, cache, rounds := scan.Stop()
	for _, l := range leaks {
		t.Errorf("a secret in a command line: %s", l)
	}
	for _, c := range cache {
		t.Errorf("git's credential cache is in use: %s", c)
	}
	fetches := 0
	for _, cmd := range marked {
		if strings.Contains(cmd, " fetch ") {
			fetches++
		}
	}
	if fetches == 0 {
		t.Errorf("the scan (%d passes over /proc) never saw a git fetch of this git-sync: it proves nothing", rounds)
	}
	for name, e := range scan.EnvLeaks(p.Pid()) {
		// Not a contract violation (an environment is as private as the
		// process's memory), but every git child and hook inheriting a
		// secret it does not need is worth knowing: reported, not failed.
		t.Logf("note: $%s holds a secret in the environment of git-sync's children, e.g. pid %d: %.120s", name, e.Pid, e.Cmd)
	}
	for _, dir := range []string{root, home} {
		for _, f := range filesWithSecrets(t, dir, all) {
			t.Errorf("%s (mode %v) holds secrets %q", f.Path, f.Mode, f.Secrets)
		}
	}
	checkTmpFiles("after syncing")

	if code := p.Stop(); code != 0 {
		t.Errorf("git-sync exited %d on SIGTERM, want 0", code)
	}
	if found := findSecrets(p.Logs()+p.Stdout(), sc.secrets()); len(found) > 0 {
		t.Errorf("the logs at -v=9 hold secrets %q", found)
	}
	// After exit: nothing left behind.
	if left := authPrivateDirs(tmp); len(left) > 0 {
		t.Errorf("credential directories left after exit: %q", left)
	}
	for _, f := range filesWithSecrets(t, tmp, sc.secrets()) {
		t.Errorf("after exit, %s (mode %v) still holds secrets %q", f.Path, f.Mode, f.Secrets)
	}
	var procs []string
	waitFor(t, 5*time.Second, func() bool {
		procs = processesMentioning(tmp, home, root, w.Path, "git-credential-cache")
		return len(procs) == 0
	}, "no process of this git-sync (helper, credential cache, git) to remain after exit: %q", procs)
}

// ---------------------------------------------------------------------------
// Scenarios.

func leakRepoURL(t *testing.T) leakScenario {
	pass := authSecret(t, "leak-url")
	up, srv, repoURL, h1 := authHTTPUpstream(t, gittest.HTTPOptions{Username: "urluser", Password: pass, TLS: true})
	withCreds := strings.Replace(repoURL, "https://", "https://urluser:"+pass+"@", 1)
	wrong := authSecret(t, "leak-url-server")
	return leakScenario{
		up: up, h1: h1,
		// In the environment, so that git-sync's own argv is clean too.
		env:       []string{"GITSYNC_REPO=" + withCreds},
		args:      []string{"--git-config=http.sslCAInfo:" + srv.CAFile()},
		secrets:   fixedSecrets(pass, authBasic("urluser", pass), wrong),
		breakAuth: func() { srv.SetPassword(wrong) },
		fixAuth:   func() { srv.SetPassword(pass) },
	}
}

func leakPasswordEnv(t *testing.T) leakScenario {
	pass := authSecret(t, "leak-env")
	up, srv, repoURL, h1 := authHTTPUpstream(t, gittest.HTTPOptions{Username: "envuser", Password: pass})
	wrong := authSecret(t, "leak-env-server")
	return leakScenario{
		up: up, h1: h1,
		env:       []string{"GITSYNC_PASSWORD=" + pass},
		args:      []string{"--repo=" + repoURL, "--username=envuser"},
		secrets:   fixedSecrets(pass, authBasic("envuser", pass), wrong),
		breakAuth: func() { srv.SetPassword(wrong) },
		fixAuth:   func() { srv.SetPassword(pass) },
	}
}

func leakPasswordFileAndCredential(t *testing.T) leakScenario {
	passA1, passA2, passB := authSecret(t, "leak-file-1"), authSecret(t, "leak-file-2"), authSecret(t, "leak-cred")
	f := authSuperWithSub(t, "fileuser", passA1, "creduser", passB)
	super, srvA, srvB, h1 := f.super, f.srvA, f.srvB, f.h1
	pwFile := filepath.Join(t.TempDir(), "password")
	authWriteFile(t, pwFile, passA1+"\n", 0o600)
	cred, _ := json.Marshal(map[string]string{"url": srvB.BaseURL(), "username": "creduser", "password": passB})
	return leakScenario{
		up: super, h1: h1,
		env:  []string{"GITSYNC_CREDENTIAL=" + string(cred)},
		args: []string{"--repo=" + srvA.URL("super"), "--username=fileuser", "--password-file=" + pwFile},
		secrets: fixedSecrets(passA1, passA2, passB,
			authBasic("fileuser", passA1), authBasic("fileuser", passA2), authBasic("creduser", passB)),
		breakAuth: func() { srvA.SetPassword(passA2) },
		fixAuth:   func() { authWriteFile(t, pwFile, passA2+"\n", 0o600) },
	}
}

func leakAskpass(t *testing.T) leakScenario {
	pass := authSecret(t, "leak-askpass")
	wrong := authSecret(t, "leak-askpass-wrong")
	token := authSecret(t, "leak-askpass-token")
	up, _, repoURL, h1 := authHTTPUpstream(t, gittest.HTTPOptions{Username: "askuser", Password: pass})
	var broken atomic.Bool
	ask := newAskpassServer(t, func(n int) (int, string) {
		switch {
		case !broken.Load():
			return http.StatusOK, askpassBody("askuser", pass)
		case n%2 == 0:
			return http.StatusOK, askpassBody("askuser", wrong)
		default:
			return http.StatusServiceUnavailable, "unavailable\n"
		}
	})
	return leakScenario{
		up: up, h1: h1,
		// The askpass URL itself carries a token in its query (given in
		// the environment, so that git-sync's own argv is clean): error
		// messages must name the URL without it.
		env:       []string{"GITSYNC_ASKPASS_URL=" + ask.URL() + "?token=" + token},
		args:      []string{"--repo=" + repoURL},
		secrets:   fixedSecrets(pass, wrong, token, authBasic("askuser", pass), authBasic("askuser", wrong)),
		breakAuth: func() { broken.Store(true) },
		fixAuth:   func() { broken.Store(false) },
	}
}

func leakGitHubApp(t *testing.T) leakScenario {
	key, _, pkcs8 := authRSAKey(t)
	prefix := authSecret(t, "ghs_leak")
	up, srv, repoURL, h1 := authHTTPUpstream(t, gittest.HTTPOptions{Username: "-", Password: authSecret(t, "no-token-yet")})
	var current atomic.Value
	api := newGitHubAPI(t, githubAPIOptions{
		Public: &key.PublicKey, Issuer: int64(31337), Installation: 5, TokenPrefix: prefix,
		OnIssue: func(tok string) { current.Store(tok); srv.SetPassword(tok) },
	})
	wrong := authSecret(t, "leak-app-server")
	return leakScenario{
		up: up, h1: h1,
		env: []string{"GITSYNC_GITHUB_APP_PRIVATE_KEY=" + pkcs8},
		args: []string{"--repo=" + repoURL, "--github-base-url=" + api.BaseURL(),
			"--github-app-application-id=31337", "--github-app-installation-id=5"},
		secrets: func() []string {
			s := append([]string{prefix, wrong}, pemBodyLines(pkcs8)...)
			return append(s, api.JWTs()...)
		},
		// The git server stops taking the token (as if revoked), then
		// takes it again.
		breakAuth: func() { srv.SetPassword(wrong) },
		fixAuth:   func() { srv.SetPassword(current.Load().(string)) },
	}
}

func leakSSH(t *testing.T) leakScenario {
	srv := gittest.SSHD(t, gittest.SSHDOptions{})
	up, h1 := gittest.NewRepoWithCommit(t)
	good, err := os.ReadFile(srv.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	bad, err := os.ReadFile(srv.NewKey()) // a key the server does not accept
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "id")
	authWriteFile(t, key, string(good), 0o600)
	return leakScenario{
		up: up, h1: h1,
		args: []string{"--repo=" + srv.URL(up.Dir()),
			"--ssh-key-file=" + key, "--ssh-known-hosts-file=" + srv.KnownHostsFile()},
		secrets:   fixedSecrets(append(pemBodyLines(string(good)), pemBodyLines(string(bad))...)...),
		breakAuth: func() { authWriteFile(t, key, string(bad), 0o600) },
		fixAuth:   func() { authWriteFile(t, key, string(good), 0o600) },
		noHelper:  true,
	}
}

// TestAuthKilledLeavesNoSecrets: a git-sync killed with SIGKILL cannot
// clean up, but it held its secrets only in memory: what it leaves in
// TMPDIR is an owner-only directory without secrets, and no process. The
// next git-sync removes such a directory once it is stale (and leaves the
// directory of a live git-sync alone).
func TestAuthKilledLeavesNoSecrets(t *testing.T) {
	t.Parallel()
	pass := authSecret(t, "killed")
	_, _, repoURL, h1 := authHTTPUpstream(t, gittest.HTTPOptions{Username: "kim", Password: pass})
	tmp := authShortTempDir(t, "gs-kill-")
	env := []string{"TMPDIR=" + tmp, "GITSYNC_PASSWORD=" + pass}
	root := newRoot(t)
	p := startWith(t, runOpts{Env: env}, "--repo="+repoURL, "--root="+root, "--link=link",
		"--username=kim", "--period=100ms")
	waitForLink(t, p, filepath.Join(root, "link"), h1)
	p.Kill()

	for _, f := range filesWithSecrets(t, tmp, []string{pass}) {
		t.Errorf("after SIGKILL, %s (mode %v) holds the password", f.Path, f.Mode)
	}
	var procs []string
	waitFor(t, 5*time.Second, func() bool {
		procs = processesMentioning(tmp, root)
		return len(procs) == 0
	}, "no process of the killed git-sync to remain: %q", procs)
	left := authPrivateDirs(tmp)
	if len(left) != 1 {
		t.Fatalf("credential directories after SIGKILL: %q, want the killed process's one", left)
	}
	if fi, err := os.Stat(left[0]); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o700 {
		t.Errorf("the killed git-sync's directory has mode %v, want 0700", fi.Mode().Perm())
	}
	old := time.Now().Add(-2 * time.Minute)
	for _, d := range left {
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
	}
	// A live git-sync's directory: someone listens on its socket.
	live := filepath.Join(tmp, "git-sync-auth-live")
	if err := os.Mkdir(live, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(live, "credential.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chtimes(live, old, old); err != nil {
		t.Fatal(err)
	}

	res := runWith(t, runOpts{Env: env}, "--repo="+repoURL, "--root="+root, "--link=link",
		"--username=kim", "--one-time")
	if res.Code != 0 {
		t.Fatalf("restart: want exit 0, got %s", res)
	}
	for _, d := range left {
		if exists(d) {
			t.Errorf("the killed git-sync's directory %s is still there after the next run", d)
		}
	}
	if !exists(live) {
		t.Error("the next run removed the directory of a live git-sync")
	}
	if got := authPrivateDirs(tmp); len(got) != 1 || got[0] != live {
		t.Errorf("credential directories after the restart: %q, want only %s", got, live)
	}
}
