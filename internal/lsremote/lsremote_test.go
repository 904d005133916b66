package lsremote

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gitsync/internal/config"
	"gitsync/internal/gitcmd"
	"gitsync/internal/gittest"
)

// newRemote returns a Remote for url that runs git in a fresh repository
// with the isolated test environment plus env.
func newRemote(t *testing.T, url string, env ...string) *Remote {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	return newRemoteWithGit(t, gitPath, url, env...)
}

// newRemoteWithGit is newRemote with another --git program.
func newRemoteWithGit(t *testing.T, git, url string, env ...string) *Remote {
	t.Helper()
	dir := t.TempDir()
	runner := &gitcmd.Runner{Git: git, Env: append(gittest.Env(t), env...), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, err := runner.Run(context.Background(), dir, "init", "--quiet"); err != nil {
		t.Fatal(err)
	}
	r := New(runner, dir, url, true, nil, runner.Log)
	t.Cleanup(r.Close)
	return r
}

// configEnv passes git configuration through the environment.
func configEnv(kv ...string) []string {
	env := []string{"GIT_CONFIG_COUNT=" + itoa(len(kv)/2)}
	for i := 0; i < len(kv); i += 2 {
		env = append(env, "GIT_CONFIG_KEY_"+itoa(i/2)+"="+kv[i], "GIT_CONFIG_VALUE_"+itoa(i/2)+"="+kv[i+1])
	}
	return env
}

func itoa(n int) string { return string(rune('0' + n)) }

func mustLookup(t *testing.T, r *Remote, ref, want string) {
	t.Helper()
	// A deadline, as every sync has one (--sync-timeout).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, found, err := r.Lookup(ctx, ref)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", ref, err)
	}
	if want == "" {
		if found {
			t.Fatalf("Lookup(%q) found %s, want no such ref", ref, got)
		}
		return
	}
	if !found || got != want {
		t.Fatalf("Lookup(%q) = %q, %v; want %q", ref, got, found, want)
	}
}

// groupAlive reports whether any process of the session's process group
// is still running (zombies waiting for a reaper do not count).
func groupAlive(s *session) bool {
	pgid := s.proc.Pid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...
		_, rest, ok := strings.Cut(string(stat), ") ")
		fields := strings.Fields(rest)
		if ok && len(fields) > 2 && fields[0] != "Z" && fields[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

func TestHTTPKeepsOneHelperAndSeesEveryPush(t *testing.T) {
	up, first := gittest.NewRepoWithCommit(t)
	srv := gittest.HTTPServer(t, filepath.Dir(up.Dir()), gittest.HTTPOptions{})
	r := newRemote(t, srv.URL(filepath.Base(up.Dir())))

	mustLookup(t, r, gittest.DefaultBranch, first)
	if r.sess == nil {
		t.Fatal("no kept session over HTTP")
	}
	sess := r.sess
	for i := 0; i < 5; i++ {
		before := srv.Requests()
		head := up.Commit(map[string]string{"f": itoa(i)}, "c")
		mustLookup(t, r, gittest.DefaultBranch, head)
		mustLookup(t, r, "refs/heads/"+gittest.DefaultBranch, head)
		if n := srv.Requests() - before; n != 2 {
			t.Fatalf("two lookups cost %d HTTP requests, want 2 (one each)", n)
		}
	}
	if r.sess != sess {
		t.Fatal("the session was replaced although nothing failed")
	}

	up.Git("tag", "-a", "-m", "annotated", "v1")
	tagObject := up.Git("rev-parse", "v1")
	mustLookup(t, r, "v1", tagObject)
	up.Git("tag", "light")
	mustLookup(t, r, "light", up.Git("rev-parse", "HEAD"))
	mustLookup(t, r, "HEAD", up.Git("rev-parse", "HEAD"))
	mustLookup(t, r, "no-such-branch", "")
	up.Git("update-ref", "-d", "refs/tags/light")
	mustLookup(t, r, "light", "")

	r.Close()
	if r.sess != nil || groupAlive(sess) {
		t.Fatal("Close left the helper running")
	}
}

func TestFileURLUsesLsRemote(t *testing.T) {
	up, first := gittest.NewRepoWithCommit(t)
	r := newRemote(t, up.URL())
	mustLookup(t, r, gittest.DefaultBranch, first)
	if r.sess != nil || !r.disabled {
		t.Fatal("a file:// remote must not get a kept session (its upload-pack would cache refs)")
	}
	second := up.Commit(map[string]string{"f": "2"}, "second")
	mustLookup(t, r, gittest.DefaultBranch, second)
}

func TestInsteadOfAwayFromHTTPUsesLsRemote(t *testing.T) {
	up, first := gittest.NewRepoWithCommit(t)
	const fake = "http://127.0.0.1:1/nowhere.git"
	r := newRemote(t, fake, configEnv("url."+up.URL()+".insteadOf", fake)...)
	mustLookup(t, r, gittest.DefaultBranch, first)
	if r.sess != nil || !r.disabled {
		t.Fatal("a URL that insteadOf sends elsewhere than HTTP must not get a kept session")
	}
}

func TestProtocolV0FallsBackToLsRemote(t *testing.T) {
	up, first := gittest.NewRepoWithCommit(t)
	srv := gittest.HTTPServer(t, filepath.Dir(up.Dir()), gittest.HTTPOptions{})
	r := newRemote(t, srv.URL(filepath.Base(up.Dir())), configEnv("protocol.version", "0")...)
	mustLookup(t, r, gittest.DefaultBranch, first)
	if r.sess != nil || !r.disabled {
		t.Fatal("with protocol v0 the helper cannot keep a session; want ls-remote from then on")
	}
	second := up.Commit(map[string]string{"f": "2"}, "second")
	mustLookup(t, r, gittest.DefaultBranch, second)
}

func TestChangedPasswordFallsBackAndRecovers(t *testing.T) {
	up, first := gittest.NewRepoWithCommit(t)
	srv := gittest.HTTPServer(t, filepath.Dir(up.Dir()), gittest.HTTPOptions{Username: "u", Password: "old"})
	passFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(passFile, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	helper := "!f() { test \"$1\" = get || exit 0; echo username=u; echo password=$(cat " + passFile + "); }; f"
	r := newRemote(t, srv.URL(filepath.Base(up.Dir())), configEnv("credential.helper", helper)...)
	mustLookup(t, r, gittest.DefaultBranch, first)
	sess := r.sess
	if sess == nil {
		t.Fatal("no kept session over HTTP with basic auth")
	}

	// The server and the file change together; the kept helper still
	// holds the old password, gets a 401, and the lookup must still answer.
	srv.SetPassword("new")
	if err := os.WriteFile(passFile, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	second := up.Commit(map[string]string{"f": "2"}, "second")
	mustLookup(t, r, gittest.DefaultBranch, second)
	if groupAlive(sess) {
		t.Fatal("the failed session was not ended")
	}
	mustLookup(t, r, gittest.DefaultBranch, second)
	if r.sess == nil || r.disabled || r.failures != 0 {
		t.Fatalf("no new kept session after recovering (session %v, disabled %v, failures %d)", r.sess != nil, r.disabled, r.failures)
	}

	// A wrong password fails like ls-remote, and does not give up sessions
	// for good: the outage is the server's, not the session's.
	srv.SetPassword("other")
	for i := 0; i < maxSessionFailures+1; i++ {
		_, _, err := r.Lookup(context.Background(), gittest.DefaultBranch)
		if err == nil || !strings.Contains(err.Error(), "ls-remote") {
			t.Fatalf("Lookup with a wrong password = %v, want the ls-remote error", err)
		}
	}
	srv.SetPassword("new")
	mustLookup(t, r, gittest.DefaultBranch, second)
	if r.sess == nil || r.disabled {
		t.Fatal("sessions were given up because of a server-side outage")
	}
}

func TestTimeoutKillsHelper(t *testing.T) {
	up, first := gittest.NewRepoWithCommit(t)
	srv := gittest.HTTPServer(t, filepath.Dir(up.Dir()), gittest.HTTPOptions{})
	target, err := url.Parse(srv.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	// A proxy that stops answering requests when told to.
	var hang atomic.Bool
	release := make(chan struct{})
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if hang.Load() {
			select {
			case <-release:
			case <-req.Context().Done():
			}
			return
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(front.Close)
	t.Cleanup(func() { close(release) })

	r := newRemote(t, front.URL+"/"+filepath.Base(up.Dir()))
	mustLookup(t, r, gittest.DefaultBranch, first)
	sess := r.sess
	hang.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := r.Lookup(ctx, gittest.DefaultBranch)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lookup against a hung server = %v, want the deadline", err)
		}
	case <-time.After(10 * time.Second):
		hang.Store(false)
		t.Fatal("Lookup against a hung server did not return 10 s after its deadline")
	}
	deadline := time.Now().Add(5 * time.Second)
	for groupAlive(sess) {
		if time.Now().After(deadline) {
			t.Fatal("the hung helper was not killed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	hang.Store(false)
	mustLookup(t, r, gittest.DefaultBranch, first)
}

// ls-refs matches by prefix, so asking for refs/heads/main also lists
// refs/heads/main<NBSP>x; a name with Unicode white space in it must not
// be read as "main" (it would hide every later push to main).
func TestRefNamesWithUnicodeSpace(t *testing.T) {
	up, _ := gittest.NewRepoWithCommit(t)
	srv := gittest.HTTPServer(t, filepath.Dir(up.Dir()), gittest.HTTPOptions{})
	r := newRemote(t, srv.URL(filepath.Base(up.Dir())))
	for _, odd := range []string{"\u00a0x", "\u0085x", "\u3000x"} {
		up.Git("branch", gittest.DefaultBranch+odd)
	}
	head := up.Commit(map[string]string{"f": "2"}, "second")
	mustLookup(t, r, gittest.DefaultBranch, head)
	if r.sess == nil {
		t.Fatal("the lookup did not go through a kept session")
	}
}

// A session that never answers (here: a --git wrapper that holds output
// back until git exits) costs a bounded wait per poll, the poll still
// answers through ls-remote, and sessions are given up after a few.
func TestStalledSessionFallsBackAndIsGivenUp(t *testing.T) {
	up, first := gittest.NewRepoWithCommit(t)
	srv := gittest.HTTPServer(t, filepath.Dir(up.Dir()), gittest.HTTPOptions{})
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(t.TempDir(), "git")
	script := "#!/bin/sh\nout=$(\"" + gitPath + "\" \"$@\")\nrc=$?\nprintf '%s\\n' \"$out\"\nexit $rc\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := newRemoteWithGit(t, wrapper, srv.URL(filepath.Base(up.Dir())))
	r.sessionWait = 300 * time.Millisecond
	for i := 0; i < maxSessionFailures; i++ {
		start := time.Now()
		mustLookup(t, r, gittest.DefaultBranch, first)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("a stalled session held the poll for %v", d)
		}
	}
	if !r.disabled || r.sess != nil {
		t.Fatalf("sessions not given up after %d stalled ones", maxSessionFailures)
	}
	second := up.Commit(map[string]string{"f": "2"}, "second")
	mustLookup(t, r, gittest.DefaultBranch, second)
}

func TestUnsafe(t *testing.T) {
	cases := map[string]bool{
		"credential.helper":                     true,
		"credential.https://example.com.helper": true,
		"Credential.Helper":                     true,
		"include.path":                          true,
		"includeIf.gitdir:/x/.path":             true,
		"credential.username":                   false,
		"http.extraHeader":                      false,
		"url.https://x/.insteadOf":              false,
	}
	for key, want := range cases {
		if got := Unsafe([]config.GitConfigEntry{{Key: key, Value: "x"}}); got != want {
			t.Errorf("Unsafe(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestPick(t *testing.T) {
	refs := map[string]string{
		"HEAD":                     "1111111111111111111111111111111111111111",
		"refs/heads/main":          "2222222222222222222222222222222222222222",
		"refs/remotes/origin/main": "3333333333333333333333333333333333333333",
		"refs/tags/v1":             "4444444444444444444444444444444444444444",
		"refs/tags/v1^{}":          "5555555555555555555555555555555555555555",
		"refs/tags/both":           "6666666666666666666666666666666666666666",
		"refs/heads/both":          "7777777777777777777777777777777777777777",
	}
	cases := []struct {
		ref, want string
		ok        bool
	}{
		{"HEAD", "1111111111111111111111111111111111111111", true},
		{"main", "2222222222222222222222222222222222222222", true},
		{"refs/heads/main", "2222222222222222222222222222222222222222", true},
		{"v1", "4444444444444444444444444444444444444444", true},
		{"both", "6666666666666666666666666666666666666666", true}, // tags before heads, as fetch does
		{"missing", "", false},
	}
	for _, c := range cases {
		got, ok := Pick(refs, c.ref)
		if got != c.want || ok != c.ok {
			t.Errorf("Pick(%q) = %q, %v; want %q, %v", c.ref, got, ok, c.want, c.ok)
		}
	}
	if got := parseLsRemote("4444444444444444444444444444444444444444\trefs/tags/v1\n5555555555555555555555555555555555555555\trefs/tags/v1^{}\n"); len(got) != 2 || got["refs/tags/v1"] != refs["refs/tags/v1"] {
		t.Errorf("parseLsRemote = %v", got)
	}
}
