package e2e

// The race the project exists to get right (docs/CONTRACT.md, section 2,
// step 4): with --depth=1, resolving a branch to a hash and then fetching that
// hash fails when the branch moves in between. git-sync must publish exactly
// what its fetch brought, so hammering the upstream with commits while
// several git-sync processes poll it must produce no sync error at all, no
// torn or missing read through any link, and convergence on the final head.
//
// This is a correctness test: it asserts no speed. How many commits
// git-sync publishes under a storm and how soon it converges afterwards are
// measured by the benchmark's commit-storm scenario (bench/), against the
// raw-git floor, where timing belongs.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

const (
	// raceDuration is how long the upstream receives commits.
	raceDuration = 20 * time.Second
	// raceRate paces the committer: it commits whenever it is behind
	// raceRate commits/s since the start (so a starved test process catches
	// up in bursts).
	raceRate = 30.0
	// raceMinCommits is how many commits the committer pushes at least,
	// however long that takes: on a machine too loaded to reach raceRate
	// the test runs longer instead of exercising the race less.
	raceMinCommits = 200
	// raceMinUpdates is how many distinct commits each reader must have
	// seen published before the pushes stop: each update is one more
	// chance for the v3 race (the branch moving between resolve and fetch)
	// to show, and fewer would make a pass say little. The committer keeps
	// going until every reader has seen that many, within
	// racePushDeadline.
	raceMinUpdates   = 10
	racePushDeadline = 3 * time.Minute
	// raceConvergeDeadline bounds the wait for every process to publish
	// the final head after the last push. It is deliberately generous: it
	// only tells "converges" from "never converges"; how fast is the
	// benchmark's business.
	raceConvergeDeadline = time.Minute
)

// raceFiles are the files every commit writes together, all holding the
// commit's sequence number. Some sit in subdirectories so a reader also
// crosses directories.
func raceFiles() []string {
	names := []string{"a.txt", "b.txt", "c.txt"}
	for i := range 20 {
		names = append(names, fmt.Sprintf("d%d/f%02d.txt", i%4, i))
	}
	return names
}

// raceCommit commits sequence number seq into every race file, using the
// fixture's fast path (objects written in-process, no git process) so the
// committer keeps its rate even on a loaded 2-core machine, and records
// the commit's hash under seq.
func raceCommit(up *gittest.Repo, seq int, hashes *raceHashes) error {
	content := strconv.Itoa(seq) + "\n"
	files := map[string]string{}
	for _, n := range raceFiles() {
		files[n] = content
	}
	hash, err := up.TryCommitFast(files, "seq "+strconv.Itoa(seq))
	if err == nil {
		hashes.set(seq, hash)
	}
	return err
}

// raceHashes maps sequence numbers to the commits that wrote them, shared
// by the committer and the readers.
type raceHashes struct {
	mu sync.Mutex
	m  map[int]string
}

func (h *raceHashes) set(seq int, hash string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[int]string{}
	}
	h.m[seq] = hash
}

// get returns the hash of seq, or "" when the committer has not recorded it
// yet (a git-sync can publish a commit before TryCommitFast returns).
func (h *raceHashes) get(seq int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m[seq]
}

// raceReader loops over one link until stop is closed: it resolves the link
// once per round, then reads every file through the resolved path and
// checks they all hold the same sequence number, that the commit the
// link's name gives is the one that wrote that number (the tree is of
// exactly the commit it claims), and that the number never goes backwards
// (upstream only moves forwards).
type raceReader struct {
	name      string
	link      string
	hashes    *raceHashes
	rounds    atomic.Int64
	torn      atomic.Int64
	missing   atomic.Int64
	misnamed  atomic.Int64
	backwards atomic.Int64
	distinct  atomic.Int64 // distinct sequence numbers seen
	mu        sync.Mutex
	samples   []string // first few problems
}

func (r *raceReader) problem(counter *atomic.Int64, format string, args ...any) {
	counter.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) < 10 {
		r.samples = append(r.samples, fmt.Sprintf("%s: ", r.name)+fmt.Sprintf(format, args...))
	}
}

func (r *raceReader) run(stop <-chan struct{}, files []string) {
	published := false
	last := -1
	for {
		select {
		case <-stop:
			return
		// A short pause per round leaves the CPUs to git-sync and the
		// committer; a few hundred rounds a second still sample every
		// published state many times.
		case <-time.After(time.Millisecond):
		}
		target, err := os.Readlink(r.link)
		if err != nil {
			if published {
				r.problem(&r.missing, "link missing after the first publish: %v", err)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		published = true
		r.rounds.Add(1)
		dir := target
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(filepath.Dir(r.link), target)
		}
		seq := -1
		for _, name := range files {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					r.problem(&r.torn, "%s missing in %s", name, target)
				} else {
					r.problem(&r.torn, "reading %s in %s: %v", name, target, err)
				}
				seq = -2
				break
			}
			n, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				r.problem(&r.torn, "%s in %s holds %q", name, target, b)
				seq = -2
				break
			}
			if seq == -1 {
				seq = n
			} else if n != seq {
				r.problem(&r.torn, "torn read in %s: %s holds %d, earlier files %d", target, name, n, seq)
				seq = -2
				break
			}
		}
		if seq >= 0 {
			if want := r.hashes.get(seq); want != "" && filepath.Base(target) != want {
				r.problem(&r.misnamed, "link names %s but its files are those of seq %d, commit %s", filepath.Base(target), seq, want)
			}
			if seq < last {
				r.problem(&r.backwards, "link went back from seq %d to %d (%s)", last, seq, target)
			}
			if seq != last {
				r.distinct.Add(1)
				last = seq
			}
		}
	}
}

func TestRacePushWhileSyncing(t *testing.T) {
	// Not parallel: this test is the heavy one and must not compete with
	// the crash test for the CPU.
	up := gittest.NewRepo(t)
	files := raceFiles()
	hashes := &raceHashes{}
	if err := raceCommit(up, 0, hashes); err != nil {
		t.Fatal(err)
	}
	srv := gittest.HTTPServer(t, filepath.Dir(up.Dir()), gittest.HTTPOptions{})
	urls := []struct{ name, url string }{
		{"file-1", up.URL()},
		{"file-2", up.URL()},
		{"http", srv.URL(filepath.Base(up.Dir()))},
	}

	// --stale-worktree-timeout=30s: a reader that resolved the link just
	// before a flip may still be reading the old tree; keeping superseded
	// worktrees for longer than the test lets it finish, so any failed or
	// mixed read is a real publishing bug, not a cleanup racing the reader.
	common := []string{"--link=link", "--depth=1", "--period=50ms", "--max-failures=0", "--stale-worktree-timeout=30s"}
	type runner struct {
		name string
		root string
		link string
		proc *Proc
		rd   *raceReader
	}
	var runners []*runner
	for _, u := range urls {
		root := newRoot(t)
		r := &runner{name: u.name, root: root, link: filepath.Join(root, "link")}
		r.proc = startWith(t, runOpts{Name: "git-sync " + u.name},
			concat([]string{"--repo=" + u.url, "--root=" + root}, common)...)
		r.rd = &raceReader{name: u.name, link: r.link, hashes: hashes}
		runners = append(runners, r)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.rd.run(stop, files)
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

	h0 := up.Head("HEAD")
	for _, r := range runners {
		waitForLink(t, r.proc, r.link, h0)
	}

	// The committer: one commit of every file at a time, at raceRate on
	// average, for raceDuration, and on until at least raceMinCommits are
	// pushed and every reader has seen raceMinUpdates of them published
	// (or racePushDeadline has passed; the checks below then fail). The
	// sleep only paces it; nothing waits on it for synchronisation.
	exercised := func() bool {
		for _, r := range runners {
			if r.rd.distinct.Load() < raceMinUpdates {
				return false
			}
		}
		return true
	}
	began := time.Now()
	commits := 0
	for time.Since(began) < raceDuration || commits < raceMinCommits || !exercised() && time.Since(began) < racePushDeadline {
		if due := int(time.Since(began).Seconds() * raceRate); commits >= due {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if err := raceCommit(up, commits+1, hashes); err != nil {
			t.Fatalf("committing upstream: %v", err)
		}
		commits++
		for _, r := range runners {
			if !r.proc.Running() {
				t.Fatalf("%s exited (code %d) during the pushes:\n%s", r.name, r.proc.ExitCode(), tail(r.proc.Logs(), 40))
			}
		}
	}
	elapsed := time.Since(began)
	final := up.Head("HEAD")
	t.Logf("pushed %d commits in %v (%.1f/s); final head %s", commits, elapsed.Round(time.Millisecond), float64(commits)/elapsed.Seconds(), final)

	// Every process converges on the final head (how soon is not asserted).
	pushed := time.Now()
	for _, r := range runners {
		waitFor(t, raceConvergeDeadline, func() bool {
			if !r.proc.Running() {
				t.Fatalf("%s exited (code %d) before converging:\n%s", r.name, r.proc.ExitCode(), tail(r.proc.Logs(), 40))
			}
			return tryLinkHash(r.link) == final
		}, "%s to publish the final head %s (it publishes %q)", r.name, final, tryLinkHash(r.link))
	}
	t.Logf("all converged %v after the last push", time.Since(pushed).Round(time.Millisecond))
	// Let the readers see the final state, then stop them.
	for _, r := range runners {
		n := r.rd.rounds.Load()
		waitFor(t, syncDeadline, func() bool { return r.rd.rounds.Load() > n+10 }, "%s reader to keep reading", r.name)
	}
	close(stop)
	wg.Wait()

	for _, r := range runners {
		rd := r.rd
		t.Logf("%s: %d reads, %d distinct commits seen, %d torn, %d misnamed, %d missing, %d backwards",
			r.name, rd.rounds.Load(), rd.distinct.Load(), rd.torn.Load(), rd.misnamed.Load(), rd.missing.Load(), rd.backwards.Load())
		for _, s := range rd.samples {
			t.Errorf("%s", s)
		}
		if rd.rounds.Load() < 100 {
			t.Errorf("%s: only %d reads; the reader did not exercise the link", r.name, rd.rounds.Load())
		}
		if rd.distinct.Load() < raceMinUpdates {
			t.Errorf("%s: only %d distinct commits published during %d pushes in %v; the test did not exercise updates",
				r.name, rd.distinct.Load(), commits, elapsed.Round(time.Second))
		}
		if !r.proc.Running() {
			t.Errorf("%s exited (code %d)", r.name, r.proc.ExitCode())
		}
		if errs := errorRecords(r.proc.Logs()); len(errs) > 0 {
			t.Errorf("%s logged %d errors, want 0; first:\n%s", r.name, len(errs), strings.Join(errs[:min(len(errs), 5)], "\n"))
		}
		assertPublished(t, r.root, r.link, final)
		assertCompleteTree(t, up, r.link, final)
	}
}
