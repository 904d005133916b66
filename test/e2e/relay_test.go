package e2e

// End-to-end tests of the relay (issue 13): a git-sync started with
// --serve-bind serves what it published, read-only, over git's smart HTTP
// protocol, so that plain git, git-sync followers and Airflow's
// GitDagBundle fetch from it instead of the forge. The tests run the relay
// against real upstreams (file:// and git http-backend), talk to it with the
// real git client and raw HTTP requests, and check what a user can observe:
// the refs advertised (only the published commit; kept commits fetchable by
// hash; refused ones never), followers' links, a refused push, the request
// cap (503 with Retry-After), a request held open across garbage
// collection, token auth (401, basic and bearer), the serve metrics, and
// the commands Airflow 3's GitDagBundle runs. relay_load_test.go holds the
// load test.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// relay is a running git-sync that serves its repository (--serve-bind).
type relay struct {
	*Proc
	Root string
	Link string
	// Addr is the host:port the relay serves git on (from its log).
	Addr string
	// URL is the repository's address on the relay.
	URL string
	// Metrics is the --http-bind address ("" when started without it).
	Metrics string
}

// relayOpts configures startRelay.
type relayOpts struct {
	// Metrics adds --http-bind=127.0.0.1:PORT --http-metrics.
	Metrics bool
	// Name labels the process in failure output (default "relay").
	Name string
}

// startRelay starts git-sync syncing branch main of upURL into a new root
// (--ref=main, so that it serves HEAD and refs/heads/main), polling every
// 100ms and serving on 127.0.0.1 at a port of its choosing, plus extra
// arguments (later flags win), and waits until it logs the address it
// serves on.
func startRelay(t testing.TB, upURL string, o relayOpts, extra ...string) *relay {
	t.Helper()
	root := newRoot(t)
	r := &relay{Root: root, Link: filepath.Join(root, "link")}
	args := []string{"--repo=" + upURL, "--ref=" + gittest.DefaultBranch, "--root=" + root,
		"--link=link", "--period=100ms", "--serve-bind=127.0.0.1:0"}
	if o.Metrics {
		var m []string
		r.Metrics, m = authMetricsArgs(t)
		args = append(args, m...)
	}
	ro := runOpts{Name: o.Name}
	if ro.Name == "" {
		ro.Name = "relay"
	}
	r.Proc = startWith(t, ro, append(args, extra...)...)
	waitFor(t, syncDeadline, func() bool {
		if !r.Running() {
			t.Fatalf("relay exited (code %d) before serving\n%s", r.ExitCode(), tail(r.Logs(), 40))
		}
		r.Addr = relayServeAddr(r.Logs())
		return r.Addr != ""
	}, `relay log line {"msg":"serving the repository","address":...}`)
	r.URL = "http://" + r.Addr + "/repo.git"
	return r
}

// relayServeAddr returns the "address" attribute of the first log record
// whose msg is "serving the repository", or "".
func relayServeAddr(logs string) string {
	recs, _ := parseLogs(logs)
	for _, rec := range recs {
		if rec["msg"] == "serving the repository" {
			if a, ok := rec["address"].(string); ok {
				return a
			}
		}
	}
	return ""
}

// logHashes returns the "hash" attribute of every log record whose msg is
// msg, in order.
func logHashes(logs, msg string) []string {
	var hashes []string
	recs, _ := parseLogs(logs)
	for _, rec := range recs {
		if rec["msg"] == msg {
			h, _ := rec["hash"].(string)
			hashes = append(hashes, h)
		}
	}
	return hashes
}

// relayGit runs git with args in dir (any directory when ""), in the
// isolated gitEnv plus env, and returns stdout and stderr. The error
// includes the command and stderr.
func relayGit(dir string, env []string, args ...string) (string, string, error) {
	cmd := exec.Command(realGit, args...)
	cmd.Dir = dir
	cmd.Env = append(append([]string(nil), gitEnv...), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	ctx, cancel := context.WithTimeout(context.Background(), runDeadline)
	defer cancel()
	if err := cmd.Start(); err != nil {
		return "", "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		err = <-done
	}
	if err != nil {
		err = fmt.Errorf("git %s (in %s): %w\nstderr: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), stderr.String(), err
}

// mustGit is relayGit failing the test on error; it returns stdout.
func mustGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, _, err := relayGit(dir, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// protoArgs is the -c option that makes git speak protocol version v.
func protoArgs(v string, args ...string) []string {
	return append([]string{"-c", "protocol.version=" + v}, args...)
}

// lsRemote lists the refs url advertises over protocol version v, as
// ref name -> hash.
func lsRemote(url, v string) (map[string]string, error) {
	out, _, err := relayGit("", nil, protoArgs(v, "ls-remote", url)...)
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		hash, ref, ok := strings.Cut(line, "\t")
		if !ok {
			return nil, fmt.Errorf("ls-remote line %q", line)
		}
		refs[ref] = hash
	}
	return refs, nil
}

// formatRefs prints refs sorted, one "hash ref" per line, for messages.
func formatRefs(refs map[string]string) string {
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s %s\n", refs[n], n)
	}
	return b.String()
}

// wantServedRefs is what a relay with --ref=main advertises when hash is
// published: exactly HEAD and refs/heads/main at hash.
func wantServedRefs(hash string) map[string]string {
	return map[string]string{"HEAD": hash, "refs/heads/" + gittest.DefaultBranch: hash}
}

// sameRefs reports whether two ref maps are equal.
func sameRefs(a, b map[string]string) bool {
	return formatRefs(a) == formatRefs(b)
}

// assertServes checks that the relay advertises exactly want over protocol
// v0 and v2.
func assertServes(t testing.TB, r *relay, want map[string]string) {
	t.Helper()
	for _, v := range []string{"0", "2"} {
		got, err := lsRemote(r.URL, v)
		if err != nil {
			t.Fatalf("ls-remote over protocol v%s: %v", v, err)
		}
		if !sameRefs(got, want) {
			t.Fatalf("ls-remote over protocol v%s advertises:\n%swant exactly:\n%s", v, formatRefs(got), formatRefs(want))
		}
	}
}

// waitForServed waits until the relay publishes hash and advertises it as
// HEAD and refs/heads/main (refs are written just after the link flips).
func waitForServed(t testing.TB, r *relay, hash string) {
	t.Helper()
	waitForLink(t, r.Proc, r.Link, hash)
	var last map[string]string
	var lastErr error
	if !poll(syncDeadline, func() bool {
		last, lastErr = lsRemote(r.URL, "2")
		return lastErr == nil && sameRefs(last, wantServedRefs(hash))
	}) {
		t.Fatalf("relay published %s but does not advertise it as HEAD and %s; ls-remote: %v\n%s",
			hash, gittest.DefaultBranch, lastErr, formatRefs(last))
	}
}

// fetchByHash runs `git fetch URL HASH` over protocol v in a new empty
// repository and returns the error; on success it checks that the commit
// arrived.
func fetchByHash(t testing.TB, url, v, hash string, extra ...string) error {
	t.Helper()
	dir := t.TempDir()
	mustGit(t, dir, "init", "--quiet")
	args := protoArgs(v, "fetch", "--no-tags")
	args = append(args, extra...)
	if _, _, err := relayGit(dir, nil, append(args, url, hash)...); err != nil {
		return err
	}
	if got := mustGit(t, dir, "cat-file", "-t", hash); got != "commit" {
		t.Fatalf("fetched %s but it is a %q", hash, got)
	}
	return nil
}

// relayHTTP sends one HTTP request and returns the response (body read
// into the string and closed).
func relayHTTP(method, url string, header http.Header, body io.Reader) (*http.Response, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, "", err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// infoRefs is the ref advertisement URL of the relay's repository.
func (r *relay) infoRefs() string {
	return r.URL + "/info/refs?service=git-upload-pack"
}

// noErrors fails the test if p logged error records.
func noErrors(t testing.TB, p *Proc) {
	t.Helper()
	if errs := errorRecords(p.Logs()); len(errs) > 0 {
		t.Errorf("%s logged errors:\n%s", p.name, strings.Join(errs, "\n"))
	}
}

// ---------------------------------------------------------------------------
// Plain git against a relay.

func TestRelayPlainGit(t *testing.T) {
	t.Parallel()
	up := gittest.NewRepo(t)
	var hs []string
	for i := 1; i <= 3; i++ {
		hs = append(hs, up.Commit(map[string]string{
			"file.txt":                   fmt.Sprintf("commit %d\n", i),
			fmt.Sprintf("dir/%d.txt", i): fmt.Sprintf("x %d\n", i),
		}, fmt.Sprintf("c%d", i)))
	}
	// --depth=0: the relay keeps the whole history, so shallow clones are
	// shallower than full ones.
	r := startRelay(t, up.URL(), relayOpts{}, "--depth=0")
	waitForServed(t, r, hs[2])
	assertServes(t, r, wantServedRefs(hs[2]))
	for _, v := range []string{"0", "2"} {
		out := mustGit(t, "", protoArgs(v, "ls-remote", r.URL)...)
		if n := strings.Count(out, "\n") + 1; n != 2 {
			t.Logf("NOTE: ls-remote over protocol v%s prints %d lines for 2 refs:\n%s", v, n, out)
		}
	}

	// Protocol v2 is really spoken (the relay passes Git-Protocol on):
	// the client sends an ls-refs command.
	_, trace, err := relayGit("", []string{"GIT_TRACE_PACKET=1"}, protoArgs("2", "ls-remote", r.URL)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(trace, "command=ls-refs") {
		t.Fatalf("ls-remote with protocol.version=2 did not use protocol v2 (no ls-refs in the packet trace):\n%s", tail(trace, 20))
	}

	type clone struct {
		name, v string
		args    []string
		dir     string
	}
	var clones []*clone
	for _, v := range []string{"0", "2"} {
		for _, k := range []struct {
			name string
			args []string
		}{
			{"full", nil},
			{"shallow", []string{"--depth=1"}},
			{"filtered", []string{"--filter=blob:none"}},
		} {
			c := &clone{name: k.name + "-v" + v, v: v, args: k.args, dir: filepath.Join(t.TempDir(), "clone")}
			clones = append(clones, c)
			args := protoArgs(v, "clone", "--quiet")
			args = append(args, k.args...)
			mustGit(t, "", append(args, r.URL, c.dir)...)
		}
	}
	check := func(c *clone, head string, commits int) {
		t.Helper()
		if got := mustGit(t, c.dir, "rev-parse", "HEAD", "origin/"+gittest.DefaultBranch); got != head+"\n"+head {
			t.Errorf("%s: HEAD and origin/%s = %q, want %s", c.name, gittest.DefaultBranch, got, head)
		}
		if got := mustGit(t, c.dir, "rev-list", "--count", "HEAD"); got != fmt.Sprint(commits) {
			t.Errorf("%s: %s commits in history, want %d", c.name, got, commits)
		}
		if got := mustGit(t, c.dir, "status", "--porcelain"); got != "" {
			t.Errorf("%s: checkout differs from HEAD:\n%s", c.name, got)
		}
		assertCompleteTree(t, up, c.dir, head)
		if strings.HasPrefix(c.name, "filtered") {
			if got := mustGit(t, c.dir, "config", "remote.origin.promisor"); got != "true" {
				t.Errorf("%s: remote.origin.promisor = %q, want true", c.name, got)
			}
			// The server honoured the filter: the blobs of older commits
			// were never sent.
			missing := mustGit(t, c.dir, "rev-list", "--objects", "--missing=print", hs[0])
			if !strings.Contains(missing, "\n?") && !strings.HasPrefix(missing, "?") {
				t.Errorf("%s: every blob of %s is present; the relay ignored --filter=blob:none", c.name, hs[0])
			}
		}
	}
	for _, c := range clones {
		n := 3
		if strings.HasPrefix(c.name, "shallow") {
			n = 1
		}
		check(c, hs[2], n)
	}

	// A new upstream commit reaches every clone with git fetch.
	h4 := up.Commit(map[string]string{"file.txt": "commit 4\n", "dir/4.txt": "x 4\n"}, "c4")
	waitForServed(t, r, h4)
	assertServes(t, r, wantServedRefs(h4))
	for _, c := range clones {
		args := protoArgs(c.v, "fetch", "--quiet")
		if strings.HasPrefix(c.name, "shallow") {
			args = append(args, "--depth=1")
		}
		mustGit(t, c.dir, append(args, "origin")...)
		mustGit(t, c.dir, "reset", "--quiet", "--hard", "origin/"+gittest.DefaultBranch)
		n := 4
		if strings.HasPrefix(c.name, "shallow") {
			n = 1
		}
		check(c, h4, n)
	}
	noErrors(t, r.Proc)
}

// ---------------------------------------------------------------------------
// git-sync followers.

// follower is a git-sync whose --repo is a relay.
type follower struct {
	*Proc
	name   string
	root   string
	link   string
	sparse bool
	depth  int
}

func TestRelayFollowers(t *testing.T) {
	t.Parallel()
	for _, upKind := range []string{"file", "http"} {
		t.Run(upKind+" upstream", func(t *testing.T) {
			t.Parallel()
			up := gittest.NewRepo(t)
			commit := func(i int) string {
				return up.Commit(map[string]string{
					"keep/a.txt":                     fmt.Sprintf("a %d\n", i),
					"other/b.txt":                    fmt.Sprintf("b %d\n", i),
					fmt.Sprintf("keep/new%d.txt", i): "new\n",
				}, fmt.Sprintf("u%d", i))
			}
			h := commit(0)
			upURL := up.URL()
			if upKind == "http" {
				srv := gittest.HTTPServer(t, shapeServeDir(t, map[string]*gittest.Repo{"up": up}), gittest.HTTPOptions{})
				upURL = srv.URL("up")
			}
			// The relay keeps full history so a follower's --depth=2 is
			// its own bound, not the relay's.
			r := startRelay(t, upURL, relayOpts{}, "--depth=0")
			waitForServed(t, r, h)

			sparseFile := filepath.Join(t.TempDir(), "sparse")
			mustWrite(t, sparseFile, "/keep/\n")
			var fs []*follower
			for _, c := range []struct {
				name string
				args []string
			}{
				{"ref=HEAD", []string{"--ref=HEAD"}},
				{"ref=main", []string{"--ref=" + gittest.DefaultBranch}},
				{"depth=2", []string{"--depth=2"}},
				{"filter", []string{"--filter=blob:none", "--sparse-checkout-file=" + sparseFile}},
				{"sparse", []string{"--sparse-checkout-file=" + sparseFile}},
			} {
				f := &follower{name: c.name, root: newRoot(t)}
				f.link = filepath.Join(f.root, "link")
				f.sparse = c.name == "sparse" || c.name == "filter"
				if c.name == "depth=2" {
					f.depth = 2
				}
				f.Proc = startWith(t, runOpts{Name: "follower " + c.name},
					concat([]string{"--repo=" + r.URL, "--root=" + f.root, "--link=link", "--period=100ms"}, c.args)...)
				fs = append(fs, f)
			}

			for i := 0; i <= 3; i++ {
				if i > 0 {
					h = commit(i)
					waitForServed(t, r, h)
				}
				for _, f := range fs {
					waitForLink(t, f.Proc, f.link, h)
					assertPublished(t, f.root, f.link, h)
					if f.sparse {
						if !exists(filepath.Join(f.link, "keep", "a.txt")) || exists(filepath.Join(f.link, "other")) {
							t.Errorf("follower %s: tree is not the sparse checkout of /keep/", f.name)
						}
					} else {
						assertCompleteTree(t, up, f.link, h)
					}
					if f.depth > 0 {
						if n := shapeRevCount(t, f.link); n != min(f.depth, i+1) {
							t.Errorf("follower %s: %d commits of history, want %d", f.name, n, min(f.depth, i+1))
						}
					}
				}
				if t.Failed() {
					t.FailNow()
				}
			}
			for _, f := range fs {
				if f.name == "filter" {
					// The blobs outside the sparse checkout were never
					// sent (rev-list --missing=print does not fetch them
					// lazily).
					missing := gitIn(t, f.root, "rev-list", "--objects", "--missing=print", h)
					if !strings.Contains(missing, "\n?") && !strings.HasPrefix(missing, "?") {
						t.Errorf("follower %s: every blob of %s is present; the relay ignored --filter=blob:none", f.name, h)
					}
				}
				if code := f.Stop(); code != 0 {
					t.Errorf("follower %s: exit %d after SIGTERM", f.name, code)
				}
				noErrors(t, f.Proc)
			}
			noErrors(t, r.Proc)
		})
	}
}

// ---------------------------------------------------------------------------
// Refs served.

func TestRelayNeverAdvertisesUnpublished(t *testing.T) {
	t.Parallel()
	up := gittest.NewRepo(t)
	a := gateCommit(up, "good", "first")
	g := newGateScript(t)
	r := startRelay(t, up.URL(), relayOpts{Metrics: true}, "--publish-gate-command="+g.Path)
	waitForServed(t, r, a)

	fRoot := newRoot(t)
	fLink := filepath.Join(fRoot, "link")
	fAddr, fMetrics := authMetricsArgs(t)
	f := startWith(t, runOpts{Name: "follower"}, concat([]string{"--repo=" + r.URL, "--root=" + fRoot,
		"--link=link", "--period=100ms", "--ref=" + gittest.DefaultBranch}, fMetrics)...)
	waitForLink(t, f, fLink, a)

	// b is fetched by the relay and refused by the gate.
	b := gateCommit(up, "bad", "broken")
	waitForMetric(t, r.Metrics, func(v float64) bool { return v == 1 }, "the relay's gate refuses b", "git_sync_gate_rejections_total")
	if n := g.Runs(t, b); n != 1 {
		t.Fatalf("gate ran %d times for %s, want 1", n, b)
	}
	if _, _, err := relayGit(r.Root, nil, "cat-file", "-e", b); err == nil {
		t.Logf("the relay holds the refused commit %s in its object store", b)
	}
	// Over several polls of the follower: the relay advertises only a,
	// the follower stays at a.
	polls := metric(t, fAddr, "git_sync_count_total", "status", "noop")
	waitForMetric(t, fAddr, func(v float64) bool { return v >= polls+5 }, "five follower polls after the refusal", "git_sync_count_total", "status", "noop")
	assertServes(t, r, wantServedRefs(a))
	if got := linkHash(t, fLink); got != a {
		t.Fatalf("follower published %s, want %s (b=%s was refused at the relay)", got, a, b)
	}
	assertCompleteTree(t, up, fLink, a)
	// Asking for b by hash fails, over both protocols, shallow or not.
	for _, v := range []string{"0", "2"} {
		for _, extra := range [][]string{nil, {"--depth=1"}} {
			if err := fetchByHash(t, r.URL, v, b, extra...); err == nil {
				t.Errorf("fetch of the refused commit %s by hash over protocol v%s %v succeeded", b, v, extra)
			}
		}
	}

	// A good commit after it is served and followed (b is now history).
	d := gateCommit(up, "good", "fixed")
	waitForServed(t, r, d)
	waitForLink(t, f, fLink, d)
	assertCompleteTree(t, up, fLink, d)
	if got := metric(t, r.Metrics, "git_sync_serve_requests_total", "result", "ok"); got < 10 {
		t.Errorf("git_sync_serve_requests_total{result=ok} = %v after many follower polls", got)
	}
	noErrors(t, f)
}

func TestRelayKeptCommitsFetchable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args []string
		// kept says whether commit i of 0..4 must be fetchable when 4 is
		// published.
		kept func(i int) bool
	}{
		// 3 is the previous one, 2 and 3 the two kept trees.
		{"keep-worktrees=2", []string{"--keep-worktrees=2"}, func(i int) bool { return i >= 2 }},
		{"stale-worktree-timeout=1h", []string{"--stale-worktree-timeout=1h"}, func(int) bool { return true }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			up := gittest.NewRepo(t)
			var hs []string
			var r *relay
			for i := 0; i <= 4; i++ {
				hs = append(hs, up.Commit(map[string]string{"file.txt": fmt.Sprintf("commit %d\n", i)}, fmt.Sprintf("c%d", i)))
				if r == nil {
					r = startRelay(t, up.URL(), relayOpts{}, c.args...)
				}
				waitForServed(t, r, hs[i])
			}
			// Kept commits are hidden tips: not advertised.
			assertServes(t, r, wantServedRefs(hs[4]))
			// The relay's history is one commit deep (--depth=1), so an
			// older commit is fetchable only because it is kept.
			if shallow := shapeShallow(t, r.Root); len(shallow) == 0 {
				t.Fatalf("the relay's repository is not shallow; the test relies on --depth=1")
			}
			// Over protocol v0 the relay's shallow boundary comes in the
			// ref advertisement, and git takes a new shallow root only
			// when asked to (--depth, --update-shallow): v0 clients ask
			// for depth.
			for i, h := range hs {
				for _, f := range []struct {
					v    string
					args []string
				}{{"2", nil}, {"2", []string{"--depth=1"}}, {"0", []string{"--depth=1"}}} {
					err := fetchByHash(t, r.URL, f.v, h, f.args...)
					switch {
					case c.kept(i) && err != nil:
						t.Errorf("commit %d (%s), kept, is not fetchable by hash over protocol v%s %v: %v", i, h, f.v, f.args, err)
					case !c.kept(i):
						t.Logf("commit %d (%s), no longer kept, over protocol v%s %v: fetch error %v", i, h, f.v, f.args, err)
					}
				}
			}
			noErrors(t, r.Proc)
		})
	}
}

// ---------------------------------------------------------------------------
// Read-only.

func TestRelayPushRefused(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	r := startRelay(t, up.URL(), relayOpts{Metrics: true})
	waitForServed(t, r, h)
	refsBefore := mustGit(t, r.Root, "for-each-ref")
	headsBefore := mustGit(t, r.Root, "show-ref", "--head")

	dir := filepath.Join(t.TempDir(), "clone")
	mustGit(t, "", "clone", "--quiet", r.URL, dir)
	mustWrite(t, filepath.Join(dir, "pushed.txt"), "pushed\n")
	mustGit(t, dir, "add", "pushed.txt")
	mustGit(t, dir, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-m", "push me")
	pushed := mustGit(t, dir, "rev-parse", "HEAD")
	for _, v := range []string{"0", "2"} {
		for _, refspec := range []string{"HEAD:refs/heads/" + gittest.DefaultBranch, "HEAD:refs/heads/new", "HEAD:refs/tags/t"} {
			if out, _, err := relayGit(dir, nil, protoArgs(v, "push", "origin", refspec)...); err == nil {
				t.Errorf("git push %s over protocol v%s succeeded: %s", refspec, v, out)
			}
		}
	}
	for _, c := range []struct{ method, path, ctype string }{
		{http.MethodGet, "/info/refs?service=git-receive-pack", ""},
		{http.MethodPost, "/git-receive-pack", "application/x-git-receive-pack-request"},
	} {
		hdr := http.Header{}
		if c.ctype != "" {
			hdr.Set("Content-Type", c.ctype)
		}
		resp, body, err := relayHTTP(c.method, r.URL+c.path, hdr, strings.NewReader("0000"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s: status %d, want 403\n%s", c.method, c.path, resp.StatusCode, body)
		}
	}
	if got := mustGit(t, r.Root, "for-each-ref"); got != refsBefore {
		t.Errorf("the relay's refs changed after refused pushes:\nbefore:\n%s\nafter:\n%s", refsBefore, got)
	}
	if got := mustGit(t, r.Root, "show-ref", "--head"); got != headsBefore {
		t.Errorf("the relay's HEAD and refs changed:\nbefore:\n%s\nafter:\n%s", headsBefore, got)
	}
	if _, _, err := relayGit(r.Root, nil, "cat-file", "-e", pushed); err == nil {
		t.Errorf("the pushed commit %s is in the relay's repository", pushed)
	}
	assertServes(t, r, wantServedRefs(h))
	assertPublished(t, r.Root, r.Link, h)
	if v := metric(t, r.Metrics, "git_sync_serve_requests_total", "result", "forbidden"); v < 2 {
		t.Errorf("git_sync_serve_requests_total{result=forbidden} = %v, want at least 2", v)
	}
}

// ---------------------------------------------------------------------------
// Bounds.

// holdUploadPack opens a connection to the relay and sends the headers and
// the start of a POST to git-upload-pack whose body never ends, so the
// request stays in the server until release is called.
func holdUploadPack(t testing.TB, r *relay) (release func()) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", r.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	body := "0014command=ls-refs\n" // a v2 command whose end never comes
	fmt.Fprintf(conn, "POST /repo.git/git-upload-pack HTTP/1.1\r\nHost: %s\r\n"+
		"Content-Type: application/x-git-upload-pack-request\r\n"+
		"Accept: application/x-git-upload-pack-result\r\n"+
		"Git-Protocol: version=2\r\n"+
		"Content-Length: 100000\r\n\r\n%s", r.Addr, body)
	done := false
	release = func() {
		if !done {
			done = true
			conn.Close()
		}
	}
	t.Cleanup(release)
	return release
}

func TestRelayRequestCap(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	r := startRelay(t, up.URL(), relayOpts{Metrics: true}, "--serve-max-requests=1")
	waitForServed(t, r, h)

	release := holdUploadPack(t, r)
	waitForMetric(t, r.Metrics, func(v float64) bool { return v == 1 }, "the held request occupies the one slot", "git_sync_serve_active_requests")

	busy := 0
	resp, body, err := relayHTTP(http.MethodGet, r.infoRefs(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second request while the only slot is taken: status %d, want 503\n%s", resp.StatusCode, body)
	}
	busy++
	if ra := resp.Header.Get("Retry-After"); ra == "" {
		t.Errorf("503 without a Retry-After header (headers %v)", resp.Header)
	} else {
		t.Logf("503 with Retry-After: %s", ra)
	}
	if _, _, err := relayGit("", nil, "ls-remote", r.URL); err == nil {
		t.Errorf("git ls-remote succeeded while the only slot is taken")
	} else {
		busy++
	}
	if v := metric(t, r.Metrics, "git_sync_serve_requests_total", "result", "busy"); v < float64(busy) {
		t.Errorf("git_sync_serve_requests_total{result=busy} = %v after %d refused requests", v, busy)
	}

	release()
	waitForMetric(t, r.Metrics, func(v float64) bool { return v == 0 }, "the slot freed after the held request ends", "git_sync_serve_active_requests")
	resp, body, err = relayHTTP(http.MethodGet, r.infoRefs(), nil, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after the held request ended: status %v, err %v\n%s", resp, err, body)
	}
	assertServes(t, r, wantServedRefs(h))
	if got := r.Running(); !got {
		t.Fatalf("relay exited")
	}
}

// pkt formats one pkt-line.
func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

// TestRelayGCWaitsForRunningRequest holds a protocol v2 fetch request open
// in the relay (the command sent, the wants not yet) while the upstream
// moves two commits on, each big enough to make --git-gc=always repack and
// prune. When the request then asks for the commit that was published when
// it started, it must get a pack: the relay's gc waits for running
// upload-packs, so the commit is still the previous one (kept) when the
// request is served. Without that wait the relay would publish both and
// prune the commit under the request ("not our ref").
func TestRelayGCWaitsForRunningRequest(t *testing.T) {
	t.Parallel()
	up := gittest.NewRepo(t)
	a := up.Commit(relayLoadUpdate(0), "a")
	r := startRelay(t, up.URL(), relayOpts{Metrics: true}, "--git-gc=always")
	waitForServed(t, r, a)

	conn, err := net.DialTimeout("tcp", r.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	chunk := func(s string) {
		t.Helper()
		if _, err := fmt.Fprintf(conn, "%x\r\n%s\r\n", len(s), s); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintf(conn, "POST /repo.git/git-upload-pack HTTP/1.1\r\nHost: %s\r\n"+
		"Content-Type: application/x-git-upload-pack-request\r\n"+
		"Accept: application/x-git-upload-pack-result\r\n"+
		"Git-Protocol: version=2\r\n"+
		"Transfer-Encoding: chunked\r\n\r\n", r.Addr)
	chunk(pkt("command=fetch\n"))
	waitForMetric(t, r.Metrics, func(v float64) bool { return v == 1 }, "the held fetch is running", "git_sync_serve_active_requests")

	b := up.Commit(relayLoadUpdate(1), "b")
	waitForLink(t, r.Proc, r.Link, b)
	c := up.Commit(relayLoadUpdate(2), "c")
	// Give the relay the time to publish c and collect garbage, were it
	// not waiting for the request (a bound, not an assertion).
	pruned := poll(3*time.Second, func() bool {
		return slices.Contains(logHashes(r.Logs(), "published new commit"), c)
	})
	t.Logf("relay published c while the request was held: %v", pruned)

	chunk("0001" + pkt("want "+a+"\n") + pkt("no-progress\n") + pkt("done\n") + "0000")
	if _, err := io.WriteString(conn, "0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("packfile\n")) || !bytes.Contains(body, []byte("PACK")) || bytes.Contains(body, []byte("ERR ")) {
		t.Fatalf("the fetch of %s held across two updates: status %d, want a pack; body %q", a, resp.StatusCode, tail(string(body[:min(len(body), 400)]), 5))
	}
	waitForServed(t, r, c)
}

// ---------------------------------------------------------------------------
// Token auth.

func TestRelayTokenAuth(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	token := "relay-token-" + fmt.Sprint(time.Now().UnixNano())
	authWriteFile(t, tokenFile, token, 0o600)
	r := startRelay(t, up.URL(), relayOpts{Metrics: true}, "--serve-token-file="+tokenFile)
	waitForLink(t, r.Proc, r.Link, h)

	status := func(hdr http.Header) (int, http.Header) {
		t.Helper()
		resp, _, err := relayHTTP(http.MethodGet, r.infoRefs(), hdr, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header
	}
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	basic := func(user, tok string) http.Header {
		req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		req.SetBasicAuth(user, tok)
		return req.Header
	}

	code, hdr := status(nil)
	if code != http.StatusUnauthorized {
		t.Fatalf("no credentials: status %d, want 401", code)
	}
	if got := hdr.Get("WWW-Authenticate"); got != `Basic realm="git-sync"` {
		t.Errorf(`no credentials: WWW-Authenticate %q, want Basic realm="git-sync"`, got)
	}
	for _, c := range []struct {
		name string
		hdr  http.Header
		want int
	}{
		{"bearer", bearer(token), http.StatusOK},
		{"basic, any user", basic("anyone", token), http.StatusOK},
		{"basic, other user", basic("x", token), http.StatusOK},
		{"wrong bearer", bearer(token + "x"), http.StatusUnauthorized},
		{"wrong basic", basic("anyone", "nope"), http.StatusUnauthorized},
		{"token as user name", basic(token, ""), http.StatusUnauthorized},
	} {
		if code, _ := status(c.hdr); code != c.want {
			t.Errorf("%s: status %d, want %d", c.name, code, c.want)
		}
	}
	if _, _, err := relayGit("", nil, "ls-remote", r.URL); err == nil {
		t.Errorf("git ls-remote without credentials succeeded")
	}

	// A follower authenticates with the existing flags.
	fRoot := newRoot(t)
	fLink := filepath.Join(fRoot, "link")
	f := startWith(t, runOpts{Name: "follower"}, "--repo="+r.URL, "--root="+fRoot, "--link=link",
		"--period=100ms", "--username=x", "--password-file="+tokenFile)
	waitForLink(t, f, fLink, h)
	h2 := up.Commit(map[string]string{"README": "second\n"}, "second")
	waitForLink(t, f, fLink, h2)
	assertCompleteTree(t, up, fLink, h2)

	// A changed token file is read again: the old token stops working,
	// the new one works.
	token2 := token + "-rotated"
	authWriteFile(t, tokenFile, token2, 0o600)
	waitFor(t, syncDeadline, func() bool {
		c1, _ := status(bearer(token))
		c2, _ := status(bearer(token2))
		return c1 == http.StatusUnauthorized && c2 == http.StatusOK
	}, "the relay to accept the new token and refuse the old one")
	h3 := up.Commit(map[string]string{"README": "third\n"}, "third")
	waitForLink(t, f, fLink, h3)

	if v := metric(t, r.Metrics, "git_sync_serve_requests_total", "result", "unauthorized"); v < 5 {
		t.Errorf("git_sync_serve_requests_total{result=unauthorized} = %v, want at least 5", v)
	}
	for _, p := range []*Proc{r.Proc, f} {
		for _, tok := range []string{token, token2} {
			if strings.Contains(p.Logs(), tok) || strings.Contains(p.Stdout(), tok) {
				t.Errorf("%s logged the token", p.name)
			}
		}
	}
	noErrors(t, f)
}

// ---------------------------------------------------------------------------
// Airflow 3's GitDagBundle.

// TestRelayAirflowGitDagBundle runs against a relay the git commands
// Airflow 3's GitDagBundle runs against its repo_url: a bare clone, a fetch
// of the branches and tags into it (the refresh of the tracking ref), a
// fetch of a pinned earlier version by hash when the bare repository lacks
// it, and a tree of that version (a worktree of the bare repository; the
// provider's per-version local clone as well).
//
// The relay runs with --depth=0: from a relay with depth-1 history, a plain
// `git fetch` into an existing clone gets the new tip as a new shallow
// root and, without --update-shallow, git leaves the ref where it was
// ("rejected refs/heads/main because shallow roots are not allowed to be
// updated", exit 0), which the refresh would silently ignore.
//
// The pinned version is one the bare repository never saw: the upstream
// branch was force-pushed away from it before the bare clone, and the relay
// still keeps it (--keep-worktrees=2).
func TestRelayAirflowGitDagBundle(t *testing.T) {
	t.Parallel()
	up := gittest.NewRepo(t)
	version := func(i int) string {
		return up.Commit(map[string]string{
			"dags/etl.py":                 fmt.Sprintf("# version %d\n", i),
			fmt.Sprintf("dags/v%d.py", i): "pass\n",
		}, fmt.Sprintf("v%d", i))
	}
	v0 := version(0)
	v1 := version(1)
	r := startRelay(t, up.URL(), relayOpts{}, "--depth=0", "--keep-worktrees=2")
	waitForServed(t, r, v1)
	// A force-push: main moves from v1 to v2, a child of v0, in one step;
	// v1 is on no branch.
	up.Branch("rewrite", v0)
	up.Checkout("rewrite")
	v2 := version(2)
	up.Checkout(gittest.DefaultBranch)
	up.ResetHard(v2)
	waitForServed(t, r, v2)

	base := t.TempDir()
	bare := filepath.Join(base, "bare")
	refspecs := []string{"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"}
	mustGit(t, "", "clone", "--quiet", "--bare", r.URL, bare)
	if got := mustGit(t, bare, "rev-parse", gittest.DefaultBranch); got != v2 {
		t.Fatalf("bare clone: %s = %s, want %s", gittest.DefaultBranch, got, v2)
	}

	// The tracking repository and its refresh.
	tracking := filepath.Join(base, "tracking_repo")
	mustGit(t, "", "clone", "--quiet", bare, tracking)
	v3 := version(3)
	waitForServed(t, r, v3)
	mustGit(t, bare, append([]string{"fetch", "--quiet", "origin"}, refspecs...)...)
	if got := mustGit(t, bare, "rev-parse", gittest.DefaultBranch); got != v3 {
		t.Fatalf("bare repository after fetching the tracking ref: %s = %s, want %s", gittest.DefaultBranch, got, v3)
	}
	mustGit(t, tracking, "fetch", "--quiet", "origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
	mustGit(t, tracking, "reset", "--quiet", "--hard", "origin/"+gittest.DefaultBranch)
	assertCompleteTree(t, up, tracking, v3)

	// The pinned version.
	if _, _, err := relayGit(bare, nil, "cat-file", "-e", v1+"^{commit}"); err == nil {
		t.Fatalf("the bare clone already holds %s; the test needs it missing", v1)
	}
	mustGit(t, bare, "fetch", "--quiet", "origin", v1)
	if got := mustGit(t, bare, "cat-file", "-t", v1); got != "commit" {
		t.Fatalf("after fetching %s by hash: cat-file -t = %q", v1, got)
	}
	// The same over protocol v0, where upload-pack checks that a wanted
	// commit is a tip or reachable from one (a v2 upload-pack sends any
	// object it has).
	bare0 := filepath.Join(base, "bare-v0")
	mustGit(t, "", protoArgs("0", "clone", "--quiet", "--bare", r.URL, bare0)...)
	mustGit(t, bare0, protoArgs("0", "fetch", "--quiet", "origin", v1)...)
	wt := filepath.Join(base, "versions", v1)
	mustGit(t, bare, "worktree", "add", "--quiet", "--detach", wt, v1)
	assertCompleteTree(t, up, wt, v1)
	if got := mustGit(t, wt, "rev-parse", "HEAD"); got != v1 {
		t.Errorf("worktree of %s: HEAD = %s", v1, got)
	}
	clone := filepath.Join(base, "versions-clone", v1)
	mustGit(t, "", "clone", "--quiet", bare, clone)
	mustGit(t, clone, "reset", "--quiet", "--hard", v1)
	assertCompleteTree(t, up, clone, v1)
	noErrors(t, r.Proc)
}
