package repo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// trees lists the worktrees on disk besides the published one.
func trees(t *testing.T, r *Repo) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	entries, err := os.ReadDir(filepath.Join(r.root, WorktreesDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != r.published {
			out[e.Name()] = true
		}
	}
	return out
}

// TestKeepWorktrees: the last N retired trees stay whatever the timeout
// says, older ones go once past it, and a tree within the timeout stays
// even outside the last N (both rules must agree to remove).
func TestKeepWorktrees(t *testing.T) {
	up := gittest.NewRepo(t)
	var kept []int
	r := open(t, t.TempDir(), up.URL(), "HEAD", func(o *Options) {
		o.KeepWorktrees = 2
		o.OnKept = func(n int) { kept = append(kept, n) }
	})
	var hs []string
	for i := range 5 {
		hs = append(hs, up.Commit(map[string]string{"f": fmt.Sprint(i)}, fmt.Sprint(i)))
		mustSync(t, r)
	}
	got := trees(t, r)
	if len(got) != 2 || !got[hs[2]] || !got[hs[3]] {
		t.Fatalf("trees besides the current one: %v, want the two newest retired %s %s", got, hs[2], hs[3])
	}
	if n := kept[len(kept)-1]; n != 2 {
		t.Fatalf("OnKept last reported %d, want 2", n)
	}

	// With a timeout, a tree retired within it stays even past the last N.
	r.opts.StaleWorktreeTimeout = time.Hour
	for i := 5; i < 8; i++ {
		up.Commit(map[string]string{"f": fmt.Sprint(i)}, fmt.Sprint(i))
		mustSync(t, r)
	}
	if got := trees(t, r); len(got) != 5 {
		t.Fatalf("%d trees kept with a 1h timeout, want 5 (2 kept by count, 3 by age): %v", len(got), got)
	}
}

// TestRejectRemovesTreeAndHolds: a refused candidate's tree goes, the
// published one stays, and polls stay idle (no fetch) until --ref moves.
func TestRejectRemovesTreeAndHolds(t *testing.T) {
	up, c1 := gittest.NewRepoWithCommit(t)
	root := t.TempDir()
	r := open(t, root, up.URL(), "HEAD", nil)
	mustSync(t, r)
	c2 := up.Commit(map[string]string{"f": "2"}, "2")
	ctx := context.Background()
	c, err := r.Prepare(ctx, false)
	if err != nil || c.Hash != c2 || !c.NewHash || c.Object() != c2 {
		t.Fatalf("Prepare = %+v, %v; want new candidate %s", c, err, c2)
	}
	if err := r.Reject(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.worktreeDir(c2)); !os.IsNotExist(err) {
		t.Fatalf("refused tree still on disk: %v", err)
	}
	if got := published(t, root); got != c1 {
		t.Fatalf("published %s, want %s kept", got, c1)
	}
	idle, err := r.Prepare(ctx, false)
	if err != nil || idle.Fetched || idle.Held != c2 || idle.Hash != c1 {
		t.Fatalf("poll after a refusal = %+v, %v; want idle, holding %s", idle, err, c2)
	}
	if _, err := r.Publish(ctx, idle); err != nil {
		t.Fatal(err)
	}
	c3 := up.Commit(map[string]string{"f": "3"}, "3")
	next, err := r.Prepare(ctx, false)
	if err != nil || next.Hash != c3 || !next.NewHash || next.Held != "" {
		t.Fatalf("after --ref moved: %+v, %v; want candidate %s", next, err, c3)
	}
}
