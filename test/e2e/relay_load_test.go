package e2e

// The relay under load (issue 13), at a size that runs well under a minute
// on a small CI machine: one relay fetching from an upstream served over
// smart HTTP, ten git-sync followers polling the relay every 200ms, an
// upstream commit every 2 s, and meanwhile, with --git-gc=always on the
// relay, eight clients cloning the repository (2,000 files) from the relay
// in a loop. The relay and the followers check out one directory (a
// sparse checkout): they fetch and serve every commit whole, but writing
// 2,000 files per commit in eleven processes would only measure the
// machine's file system. It checks that the upstream sees only the relay,
// that every follower publishes every commit the relay published, and that
// no clone fails while the relay fetches, publishes and collects garbage.
// Latencies are logged, not asserted (bench/ measures them).

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

const (
	relayLoadFollowers = 10
	relayLoadCloners   = 8
	relayLoadFiles     = 2000
	// relayLoadCommits updates are made; more, up to relayLoadMaxCommits,
	// when the relay has not yet published two of them while the clients
	// cloned (a slow, busy machine).
	relayLoadCommits    = 8
	relayLoadMaxCommits = 20
	relayLoadEvery      = 2 * time.Second
	// relayLoadUA is the User-Agent the relay's git sends upstream
	// (--git-config=http.userAgent), so that the upstream can tell the
	// relay's requests from anybody else's.
	relayLoadUA = "git-sync-relay-under-test"
)

// relayLoadRepo makes an upstream whose main holds files files of about
// 1 KiB in 30 directories, written with git fast-import and checked out.
func relayLoadRepo(t testing.TB, files int) *gittest.Repo {
	t.Helper()
	up := gittest.NewRepo(t)
	var b bytes.Buffer
	b.WriteString("commit refs/heads/main\ncommitter gittest <gittest@example.invalid> 1700000000 +0000\n")
	fastImportData(&b, "many files")
	filler := strings.Repeat("0123456789abcdef", 64)
	for i := range files {
		fmt.Fprintf(&b, "M 100644 inline %s\n", relayLoadPath(i))
		fastImportData(&b, fmt.Sprintf("file %d\n%s\n", i, filler))
	}
	cmd := exec.Command(realGit, "fast-import", "--quiet")
	cmd.Dir = up.Dir()
	cmd.Env = up.Environ()
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fast-import: %v\n%s", err, out)
	}
	up.ResetHard(gittest.DefaultBranch)
	return up
}

func relayLoadPath(i int) string { return fmt.Sprintf("d%02d/f%05d.txt", i%30, i) }

// relayLoadUpdate is the change of update i: one of the many files, and
// new random content in the same 40 files of 8 KiB. Each update grows the
// relay's object store by about as much as the rest of the repository
// holds, so that --git-gc=always repacks and prunes after most updates
// (it waits for a third of growth), and the blobs of every older commit
// become garbage that prune --expire=now removes.
func relayLoadUpdate(i int) map[string]string {
	rng := rand.New(rand.NewPCG(uint64(i), 13))
	files := map[string]string{relayLoadPath(i * 7): fmt.Sprintf("changed by update %d\n", i)}
	for f := range 40 {
		var b strings.Builder
		for range 8192 / 16 {
			fmt.Fprintf(&b, "%016x", rng.Uint64())
		}
		files[fmt.Sprintf("blobs/%02d.txt", f)] = b.String()
	}
	return files
}

// upstreamRequest is one request the upstream server received.
type upstreamRequest struct {
	Method, Path, Query, UA string
}

// countingProxy is an HTTP server in front of an upstream git server that
// records every request before passing it on (a gateProxy that lets
// everything through).
type countingProxy struct {
	*gateProxy
	mu  sync.Mutex
	req []upstreamRequest
}

func newCountingProxy(t testing.TB, target string) *countingProxy {
	t.Helper()
	p := &countingProxy{}
	p.gateProxy = newGateProxy(t, target, func(r *http.Request) bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.req = append(p.req, upstreamRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.UserAgent()})
		return true
	})
	return p
}

func (p *countingProxy) requests() []upstreamRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]upstreamRequest(nil), p.req...)
}

// relayNetworkCalls counts the git commands in a wrapper's call log that
// contact the remote: fetch, ls-remote (not ls-remote --get-url), and the
// remote helper git-sync keeps for its polls (remote-http, remote-https),
// each of which starts with one ref discovery.
func relayNetworkCalls(w wrapper) int {
	n := 0
	for _, c := range w.Calls() {
		f := strings.Fields(c)
		switch {
		case len(f) == 0:
		case f[0] == "fetch":
			n++
		case f[0] == "ls-remote" && !strings.Contains(c, "--get-url"):
			n++
		case strings.HasPrefix(f[0], "remote-http"):
			n++
		}
	}
	return n
}

// linkSampler polls links every pollInterval and records when it first
// saw each link name each hash. A follower's "published new commit" log
// line comes after its cleanup and gc, so the link itself is the record
// of when (and whether) it published.
type linkSampler struct {
	mu    sync.Mutex
	seen  map[string]map[string]time.Time // link -> hash -> first seen
	stop  chan struct{}
	done  chan struct{}
	links []string
}

func startLinkSampler(links []string) *linkSampler {
	s := &linkSampler{seen: map[string]map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{}), links: links}
	for _, l := range links {
		s.seen[l] = map[string]time.Time{}
	}
	go func() {
		defer close(s.done)
		for {
			now := time.Now()
			s.mu.Lock()
			for _, l := range s.links {
				if h := tryLinkHash(l); h != "" {
					if _, ok := s.seen[l][h]; !ok {
						s.seen[l][h] = now
					}
				}
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-time.After(pollInterval):
			}
		}
	}()
	return s
}

// Stop ends the sampling and returns what was seen.
func (s *linkSampler) Stop() map[string]map[string]time.Time {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	return s.seen
}

// durStats formats the minimum, median and maximum of ds.
func durStats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	return fmt.Sprintf("n=%d min %s median %s max %s", len(s), r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]))
}

func TestRelayLoad(t *testing.T) {
	// Not parallel: it loads both cores for half a minute, and the tests
	// beside it would miss their deadlines (go test runs it before the
	// parallel tests start).
	if testing.Short() {
		t.Skip("load test; skipped with -short")
	}
	began := time.Now()
	up := relayLoadRepo(t, relayLoadFiles)
	srv := gittest.HTTPServer(t, shapeServeDir(t, map[string]*gittest.Repo{"up": up}), gittest.HTTPOptions{})
	proxy := newCountingProxy(t, srv.BaseURL())
	w := gitWrapper(t, wrapperOpts{})
	sparse := filepath.Join(t.TempDir(), "sparse")
	mustWrite(t, sparse, "/d00/\n")
	r := startRelay(t, proxy.srv.URL+"/up", relayOpts{Metrics: true},
		"--git="+w.Path, "--git-gc=always", "--period=200ms", "--sparse-checkout-file="+sparse, "-v=1",
		"--git-config=http.userAgent:"+relayLoadUA)
	first := up.Head(gittest.DefaultBranch)
	waitForServed(t, r, first)
	upstream := []string{first}

	type loadFollower struct {
		*Proc
		link string
	}
	var fs []loadFollower
	for i := range relayLoadFollowers {
		ref := "HEAD"
		if i%2 == 1 {
			ref = gittest.DefaultBranch
		}
		root := newRoot(t)
		p := startWith(t, runOpts{Name: fmt.Sprintf("follower %d", i)}, "--repo="+r.URL, "--root="+root,
			"--link=link", "--ref="+ref, "--period=200ms", "--git-gc=auto", "--sparse-checkout-file="+sparse)
		fs = append(fs, loadFollower{p, filepath.Join(root, "link")})
	}
	for _, f := range fs {
		waitFor(t, 4*syncDeadline, func() bool {
			if !f.Running() {
				t.Fatalf("%s exited (code %d)\n%s", f.name, f.ExitCode(), tail(f.Logs(), 40))
			}
			return tryLinkHash(f.link) == first
		}, "%s to publish %s", f.name, first)
	}
	setup := time.Since(began)
	links := []string{r.Link}
	for _, f := range fs {
		links = append(links, f.link)
	}
	sampler := startLinkSampler(links)
	defer sampler.Stop()

	// Clients cloning from the relay in a loop until the updates end.
	// --no-checkout: the objects are what gc could take away mid-fetch;
	// writing 3,000 files out is client work that would only slow the
	// machine. git clone checks the connectivity of what it received.
	var (
		mu         sync.Mutex
		cloneTimes []time.Duration
		cloneErrs  []string
		perCloner  = make([]int, relayLoadCloners)
		stop       = make(chan struct{})
		wg         sync.WaitGroup
	)
	cloneBase := t.TempDir()
	for c := range relayLoadCloners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				dir := filepath.Join(cloneBase, fmt.Sprintf("c%d-%d", c, n))
				t0 := time.Now()
				_, _, err := relayGit("", nil, "clone", "--quiet", "--no-checkout", r.URL, dir)
				if err == nil {
					var out string
					out, _, err = relayGit(dir, nil, "ls-tree", "-r", "--name-only", "HEAD")
					if err == nil && strings.Count(out, "\n")+1 < relayLoadFiles {
						err = fmt.Errorf("clone %s: %d files at HEAD, want at least %d", dir, strings.Count(out, "\n")+1, relayLoadFiles)
					}
				}
				d := time.Since(t0)
				os.RemoveAll(dir)
				mu.Lock()
				if err != nil {
					cloneErrs = append(cloneErrs, err.Error())
				} else {
					cloneTimes = append(cloneTimes, d)
					perCloner[c]++
				}
				mu.Unlock()
			}
		}()
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	// The upstream's updates.
	tick := time.NewTicker(relayLoadEvery)
	for i := 1; i <= relayLoadMaxCommits; i++ {
		if i > relayLoadCommits {
			sampler.mu.Lock()
			relayUpdates := len(sampler.seen[r.Link]) - 1
			sampler.mu.Unlock()
			if relayUpdates >= 2 {
				break
			}
		}
		<-tick.C
		h, err := up.TryCommit(relayLoadUpdate(i), fmt.Sprintf("update %d", i))
		if err != nil {
			t.Fatal(err)
		}
		upstream = append(upstream, h)
	}
	tick.Stop()
	// The clients stop with the updates; the relay and the followers then
	// catch up with the last one.
	gcs := w.CountCalls("prune")
	close(stop)
	wg.Wait()
	last := upstream[len(upstream)-1]
	waitForServed(t, r, last)
	for _, f := range fs {
		waitForLink(t, f.Proc, f.link, last)
	}
	// gc never runs beside a request: while the clients cloned it was put
	// off, and it runs once they have stopped (the relay idles at
	// --period=200ms). Its safety under load is that no clone failed.
	putOff := strings.Count(r.Logs(), "garbage collection put off")
	if putOff > 0 {
		waitFor(t, 60*time.Second, func() bool { return w.CountCalls("prune") > gcs }, "the relay to collect the garbage it put off")
	}
	served := metric(t, r.Metrics, "git_sync_serve_requests_total", "result", "ok")
	busy := metric(t, r.Metrics, "git_sync_serve_requests_total", "result", "busy")
	sent := metric(t, r.Metrics, "git_sync_serve_bytes_sent_total")
	for _, f := range fs {
		if code := f.Stop(); code != 0 {
			t.Errorf("%s: exit %d after SIGTERM", f.name, code)
		}
	}
	if code := r.Stop(); code != 0 {
		t.Errorf("relay: exit %d after SIGTERM", code)
	}

	// No clone failed, and the clones ran during the updates.
	t.Logf("clones from the relay during the updates: %s; failed %d; per client %v", durStats(cloneTimes), len(cloneErrs), perCloner)
	if len(cloneErrs) > 0 {
		t.Errorf("%d clones from the relay failed; first: %s", len(cloneErrs), cloneErrs[0])
	}
	for c, n := range perCloner {
		if n == 0 {
			t.Errorf("client %d completed no clone during the updates", c)
		}
	}

	// The upstream saw the relay and nobody else: every request carries
	// the relay's User-Agent, and each git command the relay ran against
	// it made exactly one ref discovery (GET info/refs).
	reqs := proxy.requests()
	discoveries, posts := 0, 0
	for _, q := range reqs {
		if !strings.Contains(q.UA, relayLoadUA) {
			t.Errorf("upstream request %s %s?%s from %q, not the relay", q.Method, q.Path, q.Query, q.UA)
		}
		if q.Method == http.MethodGet && strings.HasSuffix(q.Path, "/info/refs") {
			discoveries++
		}
		if q.Method == http.MethodPost {
			posts++
		}
	}
	calls := relayNetworkCalls(w)
	if discoveries != calls {
		t.Errorf("upstream saw %d ref discoveries, the relay ran %d fetch/ls-remote commands", discoveries, calls)
	}

	// The relay published every upstream commit; every follower published
	// every commit the relay published.
	// The relay published every upstream commit it saw (its log says
	// which); every follower published every one of them (the link
	// named it at some point, or its log says so).
	seen := sampler.Stop()
	relayHashes := logHashes(r.Logs(), "published new commit")
	if strings.Join(relayHashes, " ") != strings.Join(upstream, " ") {
		t.Logf("relay published %d of the %d upstream commits: %v", len(relayHashes), len(upstream), relayHashes)
	}
	if len(relayHashes) < 3 {
		t.Errorf("relay published only %d commits during the test (%v); the followers' updates were not exercised", len(relayHashes), relayHashes)
	}
	var lags []time.Duration
	for _, f := range fs {
		logged := logHashes(f.Logs(), "published new commit")
		for _, h := range relayHashes {
			ft, sampled := seen[f.link][h]
			if !sampled && !slices.Contains(logged, h) {
				t.Errorf("%s never published %s, which the relay published (its link named %v; its log %v)", f.name, h, seen[f.link], logged)
				continue
			}
			if rt, ok := seen[r.Link][h]; ok && sampled && h != first {
				lags = append(lags, ft.Sub(rt))
			}
		}
		noErrors(t, f.Proc)
	}
	noErrors(t, r.Proc)

	t.Logf("setup (repo of %d files, relay, %d followers' first sync): %s", relayLoadFiles, relayLoadFollowers, setup.Round(time.Millisecond))
	t.Logf("follower link flip after the relay's link flip, per follower and commit (20ms sampling): %s", durStats(lags))
	t.Logf("upstream: %d requests (%d ref discoveries, %d POSTs) for %d commits; relay served %v requests ok (%v busy, %v bytes) to %d followers and %d cloning clients",
		len(reqs), discoveries, posts, len(upstream), served, busy, sent, relayLoadFollowers, relayLoadCloners)
	t.Logf("relay: %d garbage collections (repack, prune --expire=now) while the clients cloned (put off %d times), %d in all, for %d published commits",
		gcs, putOff, w.CountCalls("prune"), len(relayHashes))
	t.Logf("total %s", time.Since(began).Round(time.Millisecond))
}
