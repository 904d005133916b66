package serve

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gitsync/internal/gitcmd"
)

// testEnv is an environment for git that reads no configuration from the
// machine.
func testEnv(t *testing.T) []string {
	home := t.TempDir()
	return []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"GIT_CONFIG_GLOBAL=" + filepath.Join(home, "gitconfig"), "GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0", "LC_ALL=C",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
	}
}

func git(t *testing.T, env []string, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// counts records what the handler reports.
type counts struct {
	mu      sync.Mutex
	results map[string]int
	sent    int
	active  int
}

func (c *counts) ServeRequest(r string) { c.mu.Lock(); c.results[r]++; c.mu.Unlock() }
func (c *counts) ServeSent(n int)       { c.mu.Lock(); c.sent += n; c.mu.Unlock() }
func (c *counts) ServeActive(d int)     { c.mu.Lock(); c.active += d; c.mu.Unlock() }
func (c *counts) get(r string) int      { c.mu.Lock(); defer c.mu.Unlock(); return c.results[r] }
func (c *counts) nowActive() int        { c.mu.Lock(); defer c.mu.Unlock(); return c.active }

type fixedToken string

func (f fixedToken) Get() ([]byte, error) { return []byte(f), nil }

// relay is a served repository: two commits on main, of which only the
// first is published in the namespace, and an address.
type relay struct {
	url, published, unpublished string
	env                         []string
	counts                      *counts
}

func startRelay(t *testing.T, tweak func(*Options)) *relay {
	t.Helper()
	env := testEnv(t)
	dir := t.TempDir()
	git(t, env, dir, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "a"), []byte("a\n"), 0o644)
	git(t, env, dir, "add", "a")
	git(t, env, dir, "commit", "-qm", "one")
	published := git(t, env, dir, "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(dir, "b"), []byte("b\n"), 0o644)
	git(t, env, dir, "add", "b")
	git(t, env, dir, "commit", "-qm", "two")
	unpublished := git(t, env, dir, "rev-parse", "HEAD")
	git(t, env, dir, "config", "uploadpack.allowFilter", "true")
	git(t, env, dir, "update-ref", "refs/namespaces/serve/refs/heads/main", published)
	git(t, env, dir, "symbolic-ref", "refs/namespaces/serve/HEAD", "refs/namespaces/serve/refs/heads/main")
	c := &counts{results: map[string]int{}}
	opts := Options{
		Bind: "127.0.0.1:0", GitDir: filepath.Join(dir, ".git"), Namespace: "serve",
		Git:     &gitcmd.Runner{Git: "git", Env: env, Log: slog.New(slog.DiscardHandler)},
		Guard:   &Guard{},
		Metrics: c,
	}
	if tweak != nil {
		tweak(&opts)
	}
	srv, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(srv.Shutdown)
	return &relay{url: "http://" + srv.Addr() + "/repo.git", published: published, unpublished: unpublished, env: env, counts: c}
}

// TestServeClonesWhatIsPublished: git ls-remote, clone and fetch over
// protocol v0 and v2 see the namespace's refs only: the published commit,
// not the newer one on the repository's own main.
func TestServeClonesWhatIsPublished(t *testing.T) {
	r := startRelay(t, nil)
	for _, v := range []string{"0", "2"} {
		out := git(t, r.env, t.TempDir(), "-c", "protocol.version="+v, "ls-remote", r.url)
		if strings.Contains(out, r.unpublished) || !strings.Contains(out, r.published+"\trefs/heads/main") {
			t.Errorf("protocol v%s ls-remote:\n%s\nwant refs/heads/main at %s only", v, out, r.published)
		}
		dst := filepath.Join(t.TempDir(), "clone")
		git(t, r.env, t.TempDir(), "-c", "protocol.version="+v, "clone", "-q", "--depth=1", r.url, dst)
		if got := git(t, r.env, dst, "rev-parse", "HEAD"); got != r.published {
			t.Errorf("protocol v%s clone checked out %s, want %s", v, got, r.published)
		}
	}
	// A commit no served ref reaches cannot be fetched by hash either: v0
	// and v1 by upload-pack's own rules, v2 (whose upload-pack checks no
	// wants) by the handler's.
	for _, v := range []string{"0", "1", "2"} {
		cmd := exec.Command("git", "-c", "protocol.version="+v, "fetch", "-q", r.url, r.unpublished)
		cmd.Dir, cmd.Env = t.TempDir(), r.env
		git(t, r.env, cmd.Dir, "init", "-q")
		out, err := cmd.CombinedOutput()
		refused := strings.Contains(string(out), "not our ref") || v != "2" && strings.Contains(string(out), "unadvertised object")
		if err == nil || !refused {
			t.Errorf("protocol v%s: fetching the unpublished commit by hash: %v\n%s\nwant a refusal (not our ref)", v, err, out)
		}
	}
	// Partial clones fetch blobs by hash as they check out.
	dst := filepath.Join(t.TempDir(), "partial")
	git(t, r.env, t.TempDir(), "-c", "protocol.version=2", "clone", "-q", "--filter=blob:none", r.url, dst)
	if got, err := os.ReadFile(filepath.Join(dst, "a")); err != nil || string(got) != "a\n" {
		t.Errorf("partial clone checked out a = %q, %v", got, err)
	}
	if r.counts.get(ResultOK) == 0 || r.counts.sent == 0 {
		t.Errorf("counted %v results and %d bytes", r.counts.results, r.counts.sent)
	}
}

// TestServeRefusesPushesAndOtherPaths: read-only, smart HTTP only.
func TestServeRefusesPushesAndOtherPaths(t *testing.T) {
	r := startRelay(t, nil)
	for path, want := range map[string]int{
		"/info/refs?service=git-receive-pack": http.StatusForbidden,
		"/info/refs":                          http.StatusNotFound,
		"/HEAD":                               http.StatusNotFound,
	} {
		resp, err := http.Get(r.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if r.counts.get(ResultForbidden) != 1 || r.counts.get(ResultNotFound) != 2 {
		t.Errorf("results %v, want 1 forbidden and 2 not_found", r.counts.results)
	}
}

// TestServeToken: without the token 401 and a Basic challenge; as a Basic
// password (any user) or a Bearer token, served.
func TestServeToken(t *testing.T) {
	r := startRelay(t, func(o *Options) { o.Token = fixedToken("s3cret") })
	get := func(set func(*http.Request)) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/info/refs?service=git-upload-pack", nil)
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := get(func(*http.Request) {}); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("no credentials: %d %q, want 401 with a Basic challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := get(func(q *http.Request) { q.SetBasicAuth("anyone", "wrong") }); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", resp.StatusCode)
	}
	if resp := get(func(q *http.Request) { q.SetBasicAuth("anyone", "s3cret") }); resp.StatusCode != http.StatusOK {
		t.Errorf("Basic password: %d, want 200", resp.StatusCode)
	}
	if resp := get(func(q *http.Request) { q.Header.Set("Authorization", "Bearer s3cret") }); resp.StatusCode != http.StatusOK {
		t.Errorf("Bearer: %d, want 200", resp.StatusCode)
	}
}

// TestServeCapsRequests: with one slot held by a request whose body is
// still arriving, the next request gets 503 with Retry-After; once the slot
// is free, requests are served again.
func TestServeCapsRequests(t *testing.T) {
	r := startRelay(t, func(o *Options) { o.MaxRequests = 1 })
	body, feed := io.Pipe()
	held := make(chan struct{})
	go func() {
		defer close(held)
		req, _ := http.NewRequest(http.MethodPost, r.url+"/git-upload-pack", body)
		req.Header.Set("Content-Type", "application/x-git-upload-pack-request")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	feed.Write([]byte("0032want " + r.published + "\n"))
	deadline := time.Now().Add(10 * time.Second)
	for r.counts.nowActive() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first request never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := http.Get(r.url + "/info/refs?service=git-upload-pack")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("over the cap: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	feed.Close()
	<-held
	git(t, r.env, t.TempDir(), "ls-remote", r.url)
	if r.counts.get(ResultBusy) != 1 {
		t.Errorf("results %v, want exactly one busy", r.counts.results)
	}
}

// TestShutdownKillsRunningUploadPacks: Shutdown returns once the
// upload-pack of a request that would never end has been killed and reaped.
func TestShutdownKillsRunningUploadPacks(t *testing.T) {
	env := testEnv(t)
	dir := t.TempDir()
	git(t, env, dir, "init", "-q")
	c := &counts{results: map[string]int{}}
	srv, err := Listen(Options{Bind: "127.0.0.1:0", GitDir: filepath.Join(dir, ".git"), Namespace: "serve",
		Git: &gitcmd.Runner{Git: "git", Env: env, Log: slog.New(slog.DiscardHandler)}, Metrics: c})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	body, feed := io.Pipe()
	defer feed.Close()
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+srv.Addr()+"/r/git-upload-pack", body)
		req.Header.Set("Content-Type", "application/x-git-upload-pack-request")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for c.nowActive() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the request never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { srv.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if c.nowActive() != 0 {
		t.Errorf("%d requests still active after Shutdown", c.nowActive())
	}
}

// TestServeSlowResponseOutlivesReadTimeout: the time limit for reading a
// request does not bound the response: one that takes longer than that to
// produce (a large clone; here an upload-pack that starts late) is not cut
// off.
func TestServeSlowResponseOutlivesReadTimeout(t *testing.T) {
	defer func(d time.Duration) { readTimeout = d }(readTimeout)
	readTimeout = 300 * time.Millisecond
	wrapper := filepath.Join(t.TempDir(), "git")
	script := "#!/bin/sh\nif [ \"$1\" = upload-pack ] && [ \"$3\" != --advertise-refs ]; then sleep 1; fi\nexec git \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := startRelay(t, func(o *Options) { o.Git.Git = wrapper })
	for _, v := range []string{"0", "2"} {
		dst := filepath.Join(t.TempDir(), "clone")
		git(t, r.env, t.TempDir(), "-c", "protocol.version="+v, "clone", "-q", r.url, dst)
		if got := git(t, r.env, dst, "rev-parse", "HEAD"); got != r.published {
			t.Errorf("protocol v%s: cloned %s, want %s", v, got, r.published)
		}
	}
}
