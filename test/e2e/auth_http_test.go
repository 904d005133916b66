package e2e

// Authentication over smart HTTP(S) and git://: --username with
// $GITSYNC_PASSWORD, credentials written into --repo, --password-file
// rotation, --credential per URL (a submodule on a second server),
// --cookie-file, and git daemon. Every server runs in the test on
// 127.0.0.1: git http-backend behind net/http/cgi with basic auth (plain
// and TLS, the test CA given to git with --git-config=http.sslCAInfo).

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitsync/internal/gittest"
)

// TestAuthHTTPSUsernamePassword: --username plus $GITSYNC_PASSWORD over
// https. Without credentials, or with a wrong password, git fails at once
// (it never prompts); with the right ones the commit is published. A `git
// credential fill` run in the environment git-sync gives its children (here:
// from an exechook) returns exactly these credentials for --repo and none
// for another URL (docs/CONTRACT.md, section 9).
func TestAuthHTTPSUsernamePassword(t *testing.T) {
	t.Parallel()
	pass := authSecret(t, "https-pass")
	_, srv, repoURL, h1 := authHTTPUpstream(t, gittest.HTTPOptions{Username: "alice", Password: pass, TLS: true})
	caArg := "--git-config=http.sslCAInfo:" + srv.CAFile()

	t.Run("no credentials", func(t *testing.T) {
		root := newRoot(t)
		res := runOnce(t, "--repo="+repoURL, "--root="+root, "--link=link", "--one-time", caArg)
		if res.Code != 1 {
			t.Fatalf("want exit 1 without credentials, got %s", res)
		}
		if exists(filepath.Join(root, "link")) {
			t.Error("link published without credentials")
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		wrong := authSecret(t, "wrong-pass")
		before := srv.AuthFailures()
		root := newRoot(t)
		res := runWith(t, runOpts{Env: []string{"GITSYNC_PASSWORD=" + wrong}},
			"--repo="+repoURL, "--root="+root, "--link=link", "--one-time", caArg,
			"--username=alice", "-v=9")
		if res.Code != 1 {
			t.Fatalf("want exit 1 with a wrong password, got %s", res)
		}
		if srv.AuthFailures() == before {
			t.Error("the server saw no failed login: the wrong password was never tried")
		}
		if found := findSecrets(res.Stderr+res.Stdout, []string{wrong, authBasic("alice", wrong)}); len(found) > 0 {
			t.Errorf("the wrong password appears in the output: %q", found)
		}
	})

	// git strips a trailing slash before asking for credentials; the
	// credentials for --repo must still answer.
	t.Run("trailing slash", func(t *testing.T) {
		root := newRoot(t)
		res := runWith(t, runOpts{Env: []string{"GITSYNC_PASSWORD=" + pass}},
			"--repo="+repoURL+"/", "--root="+root, "--link=link", "--one-time", caArg, "--username=alice")
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		assertPublished(t, root, filepath.Join(root, "link"), h1)
	})

	// A path that needs escaping in the URL: git asks for credentials
	// with the decoded path, which must still match --repo.
	t.Run("escaped path", func(t *testing.T) {
		up, h := gittest.NewRepoWithCommit(t)
		srv2 := gittest.HTTPServer(t, authServeDir(t, map[string]*gittest.Repo{"my repo": up}),
			gittest.HTTPOptions{Username: "alice", Password: pass})
		root := newRoot(t)
		res := runWith(t, runOpts{Env: []string{"GITSYNC_PASSWORD=" + pass}},
			"--repo="+srv2.BaseURL()+"/my%20repo", "--root="+root, "--link=link", "--one-time", "--username=alice")
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		assertPublished(t, root, filepath.Join(root, "link"), h)
	})

	t.Run("right password", func(t *testing.T) {
		out := t.TempDir()
		hook := writeScript(t, "fill.sh", `
set -u
printf 'url=%s\n\n' "$AUTH_TEST_URL" | git credential fill > "$AUTH_TEST_OUT/repo" 2> "$AUTH_TEST_OUT/repo.err"
echo $? > "$AUTH_TEST_OUT/repo.status"
printf 'url=%s\n\n' "$AUTH_TEST_URL-other" | git credential fill > "$AUTH_TEST_OUT/other" 2>&1
echo $? > "$AUTH_TEST_OUT/other.status"
exit 0
`)
		root := newRoot(t)
		res := runWith(t, runOpts{Env: []string{
			"GITSYNC_PASSWORD=" + pass, "AUTH_TEST_URL=" + repoURL, "AUTH_TEST_OUT=" + out,
		}}, "--repo="+repoURL, "--root="+root, "--link=link", "--one-time", caArg,
			"--username=alice", "--exechook-command="+hook)
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		assertPublished(t, root, filepath.Join(root, "link"), h1)
		read := func(name string) string {
			b, err := os.ReadFile(filepath.Join(out, name))
			if err != nil {
				t.Fatalf("the exechook did not write %s: %v", name, err)
			}
			return strings.TrimSpace(string(b))
		}
		if st := read("repo.status"); st != "0" {
			t.Fatalf("git credential fill for --repo exited %s: %s", st, read("repo.err"))
		}
		fill := read("repo")
		for _, want := range []string{"username=alice", "password=" + pass} {
			if !strings.Contains(fill, want) {
				t.Errorf("git credential fill for --repo: missing %q in:\n%s", want, strings.ReplaceAll(fill, pass, "<pass>"))
			}
		}
		if st := read("other.status"); st == "0" {
			t.Errorf("git credential fill for another URL succeeded; want a failure (no prompt, no answer): %s",
				strings.ReplaceAll(read("other"), pass, "<pass>"))
		}
		if strings.Contains(read("other"), pass) {
			t.Error("git credential fill for another URL returned --repo's password")
		}
	})
}

// TestAuthCredentialsInRepoURL: https://user:pass@host/path in --repo is
// split into username and password (percent-encoding undone), used, and
// never logged or written: the origin remote holds the URL without them.
func TestAuthCredentialsInRepoURL(t *testing.T) {
	t.Parallel()
	pass := "p@ss:w/rd %" + authSecret(t, "url-pass")
	_, srv, repoURL, h1 := authHTTPUpstream(t, gittest.HTTPOptions{Username: "carol", Password: pass, TLS: true})
	escaped := strings.NewReplacer("@", "%40", ":", "%3A", "/", "%2F", " ", "%20", "%", "%25").Replace(pass)
	withCreds := strings.Replace(repoURL, "https://", "https://carol:"+escaped+"@", 1)
	caArg := "--git-config=http.sslCAInfo:" + srv.CAFile()

	root := newRoot(t)
	res := runOnce(t, "--repo="+withCreds, "--root="+root, "--link=link", "--one-time", caArg, "-v=9",
		"--error-file=error.json")
	if res.Code != 0 {
		t.Fatalf("want exit 0, got %s", res)
	}
	assertPublished(t, root, filepath.Join(root, "link"), h1)
	secrets := []string{pass, escaped, "carol:" + escaped, authBasic("carol", pass)}
	if found := findSecrets(res.Stderr+res.Stdout, secrets); len(found) > 0 {
		t.Errorf("the password in --repo appears in the logs at -v=9: %q", found)
	}
	if got := gitIn(t, root, "config", "--get", "remote.origin.url"); got != repoURL {
		t.Errorf("origin URL = %q, want %q (without credentials)", got, repoURL)
	}
	for _, f := range filesWithSecrets(t, root, secrets) {
		t.Errorf("%s (mode %v) under --root holds the password from --repo", f.Path, f.Mode)
	}

	t.Run("with --username too", func(t *testing.T) {
		res := runWith(t, runOpts{Env: []string{"GITSYNC_PASSWORD=x"}},
			"--repo="+withCreds, "--root="+newRoot(t), "--one-time", "--username=carol")
		if res.Code != 1 {
			t.Fatalf("want exit 1 (invalid configuration), got %s", res)
		}
		if !strings.Contains(res.Stderr, "--username") {
			t.Errorf("the error does not name --username:\n%s", res.Stderr)
		}
		if found := findSecrets(res.Stderr+res.Stdout, secrets); len(found) > 0 {
			t.Errorf("the configuration error repeats the password: %q", found)
		}
	})
}

// TestAuthPasswordFileRotation: --password-file is read before every sync.
// When the server's password changes syncs fail (and say so in the error
// file); once the file holds the new password the next sync uses it, in the
// same process.
func TestAuthPasswordFileRotation(t *testing.T) {
	t.Parallel()
	p1, p2 := authSecret(t, "rot-one"), authSecret(t, "rot-two")
	up, srv, repoURL, h1 := authHTTPUpstream(t, gittest.HTTPOptions{Username: "dave", Password: p1})
	pwFile := filepath.Join(t.TempDir(), "password")
	authWriteFile(t, pwFile, p1+"\n", 0o600) // a trailing newline, as in mounted secrets

	root := newRoot(t)
	addr, margs := authMetricsArgs(t)
	p := start(t, concat([]string{
		"--repo=" + repoURL, "--root=" + root, "--link=link",
		"--username=dave", "--password-file=" + pwFile,
		"--period=100ms", "--max-failures=-1", "--error-file=error.json", "-v=9",
	}, margs)...)
	link := filepath.Join(root, "link")
	waitForLink(t, p, link, h1)

	srv.SetPassword(p2)
	h2 := up.Commit(map[string]string{"README": "after rotation\n"}, "c2")
	errFile := filepath.Join(root, "error.json")
	waitFor(t, syncDeadline, func() bool { authWaitRunning(t, p); return exists(errFile) },
		"a failed sync (error file) after the server's password changed")
	if got := tryLinkHash(link); got != h1 {
		t.Fatalf("link moved to %s with an outdated password", got)
	}

	// Written on Windows, say: one trailing CRLF is not part of it.
	authWriteFile(t, pwFile, p2+"\r\n", 0o600)
	waitForLink(t, p, link, h2)
	assertPublished(t, root, link, h2)
	waitFor(t, syncDeadline, func() bool { return !exists(errFile) }, "the error file to be removed after recovery")
	if authSyncErrors(addr) < 1 {
		t.Error("no failed sync counted on /metrics while the password was outdated")
	}
	if found := findSecrets(p.Logs(), []string{p1, p2, authBasic("dave", p1), authBasic("dave", p2)}); len(found) > 0 {
		t.Errorf("a password appears in the logs at -v=9: %q", found)
	}
}

// TestAuthCredentialPerURL: --credential entries (a JSON object, and a
// list; repeated; with password and with password-file) give each server
// its own credentials: the superproject on server A, its submodule on
// server B. An entry for another path on B is not used, and B's password
// file is re-read before every sync.
func TestAuthCredentialPerURL(t *testing.T) {
	t.Parallel()
	passA, passB1, passB2 := authSecret(t, "cred-a"), authSecret(t, "cred-b1"), authSecret(t, "cred-b2")
	f := authSuperWithSub(t, "anna", passA, "bert", passB1)
	super, sub, srvA, srvB, h1 := f.super, f.sub, f.srvA, f.srvB, f.h1

	pwB := filepath.Join(t.TempDir(), "b-password")
	authWriteFile(t, pwB, passB1+"\n", 0o600)
	credA, _ := json.Marshal(map[string]string{"url": srvA.URL("super"), "username": "anna", "password": passA})
	credB, _ := json.Marshal([]map[string]string{
		{"url": srvB.URL("other"), "username": "bert", "password": "not-this-one"},
		{"url": srvB.BaseURL(), "username": "bert", "password-file": pwB},
	})

	// All entries in one list in $GITSYNC_CREDENTIAL work the same.
	t.Run("environment", func(t *testing.T) {
		var all []json.RawMessage
		_ = json.Unmarshal(credB, &all)
		list, _ := json.Marshal(append([]json.RawMessage{credA}, all...))
		root := newRoot(t)
		res := runWith(t, runOpts{Env: []string{"GITSYNC_CREDENTIAL=" + string(list)}},
			"--repo="+srvA.URL("super"), "--root="+root, "--link=link", "--one-time")
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		assertPublished(t, root, filepath.Join(root, "link"), h1)
	})

	root := newRoot(t)
	link := filepath.Join(root, "link")
	p := start(t, "--repo="+srvA.URL("super"), "--root="+root, "--link=link",
		"--credential="+string(credA), "--credential="+string(credB),
		"--period=100ms", "--max-failures=-1", "-v=9")
	waitForLink(t, p, link, h1)
	assertPublished(t, root, link, h1)
	if b, err := os.ReadFile(filepath.Join(link, "sub", "sub.txt")); err != nil || string(b) != "sub 1\n" {
		t.Fatalf("submodule from server B: sub.txt = %q, %v", b, err)
	}

	// Rotate B's password, then the file; a new submodule commit needs it.
	srvB.SetPassword(passB2)
	sub.Commit(map[string]string{"sub.txt": "sub 2\n"}, "s2")
	super.Git("-C", "sub", "fetch", "--quiet", sub.Dir(), gittest.DefaultBranch)
	super.Git("-C", "sub", "checkout", "--quiet", "FETCH_HEAD")
	h2 := super.Commit(nil, "bump sub")
	failuresBefore := srvB.AuthFailures()
	waitFor(t, syncDeadline, func() bool { authWaitRunning(t, p); return srvB.AuthFailures() > failuresBefore },
		"server B to refuse the outdated password")
	if got := tryLinkHash(link); got == h2 {
		t.Fatal("published the new submodule commit with an outdated password")
	}
	authWriteFile(t, pwB, passB2+"\n", 0o600)
	waitForLink(t, p, link, h2)
	if b, err := os.ReadFile(filepath.Join(link, "sub", "sub.txt")); err != nil || string(b) != "sub 2\n" {
		t.Errorf("after B's rotation: sub.txt = %q, %v", b, err)
	}
	if found := findSecrets(p.Logs(), []string{passA, passB1, passB2}); len(found) > 0 {
		t.Errorf("a --credential password appears in the logs at -v=9: %q", found)
	}
}

// TestAuthCookieFile: --cookie-file makes git send the cookies of
// /etc/git-secret/cookie_file. The server (a proxy in front of git
// http-backend) refuses requests without the session cookie. Not parallel:
// it owns /etc/git-secret/cookie_file while it runs.
func TestAuthCookieFile(t *testing.T) {
	const dir, file = "/etc/git-secret", "/etc/git-secret/cookie_file"
	value := authSecret(t, "cookie")
	_, backend, _, h1 := authHTTPUpstream(t, gittest.HTTPOptions{})
	proxy := newGateProxy(t, backend.BaseURL(), func(r *http.Request) bool {
		c, err := r.Cookie("gitsync_session")
		return err == nil && c.Value == value
	})
	repoURL := proxy.srv.URL + "/repo"

	if !exists(dir) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(dir) })
	}
	if old, err := os.ReadFile(file); err == nil {
		t.Cleanup(func() { _ = os.WriteFile(file, old, 0o600) })
	} else {
		t.Cleanup(func() { os.Remove(file) })
	}
	// Netscape cookie file format: domain, include subdomains, path,
	// secure, expiry (Unix time), name, value.
	cookie := "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t4102444800\tgitsync_session\t" + value + "\n"
	if err := os.WriteFile(file, []byte(cookie), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("without --cookie-file", func(t *testing.T) {
		_, deniedBefore := proxy.Counts()
		res := runOnce(t, "--repo="+repoURL, "--root="+newRoot(t), "--link=link", "--one-time")
		if res.Code != 1 {
			t.Fatalf("want exit 1 without the cookie, got %s", res)
		}
		if _, denied := proxy.Counts(); denied == deniedBefore {
			t.Error("the proxy refused nothing: the test does not check the cookie")
		}
	})
	t.Run("with --cookie-file", func(t *testing.T) {
		_, deniedBefore := proxy.Counts()
		root := newRoot(t)
		res := runOnce(t, "--repo="+repoURL, "--root="+root, "--link=link", "--one-time", "--cookie-file", "-v=9")
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		assertPublished(t, root, filepath.Join(root, "link"), h1)
		if _, denied := proxy.Counts(); denied != deniedBefore {
			t.Errorf("%d requests went without the cookie", denied-deniedBefore)
		}
		if strings.Contains(res.Stderr, value) {
			t.Error("the cookie's value appears in the logs at -v=9")
		}
	})
	t.Run("legacy GIT_COOKIE_FILE", func(t *testing.T) {
		root := newRoot(t)
		res := runWith(t, runOpts{Env: []string{"GIT_COOKIE_FILE=true"}},
			"--repo="+repoURL, "--root="+root, "--link=link", "--one-time")
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		assertPublished(t, root, filepath.Join(root, "link"), h1)
	})
}

// TestAuthGitDaemon: git:// through git daemon, initial sync and an update.
func TestAuthGitDaemon(t *testing.T) {
	t.Parallel()
	up, h1 := gittest.NewRepoWithCommit(t)
	d := gittest.GitDaemon(t, authServeDir(t, map[string]*gittest.Repo{"repo": up}))
	root := newRoot(t)
	link := filepath.Join(root, "link")
	p := start(t, "--repo="+d.URL("repo"), "--root="+root, "--link=link", "--period=100ms")
	waitForLink(t, p, link, h1)
	assertPublished(t, root, link, h1)
	h2 := up.Commit(map[string]string{"README": "second\n"}, "c2")
	waitForLink(t, p, link, h2)
	assertPublished(t, root, link, h2)
	assertCompleteTree(t, up, link, h2)
}

// TestAuthLegacyEnvironment: the older environment names of the
// authentication flags still work (deployments such as the Airflow chart
// set them), the deprecated --password flag too, and a deprecation warning
// never repeats a secret.
func TestAuthLegacyEnvironment(t *testing.T) {
	t.Parallel()
	pass := authSecret(t, "legacy")
	_, _, repoURL, h1 := authHTTPUpstream(t, gittest.HTTPOptions{Username: "lee", Password: pass})
	run := func(t *testing.T, env []string, args ...string) {
		t.Helper()
		root := newRoot(t)
		res := runWith(t, runOpts{Env: env}, append([]string{"--root=" + root, "--link=link", "--one-time"}, args...)...)
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		assertPublished(t, root, filepath.Join(root, "link"), h1)
		if found := findSecrets(res.Stderr+res.Stdout, []string{pass}); len(found) > 0 {
			t.Errorf("the password appears in the output:\n%s", res.Stderr)
		}
	}
	t.Run("GIT_SYNC_USERNAME and GIT_SYNC_PASSWORD", func(t *testing.T) {
		t.Parallel()
		run(t, []string{"GIT_SYNC_REPO=" + repoURL, "GIT_SYNC_USERNAME=lee", "GIT_SYNC_PASSWORD=" + pass})
	})
	t.Run("old and new password names both set: the old one wins", func(t *testing.T) {
		t.Parallel()
		run(t, []string{"GIT_SYNC_PASSWORD=" + pass, "GITSYNC_PASSWORD=not-" + pass}, "--repo="+repoURL, "--username=lee")
	})
	t.Run("--password flag", func(t *testing.T) {
		t.Parallel()
		run(t, nil, "--repo="+repoURL, "--username=lee", "--password="+pass)
	})
	t.Run("GIT_ASKPASS_URL", func(t *testing.T) {
		t.Parallel()
		ask := newAskpassServer(t, func(int) (int, string) { return http.StatusOK, askpassBody("lee", pass) })
		run(t, []string{"GIT_ASKPASS_URL=" + ask.URL()}, "--repo="+repoURL)
		if ask.Calls() == 0 {
			t.Error("the askpass URL was not called")
		}
	})
	t.Run("GIT_SSH_KEY_FILE and GIT_SSH_KNOWN_HOSTS_FILE", func(t *testing.T) {
		t.Parallel()
		srv := gittest.SSHD(t, gittest.SSHDOptions{})
		up, h := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		res := runWith(t, runOpts{Env: []string{
			"GIT_SSH_KEY_FILE=" + srv.KeyFile(), "GIT_SSH_KNOWN_HOSTS_FILE=" + srv.KnownHostsFile(),
		}}, "--repo="+srv.URL(up.Dir()), "--root="+root, "--link=link", "--one-time")
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		assertPublished(t, root, filepath.Join(root, "link"), h)
	})
	t.Run("GIT_KNOWN_HOSTS=false", func(t *testing.T) {
		t.Parallel()
		srv := gittest.SSHD(t, gittest.SSHDOptions{})
		up, h := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		res := runWith(t, runOpts{Env: []string{"GIT_KNOWN_HOSTS=false"}},
			"--repo="+srv.URL(up.Dir()), "--root="+root, "--link=link", "--one-time",
			"--ssh-key-file="+srv.KeyFile(), "--ssh-known-hosts-file="+filepath.Join(t.TempDir(), "absent"))
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		assertPublished(t, root, filepath.Join(root, "link"), h)
	})
}
