package e2e

// --depth: shallow by default, full history with 0, changes across
// restarts of the same root, and refs outside the current shallow range.

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// shapeAssertDepth checks the published history for --depth=depth (0 = full):
// `git -C link log` lists exactly the last min(depth, len(hs)) commits of
// hs (hs in commit order, the published tip last); with depth 0 the
// repository is not shallow at all, otherwise the oldest listed commit is
// a shallow boundary unless it is the root commit.
func shapeAssertDepth(t *testing.T, root string, hs []string, depth int) {
	t.Helper()
	link := filepath.Join(root, "link")
	want := len(hs)
	if depth > 0 {
		want = min(depth, len(hs))
	}
	log := strings.Fields(gitIn(t, link, "log", "--format=%H"))
	var wantLog []string
	for i := len(hs) - 1; i >= 0 && len(wantLog) < want; i-- {
		wantLog = append(wantLog, hs[i])
	}
	if !slices.Equal(log, wantLog) {
		t.Errorf("git log in the published tree lists %d commits %v, want %d %v", len(log), log, len(wantLog), wantLog)
	}
	shallow := shapeShallow(t, root)
	if depth == 0 {
		if shallow != nil {
			t.Errorf("--depth=0 but .git/shallow lists %v", shallow)
		}
		if got := gitIn(t, link, "rev-parse", "--is-shallow-repository"); got != "false" {
			t.Errorf("rev-parse --is-shallow-repository = %s, want false", got)
		}
		return
	}
	if want < len(hs) && !slices.Contains(shallow, wantLog[len(wantLog)-1]) {
		t.Errorf(".git/shallow = %v, want it to hold the boundary %s", shallow, wantLog[len(wantLog)-1])
	}
}

func TestShapeDepth(t *testing.T) {
	t.Parallel()
	up, hs := shapeLinear(t, 5)
	tip := up.Head("main")

	t.Run("default is 1", func(t *testing.T) {
		t.Parallel()
		root := newRoot(t)
		shapeSyncOnce(t, syncArgs(up, root)...)
		assertPublished(t, root, filepath.Join(root, "link"), tip)
		shapeAssertDepth(t, root, hs, 1)
		if got := shapeShallow(t, root); !slices.Equal(got, []string{tip}) {
			t.Errorf(".git/shallow = %v, want exactly the tip %s", got, tip)
		}
		// Only the tip commit was fetched, not its ancestors.
		if commits := shapeLocalObjects(t, root)["commit"]; len(commits) != 1 || !commits[tip] {
			t.Errorf("local commits %v, want only %s", commits, tip)
		}
		shapeAssertTree(t, filepath.Join(root, "link"), shapeExpected(t, up, tip, shapeWant{}))
	})

	t.Run("0 is full history", func(t *testing.T) {
		t.Parallel()
		root := newRoot(t)
		shapeSyncOnce(t, append(syncArgs(up, root), "--depth=0")...)
		assertPublished(t, root, filepath.Join(root, "link"), tip)
		shapeAssertDepth(t, root, hs, 0)
		if commits := shapeLocalObjects(t, root)["commit"]; len(commits) != 5 {
			t.Errorf("%d local commits, want all 5", len(commits))
		}
		shapeAssertTree(t, filepath.Join(root, "link"), shapeExpected(t, up, tip, shapeWant{}))
	})
}

// TestShapeDepthAcrossRestarts raises, lowers and zeroes --depth across
// runs on one root, with and without upstream changes in between.
func TestShapeDepthAcrossRestarts(t *testing.T) {
	t.Parallel()
	up, hs := shapeLinear(t, 6)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	for i, step := range []struct {
		depth  int
		commit bool // make an upstream commit before this run
		want   int  // commits in `git log` afterwards (0 = all)
	}{
		{depth: 2, want: 2},
		{depth: 4, want: 4},               // raised, same commit
		{depth: 1, want: 1},               // lowered, same commit
		{depth: 3, commit: true, want: 3}, // raised, new commit
		{depth: 0, want: 0},               // unshallow
		{depth: 0, commit: true, want: 0}, // full history stays full
		{depth: 2, want: 2},               // shallow again, same commit
		{depth: 5, commit: true, want: 5},
	} {
		if step.commit {
			n := len(hs) + 1
			hs = append(hs, up.Commit(map[string]string{
				"file.txt":                   fmt.Sprintf("commit %d\n", n),
				fmt.Sprintf("log/%d.txt", n): "x\n",
			}, fmt.Sprintf("c%d", n)))
		}
		shapeSyncOnce(t, append(syncArgs(up, root), fmt.Sprintf("--depth=%d", step.depth))...)
		tip := hs[len(hs)-1]
		assertPublished(t, root, link, tip)
		want := step.want
		if want == 0 {
			want = len(hs)
		}
		shapeAssertDepth(t, root, hs, step.depth)
		if got := shapeRevCount(t, link); got != want {
			t.Errorf("step %d (--depth=%d): rev-list --count HEAD = %d, want %d", i, step.depth, got, want)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// TestShapeDepthRefOutsideShallowRange syncs, on a root that holds only the
// tip of main at depth 1, tags and branches whose commits lie outside that
// shallow range, and a branch force-pushed back outside it while git-sync
// runs.
func TestShapeDepthRefOutsideShallowRange(t *testing.T) {
	t.Parallel()
	up, hs := shapeLinear(t, 6)
	up.Tag("old", hs[1])
	up.AnnotatedTag("old-annotated", hs[2], "annotated")
	up.Branch("stale", hs[0])
	root := newRoot(t)
	link := filepath.Join(root, "link")
	shapeSyncOnce(t, syncArgs(up, root)...)
	assertPublished(t, root, link, hs[5])

	for _, tc := range []struct {
		ref   string
		depth int
		want  int // index in hs
	}{
		{"old", 1, 1},
		{"old-annotated", 1, 2},
		{"stale", 1, 0},
		{"old", 2, 1},
		{"main", 1, 5},
	} {
		shapeSyncOnce(t, append(syncArgs(up, root), "--ref="+tc.ref, fmt.Sprintf("--depth=%d", tc.depth))...)
		assertPublished(t, root, link, hs[tc.want])
		shapeAssertDepth(t, root, hs[:tc.want+1], tc.depth)
		shapeAssertTree(t, link, shapeExpected(t, up, hs[tc.want], shapeWant{}))
		if t.Failed() {
			t.Fatalf("--ref=%s --depth=%d failed", tc.ref, tc.depth)
		}
	}

	// A running git-sync at depth 1 follows main back to a commit outside
	// its shallow range, then forward again.
	p := start(t, append(syncArgs(up, root), "--period=100ms")...)
	waitForLink(t, p, link, hs[5])
	up.ResetHard(hs[1])
	waitForLink(t, p, link, hs[1])
	shapeAssertDepth(t, root, hs[:2], 1)
	shapeAssertTree(t, link, shapeExpected(t, up, hs[1], shapeWant{}))
	next := up.Commit(map[string]string{"file.txt": "after the force-push\n"}, "c7")
	waitForLink(t, p, link, next)
	shapeAssertTree(t, link, shapeExpected(t, up, next, shapeWant{}))
	if code := p.Stop(); code != 0 {
		t.Errorf("git-sync exit %d after SIGTERM, want 0", code)
	}
	if errs := errorRecords(p.Logs()); len(errs) > 0 {
		t.Errorf("errors logged:\n%s", strings.Join(errs, "\n"))
	}
}

// TestShapeDepthLoweredReclaims lowers --depth on a root that holds the
// full history: once an update removes the old worktree (and gc runs), the
// object store keeps only the commits of the new depth.
func TestShapeDepthLoweredReclaims(t *testing.T) {
	t.Parallel()
	up, hs := shapeLinear(t, 10)
	root := newRoot(t)
	shapeSyncOnce(t, append(syncArgs(up, root), "--depth=0")...)
	if n := len(shapeLocalObjects(t, root)["commit"]); n != 10 {
		t.Fatalf("%d local commits after --depth=0, want 10", n)
	}
	hs = append(hs, up.Commit(map[string]string{"file.txt": "commit 11\n"}, "c11"))
	shapeSyncOnce(t, append(syncArgs(up, root), "--depth=2")...)
	assertPublished(t, root, filepath.Join(root, "link"), hs[10])
	shapeAssertDepth(t, root, hs, 2)
	commits := shapeLocalObjects(t, root)["commit"]
	if len(commits) != 2 || !commits[hs[10]] || !commits[hs[9]] {
		t.Errorf("after lowering --depth to 2 and an update, the store holds %d commits, want only %s and %s", len(commits), hs[10], hs[9])
	}
	if shallow := shapeShallow(t, root); !slices.Equal(shallow, []string{hs[9]}) {
		t.Errorf(".git/shallow = %v, want only the boundary %s", shallow, hs[9])
	}
}
