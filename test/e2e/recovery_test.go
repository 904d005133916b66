package e2e

// Recovery and data safety: a fetch stopped while git holds its locks, a
// repository damaged under a running git-sync, roots written by git-sync v4
// or moved to another path, crashes at the worst moments, and roots that
// hold someone else's data. Each test makes the failure happen at the
// moment it matters and checks what a user would: the process recovers on
// its own, readers never miss a file, and nothing that is not git-sync's is
// destroyed.

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// randomFiles returns n files of size bytes each under dir/, with content
// that does not compress (so a pack of them is as big as they are).
func randomFiles(dir string, n, size int, seed uint64) map[string]string {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	files := map[string]string{}
	buf := make([]byte, size)
	for i := range n {
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		files[fmt.Sprintf("%s/%04d.bin", dir, i)] = string(buf)
	}
	return files
}

// throttlingGit writes a --git wrapper that, while the file returned as
// throttle exists, runs every fetch with an upload-pack whose output is
// slowed to about 40 KiB/s, and records the fetching git's pid (the
// wrapper execs git, so it keeps the pid) in pidFile.
func throttlingGit(t *testing.T) (git, throttle, pidFile string) {
	t.Helper()
	dir := t.TempDir()
	throttle = filepath.Join(dir, "throttle")
	pidFile = filepath.Join(dir, "fetch.pid")
	slow := filepath.Join(dir, "slow-upload-pack")
	if err := os.WriteFile(slow, []byte(fmt.Sprintf(`#!/bin/sh
%q upload-pack "$@" | perl -e '$|=1; while (sysread(STDIN, $b, 2048)) { syswrite(STDOUT, $b); select(undef, undef, undef, 0.05) }'
`, realGit)), 0o755); err != nil {
		t.Fatal(err)
	}
	git = writeScript(t, "git", fmt.Sprintf(`REAL=%q
if [ "$1" = fetch ] && [ -e %q ]; then
	echo $$ > %q
	shift
	exec "$REAL" fetch --upload-pack=%q "$@"
fi
exec "$REAL" "$@"
`, realGit, throttle, pidFile, slow))
	return git, throttle, pidFile
}

// TestFetchStoppedHoldingLocksRecovers stops a shallow fetch in the middle
// of its transfer, while git holds .git/shallow.lock: once by
// --sync-timeout, once by killing git alone with SIGKILL (what the OOM
// killer does). Either way the next attempts must not fail on the lock
// git left: with the throttle gone, the commit is published.
func TestFetchStoppedHoldingLocksRecovers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		timeout string
		kill    bool // SIGKILL git itself once it holds shallow.lock
	}{
		{"sync timeout", "2s", false},
		{"git killed alone", "120s", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up, hs := linearRepo(t, 1)
			root := newRoot(t)
			link := filepath.Join(root, "link")
			git, throttle, pidFile := throttlingGit(t)
			p := start(t, concat(syncArgs(up, root), []string{
				"--git=" + git, "--period=100ms", "--max-failures=-1", "--sync-timeout=" + tc.timeout,
			})...)
			waitForLink(t, p, link, hs[0])

			mustWrite(t, throttle, "")
			big := up.Commit(randomFiles("big", 48, 64<<10, 1), "three MiB that do not compress")
			lock := filepath.Join(root, ".git", "shallow.lock")
			waitFor(t, syncDeadline, func() bool { return exists(lock) }, "a throttled fetch taking .git/shallow.lock")
			if tc.kill {
				b, err := os.ReadFile(pidFile)
				if err != nil {
					t.Fatal(err)
				}
				var pid int
				fmt.Sscan(string(b), &pid)
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Fatalf("kill git fetch %d: %v", pid, err)
				}
			}
			waitFor(t, 30*time.Second, func() bool { return len(errorRecords(p.Logs())) > 0 },
				"the stopped fetch to be reported as a failed sync")
			if err := os.Remove(throttle); err != nil {
				t.Fatal(err)
			}
			waitForLink(t, p, link, big)
			assertCompleteTree(t, up, link, big)
			if !p.Running() {
				t.Fatalf("git-sync exited: %s", tail(p.Logs(), 30))
			}
		})
	}
}

// objectsSize returns the bytes of the files under root/.git/objects.
func objectsSize(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(filepath.Join(root, ".git", "objects"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestUpdateFetchesOnlyWhatChanged: after a one-file change, an update
// downloads that change, not the whole tree again, because git-sync keeps
// the published commit on its own branch (offered to the remote as a
// "have"); and with the default --git-gc the object store stays bounded
// over many updates.
func TestUpdateFetchesOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	up := gittest.NewRepo(t)
	// More objects than git's unpack limit (100), so that what a fetch
	// brings is kept as the pack it arrived in.
	up.Commit(randomFiles("data", 300, 4<<10, 2), "about 1.2 MiB in 300 files")
	root := newRoot(t)
	first := mustSyncOnce(t, up, root, "--git-gc=off")
	before := objectsSize(t, root)

	next := up.Commit(map[string]string{"small.txt": "one small change\n"}, "small")
	if got := mustSyncOnce(t, up, root, "--git-gc=off"); got != next {
		t.Fatalf("published %s, want %s", got, next)
	}
	grown := objectsSize(t, root) - before
	t.Logf("store after the first sync: %d bytes; an update of one small file added %d bytes", before, grown)
	if grown > before/10 {
		t.Errorf("a one-file update added %d bytes to a %d-byte store: the tree was downloaded again", grown, before)
	}
	if got, err := gittest.RunGit(root, childEnv(t), "rev-parse", "--verify", "--quiet", "refs/heads/git-sync"); strings.TrimSpace(got) != next {
		t.Errorf("refs/heads/git-sync = %q (%v) after the update, want %s (first sync: %s)", got, err, next, first)
	}

	// Many updates with the default gc: the store stays near its size
	// after a full gc.
	fresh := newRoot(t)
	p := start(t, concat(syncArgs(up, fresh), []string{"--period=50ms"})...)
	waitForLink(t, p, filepath.Join(fresh, "link"), next)
	base := objectsSize(t, fresh)
	for i := range 30 {
		h := up.Commit(map[string]string{"small.txt": fmt.Sprintf("update %d\n", i)}, fmt.Sprintf("u%d", i))
		waitForLink(t, p, filepath.Join(fresh, "link"), h)
	}
	after := objectsSize(t, fresh)
	t.Logf("store after a fresh sync: %d bytes; after 30 updates: %d bytes", base, after)
	if after*2 > base*3 {
		t.Errorf("after 30 updates the store is %d bytes, more than 1.5 times its %d bytes after a fresh sync", after, base)
	}
}

// v4Root lays out root exactly as kubernetes/git-sync v4 leaves it after
// syncing ref of url, using the same git commands in the same order: `git
// init -b git-sync`, origin, a fetch by ref, `reset --soft` to the fetched
// commit (refs/heads/git-sync), `worktree add --no-checkout` at
// .worktrees/HASH, a relative .git file, `reset --hard` in the worktree,
// submodules, and the link renamed over from tmp-link.
func v4Root(t *testing.T, url, ref, root string) string {
	t.Helper()
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	gitIn(t, root, "init", "-q", "-b", "git-sync")
	gitIn(t, root, "remote", "add", "origin", url)
	gitIn(t, root, "fetch", url, ref, "--verbose", "--no-progress", "--prune", "--no-auto-gc", "--depth", "1")
	hash := gitIn(t, root, "rev-parse", "FETCH_HEAD^{}")
	gitIn(t, root, "reset", "--soft", hash)
	wt := filepath.Join(root, ".worktrees", hash)
	gitIn(t, root, "worktree", "add", "--force", "--detach", wt, hash, "--no-checkout")
	mustWrite(t, filepath.Join(wt, ".git"), "gitdir: ../../.git/worktrees/"+hash+"\n")
	gitIn(t, wt, "reset", "--hard", hash, "--")
	gitIn(t, wt, "submodule", "update", "--init", "--recursive", "--depth", "1")
	mustSymlink(t, filepath.Join(".worktrees", hash), filepath.Join(root, "tmp-link"))
	if err := os.Rename(filepath.Join(root, "tmp-link"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	return hash
}

// reader resolves the link every 2 ms, as a consumer does at the start of
// each read, and checks that every file of the commit is there. It counts
// reads and misses (a file absent, or the link unresolvable) until stopped.
type reader struct {
	reads, misses atomic.Int64
	firstMiss     atomic.Value // string
	stop          chan struct{}
	done          sync.WaitGroup
}

func startReader(t *testing.T, link string, files []string) *reader {
	t.Helper()
	r := &reader{stop: make(chan struct{})}
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-tick.C:
			}
			r.reads.Add(1)
			target, err := os.Readlink(link)
			if err != nil {
				r.miss("readlink: " + err.Error())
				continue
			}
			dir := filepath.Join(filepath.Dir(link), target)
			for _, f := range files {
				if _, err := os.Lstat(filepath.Join(dir, f)); err != nil {
					r.miss(err.Error())
					break
				}
			}
		}
	}()
	t.Cleanup(r.Stop)
	return r
}

func (r *reader) miss(what string) {
	r.misses.Add(1)
	r.firstMiss.CompareAndSwap(nil, what)
}

// Stop ends the reader (idempotent).
func (r *reader) Stop() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.done.Wait()
}

// check fails the test if the reader ever missed a file.
func (r *reader) check(t *testing.T) {
	t.Helper()
	r.Stop()
	t.Logf("reader: %d reads, %d misses", r.reads.Load(), r.misses.Load())
	if r.reads.Load() == 0 {
		t.Fatal("the reader never ran")
	}
	if n := r.misses.Load(); n > 0 {
		t.Errorf("a reader missed files %d times; first: %v", n, r.firstMiss.Load())
	}
}

// manyFiles is an upstream with a tree large enough that deleting and
// rebuilding it takes a reader-visible while.
func manyFiles(t *testing.T) (*gittest.Repo, string) {
	t.Helper()
	up := gittest.NewRepo(t)
	files := map[string]string{}
	for i := range 2000 {
		files[fmt.Sprintf("d%02d/f%04d.txt", i%40, i)] = fmt.Sprintf("file %d\n", i)
	}
	return up, up.Commit(files, "2000 files")
}

// TestAdoptsTreesItDidNotBuild: a root written by git-sync v4 (the image
// swapped under a running consumer) and a root moved to another path are
// taken over with the published tree left exactly where it is: a reader
// resolving the link throughout never misses a file, and the tree is the
// same directory (inode) afterwards. Then the next update works as usual.
func TestAdoptsTreesItDidNotBuild(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, up *gittest.Repo, root string) string // returns the published hash
	}{
		{"root written by git-sync v4", func(t *testing.T, up *gittest.Repo, root string) string {
			return v4Root(t, up.URL(), "HEAD", root)
		}},
		{"root moved to another path", func(t *testing.T, up *gittest.Repo, root string) string {
			elsewhere := filepath.Join(t.TempDir(), "before-the-move")
			h := mustSyncOnce(t, up, elsewhere)
			if err := os.Rename(elsewhere, root); err != nil {
				t.Fatal(err)
			}
			return h
		}},
		{"v4 root moved to another path", func(t *testing.T, up *gittest.Repo, root string) string {
			elsewhere := filepath.Join(t.TempDir(), "v4-before-the-move")
			h := v4Root(t, up.URL(), "HEAD", elsewhere)
			if err := os.Rename(elsewhere, root); err != nil {
				t.Fatal(err)
			}
			return h
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up, head := manyFiles(t)
			root := filepath.Join(t.TempDir(), "root")
			link := filepath.Join(root, "link")
			if h := tc.setup(t, up, root); h != head {
				t.Fatalf("setup published %s, want %s", h, head)
			}
			ino := inode(t, worktreePath(root, head))
			r := startReader(t, link, up.Files(head))

			touch := filepath.Join(t.TempDir(), "synced")
			p := start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--touch-file=" + touch})...)
			waitFor(t, syncDeadline, func() bool { return exists(touch) }, "the first sync")
			r.check(t)
			assertPublished(t, root, link, head)
			if got := inode(t, worktreePath(root, head)); got != ino {
				t.Errorf("the published tree was replaced (inode %d, was %d), not adopted", got, ino)
			}
			if got := gitIn(t, link, "rev-parse", "HEAD"); got != head {
				t.Errorf("git -C link rev-parse HEAD = %s, want %s", got, head)
			}
			if gd, err := os.ReadFile(filepath.Join(root, ".git", "worktrees", head, "gitdir")); err != nil ||
				strings.TrimSpace(string(gd)) != filepath.Join(worktreePath(root, head), ".git") {
				t.Errorf("the worktree's gitdir file says %q (%v), want its current path", gd, err)
			}
			if errs := errorRecords(p.Logs()); len(errs) > 0 {
				t.Errorf("errors logged:\n%s", strings.Join(errs, "\n"))
			}

			next := up.Commit(map[string]string{"d00/new.txt": "new\n"}, "next")
			waitForLink(t, p, link, next)
			assertCompleteTree(t, up, link, next)
		})
	}
}

// TestDamagedPublishedTreeReplacedBeside: a published tree git-sync cannot
// trust (here git-sync v4 was killed before its checkout wrote the index)
// is replaced by a tree built beside it, never rebuilt in place, so the
// link never points at a partial tree; and a SIGTERM in the middle of that
// build (a rollout) leaves the published tree as it was.
func TestDamagedPublishedTreeReplacedBeside(t *testing.T) {
	t.Parallel()
	up, head := manyFiles(t)
	root := filepath.Join(t.TempDir(), "root")
	link := filepath.Join(root, "link")
	if h := v4Root(t, up.URL(), "HEAD", root); h != head {
		t.Fatalf("v4 root published %s, want %s", h, head)
	}
	if err := os.Remove(filepath.Join(root, ".git", "worktrees", head, "index")); err != nil {
		t.Fatal(err)
	}
	ino := inode(t, worktreePath(root, head))
	r := startReader(t, link, up.Files(head))

	// The checkout of the replacement hangs until git-sync is stopped.
	w := gitWrapper(t, wrapperOpts{SleepCmd: "reset", SleepFirst: 1, Sleep: time.Minute})
	p := start(t, concat(syncArgs(up, root), []string{"--git=" + w.Path})...)
	waitFor(t, syncDeadline, func() bool { return w.SleepPid() != 0 }, "the replacement's checkout to start")
	if code := p.Stop(); code != 0 {
		t.Fatalf("SIGTERM during the rebuild: exit %d, want 0\n%s", code, tail(p.Logs(), 30))
	}
	assertPublished(t, root, link, head)
	assertCompleteTree(t, up, link, head)
	if got := inode(t, worktreePath(root, head)); got != ino {
		t.Errorf("the published tree was touched by the interrupted rebuild (inode %d, was %d)", got, ino)
	}

	// Left alone, the next run replaces it.
	touch := filepath.Join(t.TempDir(), "synced")
	p = start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--touch-file=" + touch})...)
	waitFor(t, syncDeadline, func() bool { return exists(touch) }, "the replacing sync")
	r.check(t)
	assertPublished(t, root, link, head)
	assertCompleteTree(t, up, link, head)
	if errs := errorRecords(p.Logs()); len(errs) > 0 {
		t.Errorf("errors logged:\n%s", strings.Join(errs, "\n"))
	}
	if ents, _ := filepath.Glob(filepath.Join(root, ".worktrees", ".*")); len(ents) > 0 {
		t.Errorf("leftovers under .worktrees: %v", ents)
	}
}

// TestCrashOrdering checks, in the system calls of a real update, the two
// orderings that make a kill at any instant safe:
//   - the previous tree's stale clock starts (utimensat) before the link is
//     flipped (rename), so a kill right after the flip cannot leave it
//     looking expired since long ago;
//   - a worktree is removed by first renaming it to a trash name and only
//     then deleting files, so a kill in the middle never leaves a partial
//     tree under its hash (which would pass for whole if that commit came
//     back).
func TestCrashOrdering(t *testing.T) {
	t.Parallel()
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal("strace is not installed (Debian: apt-get install -y strace; .ci/run installs it)")
	}
	up, hs := linearRepo(t, 1)
	root := newRoot(t)
	mustSyncOnce(t, up, root)
	old := hs[0]
	next := up.Commit(map[string]string{"file.txt": "next\n"}, "next")

	trace := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command(strace, concat([]string{"-f", "-qq", "-y", "-o", trace,
		"-e", "trace=rename,renameat,renameat2,utimensat,unlink,unlinkat,rmdir", gitSyncBin},
		syncArgs(up, root), []string{"--one-time"})...)
	cmd.Env = childEnv(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("traced run: %v\n%s", err, tail(string(out), 40))
	}
	if got := linkHash(t, filepath.Join(root, "link")); got != next {
		t.Fatalf("published %s, want %s", got, next)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	oldTree := worktreePath(root, old)
	find := func(what string, match func(string) bool) int {
		for i, l := range lines {
			if match(l) {
				return i
			}
		}
		t.Fatalf("no %s in the trace:\n%s", what, b)
		return -1
	}
	touched := find("utimensat of the previous tree", func(l string) bool {
		return strings.Contains(l, "utimensat(") && strings.Contains(l, `"`+oldTree+`"`)
	})
	flipped := find("rename over the link", func(l string) bool {
		return strings.Contains(l, "rename") && strings.Contains(l, ".link.tmp-") && strings.Contains(l, `/link"`)
	})
	if touched > flipped {
		t.Errorf("the stale clock started after the flip:\n%s\n%s", lines[flipped], lines[touched])
	}
	trashed := find("rename of the previous tree to a trash name", func(l string) bool {
		return strings.Contains(l, "rename") && strings.Contains(l, `"`+oldTree+`"`) && strings.Contains(l, ".trash-")
	})
	for i, l := range lines {
		if strings.Contains(l, "unlink") && strings.Contains(l, oldTree+"/") && i < trashed {
			t.Errorf("a file of the previous tree was deleted before the tree was moved away:\n%s", l)
			break
		}
		if strings.Contains(l, "unlink") && strings.Contains(l, "<"+oldTree+">") {
			t.Errorf("files deleted under the tree's own name:\n%s", l)
			break
		}
	}
}

// TestHealsWhileRunning damages the root of a running git-sync (retrying
// forever, as the README's Kubernetes example does) in ways people and
// disks do, then pushes a commit: it must be published within seconds,
// with the process still up.
func TestHealsWhileRunning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, root, link string)
	}{
		{".git deleted", func(t *testing.T, root, _ string) {
			if err := os.RemoveAll(filepath.Join(root, ".git")); err != nil {
				t.Fatal(err)
			}
		}},
		{".git/HEAD deleted", func(t *testing.T, root, _ string) {
			if err := os.Remove(filepath.Join(root, ".git", "HEAD")); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage appended to .git/config", func(t *testing.T, root, _ string) {
			f, err := os.OpenFile(filepath.Join(root, ".git", "config"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(f, "[[[ this is not git config\n\x00\x01\n")
			f.Close()
		}},
		{"the whole root deleted", func(t *testing.T, root, _ string) {
			if err := os.RemoveAll(root); err != nil {
				t.Fatal(err)
			}
		}},
		{"the parent directory of an absolute --link deleted", func(t *testing.T, _, link string) {
			if err := os.RemoveAll(filepath.Dir(filepath.Dir(link))); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up, hs := linearRepo(t, 1)
			root := newRoot(t)
			link := filepath.Join(t.TempDir(), "links", "sub", "link")
			p := start(t, "--repo="+up.URL(), "--root="+root, "--link="+link,
				"--period=100ms", "--max-failures=-1")
			waitForLink(t, p, link, hs[0])

			tc.damage(t, root, link)
			next := up.Commit(map[string]string{"file.txt": "after the damage\n"}, "next")
			waitForLink(t, p, link, next)
			assertCompleteTree(t, up, link, next)
			if !p.Running() {
				t.Fatalf("git-sync exited: %s", tail(p.Logs(), 30))
			}
			if got := gitIn(t, link, "rev-parse", "HEAD"); got != next {
				t.Errorf("git -C link rev-parse HEAD = %s, want %s", got, next)
			}
			for _, e := range errorRecords(p.Logs()) {
				if strings.Contains(e, "/usr/bin/git") && strings.Contains(e, "no such file") {
					t.Errorf("an error blames the git program for a missing directory: %s", e)
				}
			}
		})
	}
}

// TestDamagedConfigAtStartup: a .git/config full of NUL bytes (power-loss
// damage) is written again at the next start; the object store is kept.
func TestDamagedConfigAtStartup(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 1)
	root := newRoot(t)
	mustSyncOnce(t, up, root)
	objIno := inode(t, filepath.Join(root, ".git", "objects"))
	if err := os.WriteFile(filepath.Join(root, ".git", "config"), bytes.Repeat([]byte{0}, 512), 0o644); err != nil {
		t.Fatal(err)
	}
	next := up.Commit(map[string]string{"file.txt": "next\n"}, "next")
	if got := mustSyncOnce(t, up, root); got != next {
		t.Fatalf("published %s, want %s (previous %s)", got, next, hs[0])
	}
	if inode(t, filepath.Join(root, ".git", "objects")) != objIno {
		t.Errorf("the object store was re-created for a damaged config")
	}
	if got := gitIn(t, root, "config", "--get", "remote.origin.url"); got != up.URL() {
		t.Errorf("origin after the repair = %q, want %q", got, up.URL())
	}
}

// TestNeverDestroysWhatIsNotItsOwn points --root at repositories git-sync
// did not create, and --link at a file: git-sync refuses with a clear
// error, and every branch, tag and file stays.
func TestNeverDestroysWhatIsNotItsOwn(t *testing.T) {
	t.Parallel()
	refsOf := func(t *testing.T, dir string) string {
		return gitIn(t, dir, "for-each-ref", "--format=%(refname) %(objectname)")
	}
	t.Run("a user's clone", func(t *testing.T) {
		t.Parallel()
		up, _ := linearRepo(t, 2)
		root := newRoot(t)
		gitIn(t, filepath.Dir(root), "clone", "--quiet", up.URL(), root)
		gitIn(t, root, "branch", "feature")
		gitIn(t, root, "tag", "v1")
		before := refsOf(t, root)
		res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time"})...)
		if res.Code != 1 || !strings.Contains(res.Stderr, "checkout of its own") {
			t.Fatalf("want exit 1 naming the clone's checkout, got %s", res)
		}
		if after := refsOf(t, root); after != before {
			t.Errorf("refs changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if !exists(filepath.Join(root, "file.txt")) {
			t.Errorf("the clone's files were removed")
		}
	})
	t.Run("the source repository itself", func(t *testing.T) {
		t.Parallel()
		up, hs := linearRepo(t, 2)
		before := refsOf(t, up.Dir())
		res := runOnce(t, "--repo="+up.URL(), "--root="+up.Dir(), "--link=link", "--one-time")
		if res.Code != 1 || !strings.Contains(res.Stderr, "source repository") {
			t.Fatalf("want exit 1 naming the source repository, got %s", res)
		}
		if after := refsOf(t, up.Dir()); after != before {
			t.Errorf("the source's refs changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if got := up.Head("main"); got != hs[1] {
			t.Errorf("the source's main is %s, want %s", got, hs[1])
		}
	})
	t.Run("a bare repository", func(t *testing.T) {
		t.Parallel()
		up, _ := linearRepo(t, 1)
		root := newRoot(t)
		gitIn(t, filepath.Dir(root), "clone", "--quiet", "--bare", up.URL(), root)
		before := refsOf(t, root)
		res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time"})...)
		if res.Code != 1 || !strings.Contains(res.Stderr, "bare") {
			t.Fatalf("want exit 1 naming the bare repository, got %s", res)
		}
		if after := refsOf(t, root); after != before {
			t.Errorf("refs changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
	for _, kind := range []string{"file", "directory"} {
		t.Run("--link naming a "+kind, func(t *testing.T) {
			t.Parallel()
			up, _ := linearRepo(t, 1)
			root := newRoot(t)
			link := filepath.Join(t.TempDir(), "data")
			if kind == "file" {
				mustWrite(t, link, "precious\n")
			} else {
				mustWrite(t, filepath.Join(link, "inside.txt"), "precious\n")
			}
			res := runOnce(t, "--repo="+up.URL(), "--root="+root, "--link="+link, "--one-time")
			if res.Code != 1 || !strings.Contains(res.Stderr, "not a symlink") {
				t.Fatalf("want exit 1 refusing to replace the %s, got %s", kind, res)
			}
			check := link
			if kind == "directory" {
				check = filepath.Join(link, "inside.txt")
			}
			if b, err := os.ReadFile(check); err != nil || string(b) != "precious\n" {
				t.Errorf("the %s at --link was changed: %q %v", kind, b, err)
			}
		})
	}
}

// TestSourceOwnedByAnotherUser: a file:// source owned by another UID is
// read without git's "dubious ownership" refusal, because git-sync marks
// exactly that path safe (not safe.directory=*).
func TestSourceOwnedByAnotherUser(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Fatal("this test changes file ownership and must run as root (CI does)")
	}
	up, hs := linearRepo(t, 1)
	err := filepath.WalkDir(up.Dir(), func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 65534, 65534)
	})
	if err != nil {
		t.Fatal(err)
	}
	root := newRoot(t)
	if got := mustSyncOnce(t, up, root); got != hs[0] {
		t.Fatalf("published %s, want %s", got, hs[0])
	}
	cfg, err := os.ReadFile(filepath.Join(root, ".git-sync", "gitconfig-managed"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfg), `"*"`) {
		t.Errorf("safe.directory=* in the private config:\n%s", cfg)
	}
}

// TestUnwritableRootFollowsMaxFailures: a root git-sync cannot write (a
// read-only volume, a volume owned by another user) is a sync failure like
// any other, not an exit at startup: retried with --max-failures=-1, and
// synced as soon as it becomes writable.
func TestUnwritableRootFollowsMaxFailures(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Fatal("this test runs git-sync as another user and must run as root (CI does)")
	}
	const nobody = 65534
	up, hs := linearRepo(t, 1)
	base := t.TempDir()
	root := filepath.Join(base, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	// The other user must reach the source and the root's parent.
	for _, d := range []string{base, filepath.Dir(base), up.Dir(), filepath.Dir(up.Dir()), filepath.Dir(filepath.Dir(up.Dir()))} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cred := &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}
	home := filepath.Join(base, "home")
	if err := os.Mkdir(home, 0o755); err != nil || os.Chown(home, nobody, nobody) != nil {
		t.Fatalf("home for the other user: %v", err)
	}
	p := startWith(t, runOpts{Cred: cred, Env: []string{"HOME=" + home}},
		concat(syncArgs(up, root), []string{"--period=100ms", "--max-failures=-1"})...)
	waitFor(t, syncDeadline, func() bool { return len(errorRecords(p.Logs())) > 0 }, "a failed attempt on the unwritable root")
	if !p.Running() {
		t.Fatalf("git-sync exited on an unwritable root with --max-failures=-1:\n%s", tail(p.Logs(), 20))
	}
	if errs := errorRecords(p.Logs()); !strings.Contains(errs[0], "permission denied") {
		t.Errorf("the failure does not say what is wrong: %s", errs[0])
	}
	if err := os.Chown(root, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	waitForLink(t, p, filepath.Join(root, "link"), hs[0])
}
