package main

// scenarioRelay (issue 13): one git-sync (the relay) fetches from the
// benchmark's upstream HTTP server and serves what it published over smart
// HTTP (--serve-bind); followers are git-sync daemons whose --repo is the
// relay. It measures
//
//   - the relay's CPU (its whole process tree: git-sync and every git it
//     runs to answer) per idle follower poll, and its RSS, against the
//     floor: one `git ls-remote` of the same repository served by `git
//     http-backend` behind Go's CGI handler, the serving process tree's CPU
//     per ls-remote;
//   - the relay's CPU per plain `git clone` of the medium repository, with
//     the same clone (depth 1, what the relay holds) served by http-backend
//     for reference;
//   - the upstream requests per upstream change with 1, 10 and 50
//     followers, counted at the upstream server;
//   - a load run: 10 followers, an upstream commit every 2 s, the delay
//     from the relay's publish to each follower's, and, with the relay at
//     --git-gc=always, concurrent clones of the medium repository during
//     the updates (failures counted).

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// targetRelayPollCPU bounds the relay's CPU per idle follower poll, as a
// multiple of one `git ls-remote` served by git http-backend (issue 13).
const targetRelayPollCPU = 2.0

// targetRelayFollowerDelay bounds the time from the relay's publish of a
// commit to a follower's (seconds), the load test's bound in issue 13.
const targetRelayFollowerDelay = 2.0

// relayRepoPath is the path of the relay's URL; the relay ignores it (one
// repository per relay), the docs use the same.
const relayRepoPath = "/repo.git"

// Metric series of the relay's /metrics (relay-design.md).
const (
	mServeOK    = `git_sync_serve_requests_total{result="ok"}`
	mServeBusy  = `git_sync_serve_requests_total{result="busy"}`
	mServeError = `git_sync_serve_requests_total{result="error"}`
	mServeBytes = `git_sync_serve_bytes_sent_total`
)

// relayOptions are the relay scenario's settings.
type relayOptions struct {
	followers       int           // followers polling during the idle windows
	period          time.Duration // their --period
	fanout          []int         // follower counts for upstream requests per change
	fanoutPeriod    time.Duration // followers' --period in that part
	changes         int           // upstream changes measured per follower count
	loadFollowers   int
	loadPeriod      time.Duration // followers' --period in the load run
	loadInterval    time.Duration // between upstream commits in the load run
	loadDuration    time.Duration
	loadClones      int
	loadSparse      bool
	loadGC          string // the relay's --git-gc in the load run
	loadRelaySparse bool   // the relay itself checks out one directory

	parts map[string]bool // which parts run: poll (with clones), fanout, load

	fanoutList, partList string
}

// addRelayFlags registers the relay scenario's flags on fs.
func addRelayFlags(fs *flag.FlagSet, o *relayOptions) {
	fs.StringVar(&o.partList, "relay-parts", "poll,fanout,load", "relay scenario: parts to run: poll (idle polls and clones), fanout (upstream requests per change), load")
	fs.IntVar(&o.followers, "relay-followers", 3, "relay scenario: followers polling the relay during the idle-poll windows")
	fs.DurationVar(&o.period, "relay-period", 100*time.Millisecond, "relay scenario: followers' --period during the idle-poll windows")
	fs.StringVar(&o.fanoutList, "relay-fanout", "1,10,50", "relay scenario: follower counts for upstream requests per change")
	fs.DurationVar(&o.fanoutPeriod, "relay-fanout-period", time.Second, "relay scenario: followers' --period while upstream requests per change are counted")
	fs.IntVar(&o.changes, "relay-changes", 0, "relay scenario: upstream changes per follower count (default 7, quick 3)")
	fs.IntVar(&o.loadFollowers, "relay-load-followers", 10, "relay scenario: followers in the load run")
	fs.DurationVar(&o.loadPeriod, "relay-load-period", 250*time.Millisecond, "relay scenario: followers' --period in the load run")
	fs.DurationVar(&o.loadInterval, "relay-load-interval", 2*time.Second, "relay scenario: time between upstream commits in the load run")
	fs.DurationVar(&o.loadDuration, "relay-load-duration", 0, "relay scenario: length of the load run (default 60s, quick 20s)")
	fs.IntVar(&o.loadClones, "relay-load-clones", 20, "relay scenario: concurrent clones of the medium repository during the load run")
	fs.StringVar(&o.loadGC, "relay-load-gc", "always", "relay scenario: the relay's --git-gc in the load run")
	fs.BoolVar(&o.loadRelaySparse, "relay-load-relay-sparse", false, "relay scenario: the load run's relay checks out one top-level directory too (nothing reads a relay's files; what it serves is the repository)")
	fs.BoolVar(&o.loadSparse, "relay-load-sparse", true, "relay scenario: load-run followers check out one top-level directory (--sparse-checkout-file); 2 cores cannot check out 20,000 files ten times every 2 s")
}

// finish checks the relay flags and fills in the defaults that depend on
// -quick.
func (o *relayOptions) finish(quick bool) error {
	o.fanout, o.parts = nil, map[string]bool{}
	for _, p := range splitList(o.partList) {
		switch p {
		case "poll", "fanout", "load":
			o.parts[p] = true
		default:
			return fmt.Errorf("unknown -relay-parts entry %q (want poll, fanout or load)", p)
		}
	}
	for _, s := range splitList(o.fanoutList) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("bad -relay-fanout entry %q", s)
		}
		o.fanout = append(o.fanout, n)
	}
	if o.followers < 1 || o.loadFollowers < 1 || o.loadClones < 0 {
		return fmt.Errorf("-relay-followers and -relay-load-followers must be at least 1, -relay-load-clones at least 0")
	}
	switch o.loadGC {
	case "off", "auto", "always", "aggressive":
	default:
		return fmt.Errorf("bad -relay-load-gc %q (want off, auto, always or aggressive)", o.loadGC)
	}
	if o.changes == 0 {
		o.changes = 7
		if quick {
			o.changes = 3
		}
	}
	if o.loadDuration == 0 {
		o.loadDuration = 60 * time.Second
		if quick {
			o.loadDuration = 20 * time.Second
		}
	}
	return nil
}

// scenarioRelay runs the four parts of the relay scenario.
func (b *bench) scenarioRelay(ctx context.Context) error {
	parts := b.opt.relay.parts
	if parts["poll"] {
		if err := b.relayPollAndClone(ctx); err != nil {
			return fmt.Errorf("idle polls and clones: %w", err)
		}
	}
	if parts["fanout"] {
		if err := b.relayFanout(ctx); err != nil {
			return fmt.Errorf("upstream requests per change: %w", err)
		}
	}
	if parts["load"] {
		if err := b.relayLoad(ctx); err != nil {
			return fmt.Errorf("load run: %w", err)
		}
	}
	return nil
}

// startRelay starts a relay: a git-sync daemon syncing upstreamURL at
// --depth=1 that also serves its repository on a free loopback port. It
// returns the daemon and the URL followers use.
func (b *bench) startRelay(ctx context.Context, upstreamURL string, period time.Duration, gc string, extra ...string) (*daemon, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	bind := "127.0.0.1:" + strconv.Itoa(port)
	d, err := b.startDaemon(ctx, daemonConfig{URL: upstreamURL, Root: b.newRoot("relay"), Depth: 1, Period: period, GC: gc,
		Extra: append([]string{"--serve-bind=" + bind}, extra...)})
	if err != nil {
		return nil, "", err
	}
	return d, "http://" + bind + relayRepoPath, nil
}

// startFollowers starts n git-sync daemons following url.
func (b *bench) startFollowers(ctx context.Context, n int, url string, period time.Duration, extra ...string) ([]*daemon, error) {
	var out []*daemon
	for i := 0; i < n; i++ {
		d, err := b.startDaemon(ctx, daemonConfig{URL: url, Root: b.newRoot("follower"), Depth: 1, Period: period, Extra: extra})
		if err != nil {
			b.stopAll(out)
			return nil, fmt.Errorf("follower %d: %w", i+1, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func (b *bench) stopAll(ds []*daemon) {
	for _, d := range ds {
		b.stopDaemon(d)
		os.RemoveAll(d.Root)
	}
}

// sumMetrics scrapes every daemon and adds up each series.
func sumMetrics(ctx context.Context, ds []*daemon) (promMetrics, error) {
	sum := promMetrics{}
	for _, d := range ds {
		m, err := d.metrics(ctx)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			sum[k] += v
		}
	}
	return sum, nil
}

func signalAll(ds []*daemon, sig syscall.Signal) error {
	for _, d := range ds {
		if err := d.signal(sig); err != nil {
			return err
		}
	}
	return nil
}

// backendChildEnv, when set in the environment, makes the benchmark binary
// run as a standalone smart-HTTP server (git http-backend behind Go's CGI
// handler, the same server.go the runner uses) for the repositories under
// the directory it names. The relay scenario runs its floor server so, as a
// process of its own, so that the serving side's CPU can be metered like
// the relay's: its whole process tree, in a cgroup of its own.
const backendChildEnv = "GITSYNC_BENCH_HTTP_BACKEND_ROOT"

// runBackendChild is the child's main: it prints the server's base URL on
// stdout and serves until stdin is closed.
func runBackendChild(root string) int {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, backendChildEnv+"=") {
			env = append(env, kv)
		}
	}
	execPath, err := runGit(context.Background(), env, "", "--exec-path")
	if err != nil {
		fmt.Fprintln(os.Stderr, "http-backend child:", err)
		return 1
	}
	s, err := startGitServer(root, execPath, env, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "http-backend child:", err)
		return 1
	}
	fmt.Println(s.URL)
	io.Copy(io.Discard, os.Stdin)
	s.Close()
	return 0
}

// backendProc is a running backend child.
type backendProc struct {
	URL   string
	Meter *meter
	cmd   *exec.Cmd
	stdin io.Closer
}

// startBackendChild starts the benchmark binary as a smart-HTTP server for
// the repositories under root, metered.
func (b *bench) startBackendChild(ctx context.Context, root string) (*backendProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	errlog, err := os.Create(filepath.Join(b.work, "http-backend-child.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(append([]string(nil), b.env...), backendChildEnv+"="+root)
	cmd.Stderr = errlog
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &backendProc{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		p.close()
		return nil, fmt.Errorf("http-backend child did not start: %v (see %s)", err, errlog.Name())
	}
	p.URL = strings.TrimSpace(line)
	p.Meter = b.newMeter(cmd.Process.Pid)
	return p, nil
}

func (p *backendProc) close() {
	p.stdin.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	if p.Meter != nil {
		p.Meter.close()
	}
}

// relayPollAndClone: a relay of the medium repository with followers
// polling it at a short period, against git ls-remote served by
// http-backend; then clones from the relay against the same clone served
// by http-backend.
func (b *bench) relayPollAndClone(ctx context.Context) error {
	const size = "medium"
	o := b.opt.relay
	u, err := b.newUpstream(ctx, size)
	if err != nil {
		return err
	}
	b.logf("relay: %s repo over http, relay --period=1h, %d followers at --period=%v, windows of %v", size, o.followers, o.period, b.opt.idleWindow)
	relay, relayURL, err := b.startRelay(ctx, b.repoURL(u, "http"), time.Hour, "")
	if err != nil {
		return err
	}
	defer b.stopDaemon(relay)
	floor, err := b.startBackendChild(ctx, b.serve)
	if err != nil {
		return err
	}
	defer floor.close()
	floorURL := floor.URL + "/" + filepath.Base(u.Dir)
	followers, err := b.startFollowers(ctx, o.followers, relayURL, o.period)
	if err != nil {
		return err
	}
	defer b.stopAll(followers)
	for _, f := range followers {
		if _, err := f.waitPolls(ctx, 3, time.Minute); err != nil {
			return err
		}
	}

	var gsCPU, gsSelf, gsReqs, gsBytes, rss, flCPU, flClient []float64
	var mem procMem
	var polls, fetches, errs, busy float64
	relayWindow := func() error {
		if err := signalAll(followers, syscall.SIGCONT); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		f0, err := sumMetrics(ctx, followers)
		if err != nil {
			return err
		}
		r0, err := relay.metrics(ctx)
		if err != nil {
			return err
		}
		c0 := relay.Meter.sample()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(b.opt.idleWindow):
		}
		c1 := relay.Meter.sample()
		r1, err := relay.metrics(ctx)
		if err != nil {
			return err
		}
		f1, err := sumMetrics(ctx, followers)
		if err != nil {
			return err
		}
		if err := signalAll(followers, syscall.SIGSTOP); err != nil {
			return err
		}
		mem = readProcMem(relay.PID)
		rss = append(rss, float64(mem.RSS)/1024)
		n := f1[mNoop] - f0[mNoop]
		if n < 1 {
			return fmt.Errorf("no follower poll in %v", b.opt.idleWindow)
		}
		polls += n
		fetches += f1[mFetch] - f0[mFetch]
		errs += f1[mError] - f0[mError]
		busy += r1[mServeBusy] - r0[mServeBusy]
		dc := c1.sub(c0)
		gsCPU = append(gsCPU, ms(dc.Total)/n)
		gsSelf = append(gsSelf, ms(dc.Self)/n)
		gsReqs = append(gsReqs, (r1[mServeOK]-r0[mServeOK])/n)
		gsBytes = append(gsBytes, (r1[mServeBytes]-r0[mServeBytes])/n)
		return nil
	}
	floorWindow := func() error {
		if _, err := floor.Meter.waitQuiet(ctx, 50*time.Millisecond, time.Minute); err != nil {
			return err
		}
		c0 := floor.Meter.sample()
		var client time.Duration
		// One call per period, like a follower: back-to-back calls would
		// run with warmer caches than polls do.
		next := time.Now()
		for k := 0; k < b.opt.floorCalls; k++ {
			time.Sleep(time.Until(next))
			m, err := runMeasured(ctx, b.env, b.work, nil, nil, "git", "ls-remote", floorURL, fixtureBranch)
			if err != nil {
				return err
			}
			client += m.CPU
			next = time.Now().Add(o.period)
		}
		if _, err := floor.Meter.waitQuiet(ctx, 50*time.Millisecond, time.Minute); err != nil {
			return err
		}
		c1 := floor.Meter.sample()
		n := float64(b.opt.floorCalls)
		flCPU = append(flCPU, ms(c1.sub(c0).Total)/n)
		flClient = append(flClient, ms(client)/n)
		return nil
	}
	if err := signalAll(followers, syscall.SIGSTOP); err != nil {
		return err
	}
	if err := floorWindow(); err != nil { // warm-up
		return err
	}
	flCPU, flClient = nil, nil
	for i := 0; i < b.opt.reps; i++ {
		steps := []func() error{relayWindow, floorWindow}
		if i%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, s := range steps {
			if err := s(); err != nil {
				return err
			}
		}
	}
	signalAll(followers, syscall.SIGCONT)
	b.stopAll(followers)

	const tr = "relay"
	note := fmt.Sprintf("%d followers at --period=%v, windows of %v; %.0f follower polls measured; %.0f follower fetches and %.0f errors during them, %.0f requests answered 503. Floor: the serving process (Go's CGI handler running git http-backend, which runs git upload-pack) per `git ls-remote URL main` (protocol v2), one call per period; the client's own CPU, not counted on either side, was %.2f ms per ls-remote",
		o.followers, o.period, b.opt.idleWindow, polls, fetches, errs, busy, median(flClient))
	b.addRatio("relay", size, tr, "relay CPU per idle follower poll", "ms", gsCPU, flCPU, targetRelayPollCPU, 0, note)
	b.addAbs("relay", size, tr, "  of which git-sync itself", "ms", gsSelf, 0, "the relay's git-sync process alone; the rest is the git upload-pack it runs per request")
	b.addAbs("relay", size, tr, "requests per follower poll", "", gsReqs, 0, "requests the relay answered 200 (git_sync_serve_requests_total{result=\"ok\"}) per follower poll")
	b.addAbs("relay", size, tr, "bytes sent per follower poll", "B", gsBytes, 0, "git_sync_serve_bytes_sent_total per follower poll")
	b.addCheck("relay", size, tr, "follower fetches during idle polls", "", []float64{fetches}, "= 0", fetches == 0, "")
	b.addAbs("relay", size, tr, "relay RSS while followers poll", "MiB", rss, 0, "git-sync process only, end of each window; last: "+mem.String())

	// Clones: a plain clone from the relay, which holds depth-1 history,
	// against a depth-1 clone of the upstream served by http-backend (the
	// same commit and tree), alternating; the server side is metered.
	head := readLinkHash(relay.Root)
	clone := func(m *meter, args ...string) (measurement, error) {
		dir := b.newRoot("clone")
		defer os.RemoveAll(dir)
		if _, err := m.waitQuiet(ctx, 100*time.Millisecond, time.Minute); err != nil {
			return measurement{}, err
		}
		c0 := m.sample()
		cm, err := runMeasured(ctx, b.env, b.work, nil, nil, "git", append(append([]string{"clone", "-q"}, args...), dir)...)
		if err != nil {
			return measurement{}, err
		}
		if _, err := m.waitQuiet(ctx, 100*time.Millisecond, time.Minute); err != nil {
			return measurement{}, err
		}
		c1 := m.sample()
		if got, _ := runGit(ctx, b.env, dir, "rev-parse", "HEAD"); got != head {
			return measurement{}, fmt.Errorf("clone has HEAD %q, want %s", got, head)
		}
		return measurement{CPU: c1.Total - c0.Total, Wall: cm.Wall, Self: cm.CPU}, nil
	}
	b.logf("relay: clones of the %s repo, relay against http-backend", size)
	r0, err := relay.metrics(ctx)
	if err != nil {
		return err
	}
	gsm, flm, err := alternate(b.opt.reps,
		func() (measurement, error) { return clone(relay.Meter, relayURL) },
		func() (measurement, error) { return clone(floor.Meter, "--depth=1", floorURL) })
	if err != nil {
		return err
	}
	r1, err := relay.metrics(ctx)
	if err != nil {
		return err
	}
	clones := float64(len(gsm) + 1) // with the warm-up
	cmem := readProcMem(relay.PID)
	clientCPU := func(ms []measurement) []float64 {
		out := make([]float64, len(ms))
		for i, m := range ms {
			out[i] = float64(m.Self) / float64(time.Millisecond)
		}
		return out
	}
	b.addRatio("relay", size, tr, "relay CPU per clone", "ms", cpuMs(gsm), cpuMs(flm), 0, 0,
		fmt.Sprintf("server side only: `git clone URL` from the relay (--depth=1, so it serves one commit) against `git clone --depth=1 URL` served by http-backend, the same commit and tree. The cloning client's CPU: %.0f ms from the relay, %.0f ms from http-backend", median(clientCPU(gsm)), median(clientCPU(flm))))
	b.addRatio("relay", size, tr, "clone wall", "ms", wallMs(gsm), wallMs(flm), 0, 0, "")
	b.addAbs("relay", size, tr, "bytes sent per clone", "B", []float64{(r1[mServeBytes] - r0[mServeBytes]) / clones}, 0, "")
	b.addAbs("relay", size, tr, "relay RSS after the clones", "MiB", []float64{float64(cmem.RSS) / 1024}, 0, "git-sync process only: "+cmem.String())
	return nil
}

// relayFanout: upstream requests per upstream change with 1, 10 and 50
// followers. The relay runs with --period=1h and --sync-on-signal, and is
// signalled once per change, so that every upstream request from the
// signal until the last follower has published belongs to that change (a polling relay adds its own idle polls, one
// ls-remote per period whatever the number of followers).
func (b *bench) relayFanout(ctx context.Context) error {
	const size = "small"
	o := b.opt.relay
	var medians []float64
	var parts []string
	for _, n := range o.fanout {
		u, err := b.newUpstream(ctx, size)
		if err != nil {
			return err
		}
		b.logf("relay: upstream requests per change, %d followers at --period=%v, %d changes", n, o.fanoutPeriod, o.changes)
		relay, relayURL, err := b.startRelay(ctx, b.repoURL(u, "http"), time.Hour, "", "--sync-on-signal=SIGHUP")
		if err != nil {
			return err
		}
		s0 := b.server.Counts()
		followers, err := b.startFollowers(ctx, n, relayURL, o.fanoutPeriod)
		if err != nil {
			b.stopDaemon(relay)
			return err
		}
		startReqs := b.server.Counts().sub(s0).Requests
		var reqs, delays []float64
		err = func() error {
			for k := 0; k <= o.changes; k++ { // change 0 is the warm-up
				hash, err := u.Commit("relay-fanout.txt", fmt.Sprintf("change %d\n", k))
				if err != nil {
					return err
				}
				s0 := b.server.Counts()
				if err := relay.signal(syscall.SIGHUP); err != nil {
					return err
				}
				pub, err := waitLink(ctx, relay.Root, hash, time.Minute)
				if err != nil {
					return err
				}
				last := pub
				for _, f := range followers {
					at, err := waitLink(ctx, f.Root, hash, 2*time.Minute)
					if err != nil {
						return err
					}
					last = maxTime(last, at)
				}
				// The relay's fetch came before its publish: every
				// upstream request of this change has been counted.
				if k > 0 {
					reqs = append(reqs, float64(b.server.Counts().sub(s0).Requests))
					delays = append(delays, last.Sub(pub).Seconds())
				}
			}
			return nil
		}()
		fm, merr := sumMetrics(ctx, followers)
		b.stopAll(followers)
		b.stopDaemon(relay)
		if err != nil {
			return fmt.Errorf("%d followers: %w", n, err)
		}
		if merr != nil {
			return merr
		}
		label := fmt.Sprintf("%d follower", n)
		if n > 1 {
			label += "s"
		}
		b.addAbs("relay", size, "relay", "upstream requests per change, "+label, "", reqs, 0,
			fmt.Sprintf("requests at the upstream server from the relay's signal until every follower has published the change; per change: %s. While the %s cloned from the relay: %d upstream requests. Relay publish to the last follower's (followers at --period=%v): median %.2f s, max %.2f s; follower sync errors: %.0f",
				formatSamples(reqs, ""), label, startReqs, o.fanoutPeriod, median(delays), maxOf(delays), fm[mError]))
		medians = append(medians, median(reqs))
		parts = append(parts, fmt.Sprintf("%d: %s", n, formatValue(median(reqs), "")))
	}
	same := len(medians) > 0
	for _, m := range medians {
		same = same && m == medians[0]
	}
	b.addCheck("relay", size, "relay", "upstream requests per change across follower counts", "", medians,
		"independent of the count", same, "median per change for each follower count: "+strings.Join(parts, ", "))
	return nil
}

// sumCPU adds up the meters of ds.
func sumCPU(ds []*daemon) cpuSample {
	var s cpuSample
	for _, d := range ds {
		c := d.Meter.sample()
		s.Total += c.Total
		s.Self += c.Self
	}
	return s
}

func maxTime(a, t time.Time) time.Time {
	if t.After(a) {
		return t
	}
	return a
}

// sampleEvery calls f every d, on a goroutine of its own, until the
// returned stop is called; stop waits for the call in progress and may be
// called more than once.
func sampleEvery(d time.Duration, f func(now time.Time)) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(d)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-tick.C:
				f(now)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

// publishLog records when each of a set of roots first published each
// hash, by reading their links every 2 ms.
type publishLog struct {
	mu    sync.Mutex
	seen  []map[string]time.Time // per root: hash -> first seen
	close func()
}

func watchPublishes(roots []string) *publishLog {
	p := &publishLog{}
	for range roots {
		p.seen = append(p.seen, map[string]time.Time{})
	}
	p.close = sampleEvery(2*time.Millisecond, func(now time.Time) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, r := range roots {
			if h := readLinkHash(r); h != "" {
				if _, ok := p.seen[i][h]; !ok {
					p.seen[i][h] = now
				}
			}
		}
	})
	return p
}

// at returns when root i first published hash.
func (p *publishLog) at(i int, hash string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.seen[i][hash]
	return t, ok
}

// treeRSS tracks the peak of the summed VmRSS of every process in a
// meter's tree.
type treeRSS struct {
	peak int64 // KiB
	stop func()
}

func watchTreeRSS(m *meter) *treeRSS {
	t := &treeRSS{}
	t.stop = sampleEvery(100*time.Millisecond, func(time.Time) {
		pids := []int{m.pid}
		if m.cg != nil {
			pids = m.cg.pids()
		}
		var sum int64
		for _, p := range pids {
			sum += readProcMem(p).RSS
		}
		t.peak = max(t.peak, sum)
	})
	return t
}

// close stops sampling and returns the peak in KiB.
func (t *treeRSS) close() int64 {
	t.stop()
	return t.peak
}

// cloneResult is one clone of the load run.
type cloneResult struct {
	start, end time.Time
	err        error
}

// relayLoad: 1 relay of the medium repository at --git-gc=always, 10
// followers, an upstream commit every 2 s; the delay from the relay's
// publish to each follower's, and concurrent clones from the relay during
// the updates.
func (b *bench) relayLoad(ctx context.Context) error {
	const size = "medium"
	o := b.opt.relay
	u, err := b.newUpstream(ctx, size)
	if err != nil {
		return err
	}
	b.logf("relay: load run, %s repo, relay --git-gc=%s --period=%v, %d followers at --period=%v (sparse: %v), a commit every %v for %v, %d concurrent clones",
		size, o.loadGC, o.loadPeriod, o.loadFollowers, o.loadPeriod, o.loadSparse, o.loadInterval, o.loadDuration, o.loadClones)
	sparse := filepath.Join(b.work, "relay-sparse")
	if err := os.WriteFile(sparse, []byte("/pkg00/\n"), 0o644); err != nil {
		return err
	}
	var relayExtra, extra []string
	if o.loadRelaySparse {
		relayExtra = append(relayExtra, "--sparse-checkout-file="+sparse)
	}
	if o.loadSparse {
		extra = append(extra, "--sparse-checkout-file="+sparse)
	}
	relay, relayURL, err := b.startRelay(ctx, b.repoURL(u, "http"), o.loadPeriod, o.loadGC, relayExtra...)
	if err != nil {
		return err
	}
	defer b.stopDaemon(relay)
	followers, err := b.startFollowers(ctx, o.loadFollowers, relayURL, o.loadPeriod, extra...)
	if err != nil {
		return err
	}
	defer b.stopAll(followers)
	for _, f := range followers {
		if _, err := f.Meter.waitQuiet(ctx, 100*time.Millisecond, 5*time.Minute); err != nil {
			return err
		}
	}
	roots := []string{relay.Root}
	for _, f := range followers {
		roots = append(roots, f.Root)
	}
	cloneDirs := make([]string, o.loadClones)
	for i := range cloneDirs {
		cloneDirs[i] = b.newRoot("load-clone")
	}
	defer func() {
		for _, d := range cloneDirs {
			os.RemoveAll(d)
		}
	}()
	r0, err := relay.metrics(ctx)
	if err != nil {
		return err
	}
	f0, err := sumMetrics(ctx, followers)
	if err != nil {
		return err
	}
	c0, fc0 := relay.Meter.sample(), sumCPU(followers)
	log := watchPublishes(roots)
	defer log.close()
	treeRSS := watchTreeRSS(relay.Meter)
	defer treeRSS.close()

	// The clones start a third of the way into the run, all at once.
	var wg sync.WaitGroup
	results := make([]cloneResult, o.loadClones)
	cloneAt := time.Now().Add(o.loadDuration / 3)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			select {
			case <-ctx.Done():
				results[i].err = ctx.Err()
				return
			case <-time.After(time.Until(cloneAt)):
			}
			results[i].start = time.Now()
			_, results[i].err = runMeasured(ctx, b.env, b.work, nil, nil, "git", "clone", "-q", "--bare", relayURL, cloneDirs[i])
			results[i].end = time.Now()
		}(i)
	}
	var hashes []string
	var commitTimes []time.Time
	start := time.Now()
	for k := 0; ; k++ {
		at := start.Add(time.Duration(k) * o.loadInterval)
		if at.Sub(start) >= o.loadDuration {
			break
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		case <-time.After(time.Until(at)):
		}
		h, err := u.Commit("relay-load.txt", fmt.Sprintf("load commit %d\n", k))
		if err != nil {
			wg.Wait()
			return err
		}
		hashes = append(hashes, h)
		commitTimes = append(commitTimes, time.Now())
	}
	final := hashes[len(hashes)-1]
	for _, r := range roots {
		if _, err := waitLink(ctx, r, final, 2*time.Minute); err != nil {
			wg.Wait()
			return err
		}
	}
	wg.Wait()
	c1, fc1 := relay.Meter.sample(), sumCPU(followers)
	r1, err := relay.metrics(ctx)
	if err != nil {
		return err
	}
	f1, err := sumMetrics(ctx, followers)
	if err != nil {
		return err
	}
	hwm := readProcMem(relay.PID)

	// Per commit the relay published: each follower's delay after it.
	var delays, duringClones, beforeClones, relayLag []float64
	relayMissed, missed := 0, 0
	var cloneStart, cloneEnd time.Time
	for _, r := range results {
		if cloneStart.IsZero() || r.start.Before(cloneStart) {
			cloneStart = r.start
		}
		cloneEnd = maxTime(cloneEnd, r.end)
	}
	for k, h := range hashes {
		pub, ok := log.at(0, h)
		if !ok {
			relayMissed++
			b.logf("  commit %d %s: never published by the relay", k, h[:12])
			continue
		}
		relayLag = append(relayLag, pub.Sub(commitTimes[k]).Seconds())
		var these []float64
		for i := range followers {
			at, ok := log.at(i+1, h)
			if !ok {
				missed++
				continue
			}
			d := at.Sub(pub).Seconds()
			delays = append(delays, d)
			these = append(these, d)
			switch {
			case pub.Before(cloneStart):
				beforeClones = append(beforeClones, d)
			case pub.Before(cloneEnd):
				duringClones = append(duringClones, d)
			}
		}
		b.logf("  commit %d %s: relay published %s after the commit; followers %s after the relay", k, h[:12],
			formatValue(pub.Sub(commitTimes[k]).Seconds(), "s"), formatSamples(these, "s"))
	}
	var failures []string
	var cloneWall []float64
	for i, r := range results {
		if r.err != nil {
			failures = append(failures, fmt.Sprintf("clone %d: %v", i+1, r.err))
			continue
		}
		cloneWall = append(cloneWall, r.end.Sub(r.start).Seconds())
	}
	sort.Float64s(cloneWall)
	const tr = "relay"
	scenario := "relay load"
	if o.loadGC != "always" {
		scenario += ", --git-gc=" + o.loadGC
	}
	if o.loadRelaySparse {
		scenario += ", sparse relay"
	}
	runNote := fmt.Sprintf("%d commits, one every %v; relay --git-gc=%s --period=%v, %d followers at --period=%v", len(hashes), o.loadInterval, o.loadGC, o.loadPeriod, o.loadFollowers, o.loadPeriod)
	if o.loadSparse {
		runNote += " checking out one top-level directory of 40 (--sparse-checkout-file)"
	}
	if o.loadRelaySparse {
		runNote += "; the relay checks out the same directory only"
	}
	b.addAbs(scenario, size, tr, "relay publish to follower publish, median", "s", delays, 0,
		fmt.Sprintf("%s; %d (commit, follower) pairs; the relay published %d of %d commits (a commit replaced upstream before the relay polled is never published)", runNote, len(delays), len(hashes)-relayMissed, len(hashes)))
	b.addAbs(scenario, size, tr, "relay publish to follower publish, max", "s", []float64{maxOf(delays)}, targetRelayFollowerDelay,
		fmt.Sprintf("commits the relay published before the clones started (%d pairs): median %s, max %s; while they ran (%d pairs): median %s, max %s",
			len(beforeClones), formatValue(median(beforeClones), "s"), formatValue(maxOf(beforeClones), "s"),
			len(duringClones), formatValue(median(duringClones), "s"), formatValue(maxOf(duringClones), "s")))
	b.addAbs(scenario, size, tr, "upstream commit to relay publish, max", "s", []float64{maxOf(relayLag)}, 0,
		fmt.Sprintf("relay --period=%v; per published commit: %s", o.loadPeriod, formatSamples(relayLag, "s")))
	b.addCheck(scenario, size, tr, "commits the relay published that a follower never did", "", []float64{float64(missed)}, "= 0", missed == 0, "")
	note := fmt.Sprintf("%d concurrent `git clone --bare` from the relay, started %v into the run", o.loadClones, o.loadDuration/3)
	if len(cloneWall) > 0 {
		note += fmt.Sprintf("; wall per clone %s to %s", formatValue(cloneWall[0], "s"), formatValue(cloneWall[len(cloneWall)-1], "s"))
	}
	if !cloneStart.IsZero() {
		note += fmt.Sprintf(", all done %s after the first started", formatValue(cloneEnd.Sub(cloneStart).Seconds(), "s"))
	}
	if len(failures) > 0 {
		if len(failures) > 3 {
			failures = append(failures[:3], fmt.Sprintf("and %d more", len(failures)-3))
		}
		note += "; " + strings.Join(failures, "; ")
	}
	b.addCheck(scenario, size, tr, "failed clones during the updates", "", []float64{float64(o.loadClones - len(cloneWall))}, "= 0", len(cloneWall) == o.loadClones, note)
	syncErrs := r1[mError] - r0[mError]
	ferrs := f1[mError] - f0[mError]
	b.addCheck(scenario, size, tr, "sync errors (relay + followers)", "", []float64{syncErrs + ferrs}, "= 0", syncErrs+ferrs == 0,
		fmt.Sprintf("relay %.0f, followers %.0f; relay requests: %.0f ok, %.0f busy (503), %.0f error", syncErrs, ferrs,
			r1[mServeOK]-r0[mServeOK], r1[mServeBusy]-r0[mServeBusy], r1[mServeError]-r0[mServeError]))
	secs := time.Since(start).Seconds()
	b.addAbs(scenario, size, tr, "relay CPU over the run", "ms", []float64{ms(c1.sub(c0).Total)}, 0,
		fmt.Sprintf("%.1f s of run; %.0f%% of one core; git-sync itself %.0f ms", secs, 100*ms(c1.sub(c0).Total)/1000/secs, ms(c1.sub(c0).Self)))
	b.addAbs(scenario, size, tr, "followers' CPU over the run", "ms", []float64{ms(fc1.sub(fc0).Total)}, 0,
		fmt.Sprintf("all %d followers together: %.0f%% of one core (the machine has %d)", o.loadFollowers, 100*ms(fc1.sub(fc0).Total)/1000/secs, runtime.NumCPU()))
	b.addAbs(scenario, size, tr, "relay peak RSS", "MiB", []float64{float64(hwm.HWM) / 1024}, 0, "git-sync process only (VmHWM): "+hwm.String())
	if peak := treeRSS.close(); peak > 0 {
		b.addAbs(scenario, size, tr, "relay process tree peak RSS", "MiB", []float64{float64(peak) / 1024}, 0,
			"the largest sum of VmRSS over git-sync and every git it ran at one instant (sampled every 100 ms; shared pages counted once per process, so an upper bound): what a memory limit must allow during the concurrent clones")
	}
	if math.IsNaN(median(delays)) {
		return fmt.Errorf("no follower published any commit")
	}
	return nil
}
