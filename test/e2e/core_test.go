package e2e

// End-to-end tests of docs/CONTRACT.md, sections 1-3 and 6-8: the on-disk
// layout, one sync, the loop, the HTTP endpoint, logging and exit status.
// Each test runs the real binary against real repositories and checks only
// what a user can observe.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// mustSyncOnce runs git-sync --one-time on up into root (link "link") with
// extra flags, fails the test unless it exits 0, and returns the published
// hash.
func mustSyncOnce(t *testing.T, up *gittest.Repo, root string, extra ...string) string {
	t.Helper()
	res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time"}, extra)...)
	if res.Code != 0 {
		t.Fatalf("git-sync --one-time %v: want exit 0, got %s", extra, res)
	}
	return linkHash(t, filepath.Join(root, "link"))
}

// linearRepo makes an upstream with n commits on main, each writing
// file.txt = "commit i" and log/i.txt, and returns the hashes in order.
func linearRepo(t *testing.T, n int) (*gittest.Repo, []string) {
	t.Helper()
	up := gittest.NewRepo(t)
	var hs []string
	for i := 1; i <= n; i++ {
		hs = append(hs, up.Commit(map[string]string{
			"file.txt":                   fmt.Sprintf("commit %d\n", i),
			fmt.Sprintf("log/%d.txt", i): "x\n",
		}, fmt.Sprintf("c%d", i)))
	}
	return up, hs
}

// ---------------------------------------------------------------------------
// Refs.

func TestRefKinds(t *testing.T) {
	t.Parallel()
	up := gittest.NewRepo(t)
	c0 := up.Commit(map[string]string{"f": "0"}, "c0")
	c1 := up.Commit(map[string]string{"f": "1", "d/x": "x"}, "c1")
	c2 := up.Commit(map[string]string{"f": "2"}, "c2") // main's tip
	up.Branch("feature", c1)
	up.Checkout("feature")
	c3 := up.Commit(map[string]string{"feature.txt": "3"}, "c3") // feature's tip
	up.Checkout(gittest.DefaultBranch)
	up.Tag("v-light", c0)
	tagObj := up.AnnotatedTag("v-annotated", c1, "annotated")
	if tagObj == c1 {
		t.Fatal("fixture: annotated tag object equals its commit")
	}

	cases := []struct {
		name string
		ref  []string // --ref flag, if any
		want string
	}{
		{"default is HEAD", nil, c2},
		{"HEAD", []string{"--ref=HEAD"}, c2},
		{"default branch", []string{"--ref=main"}, c2},
		{"other branch", []string{"--ref=feature"}, c3},
		{"lightweight tag", []string{"--ref=v-light"}, c0},
		{"annotated tag", []string{"--ref=v-annotated"}, c1},
		// c0 is the tip of no branch: it must be fetched by hash.
		{"full hash", []string{"--ref=" + c0}, c0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := newRoot(t)
			got := mustSyncOnce(t, up, root, tc.ref...)
			if got != tc.want {
				t.Fatalf("published %s, want %s", got, tc.want)
			}
			if got == tagObj {
				t.Fatalf("published the annotated tag object, not its commit")
			}
			link := filepath.Join(root, "link")
			assertPublished(t, root, link, tc.want)
			assertCompleteTree(t, up, link, tc.want)
		})
	}
}

func TestRefMissingFailsWithGitMessage(t *testing.T) {
	t.Parallel()
	up, _ := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	errFile := filepath.Join(t.TempDir(), "error.json")
	res := runOnce(t, concat(syncArgs(up, root),
		[]string{"--one-time", "--ref=no-such-branch", "--error-file=" + errFile})...)
	if res.Code != 1 {
		t.Fatalf("want exit 1, got %s", res)
	}
	if exists(filepath.Join(root, "link")) {
		t.Errorf("link published for a missing ref")
	}
	const gitMsg = "couldn't find remote ref"
	if !strings.Contains(res.Stderr, gitMsg) {
		t.Errorf("stderr lacks git's %q:\n%s", gitMsg, res.Stderr)
	}
	b, err := os.ReadFile(errFile)
	if err != nil {
		t.Fatalf("error file: %v", err)
	}
	if !strings.Contains(string(b), gitMsg) {
		t.Errorf("error file lacks %q verbatim:\n%s", gitMsg, b)
	}
}

func TestRefAbbreviatedHashFails(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 3)
	root := newRoot(t)
	short := hs[0][:10]
	res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time", "--ref=" + short})...)
	if res.Code != 1 {
		t.Fatalf("--ref=%s (abbreviated hash): want exit 1, got %s", short, res)
	}
	if exists(filepath.Join(root, "link")) {
		t.Errorf("link published for an abbreviated hash")
	}
	if !strings.Contains(res.Stderr, short) {
		t.Errorf("stderr does not name the ref %s:\n%s", short, res.Stderr)
	}
}

func TestRefFullHashStopsFetching(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 3)
	root := newRoot(t)
	addr := freeAddr(t)
	p := start(t, concat(syncArgs(up, root), []string{
		"--ref=" + hs[1], "--period=100ms", "--http-bind=" + addr, "--http-metrics"})...)
	link := filepath.Join(root, "link")
	waitForLink(t, p, link, hs[1])
	assertPublished(t, root, link, hs[1])
	waitForMetric(t, addr, func(v float64) bool { return v == 1 }, "first sync counted", "git_fetch_count_total")

	// Upstream moves on; a hash ref has nothing more to poll.
	up.Commit(map[string]string{"file.txt": "later\n"}, "later")
	fetches := metric(t, addr, "git_fetch_count_total")
	ok := holdsFor(1500*time.Millisecond, func() bool {
		return p.Running() && tryLinkHash(link) == hs[1] &&
			tryMetric(addr, "git_fetch_count_total") == fetches
	})
	if !ok {
		t.Fatalf("with --ref=<hash>: running=%v link=%s fetches %v -> %v; want it to stay up, keep %s and stop fetching",
			p.Running(), tryLinkHash(link), fetches, tryMetric(addr, "git_fetch_count_total"), hs[1])
	}
	if code, _, err := httpGet(addr, "/"); err != nil || code != http.StatusOK {
		t.Errorf("GET / = %d, %v; want 200", code, err)
	}
}

// ---------------------------------------------------------------------------
// Updates in a running process.

func TestUpdatesForwardBackwardRepeated(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 2)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	p := start(t, concat(syncArgs(up, root), []string{"--period=100ms"})...)
	waitForLink(t, p, link, hs[1])
	assertPublished(t, root, link, hs[1])

	// Forward.
	c3 := up.Commit(map[string]string{"file.txt": "commit 3\n", "new/dir/f": "n"}, "c3")
	began := time.Now()
	waitForLink(t, p, link, c3)
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("publishing a new commit took %v with --period=100ms; the contract says well within 3s", d)
	}
	assertPublished(t, root, link, c3)
	assertCompleteTree(t, up, link, c3)
	// The superseded worktree goes at the next cleanup (default timeout 0).
	waitFor(t, syncDeadline, func() bool { return !exists(worktreePath(root, hs[1])) },
		"old worktree %s removed", hs[1])

	// Backward (force-push to an older commit).
	up.ForcePush(gittest.DefaultBranch, hs[0])
	waitForLink(t, p, link, hs[0])
	assertPublished(t, root, link, hs[0])
	assertCompleteTree(t, up, link, hs[0])

	// Sideways and repeated: new history on top of the old commit.
	for i := range 5 {
		h := up.Commit(map[string]string{"file.txt": fmt.Sprintf("side %d\n", i)}, "side")
		waitForLink(t, p, link, h)
		assertCompleteTree(t, up, link, h)
	}
	assertPublished(t, root, link, up.Head("HEAD"))
	if errs := errorRecords(p.Logs()); len(errs) > 0 {
		t.Errorf("errors logged during updates:\n%s", strings.Join(errs, "\n"))
	}
}

func TestTagRepointed(t *testing.T) {
	t.Parallel()
	for _, annotated := range []bool{false, true} {
		t.Run(fmt.Sprintf("annotated=%v", annotated), func(t *testing.T) {
			t.Parallel()
			up, hs := linearRepo(t, 3)
			tag := func(rev string) {
				if annotated {
					up.AnnotatedTag("release", rev, "release at "+rev)
				} else {
					up.Tag("release", rev)
				}
			}
			tag(hs[0])
			root := newRoot(t)
			link := filepath.Join(root, "link")
			p := start(t, concat(syncArgs(up, root), []string{"--ref=release", "--period=100ms"})...)
			waitForLink(t, p, link, hs[0])
			tag(hs[2]) // forwards
			waitForLink(t, p, link, hs[2])
			assertCompleteTree(t, up, link, hs[2])
			tag(hs[1]) // backwards
			waitForLink(t, p, link, hs[1])
			assertPublished(t, root, link, hs[1])
			assertCompleteTree(t, up, link, hs[1])
			if errs := errorRecords(p.Logs()); len(errs) > 0 {
				t.Errorf("errors logged while the tag moved (would clobber existing tag?):\n%s", strings.Join(errs, "\n"))
			}
		})
	}
}

// ---------------------------------------------------------------------------
// --one-time.

func TestOneTimeExitStatus(t *testing.T) {
	t.Parallel()
	t.Run("success", func(t *testing.T) {
		t.Parallel()
		up, h := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		if got := mustSyncOnce(t, up, root); got != h {
			t.Errorf("published %s, want %s", got, h)
		}
	})
	t.Run("unreachable repo", func(t *testing.T) {
		t.Parallel()
		root := newRoot(t)
		missing := "file://" + filepath.Join(t.TempDir(), "no-such-repo")
		res := runOnce(t, "--repo="+missing, "--root="+root, "--link=link", "--one-time")
		if res.Code != 1 {
			t.Fatalf("want exit 1, got %s", res)
		}
		if exists(filepath.Join(root, "link")) {
			t.Errorf("link exists after a failed sync")
		}
	})
}

// ---------------------------------------------------------------------------
// Root states.

func TestRootStates(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)

	check := func(t *testing.T, root string, o runOpts) {
		t.Helper()
		res := runWith(t, o, "--repo="+up.URL(), "--root="+root, "--link=link", "--one-time")
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		abs := root
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(o.Dir, root)
		}
		link := filepath.Join(abs, "link")
		assertPublished(t, abs, link, h)
		assertCompleteTree(t, up, link, h)
	}

	t.Run("absent with parents", func(t *testing.T) {
		t.Parallel()
		root := filepath.Join(t.TempDir(), "a", "b", "c", "root")
		check(t, root, runOpts{})
	})
	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		ino := inode(t, root)
		check(t, root, runOpts{})
		if inode(t, root) != ino {
			t.Errorf("root directory was replaced")
		}
	})
	t.Run("non-empty garbage", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		outside := filepath.Join(t.TempDir(), "precious.txt")
		mustWrite(t, outside, "keep me")
		mustWrite(t, filepath.Join(root, "junk.txt"), "junk")
		mustWrite(t, filepath.Join(root, ".hidden"), "junk")
		mustWrite(t, filepath.Join(root, "dir", "sub", "deep.txt"), "junk")
		mustSymlink(t, outside, filepath.Join(root, "points-outside"))
		mustSymlink(t, filepath.Dir(outside), filepath.Join(root, "dir-outside"))
		ino := inode(t, root)
		check(t, root, runOpts{})
		if inode(t, root) != ino {
			t.Errorf("root directory itself was replaced; only its contents may be deleted")
		}
		for _, junk := range []string{"junk.txt", ".hidden", "dir", "points-outside", "dir-outside"} {
			if exists(filepath.Join(root, junk)) {
				t.Errorf("garbage %s survived", junk)
			}
		}
		if b, err := os.ReadFile(outside); err != nil || string(b) != "keep me" {
			t.Errorf("a file outside the root, reached through a symlink in it, was touched: %q %v", b, err)
		}
	})
	t.Run("relative", func(t *testing.T) {
		t.Parallel()
		wd := t.TempDir()
		check(t, filepath.Join("rel", "root"), runOpts{Dir: wd})
	})
	t.Run("dot-dot", func(t *testing.T) {
		t.Parallel()
		base := t.TempDir()
		if err := os.MkdirAll(filepath.Join(base, "x", "y"), 0o755); err != nil {
			t.Fatal(err)
		}
		root := base + "/x/y/../../root"
		check(t, root, runOpts{})
		if !exists(filepath.Join(base, "root", "link")) {
			t.Errorf("link not at the canonical root %s", filepath.Join(base, "root"))
		}
	})
	t.Run("through symlink", func(t *testing.T) {
		t.Parallel()
		base := t.TempDir()
		realDir := filepath.Join(base, "real")
		if err := os.Mkdir(realDir, 0o755); err != nil {
			t.Fatal(err)
		}
		mustSymlink(t, realDir, filepath.Join(base, "via"))
		root := filepath.Join(base, "via", "root")
		check(t, root, runOpts{})
		if !exists(filepath.Join(realDir, "root", "link")) {
			t.Errorf("link not under the real directory")
		}
	})
	t.Run("inside another repo", func(t *testing.T) {
		t.Parallel()
		parent, _ := gittest.NewRepoWithCommit(t)
		before := repoFingerprint(t, parent)
		root := filepath.Join(parent.Dir(), "nested", "root")
		check(t, root, runOpts{})
		if after := repoFingerprint(t, parent); after != before {
			t.Errorf("the enclosing repository changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if got := gitIn(t, root, "rev-parse", "--absolute-git-dir"); got != filepath.Join(root, ".git") {
			t.Errorf("root's git dir is %s, want %s", got, filepath.Join(root, ".git"))
		}
	})
}

// repoFingerprint summarises what git-sync must never change in an
// enclosing repository: refs, config, index, worktrees, objects.
func repoFingerprint(t *testing.T, r *gittest.Repo) string {
	t.Helper()
	cfg, _ := os.ReadFile(filepath.Join(r.Dir(), ".git", "config"))
	idx, _ := os.ReadFile(filepath.Join(r.Dir(), ".git", "index"))
	return strings.Join([]string{
		r.Git("show-ref", "--head"),
		r.Git("worktree", "list", "--porcelain"),
		r.Git("count-objects", "-v"),
		string(cfg),
		fmt.Sprintf("index %d bytes %x", len(idx), idx[:min(len(idx), 64)]),
	}, "\n")
}

func mustWrite(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t testing.TB, target, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// TestRootRecovery leaves a root as a killed run would, then checks that
// the next run recovers (exit 0, the right hash published completely)
// without re-cloning: a marker file inside ROOT/.git and the inode of
// ROOT/.git/objects survive.
func TestRootRecovery(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// advance makes a new upstream commit before the second run.
		advance bool
		// plant damages root after a first good run that published old.
		// newHash is what upstream's HEAD will be for the second run.
		plant func(t *testing.T, up *gittest.Repo, root, old, newHash string)
	}{
		{"shallow.lock", true, func(t *testing.T, up *gittest.Repo, root, _, _ string) {
			mustWrite(t, filepath.Join(root, ".git", "shallow.lock"), "")
		}},
		{"index.lock", true, func(t *testing.T, up *gittest.Repo, root, old, _ string) {
			mustWrite(t, filepath.Join(root, ".git", "index.lock"), "")
			// The published worktree's own index lock, too.
			for _, d := range worktreeAdminDirs(t, root) {
				mustWrite(t, filepath.Join(d, "index.lock"), "")
			}
		}},
		{"HEAD.lock", true, func(t *testing.T, up *gittest.Repo, root, _, _ string) {
			mustWrite(t, filepath.Join(root, ".git", "HEAD.lock"), "")
		}},
		{"config.lock", true, func(t *testing.T, up *gittest.Repo, root, _, _ string) {
			mustWrite(t, filepath.Join(root, ".git", "config.lock"), "")
		}},
		{"all locks, same hash", false, func(t *testing.T, up *gittest.Repo, root, _, _ string) {
			for _, f := range []string{"shallow.lock", "index.lock", "HEAD.lock", "config.lock", "packed-refs.lock"} {
				mustWrite(t, filepath.Join(root, ".git", f), "")
			}
		}},
		{"half-built worktree with a wrong name", false, func(t *testing.T, up *gittest.Repo, root, _, _ string) {
			mustWrite(t, filepath.Join(root, ".worktrees", "tmp-partial", "file.txt"), "partial")
			mustWrite(t, filepath.Join(root, ".worktrees", strings.Repeat("ab", 20), "file.txt"), "partial")
		}},
		{"half-built foreign dir with the right name", true, func(t *testing.T, up *gittest.Repo, root, _, newHash string) {
			dir := worktreePath(root, newHash)
			mustWrite(t, filepath.Join(dir, ".git"), "gitdir: ../../.git/worktrees/"+newHash+"\n")
			mustWrite(t, filepath.Join(dir, "partial.txt"), "not from the commit")
		}},
		{"registered worktree with an incomplete checkout", true, func(t *testing.T, up *gittest.Repo, root, _, newHash string) {
			// What a run killed between `worktree add --no-checkout` and
			// the checkout leaves: HEAD names the hash, files are missing.
			gitIn(t, root, "fetch", "--quiet", "--depth=1", up.URL(), newHash)
			gitIn(t, root, "worktree", "add", "--quiet", "--no-checkout", "--detach", worktreePath(root, newHash), newHash)
			mustWrite(t, filepath.Join(worktreePath(root, newHash), "file.txt"), "trunc")
		}},
		{"leftover temporary link", true, func(t *testing.T, up *gittest.Repo, root, old, _ string) {
			mustSymlink(t, filepath.Join(".worktrees", old), filepath.Join(root, ".link.tmp-12345"))
		}},
		{"dangling link", true, func(t *testing.T, up *gittest.Repo, root, _, _ string) {
			link := filepath.Join(root, "link")
			if err := os.Remove(link); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, filepath.Join(".worktrees", strings.Repeat("cd", 20)), link)
		}},
		{"published worktree deleted", false, func(t *testing.T, up *gittest.Repo, root, old, _ string) {
			if err := os.RemoveAll(worktreePath(root, old)); err != nil {
				t.Fatal(err)
			}
		}},
		{"HEAD names a missing ref", true, func(t *testing.T, up *gittest.Repo, root, _, _ string) {
			mustWrite(t, filepath.Join(root, ".git", "HEAD"), "ref: refs/heads/e2e-missing-branch\n")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up, hs := linearRepo(t, 2)
			root := newRoot(t)
			old := mustSyncOnce(t, up, root)
			if old != hs[1] {
				t.Fatalf("first run published %s, want %s", old, hs[1])
			}
			marker := filepath.Join(root, ".git", "e2e-marker")
			mustWrite(t, marker, "still the same object store")
			objIno := inode(t, filepath.Join(root, ".git", "objects"))

			want := old
			if tc.advance {
				want = up.Commit(map[string]string{"file.txt": "advanced\n", "extra/f.txt": "e"}, "advance")
			}
			tc.plant(t, up, root, old, want)

			res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time"})...)
			if res.Code != 0 {
				t.Fatalf("recovery run: want exit 0, got %s", res)
			}
			link := filepath.Join(root, "link")
			assertPublished(t, root, link, want)
			assertCompleteTree(t, up, link, want)
			if !exists(marker) || inode(t, filepath.Join(root, ".git", "objects")) != objIno {
				t.Errorf("the object store was re-created (re-clone) although it was healthy")
			}
			if tmps, _ := filepath.Glob(filepath.Join(root, ".link.tmp-*")); len(tmps) > 0 {
				t.Logf("note: leftover temporary links still present: %v", tmps)
			}
			if tc.name == "half-built worktree with a wrong name" {
				for _, d := range []string{"tmp-partial", strings.Repeat("ab", 20)} {
					if exists(filepath.Join(root, ".worktrees", d)) {
						t.Errorf(".worktrees/%s not cleaned up", d)
					}
				}
			}
		})
	}
}

// worktreeAdminDirs lists ROOT/.git/worktrees/* (git's per-worktree
// administrative directories).
func worktreeAdminDirs(t *testing.T, root string) []string {
	t.Helper()
	ds, _ := filepath.Glob(filepath.Join(root, ".git", "worktrees", "*"))
	return ds
}

// rootOrigin returns the URL of the origin remote of root's repository.
func rootOrigin(t *testing.T, root string) string {
	t.Helper()
	return gitIn(t, root, "config", "--get", "remote.origin.url")
}

// TestBrokenPublishedWorktreeIsRebuilt damages the published worktree of a
// running git-sync and checks it is rebuilt and republished without an
// error (the process, with the default --max-failures=0, stays up), while
// files merely added to it do not cause a rebuild.
func TestBrokenPublishedWorktreeIsRebuilt(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	addr := freeAddr(t)
	p := start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--http-bind=" + addr, "--http-metrics"})...)
	waitForLink(t, p, link, h)
	waitForMetric(t, addr, func(v float64) bool { return v == 1 }, "first success", "git_sync_count_total", "status", "success")

	// A hook's output file inside the published tree: no rebuild.
	wt := worktreePath(root, h)
	mustWrite(t, filepath.Join(wt, "hook-output.txt"), "hello")
	noop := metric(t, addr, "git_sync_count_total", "status", "noop")
	waitForMetric(t, addr, func(v float64) bool { return v >= noop+3 }, "idle polls", "git_sync_count_total", "status", "noop")
	if s := metric(t, addr, "git_sync_count_total", "status", "success"); s != 1 {
		t.Errorf("an added file triggered a rebuild: success count %v, want 1", s)
	}
	if !exists(filepath.Join(wt, "hook-output.txt")) {
		t.Errorf("a file added to the published tree was removed")
	}

	// The worktree is deleted: rebuilt and republished.
	if err := os.RemoveAll(wt); err != nil {
		t.Fatal(err)
	}
	waitForMetric(t, addr, func(v float64) bool { return v == 2 }, "rebuild counted as success", "git_sync_count_total", "status", "success")
	waitFor(t, syncDeadline, func() bool { return exists(filepath.Join(link, "README")) }, "rebuilt tree behind the link")
	assertPublished(t, root, link, h)
	assertCompleteTree(t, up, link, h)

	// Someone commits inside the published tree: HEAD no longer names h.
	gitIn(t, link, "-c", "user.name=x", "-c", "user.email=x@x", "commit", "--quiet", "--allow-empty", "-m", "local")
	// The rebuild is done when it is counted (HEAD may read right while
	// the rebuild is still under way).
	waitForMetric(t, addr, func(v float64) bool { return v == 3 }, "rebuild after a local commit counted as success",
		"git_sync_count_total", "status", "success")
	assertPublished(t, root, link, h)
	assertCompleteTree(t, up, link, h)
	if !p.Running() {
		t.Fatalf("git-sync exited (code %d)", p.ExitCode())
	}
	if e := metric(t, addr, "git_sync_count_total", "status", "error"); e != 0 {
		t.Errorf("rebuilds were counted as %v errors", e)
	}
}

// ---------------------------------------------------------------------------
// One writer per root.

func TestSecondInstanceOnSameRootFails(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	p := start(t, concat(syncArgs(up, root), []string{"--period=100ms"})...)
	waitForLink(t, p, link, h)

	res := runWith(t, runOpts{Timeout: 30 * time.Second}, concat(syncArgs(up, root), []string{"--one-time"})...)
	if res.Code != 1 {
		t.Fatalf("second git-sync on the same root: want exit 1, got %s", res)
	}
	low := strings.ToLower(res.Stderr)
	if !strings.Contains(low, "lock") && !strings.Contains(low, "another") && !strings.Contains(low, "already") {
		t.Errorf("second instance's message does not say the root is in use:\n%s", res.Stderr)
	}
	if !p.Running() {
		t.Fatalf("first git-sync exited (code %d)", p.ExitCode())
	}
	assertPublished(t, root, link, h)

	// After the first exits, the lock is free again.
	if code := p.Stop(); code != 0 {
		t.Errorf("SIGTERM: exit %d, want 0", code)
	}
	mustSyncOnce(t, up, root)
}

// ---------------------------------------------------------------------------
// --repo and --link.

func TestRepoSwitchedBetweenRuns(t *testing.T) {
	t.Parallel()
	upA, hA := gittest.NewRepoWithCommit(t)
	upB := gittest.NewRepo(t)
	hB := upB.Commit(map[string]string{"other.txt": "B\n"}, "B")
	root := newRoot(t)
	if got := mustSyncOnce(t, upA, root); got != hA {
		t.Fatalf("A: published %s, want %s", got, hA)
	}
	if got := mustSyncOnce(t, upB, root); got != hB {
		t.Fatalf("B: published %s, want %s", got, hB)
	}
	link := filepath.Join(root, "link")
	assertPublished(t, root, link, hB)
	assertCompleteTree(t, upB, link, hB)
	if got := rootOrigin(t, root); got != upB.URL() {
		t.Errorf("origin URL = %s, want %s", got, upB.URL())
	}
}

func TestLinkPlacement(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	cases := []struct {
		name string
		link func(root, tmp string) (flag, path string)
	}{
		{"relative", func(root, _ string) (string, string) { return "current", filepath.Join(root, "current") }},
		{"relative in subdirectory", func(root, _ string) (string, string) {
			return "a/b/current", filepath.Join(root, "a", "b", "current")
		}},
		{"absolute in root", func(root, _ string) (string, string) {
			return filepath.Join(root, "abs"), filepath.Join(root, "abs")
		}},
		{"absolute elsewhere", func(_, tmp string) (string, string) {
			p := filepath.Join(tmp, "links", "x", "current")
			return p, p
		}},
		{"default from repo", func(root, _ string) (string, string) {
			return "", filepath.Join(root, filepath.Base(up.Dir()))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := newRoot(t)
			flag, path := tc.link(root, t.TempDir())
			a := []string{"--repo=" + up.URL(), "--root=" + root, "--one-time"}
			if flag != "" {
				a = append(a, "--link="+flag)
			}
			res := runOnce(t, a...)
			if res.Code != 0 {
				t.Fatalf("want exit 0, got %s", res)
			}
			assertPublished(t, root, path, h)
		})
	}
}

// ---------------------------------------------------------------------------
// HTTP endpoint and metrics.

func TestHTTPReadiness(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	w := gitWrapper(t, wrapperOpts{SleepCmd: "fetch", SleepFirst: 1, Sleep: 3 * time.Second})
	addr := freeAddr(t)
	p := start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--http-bind=" + addr, "--git=" + w.Path})...)

	var saw503 bool
	waitFor(t, syncDeadline, func() bool {
		code, _, err := httpGet(addr, "/")
		if err == nil && code == http.StatusServiceUnavailable && !exists(link) {
			saw503 = true
		}
		return saw503 || exists(link)
	}, "GET / to answer while the first sync is slow")
	if !saw503 {
		t.Fatalf("never saw 503 from / before the first sync finished")
	}
	waitFor(t, syncDeadline, func() bool {
		code, _, err := httpGet(addr, "/")
		return err == nil && code == http.StatusOK
	}, "GET / = 200 after the first sync")
	waitForLink(t, p, link, h)
}

func TestMetricsCounts(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 1)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	addr := freeAddr(t)
	p := start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--max-failures=-1",
		"--http-bind=" + addr, "--http-metrics"})...)
	waitForLink(t, p, link, hs[0])
	success := func(v float64) func(float64) bool { return func(x float64) bool { return x == v } }

	waitForMetric(t, addr, success(1), "first sync", "git_sync_count_total", "status", "success")
	if f := metric(t, addr, "git_fetch_count_total"); f != 1 {
		t.Errorf("after the first sync git_fetch_count_total = %v, want 1", f)
	}

	// Idle polls: noop rises, fetch and success don't.
	noop := metric(t, addr, "git_sync_count_total", "status", "noop")
	waitForMetric(t, addr, func(v float64) bool { return v >= noop+3 }, "idle polls", "git_sync_count_total", "status", "noop")
	text := metricsText(t, addr)
	if f, _, _ := metricValue(text, "git_fetch_count_total"); f != 1 {
		t.Errorf("idle polls changed git_fetch_count_total to %v, want 1", f)
	}
	if s, _, _ := metricValue(text, "git_sync_count_total", "status", "success"); s != 1 {
		t.Errorf("idle polls changed success to %v, want 1", s)
	}
	if _, ok, _ := metricValue(text, "git_sync_duration_seconds_count", "status", "success"); !ok {
		t.Errorf("git_sync_duration_seconds{status=success} summary missing:\n%s", text)
	}
	// Values are integers in the exposition format.
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "git_sync_count_total") || strings.HasPrefix(line, "git_fetch_count_total") {
			if !regexp.MustCompile(`\} \d+$| \d+$`).MatchString(line) {
				t.Errorf("counter line is not an integer: %q", line)
			}
		}
	}

	// An upstream commit: one more success and one more fetch.
	h2 := up.Commit(map[string]string{"file.txt": "2\n"}, "c2")
	waitForLink(t, p, link, h2)
	waitForMetric(t, addr, success(2), "second success", "git_sync_count_total", "status", "success")
	if f := metric(t, addr, "git_fetch_count_total"); f != 2 {
		t.Errorf("after an update git_fetch_count_total = %v, want 2", f)
	}

	// The upstream goes away: errors, no fetches.
	if err := os.Rename(up.Dir(), up.Dir()+"-away"); err != nil {
		t.Fatal(err)
	}
	waitForMetric(t, addr, func(v float64) bool { return v >= 2 }, "errors counted", "git_sync_count_total", "status", "error")
	if f := metric(t, addr, "git_fetch_count_total"); f != 2 {
		t.Errorf("failed syncs changed git_fetch_count_total to %v, want 2", f)
	}
	if err := os.Rename(up.Dir()+"-away", up.Dir()); err != nil {
		t.Fatal(err)
	}
	noop = metric(t, addr, "git_sync_count_total", "status", "noop")
	waitForMetric(t, addr, func(v float64) bool { return v >= noop+2 }, "idle polls after recovery", "git_sync_count_total", "status", "noop")
	assertPublished(t, root, link, h2)
}

func TestMetricsAbsentWithoutFlag(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	addr := freeAddr(t)
	p := start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--http-bind=" + addr})...)
	waitForLink(t, p, filepath.Join(root, "link"), h)
	waitFor(t, syncDeadline, func() bool {
		code, _, err := httpGet(addr, "/")
		return err == nil && code == http.StatusOK
	}, "GET / = 200")
	code, body, err := httpGet(addr, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if code == http.StatusOK && strings.Contains(body, "git_sync_count_total") {
		t.Errorf("/metrics served without --http-metrics")
	}
}

func TestHTTPBadBindFailsFast(t *testing.T) {
	t.Parallel()
	up, _ := gittest.NewRepoWithCommit(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, bind := range []string{busy.Addr().String(), "not-an-address"} {
		t.Run(bind, func(t *testing.T) {
			root := newRoot(t)
			res := runWith(t, runOpts{Timeout: 30 * time.Second},
				concat(syncArgs(up, root), []string{"--period=100ms", "--http-bind=" + bind})...)
			if res.Code != 1 {
				t.Fatalf("--http-bind=%s: want exit 1, got %s", bind, res)
			}
			if exists(filepath.Join(root, "link")) {
				t.Errorf("synced before failing on the bad address (listen first, so it fails fast)")
			}
		})
	}
}

func TestHTTPBoundForOneTimeAndReleased(t *testing.T) {
	t.Parallel()
	up, _ := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	addr := freeAddr(t)
	mustSyncOnce(t, up, root, "--http-bind="+addr, "--http-metrics")
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the HTTP address is still taken after --one-time exited: %v", err)
	}
	l.Close()
}

// ---------------------------------------------------------------------------
// --error-file and --touch-file.

func TestErrorFile(t *testing.T) {
	t.Parallel()
	up, _ := gittest.NewRepoWithCommit(t)
	checkErrorFile := func(t *testing.T, path string) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("error file: %v", err)
		}
		if !strings.Contains(string(b), "couldn't find remote ref") {
			t.Errorf("error file lacks git's stderr verbatim (\"couldn't find remote ref\"):\n%s", b)
		}
		var obj map[string]any
		if err := json.Unmarshal(b, &obj); err != nil {
			t.Fatalf("error file is not a JSON object: %v\n%s", err, b)
		}
		for _, k := range []string{"Msg", "Err"} {
			if _, ok := obj[k].(string); !ok {
				t.Errorf("error file lacks string field %q (upstream's shape): %s", k, b)
			}
		}
	}
	t.Run("relative with parents", func(t *testing.T) {
		t.Parallel()
		root := newRoot(t)
		res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time", "--ref=missing", "--error-file=errs/sub/error.json"})...)
		if res.Code != 1 {
			t.Fatalf("want exit 1, got %s", res)
		}
		checkErrorFile(t, filepath.Join(root, "errs", "sub", "error.json"))
	})
	t.Run("absolute", func(t *testing.T) {
		t.Parallel()
		root := newRoot(t)
		path := filepath.Join(t.TempDir(), "a", "b", "error.json")
		res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time", "--ref=missing", "--error-file=" + path})...)
		if res.Code != 1 {
			t.Fatalf("want exit 1, got %s", res)
		}
		checkErrorFile(t, path)
	})
	t.Run("removed after success", func(t *testing.T) {
		t.Parallel()
		up, h := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		errFile := filepath.Join(root, "error.json")
		p := start(t, concat(syncArgs(up, root), []string{"--ref=later", "--period=100ms",
			"--max-failures=-1", "--error-file=error.json"})...)
		waitFor(t, syncDeadline, func() bool { return exists(errFile) }, "error file written")
		checkErrorFile(t, errFile)
		up.Branch("later", h)
		waitForLink(t, p, filepath.Join(root, "link"), h)
		waitFor(t, syncDeadline, func() bool { return !exists(errFile) }, "error file removed after a success")
	})
}

func TestTouchFile(t *testing.T) {
	t.Parallel()
	up, h1 := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	touch := filepath.Join(root, "t", "u", "synced")
	addr := freeAddr(t)
	p := start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--touch-file=t/u/synced",
		"--http-bind=" + addr, "--http-metrics"})...)
	waitFor(t, syncDeadline, func() bool { return exists(touch) }, "touch file created")
	if got := tryLinkHash(link); got != h1 {
		t.Fatalf("touch file appeared before the link named %s (link names %q)", h1, got)
	}
	m1 := mtime(t, touch)

	noop := metric(t, addr, "git_sync_count_total", "status", "noop")
	waitForMetric(t, addr, func(v float64) bool { return v >= noop+3 }, "idle polls", "git_sync_count_total", "status", "noop")
	if m := mtime(t, touch); !m.Equal(m1) {
		t.Errorf("idle polls touched the touch file (%v -> %v)", m1, m)
	}

	h2 := up.Commit(map[string]string{"new.txt": "new\n"}, "c2")
	waitFor(t, syncDeadline, func() bool { return mtime(t, touch).After(m1) }, "touch file updated after a new commit")
	if got := tryLinkHash(link); got != h2 {
		t.Errorf("touch file updated before the link named %s (link names %q)", h2, got)
	}
	_ = p
}

// mtime returns path's modification time.
func mtime(t testing.TB, path string) time.Time {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

// ---------------------------------------------------------------------------
// Timeouts and failure limits.

func TestSyncTimeoutKillsGit(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	w := gitWrapper(t, wrapperOpts{SleepCmd: "fetch", SleepFirst: 1, Sleep: time.Minute})
	p := start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--sync-timeout=1s",
		"--max-failures=2", "--git=" + w.Path})...)
	var sleeper int
	waitFor(t, syncDeadline, func() bool { sleeper = w.SleepPid(); return sleeper != 0 }, "the first fetch to start sleeping")
	waitForLink(t, p, filepath.Join(root, "link"), h)
	waitFor(t, 5*time.Second, func() bool { return !processAlive(sleeper) },
		"the timed-out git's process group (sleep pid %d) to be killed", sleeper)
	if n := w.CountCalls("fetch"); n < 2 {
		t.Errorf("fetch ran %d times; want a retry after the timeout", n)
	}
	if errs := errorRecords(p.Logs()); len(errs) == 0 {
		t.Errorf("the timed-out attempt logged no error")
	}
	if !p.Running() {
		t.Errorf("git-sync exited (code %d)", p.ExitCode())
	}
}

// syncErrors counts the failed-sync error records in logs (every error
// record except those reporting the final "too many failures").
func syncErrors(logs string) int {
	n := 0
	for _, r := range errorRecords(logs) {
		if !strings.Contains(strings.ToLower(r), "too many") {
			n++
		}
	}
	return n
}

func TestMaxFailures(t *testing.T) {
	t.Parallel()
	up, _ := gittest.NewRepoWithCommit(t)
	for _, tc := range []struct {
		flags    []string
		failures int
	}{
		{nil, 1}, // default 0: the first failure is fatal
		// As in git-sync v4, reaching the number exits.
		{[]string{"--max-failures=3"}, 3},
		{[]string{"--init-max-failures=2", "--max-failures=5"}, 2},
	} {
		t.Run(strings.Join(tc.flags, " "), func(t *testing.T) {
			t.Parallel()
			root := newRoot(t)
			p := start(t, concat(syncArgs(up, root), []string{"--ref=missing", "--period=50ms"}, tc.flags)...)
			if code := p.Wait(syncDeadline); code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			logs := p.Logs()
			if !strings.Contains(strings.ToLower(logs), "too many failures") {
				t.Errorf("no \"too many failures\" message:\n%s", tail(logs, 20))
			}
			if n := syncErrors(logs); n != tc.failures {
				t.Errorf("%d failed attempts before exiting, want %d:\n%s", n, tc.failures, strings.Join(errorRecords(logs), "\n"))
			}
		})
	}
	t.Run("negative retries forever", func(t *testing.T) {
		t.Parallel()
		root := newRoot(t)
		addr := freeAddr(t)
		p := start(t, concat(syncArgs(up, root), []string{"--ref=missing", "--period=50ms", "--max-failures=-1",
			"--http-bind=" + addr, "--http-metrics"})...)
		waitForMetric(t, addr, func(v float64) bool { return v >= 5 }, "five errors", "git_sync_count_total", "status", "error")
		if !p.Running() {
			t.Fatalf("exited with --max-failures=-1")
		}
	})
}

func TestInitMaxFailuresOnlyBeforeFirstSuccess(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	addr := freeAddr(t)
	p := start(t, concat(syncArgs(up, root), []string{"--ref=later", "--period=50ms",
		"--init-max-failures=-1", "--max-failures=0", "--http-bind=" + addr, "--http-metrics"})...)
	waitForMetric(t, addr, func(v float64) bool { return v >= 3 }, "init failures", "git_sync_count_total", "status", "error")
	up.Branch("later", h)
	waitForLink(t, p, filepath.Join(root, "link"), h)
	up.DeleteBranch("later")
	if code := p.Wait(syncDeadline); code != 1 {
		t.Fatalf("first failure after a success with --max-failures=0: exit %d, want 1", code)
	}
}

// ---------------------------------------------------------------------------
// --depth.

func TestDepth(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 5)
	for _, tc := range []struct {
		flag string
		want int
	}{
		{"", 1},
		{"--depth=1", 1},
		{"--depth=3", 3},
		{"--depth=0", 5},
	} {
		t.Run("flag="+tc.flag, func(t *testing.T) {
			t.Parallel()
			root := newRoot(t)
			var extra []string
			if tc.flag != "" {
				extra = append(extra, tc.flag)
			}
			if got := mustSyncOnce(t, up, root, extra...); got != hs[4] {
				t.Fatalf("published %s, want %s", got, hs[4])
			}
			link := filepath.Join(root, "link")
			if n := revCount(t, link); n != tc.want {
				t.Errorf("rev-list --count HEAD = %d, want %d", n, tc.want)
			}
			if tc.want == 5 && exists(filepath.Join(root, ".git", "shallow")) {
				t.Errorf("--depth=0 left a shallow repository")
			}
		})
	}
}

func TestDepthChangesAcrossRestarts(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 6)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	for _, step := range []struct {
		depth string
		want  int
	}{
		{"1", 1}, {"3", 3}, {"2", 2}, {"0", 6}, {"1", 1}, {"4", 4},
	} {
		if got := mustSyncOnce(t, up, root, "--depth="+step.depth); got != hs[5] {
			t.Fatalf("--depth=%s: published %s, want %s", step.depth, got, hs[5])
		}
		if n := revCount(t, link); n != step.want {
			t.Errorf("after a run with --depth=%s: rev-list --count HEAD = %d, want %d", step.depth, n, step.want)
		}
	}
}

// revCount is `git -C dir rev-list --count HEAD`.
func revCount(t *testing.T, dir string) int {
	t.Helper()
	n, err := strconv.Atoi(gitIn(t, dir, "rev-list", "--count", "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ---------------------------------------------------------------------------
// Stale worktrees.

func TestStaleWorktreeTimeout(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 1)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	const timeout = 3 * time.Second
	p := start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--stale-worktree-timeout=" + timeout.String()})...)
	waitForLink(t, p, link, hs[0])
	old := worktreePath(root, hs[0])

	before := time.Now()
	h2 := up.Commit(map[string]string{"file.txt": "2\n"}, "c2")
	waitForLink(t, p, link, h2)
	published := time.Now()
	if !exists(old) {
		t.Fatalf("old worktree removed at once despite --stale-worktree-timeout=%v", timeout)
	}
	// The stale clock starts when the worktree stops being current.
	if m := mtime(t, old); m.Before(before.Add(-time.Second)) {
		t.Errorf("old worktree's mtime %v predates the update at %v: the stale clock was not started", m, before)
	}
	if !holdsFor(timeout-time.Second-time.Since(published), func() bool { return exists(old) }) {
		t.Errorf("old worktree removed after %v, before the %v timeout", time.Since(published), timeout)
	}
	waitFor(t, timeout+syncDeadline, func() bool { return !exists(old) }, "old worktree removed after the timeout")
	assertPublished(t, root, link, h2)
}

func TestStaleWorktreeClockSurvivesRestart(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 1)
	root := newRoot(t)
	const timeout = 4 * time.Second
	stale := "--stale-worktree-timeout=" + timeout.String()
	mustSyncOnce(t, up, root, stale)
	h2 := up.Commit(map[string]string{"file.txt": "2\n"}, "c2")
	mustSyncOnce(t, up, root, stale)
	old := worktreePath(root, hs[0])
	if !exists(old) {
		t.Fatalf("old worktree removed at once despite %s", stale)
	}
	m1 := mtime(t, old)

	// A restart (no-op run) inside the timeout keeps it and must not
	// re-touch it.
	mustSyncOnce(t, up, root, stale)
	if !exists(old) {
		t.Fatalf("old worktree removed by a restart before its timeout (mtime %v, now %v)", m1, time.Now())
	}
	if m := mtime(t, old); !m.Equal(m1) {
		t.Errorf("a restart re-touched the stale worktree: mtime %v -> %v", m1, m)
	}

	// Once the clock (started at m1) has run out, the next run removes it.
	// This waits for wall-clock time to pass, not for git-sync.
	time.Sleep(time.Until(m1.Add(timeout + 500*time.Millisecond)))
	if got := mustSyncOnce(t, up, root, stale); got != h2 {
		t.Fatalf("published %s, want %s", got, h2)
	}
	if exists(old) {
		t.Errorf("stale worktree kept after its timeout expired across restarts")
	}
}

func TestStaleWorktreeDefaultAndStrays(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 1)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	p := start(t, concat(syncArgs(up, root), []string{"--period=100ms"})...)
	waitForLink(t, p, link, hs[0])
	h2 := up.Commit(map[string]string{"file.txt": "2\n"}, "c2")
	waitForLink(t, p, link, h2)
	waitFor(t, syncDeadline, func() bool { return !exists(worktreePath(root, hs[0])) }, "old worktree removed with the default timeout")

	strays := []string{"stray-file", "stray-dir", strings.Repeat("ef", 20)}
	mustWrite(t, filepath.Join(root, ".worktrees", "stray-file"), "x")
	mustWrite(t, filepath.Join(root, ".worktrees", "stray-dir", "f"), "x")
	mustWrite(t, filepath.Join(root, ".worktrees", strings.Repeat("ef", 20), "f"), "x")
	waitFor(t, syncDeadline, func() bool {
		for _, s := range strays {
			if exists(filepath.Join(root, ".worktrees", s)) {
				return false
			}
		}
		return true
	}, "stray entries under .worktrees removed by idle polls")
	assertPublished(t, root, link, h2)
	assertCompleteTree(t, up, link, h2)
}

// ---------------------------------------------------------------------------
// --git-config, flags, --group-write.

func TestGitConfigReachesEveryGit(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	w := gitWrapper(t, wrapperOpts{Extra: `v=$("$REAL" config --get e2e.testkey 2>/dev/null) || v=MISSING
echo "$1 $v" >> "$STATE/config.log"`})
	if got := mustSyncOnce(t, up, root, "--git="+w.Path, `--git-config=e2e.testkey:hello world,e2e.other:x`); got != h {
		t.Fatalf("published %s, want %s", got, h)
	}
	b, err := os.ReadFile(filepath.Join(w.Dir, "config.log"))
	if err != nil {
		t.Fatalf("the --git wrapper never ran: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines {
		// git-sync may run `git config` to write the value in the first
		// place; every other command must see it.
		if !strings.HasSuffix(l, " hello world") && !strings.HasPrefix(l, "config ") {
			t.Errorf("a git command did not see --git-config: %q", l)
		}
	}
	if len(lines) < 2 {
		t.Errorf("only %d git commands ran", len(lines))
	}
}

func TestGitInvocationShape(t *testing.T) {
	t.Parallel()
	up, _ := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	w := gitWrapper(t, wrapperOpts{})
	mustSyncOnce(t, up, root, "--git="+w.Path)
	// A second run sees an existing root (different code paths).
	mustSyncOnce(t, up, root, "--git="+w.Path)
	remoteCmds := 0
	for _, c := range w.Calls() {
		f := strings.Fields(c)
		if len(f) == 0 {
			t.Errorf("git run without arguments")
			continue
		}
		if strings.HasPrefix(f[0], "-") && f[0] != "--version" {
			t.Errorf("git run with option %q before the subcommand: %q", f[0], c)
		}
		if f[0] == "fetch" || f[0] == "ls-remote" {
			remoteCmds++
			if !strings.Contains(c, up.URL()) {
				t.Errorf("remote command does not name the literal --repo URL: %q", c)
			}
			for _, a := range f[1:] {
				if a == "origin" {
					t.Errorf("remote command names origin: %q", c)
				}
			}
		}
	}
	if remoteCmds == 0 {
		t.Errorf("no fetch or ls-remote seen in %q", w.Calls())
	}
}

func TestGitConfigRejectedAtStartup(t *testing.T) {
	t.Parallel()
	up, _ := gittest.NewRepoWithCommit(t)
	for _, tc := range []struct {
		key  string
		want string // besides the key; "" = any message naming the key
	}{
		// git-sync may reject this one itself, before git sees it.
		{"nodotkey", ""},
		// A key that only git knows is bad: its own message must show.
		{"e2e.1bad", "invalid key"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			t.Parallel()
			root := newRoot(t)
			res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time", "--git-config=" + tc.key + ":1"})...)
			if res.Code != 1 {
				t.Fatalf("want exit 1, got %s", res)
			}
			if !strings.Contains(res.Stderr, tc.key) {
				t.Errorf("message does not name the bad key:\n%s", res.Stderr)
			}
			if !strings.Contains(res.Stderr, tc.want) {
				t.Errorf("message lacks git's %q:\n%s", tc.want, res.Stderr)
			}
			if exists(filepath.Join(root, "link")) {
				t.Errorf("synced despite the bad config")
			}
		})
	}
}

func TestInvalidConfigurationExits1(t *testing.T) {
	t.Parallel()
	up, _ := gittest.NewRepoWithCommit(t)
	cases := []struct {
		name string
		args []string
		env  []string
		want string // in stderr, case-insensitive
	}{
		{"unknown flag", []string{"--no-such-flag"}, nil, "no-such-flag"},
		{"negative depth", []string{"--depth=-1"}, nil, "depth"},
		{"bad duration", []string{"--period=soon"}, nil, "period"},
		{"period too short", []string{"--period=1ms"}, nil, "period"},
		{"bad submodules", []string{"--submodules=sometimes"}, nil, "submodules"},
		{"missing git", []string{"--git=/nonexistent/git"}, nil, "git"},
		// No --one-time flag here: a flag would override the variable.
		{"bad env value", nil, []string{"GITSYNC_ONE_TIME=maybe"}, "maybe"},
		{"change-permissions", []string{"--change-permissions=0775"}, nil, "group-write"},
		{"sync-timeout too short", []string{"--sync-timeout=1ms"}, nil, "sync-timeout"},
		{"sync-on-signal SIGCHLD", []string{"--sync-on-signal=SIGCHLD"}, nil, "sigchld"},
		{"sync-on-signal URG by number", []string{"--sync-on-signal=23"}, nil, "sigurg"},
		{"sync-on-signal TERM", nil, []string{"GITSYNC_SYNC_ON_SIGNAL=TERM"}, "sigterm"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := newRoot(t)
			oneTime := []string{"--one-time"}
			if tc.env != nil {
				oneTime = nil
			}
			res := runWith(t, runOpts{Env: tc.env, Timeout: 30 * time.Second}, concat(syncArgs(up, root), oneTime, tc.args)...)
			if res.Code != 1 {
				t.Fatalf("want exit 1, got %s", res)
			}
			if !strings.Contains(strings.ToLower(res.Stderr+res.Stdout), tc.want) {
				t.Errorf("message does not mention %q:\n%s", tc.want, res)
			}
			if exists(filepath.Join(root, "link")) {
				t.Errorf("synced despite the invalid configuration")
			}
		})
	}
	for _, missing := range []string{"repo", "root"} {
		t.Run("missing --"+missing, func(t *testing.T) {
			t.Parallel()
			a := []string{"--repo=" + up.URL(), "--root=" + newRoot(t), "--one-time"}
			if missing == "repo" {
				a = a[1:]
			} else {
				a = []string{a[0], a[2]}
			}
			res := runOnce(t, a...)
			if res.Code != 1 {
				t.Fatalf("want exit 1, got %s", res)
			}
			if !strings.Contains(strings.ToLower(res.Stderr+res.Stdout), missing) {
				t.Errorf("message does not mention %q:\n%s", missing, res)
			}
		})
	}
}

func TestHelpManVersion(t *testing.T) {
	t.Parallel()
	for _, a := range [][]string{{"--help"}, {"-h"}, {"--man"}, {"--version"}} {
		t.Run(a[0], func(t *testing.T) {
			t.Parallel()
			res := runOnce(t, a...)
			if res.Code != 0 {
				t.Fatalf("want exit 0, got %s", res)
			}
			out := res.Stdout + res.Stderr
			if strings.TrimSpace(out) == "" {
				t.Fatalf("printed nothing")
			}
			if a[0] != "--version" && !strings.Contains(out, "--repo") {
				t.Errorf("help text does not document --repo:\n%s", tail(out, 20))
			}
		})
	}
}

func TestGroupWrite(t *testing.T) {
	t.Parallel()
	up := gittest.NewRepo(t)
	h := up.Commit(map[string]string{"a.txt": "a", "dir/b.txt": "b", "dir/sub/c.txt": "c"}, "c1")
	root := newRoot(t)
	mustSyncOnce(t, up, root, "--group-write", "--error-file=errs/e.json", "--touch-file=touch/t")
	checked := 0
	var bad []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&os.ModeSymlink != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		m := fi.Mode().Perm()
		checked++
		// Read-only files (git objects) stay read-only; anything the owner
		// may write, the group may write too.
		if (d.IsDir() || m&0o200 != 0) && m&0o020 == 0 {
			bad = append(bad, fmt.Sprintf("%v %s", m, p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d entries not group-writable with --group-write, e.g.:\n%s", len(bad), checked,
			strings.Join(bad[:min(len(bad), 15)], "\n"))
	}
	assertPublished(t, root, filepath.Join(root, "link"), h)
}

// ---------------------------------------------------------------------------
// Legacy environment names.

func TestLegacyEnvironment(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 2)
	up.Branch("feature", hs[0])
	up.Checkout("feature")
	f2 := up.Commit(map[string]string{"feature.txt": "f\n"}, "f")
	up.Checkout(gittest.DefaultBranch)

	t.Run("only old names", func(t *testing.T) {
		t.Parallel()
		root := newRoot(t)
		res := runWith(t, runOpts{Env: []string{
			"GIT_SYNC_REPO=" + up.URL(),
			"GIT_SYNC_ROOT=" + root,
			"GIT_SYNC_BRANCH=feature",
			"GIT_SYNC_DEST=current",
			"GIT_SYNC_DEPTH=2",
			"GIT_SYNC_ONE_TIME=true",
		}})
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		link := filepath.Join(root, "current")
		assertPublished(t, root, link, f2)
		if n := revCount(t, link); n != 2 {
			t.Errorf("GIT_SYNC_DEPTH=2: rev-list --count = %d", n)
		}
	})
	t.Run("old wins over new", func(t *testing.T) {
		t.Parallel()
		root := newRoot(t)
		res := runWith(t, runOpts{Env: []string{
			"GITSYNC_REPO=" + up.URL(),
			"GITSYNC_ROOT=" + root,
			"GIT_SYNC_REF=feature",
			"GITSYNC_REF=main",
			"GIT_SYNC_LINK=old",
			"GITSYNC_LINK=new",
			"GITSYNC_ONE_TIME=true",
		}})
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		assertPublished(t, root, filepath.Join(root, "old"), f2)
		if exists(filepath.Join(root, "new")) {
			t.Errorf("GITSYNC_LINK won over GIT_SYNC_LINK")
		}
	})
	t.Run("flag beats environment", func(t *testing.T) {
		t.Parallel()
		root := newRoot(t)
		res := runWith(t, runOpts{Env: []string{"GITSYNC_REF=feature", "GIT_SYNC_REF=feature"}},
			concat(syncArgs(up, root), []string{"--one-time", "--ref=main"})...)
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		assertPublished(t, root, filepath.Join(root, "link"), hs[1])
	})
}

// ---------------------------------------------------------------------------
// Signals, startup, logging.

func TestSIGTERM(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		up, h := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		link := filepath.Join(root, "link")
		p := start(t, concat(syncArgs(up, root), []string{"--period=100ms"})...)
		waitForLink(t, p, link, h)
		if code := p.Stop(); code != 0 {
			t.Errorf("exit %d after SIGTERM, want 0", code)
		}
		assertPublished(t, root, link, h)
	})
	t.Run("during a slow fetch", func(t *testing.T) {
		t.Parallel()
		up, h := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		link := filepath.Join(root, "link")
		w := gitWrapper(t, wrapperOpts{SleepCmd: "fetch", Sleep: time.Minute})
		// Publish first with the real git, then restart with every fetch
		// hanging.
		mustSyncOnce(t, up, root)
		p := start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--git=" + w.Path})...)
		var sleeper int
		waitFor(t, syncDeadline, func() bool { sleeper = w.SleepPid(); return sleeper != 0 }, "fetch to start sleeping")
		began := time.Now()
		if code := p.Stop(); code != 0 {
			t.Errorf("exit %d after SIGTERM during a fetch, want 0", code)
		}
		if d := time.Since(began); d > 5*time.Second {
			t.Errorf("SIGTERM took %v to stop git-sync", d)
		}
		waitFor(t, 5*time.Second, func() bool { return !processAlive(sleeper) }, "the running git (sleep pid %d) to be killed", sleeper)
		assertPublished(t, root, link, h)
	})
}

func TestFirstSyncIsImmediate(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	began := time.Now()
	p := start(t, concat(syncArgs(up, root), []string{"--period=1h"})...)
	waitForLink(t, p, filepath.Join(root, "link"), h)
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("first sync took %v with --period=1h; it must start at once", d)
	}
}

func TestRestartConfirmsAtStartup(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	mustSyncOnce(t, up, root)
	addr := freeAddr(t)
	touch := filepath.Join(root, "synced")
	p := start(t, concat(syncArgs(up, root), []string{"--period=1h", "--touch-file=synced",
		"--http-bind=" + addr, "--http-metrics"})...)
	waitForMetric(t, addr, func(v float64) bool { return v == 1 }, "first attempt of the run counted as a success", "git_sync_count_total", "status", "success")
	if f := metric(t, addr, "git_fetch_count_total"); f != 1 {
		t.Errorf("first attempt of the run: git_fetch_count_total = %v, want 1", f)
	}
	waitFor(t, syncDeadline, func() bool { return exists(touch) }, "touch file after the startup confirmation")
	assertPublished(t, root, filepath.Join(root, "link"), h)
	_ = p
}

func TestLogsAreJSONLines(t *testing.T) {
	t.Parallel()
	up, _ := gittest.NewRepoWithCommit(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"success -v 6", []string{"-v", "6"}, 0},
		{"failure", []string{"--ref=missing"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := newRoot(t)
			res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time"}, tc.args)...)
			if res.Code != tc.code {
				t.Fatalf("want exit %d, got %s", tc.code, res)
			}
			records, bad := parseLogs(res.Stderr)
			for _, l := range bad {
				t.Errorf("stderr line is not a JSON object: %q", l)
			}
			if len(records) == 0 {
				t.Fatalf("no log records")
			}
			for _, r := range records {
				_, hasMsg := r["msg"]
				if !hasMsg {
					_, hasMsg = r["message"]
				}
				_, hasTime := r["time"]
				if !hasTime {
					_, hasTime = r["ts"]
				}
				if !hasMsg || !hasTime {
					t.Errorf("record lacks a message or a timestamp: %v", r)
				}
			}
			if tc.code != 0 && len(errorRecords(res.Stderr)) == 0 {
				t.Errorf("a failed sync logged no error record")
			}
		})
	}
}

// TestUpgradeFromV3Layout builds a root the way git-sync v3 left it (the
// root a clone, the published worktree directly under it as rev-HASH or
// HASH, the link pointing there) and checks that one run republishes into
// ROOT/.worktrees/HASH and removes the old tree.
func TestUpgradeFromV3Layout(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 2)
	for _, name := range []string{"rev-" + hs[1], hs[1]} {
		label := strings.Replace(name, hs[1], "HASH", 1)
		t.Run(label, func(t *testing.T) {
			t.Parallel()
			root := newRoot(t)
			gitIn(t, t.TempDir(), "clone", "--quiet", "--no-checkout", "--depth=1", up.URL(), root)
			gitIn(t, root, "worktree", "add", "--quiet", "--detach", filepath.Join(root, name), hs[1])
			mustSymlink(t, name, filepath.Join(root, "link"))

			if got := mustSyncOnce(t, up, root); got != hs[1] {
				t.Fatalf("published %s, want %s", got, hs[1])
			}
			link := filepath.Join(root, "link")
			assertPublished(t, root, link, hs[1])
			assertCompleteTree(t, up, link, hs[1])
			if exists(filepath.Join(root, name)) {
				t.Errorf("the v3 worktree %s was not removed", name)
			}
		})
	}
}

func TestHTTPPprofOnlyWithFlag(t *testing.T) {
	t.Parallel()
	up, h := gittest.NewRepoWithCommit(t)
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("pprof=%v", on), func(t *testing.T) {
			t.Parallel()
			root := newRoot(t)
			addr := freeAddr(t)
			a := concat(syncArgs(up, root), []string{"--period=1h", "--http-bind=" + addr})
			if on {
				a = append(a, "--http-pprof")
			}
			p := start(t, a...)
			waitForLink(t, p, filepath.Join(root, "link"), h)
			code, body, err := httpGet(addr, "/debug/pprof/")
			if err != nil {
				t.Fatal(err)
			}
			// "/" may answer any path (readiness), so look for the pprof
			// index itself.
			served := code == http.StatusOK && strings.Contains(body, "goroutine")
			if on && !served {
				t.Errorf("GET /debug/pprof/ = %d with --http-pprof, want the pprof index:\n%s", code, tail(body, 10))
			}
			if !on && served {
				t.Errorf("GET /debug/pprof/ served the pprof index without --http-pprof")
			}
		})
	}
}

func TestVerbosity(t *testing.T) {
	t.Parallel()
	up, _ := gittest.NewRepoWithCommit(t)
	run := func(t *testing.T, v string) result {
		t.Helper()
		root := newRoot(t)
		res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time", "-v", v})...)
		if res.Code != 0 {
			t.Fatalf("-v %s: want exit 0, got %s", v, res)
		}
		return res
	}
	quiet := run(t, "0")
	loud := run(t, "5")
	q, _ := parseLogs(quiet.Stderr)
	l, _ := parseLogs(loud.Stderr)
	if len(q) > 5 {
		t.Errorf("-v 0 logged %d records for one sync; it should log only updates and errors:\n%s", len(q), quiet.Stderr)
	}
	if len(l) <= len(q) {
		t.Errorf("-v 5 logged %d records, no more than -v 0 (%d)", len(l), len(q))
	}
	// -v 5 logs every git command run, so the fetch of the repo shows up.
	sawFetch := false
	for _, r := range l {
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), "fetch") && strings.Contains(string(b), up.URL()) {
			sawFetch = true
		}
	}
	if !sawFetch {
		t.Errorf("-v 5 did not log the git fetch of %s:\n%s", up.URL(), tail(loud.Stderr, 30))
	}
}
