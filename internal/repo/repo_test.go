package repo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitsync/internal/config"
	"gitsync/internal/gittest"
)

// open opens root for upstream with the given ref and tweaks.
func open(t *testing.T, root, url, ref string, tweak func(*Options)) *Repo {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git not found: %v", err)
	}
	canon, err := CanonicalRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Root: canon, Link: "link", Repo: url, Ref: ref, Depth: 1,
		Submodules: config.SubmodulesRecursive, GitGC: config.GCAlways,
		Git: git, BaseEnv: gittest.Env(t),
		Log: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	if tweak != nil {
		tweak(&opts)
	}
	r, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// sync runs one attempt: Prepare, then Publish.
func sync(r *Repo) (Result, error) {
	c, err := r.Prepare(context.Background(), false)
	if err != nil {
		return Result{}, err
	}
	return r.Publish(context.Background(), c)
}

func mustSync(t *testing.T, r *Repo) Result {
	t.Helper()
	res, err := sync(r)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return res
}

// published reads the link as a consumer would.
func published(t *testing.T, root string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(root, "link"))
	if err != nil {
		t.Fatalf("readlink: %v", err)
	}
	if filepath.IsAbs(target) {
		t.Fatalf("link target %q is absolute", target)
	}
	return filepath.Base(target)
}

func TestSyncUpdatesIdlesAndGoesBackwards(t *testing.T) {
	up, c1 := gittest.NewRepoWithCommit(t)
	root := t.TempDir()
	r := open(t, root, up.URL(), "main", nil)

	res := mustSync(t, r)
	if !res.Fetched || !res.Published || !res.NewHash || res.Hash != c1 {
		t.Fatalf("first sync: %+v, want published %s", res, c1)
	}
	if got := published(t, root); got != c1 {
		t.Fatalf("link names %s, want %s", got, c1)
	}
	res = mustSync(t, r)
	if res.Fetched || res.Published {
		t.Fatalf("idle poll fetched or published: %+v", res)
	}

	c2 := up.Commit(map[string]string{"a": "2"}, "second")
	res = mustSync(t, r)
	if !res.NewHash || res.Hash != c2 || published(t, root) != c2 {
		t.Fatalf("update: %+v, want %s", res, c2)
	}
	if _, err := os.Stat(filepath.Join(root, WorktreesDir, c1)); !os.IsNotExist(err) {
		t.Fatalf("old worktree not removed with stale timeout 0: %v", err)
	}

	up.ResetHard(c1)
	res = mustSync(t, r)
	if res.Hash != c1 || published(t, root) != c1 {
		t.Fatalf("backward move: %+v, want %s", res, c1)
	}
}

func TestSyncPeelsAnnotatedTagAndStopsOnHash(t *testing.T) {
	up, c1 := gittest.NewRepoWithCommit(t)
	up.AnnotatedTag("v1", c1, "release")
	r := open(t, t.TempDir(), up.URL(), "v1", nil)
	if res := mustSync(t, r); res.Hash != c1 {
		t.Fatalf("annotated tag published %s, want commit %s", res.Hash, c1)
	}

	r2 := open(t, t.TempDir(), up.URL(), c1, nil)
	mustSync(t, r2)
	if !r2.HashDone() {
		t.Fatal("hash ref not marked done after sync")
	}
}

func TestSyncRebuildsTamperedWorktree(t *testing.T) {
	up, c1 := gittest.NewRepoWithCommit(t)
	root := t.TempDir()
	r := open(t, root, up.URL(), "main", nil)
	mustSync(t, r)
	wt := filepath.Join(root, WorktreesDir, c1)
	// A file added by a hook must not trigger a rebuild.
	if err := os.WriteFile(filepath.Join(wt, "hook-output"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := mustSync(t, r); res.Fetched {
		t.Fatalf("extra file caused a rebuild: %+v", res)
	}
	// Emptying the tree must.
	entries, _ := os.ReadDir(wt)
	for _, e := range entries {
		if e.Name() != ".git" {
			os.RemoveAll(filepath.Join(wt, e.Name()))
		}
	}
	res := mustSync(t, r)
	if !res.Fetched || !res.Published || res.NewHash {
		t.Fatalf("emptied worktree not rebuilt: %+v", res)
	}
	if b, err := os.ReadFile(filepath.Join(root, "link", "README")); err != nil || string(b) != "initial\n" {
		t.Fatalf("rebuilt tree: %q %v", b, err)
	}
}

func TestOpenRecoversAndKeepsObjects(t *testing.T) {
	up, c1 := gittest.NewRepoWithCommit(t)
	root := t.TempDir()
	r := open(t, root, up.URL(), "main", nil)
	mustSync(t, r)
	r.Close()

	gitDir := filepath.Join(root, ".git")
	for _, f := range []string{"shallow.lock", "index.lock", "HEAD.lock", "config.lock"} {
		os.WriteFile(filepath.Join(gitDir, f), nil, 0o644)
	}
	os.WriteFile(filepath.Join(gitDir, "HEAD"), []byte(strings.Repeat("f", 40)+"\n"), 0o644)
	os.MkdirAll(filepath.Join(root, WorktreesDir, "half-built"), 0o755)
	os.Symlink("nowhere", filepath.Join(root, ".link.tmp-dead"))
	before, _ := os.Stat(filepath.Join(gitDir, "objects"))

	r = open(t, root, up.URL(), "main", func(o *Options) { o.Depth = 0 })
	res := mustSync(t, r)
	if res.Hash != c1 || res.Published {
		t.Fatalf("restart: %+v", res)
	}
	after, _ := os.Stat(filepath.Join(gitDir, "objects"))
	if !os.SameFile(before, after) {
		t.Fatal("object store was recreated")
	}
	if _, err := os.Lstat(filepath.Join(root, ".link.tmp-dead")); !os.IsNotExist(err) {
		t.Fatal("leftover temporary link not removed")
	}
	if _, err := os.Lstat(filepath.Join(root, WorktreesDir, "half-built")); !os.IsNotExist(err) {
		t.Fatal("stray worktree entry not removed")
	}
}

func TestStaleWorktreeTimeout(t *testing.T) {
	up, c1 := gittest.NewRepoWithCommit(t)
	root := t.TempDir()
	r := open(t, root, up.URL(), "main", func(o *Options) { o.StaleWorktreeTimeout = time.Hour })
	mustSync(t, r)
	up.Commit(map[string]string{"b": "1"}, "two")
	mustSync(t, r)
	old := filepath.Join(root, WorktreesDir, c1)
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("stale worktree removed before its timeout: %v", err)
	}
	// Age it past the timeout: the next (idle) attempt removes it.
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(old, past, past)
	mustSync(t, r)
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("expired worktree kept: %v", err)
	}
}

// packCount returns the number of packs in root's object store.
func packCount(t *testing.T, root string) int {
	t.Helper()
	_, n := storeSize(filepath.Join(root, ".git", "objects"))
	return n
}

// TestGCAlwaysBoundsTheStoreCheaply: with --git-gc=always, small updates
// only add their own small packs; a full repack runs once the store has
// grown by a third, and then everything is in one pack again.
func TestGCAlwaysBoundsTheStoreCheaply(t *testing.T) {
	up := gittest.NewRepo(t)
	files := map[string]string{}
	for i := range 200 {
		files[fmt.Sprintf("f%03d", i)] = noise(i, 4096)
	}
	up.Commit(files, "a tree of some size")
	root := t.TempDir()
	r := open(t, root, up.URL(), "main", nil)
	mustSync(t, r)
	up.Commit(map[string]string{"small": "0"}, "first update")
	mustSync(t, r) // the first removal of a run always repacks fully
	if n := packCount(t, root); n != 1 {
		t.Fatalf("%d packs after the first update's gc, want 1", n)
	}
	for i := 1; i <= 3; i++ {
		up.Commit(map[string]string{"small": fmt.Sprint(i)}, "small update")
		mustSync(t, r)
	}
	if n := packCount(t, root); n != 4 {
		t.Fatalf("%d packs after three small updates, want 4 (no full repack for small growth)", n)
	}
	big := map[string]string{}
	for i := range 200 {
		big[fmt.Sprintf("g%03d", i)] = noise(1000+i, 4096)
	}
	up.Commit(big, "the store grows by more than a third")
	mustSync(t, r)
	if n := packCount(t, root); n != 1 {
		t.Fatalf("%d packs after a large update, want 1 (full repack)", n)
	}
}

// noise returns n bytes that do not compress, different for each seed.
func noise(seed, n int) string {
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return string(b)
}

// endsAfter is a context whose Err reports context.Canceled from its n-th
// call on: it ends at an exact point inside a loop that polls it, which a
// timer cannot promise.
type endsAfter struct {
	context.Context
	n int
}

func (c *endsAfter) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

// TestStopDuringCleanupLeavesTrashForLater: a stop signal that arrives
// while the previous tree is being deleted ends the deletion at once (a
// large tree must not hold up a shutdown past the pod's grace period), the
// new tree stays published, and the next attempt deletes the rest.
func TestStopDuringCleanupLeavesTrashForLater(t *testing.T) {
	files := map[string]string{}
	for i := range 200 {
		files[fmt.Sprintf("d%d/f%d", i%4, i)] = "x"
	}
	up := gittest.NewRepo(t)
	c1 := up.Commit(files, "many files")
	root := t.TempDir()
	r := open(t, root, up.URL(), "main", nil)
	mustSync(t, r)
	c2 := up.Commit(map[string]string{"b": "1"}, "two")
	c, err := r.Prepare(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	// The context ends after 20 entries of the old tree are gone.
	res, err := r.Publish(&endsAfter{Context: context.Background(), n: 20}, c)
	if err != nil {
		t.Fatalf("Publish stopped during cleanup: %v, want no error", err)
	}
	if !res.NewHash || published(t, root) != c2 {
		t.Fatalf("published %s (%+v), want %s", published(t, root), res, c2)
	}
	if _, err := os.Stat(filepath.Join(root, WorktreesDir, c1)); !os.IsNotExist(err) {
		t.Fatalf("old tree still under its name after a stopped cleanup: %v", err)
	}
	trash := func() []string {
		entries, _ := os.ReadDir(filepath.Join(root, WorktreesDir))
		var names []string
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), trashPrefix) {
				names = append(names, e.Name())
			}
		}
		return names
	}
	if len(trash()) != 1 {
		t.Fatalf("trash after a stopped cleanup: %v, want the rest of the old tree", trash())
	}
	mustSync(t, r)
	if left := trash(); len(left) != 0 {
		t.Fatalf("trash left after the next attempt: %v", left)
	}
	if published(t, root) != c2 {
		t.Fatalf("published %s, want %s", published(t, root), c2)
	}
}

// TestFullDepthFromAShallowRemote: --depth=0 against a remote that is
// itself shallow (a relay at its default depth, a shallow mirror) takes
// the history the remote has instead of failing; later updates too.
func TestFullDepthFromAShallowRemote(t *testing.T) {
	up, _ := gittest.NewRepoWithCommit(t)
	up.Commit(map[string]string{"b": "1"}, "two")
	mirror := filepath.Join(t.TempDir(), "mirror")
	if out, err := exec.Command("git", "clone", "-q", "--bare", "--depth=1", up.URL(), mirror).CombinedOutput(); err != nil {
		t.Fatalf("shallow mirror: %v\n%s", err, out)
	}
	root := t.TempDir()
	r := open(t, root, "file://"+mirror, "main", func(o *Options) { o.Depth = 0 })
	res := mustSync(t, r)
	if res.Hash != up.Head("main") {
		t.Fatalf("published %s, want %s", res.Hash, up.Head("main"))
	}
	c3 := up.Commit(map[string]string{"b": "2"}, "three")
	if out, err := exec.Command("git", "-C", mirror, "fetch", "-q", "--depth=1", up.URL(), "+main:main").CombinedOutput(); err != nil {
		t.Fatalf("update mirror: %v\n%s", err, out)
	}
	if res := mustSync(t, r); res.Hash != c3 || published(t, root) != c3 {
		t.Fatalf("after an update: %+v, link at %s, want %s", res, published(t, root), c3)
	}
}
