package e2e

// End-to-end test of --keep-worktrees (issue 15): a reader that resolves
// the link and keeps using the tree it found for a while does not lose it
// during a commit storm, and the trees on disk stay bounded.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gitsync/internal/config"
	"gitsync/internal/gittest"
)

const (
	retentionRate     = 20                    // commits per second
	retentionDuration = 3 * time.Second       // of storm
	retentionHold     = 20 * time.Millisecond // how long the reader uses each tree
	retentionKeep     = 5
)

// slowReader resolves the link, reads file.txt in the tree it found,
// works on the tree for retentionHold (the sleep is the workload being
// modelled, not synchronisation), and reads file.txt again by the same
// path. A read that fails, or differs, counts as missed.
type slowReader struct {
	link            string
	reads, missed   atomic.Int64
	mu              sync.Mutex
	firstMiss       string
	distinctTargets map[string]bool
}

func (r *slowReader) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		target, err := os.Readlink(r.link)
		if err != nil {
			time.Sleep(time.Millisecond)
			continue
		}
		dir := filepath.Join(filepath.Dir(r.link), target)
		before, err1 := os.ReadFile(filepath.Join(dir, "file.txt"))
		time.Sleep(retentionHold)
		after, err2 := os.ReadFile(filepath.Join(dir, "file.txt"))
		r.reads.Add(1)
		r.mu.Lock()
		r.distinctTargets[target] = true
		if err1 != nil || err2 != nil || string(before) != string(after) {
			r.missed.Add(1)
			if r.firstMiss == "" {
				r.firstMiss = fmt.Sprintf("tree %s: %v / %v", target, err1, err2)
			}
		}
		r.mu.Unlock()
	}
}

func TestKeepWorktreesSlowReaderInStorm(t *testing.T) {
	t.Parallel()
	up := gittest.NewRepo(t)
	commit := func(i int) error {
		_, err := up.TryCommitFast(map[string]string{"file.txt": fmt.Sprintf("commit %d\n", i)}, fmt.Sprintf("c%d", i))
		return err
	}
	if err := commit(0); err != nil {
		t.Fatal(err)
	}
	root := newRoot(t)
	link := filepath.Join(root, "link")
	addr, metricArgs := authMetricsArgs(t)
	p := start(t, concat(syncArgs(up, root), metricArgs, []string{"--period=50ms", "--max-failures=0",
		fmt.Sprintf("--keep-worktrees=%d", retentionKeep)})...)
	waitForLink(t, p, link, up.Head("HEAD"))

	rd := &slowReader{link: link, distinctTargets: map[string]bool{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); rd.run(stop) }()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	// The committer, paced at retentionRate; nothing waits on its sleep.
	began := time.Now()
	commits := 0
	for time.Since(began) < retentionDuration {
		if due := int(time.Since(began).Seconds() * retentionRate); commits >= due {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		commits++
		if err := commit(commits); err != nil {
			t.Fatal(err)
		}
	}
	final := up.Head("HEAD")
	waitForLink(t, p, link, final)
	n := rd.reads.Load()
	waitFor(t, syncDeadline, func() bool { return rd.reads.Load() > n+5 }, "reader to read the final tree")
	close(stop)
	wg.Wait()

	t.Logf("%d commits pushed; %d reads of %d distinct trees, %d missed", commits, rd.reads.Load(), len(rd.distinctTargets), rd.missed.Load())
	if rd.missed.Load() != 0 {
		t.Errorf("%d of %d reads lost their tree with --keep-worktrees=%d; first: %s", rd.missed.Load(), rd.reads.Load(), retentionKeep, rd.firstMiss)
	}
	if len(rd.distinctTargets) < retentionKeep+2 {
		t.Errorf("the reader saw only %d trees; the storm did not exercise retention", len(rd.distinctTargets))
	}

	// Disk stays bounded: the current tree plus the kept ones, and their
	// administrative directories, nothing more; the gauge says so.
	hashDirs := func(dir string) int {
		entries, _ := os.ReadDir(dir)
		n := 0
		for _, e := range entries {
			if config.IsCommitHash(e.Name()) {
				n++
			}
		}
		return n
	}
	waitFor(t, syncDeadline, func() bool {
		return hashDirs(filepath.Join(root, ".worktrees")) == retentionKeep+1
	}, "%d trees on disk (current + kept), found %d", retentionKeep+1, hashDirs(filepath.Join(root, ".worktrees")))
	if got := hashDirs(filepath.Join(root, ".git", "worktrees")); got != retentionKeep+1 {
		t.Errorf("%d worktree administrative directories, want %d", got, retentionKeep+1)
	}
	if v := metric(t, addr, "git_sync_worktrees_kept"); v != retentionKeep {
		t.Errorf("git_sync_worktrees_kept = %v, want %d", v, retentionKeep)
	}
	if e := errorRecords(p.Logs()); len(e) != 0 {
		t.Errorf("errors during the storm: %s", strings.Join(e, "\n"))
	}
}
