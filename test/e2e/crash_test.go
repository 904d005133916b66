package e2e

// Crash safety (docs/CONTRACT.md, sections 1 and 2): git-sync is SIGKILLed,
// with every process it started, at arbitrary moments (during init, fetch,
// checkout, publish), over and over on one root. After each kill the link
// must be absent (nothing was ever published) or name a complete tree of
// exactly one commit, and once something was published the link must never be
// missing again. A final run must converge on the upstream head.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

const (
	crashDirs        = 100
	crashFilesPerDir = 30 // 3000 files
	crashIterations  = 30
	// Kill delays are spread over [0, max): max is crashMinKillSpan, or
	// 2.5 times how long a first sync of the big tree takes on this machine
	// (measured at the start) if that is longer, capped at
	// crashMaxKillSpan. Thus kills land in init, fetch, checkout and
	// publish on fast and slow machines alike.
	crashMinKillSpan = 400 * time.Millisecond
	crashMaxKillSpan = 2 * time.Second
)

// crashCommit writes generation gen of the big tree: every file whose index
// is in the changed set gets "gen N path", and each generation also adds
// one new file and deletes one, so trees differ in shape too.
func crashCommit(t *testing.T, up *gittest.Repo, gen int, all bool) string {
	t.Helper()
	files := map[string]string{}
	for d := range crashDirs {
		for f := range crashFilesPerDir {
			i := d*crashFilesPerDir + f
			if all || i%3 == gen%3 {
				p := fmt.Sprintf("dir%03d/file%02d.txt", d, f)
				files[p] = fmt.Sprintf("gen %d %s\n", gen, p)
			}
		}
	}
	files[fmt.Sprintf("extra/gen%04d.txt", gen)] = fmt.Sprintf("gen %d\n", gen)
	if gen > 1 {
		up.Remove(fmt.Sprintf("extra/gen%04d.txt", gen-1))
	}
	return up.Commit(files, fmt.Sprintf("generation %d", gen))
}

func TestCrashKillAnywhere(t *testing.T) {
	// Not parallel: heavy, and its kill timing should not be distorted by
	// other tests.
	up := gittest.NewRepo(t)
	gen := 1
	known := map[string]bool{crashCommit(t, up, gen, true): true}
	for range 2 {
		gen++
		known[crashCommit(t, up, gen, false)] = true
	}

	// Calibrate: how long does a first sync of this tree take here?
	probeRoot := newRoot(t)
	probeBegan := time.Now()
	probe := startWith(t, runOpts{Name: "git-sync calibration run"}, concat(syncArgs(up, probeRoot), []string{"--period=100ms"})...)
	waitForLink(t, probe, filepath.Join(probeRoot, "link"), up.Head("HEAD"))
	firstSync := time.Since(probeBegan)
	probe.Stop()
	// A restart on a crashed root does more than a first sync (it removes
	// half-built trees first), so the span reaches well past firstSync.
	span := min(max(crashMinKillSpan, firstSync*5/2), crashMaxKillSpan)
	t.Logf("a first sync of %d files takes %v; kill delays spread over [0, %v)",
		crashDirs*crashFilesPerDir, firstSync.Round(time.Millisecond), span.Round(time.Millisecond))

	root := newRoot(t)
	link := filepath.Join(root, "link")
	// Kill delays spread evenly over [0, span), in a shuffled (but
	// reproducible) order, so kills land in every phase of a sync, both on
	// a fresh root and on one with history.
	rng := rand.New(rand.NewPCG(1, 2))
	delays := make([]time.Duration, crashIterations)
	for i := range delays {
		delays[i] = time.Duration(i) * span / crashIterations
	}
	rng.Shuffle(len(delays), func(i, j int) { delays[i], delays[j] = delays[j], delays[i] })
	// Start with a few early kills, so a fresh, never-published root is
	// crashed too.
	delays[0], delays[1] = 0, 20*time.Millisecond

	began := time.Now()
	everPublished := false
	outcomes := map[string]int{}
	for i, delay := range delays {
		p := startWith(t, runOpts{Name: fmt.Sprintf("git-sync run %d", i)},
			concat(syncArgs(up, root), []string{"--period=100ms"})...)
		// Every fourth run is first allowed to publish the current head,
		// so that kills also land on a root with a published tree (idle
		// polls, updates after the next upstream commit) whatever this
		// machine's speed.
		if i%4 == 3 {
			waitForLink(t, p, link, up.Head("HEAD"))
		}
		// The sleep is the experiment (when the kill lands), not a wait
		// for git-sync.
		time.Sleep(delay)
		if !p.Running() {
			t.Fatalf("run %d exited on its own (code %d) before the kill at %v:\n%s",
				i, p.ExitCode(), delay, tail(p.Logs(), 40))
		}
		p.Kill()
		if errs := errorRecords(p.Logs()); len(errs) > 0 {
			t.Errorf("run %d (killed at %v) logged errors:\n%s", i, delay, strings.Join(errs, "\n"))
		}

		h := tryLinkHash(link)
		switch {
		case h == "" && exists(link):
			t.Fatalf("run %d (killed at %v): link exists but is not a symlink", i, delay)
		case h == "":
			if everPublished {
				t.Fatalf("run %d (killed at %v): link missing after an earlier run had published", i, delay)
			}
			outcomes["no link yet"]++
		default:
			everPublished = true
			if !known[h] {
				t.Fatalf("run %d (killed at %v): link names %q, not an upstream commit", i, delay, h)
			}
			assertPublished(t, root, link, h)
			if err := checkCompleteTree(up, link, h); err != nil {
				t.Fatalf("run %d (killed at %v): published tree incomplete: %v", i, delay, err)
			}
			if h == up.Head("HEAD") {
				outcomes["link at head"]++
			} else {
				outcomes["link at older commit"]++
			}
		}

		// Now and then upstream moves on, so later runs also crash
		// mid-update on a root that already has a published tree.
		if i%3 == 1 {
			gen++
			known[crashCommit(t, up, gen, false)] = true
		}
	}
	t.Logf("%d kills in %v: %v", len(delays), time.Since(began).Round(time.Millisecond), outcomes)
	if !everPublished {
		t.Errorf("no run published before its kill; the kill delays never reached the publish phase")
	}

	// A last run, left alone, converges on the upstream head.
	final := up.Head("HEAD")
	p := startWith(t, runOpts{Name: "git-sync final run"}, concat(syncArgs(up, root), []string{"--period=100ms"})...)
	waitForLink(t, p, link, final)
	assertPublished(t, root, link, final)
	assertCompleteTree(t, up, link, final)
	if errs := errorRecords(p.Logs()); len(errs) > 0 {
		t.Errorf("the final run logged errors:\n%s", strings.Join(errs, "\n"))
	}
	if code := p.Stop(); code != 0 {
		t.Errorf("final run: exit %d after SIGTERM", code)
	}
	// Worktrees of superseded commits are eventually cleaned (default
	// stale timeout 0): only the published one may remain.
	ents, err := os.ReadDir(filepath.Join(root, ".worktrees"))
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range ents {
		if e.Name() != final {
			left = append(left, e.Name())
		}
	}
	if len(left) > 0 {
		t.Errorf("leftovers under .worktrees after a clean final run: %v", left)
	}
}
