package e2e

// --git-gc=auto|always|aggressive|off: gc runs only after a worktree was
// removed, never on an idle poll, and it actually reclaims what superseded
// commits used.

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// shapeGCCalls returns the recorded argument lines of the commands that
// start a garbage collection: `git gc`, or the `git repack -a` with which
// --git-gc=always collects.
func shapeGCCalls(w wrapper) []string {
	var out []string
	for _, c := range w.Calls() {
		if f := strings.Fields(c); len(f) > 0 && (f[0] == "gc" || f[0] == "repack") {
			out = append(out, c)
		}
	}
	return out
}

// shapeWaitPolls waits until git-sync p has made n more idle polls (ls-remote
// calls through wrapper w) than when called.
func shapeWaitPolls(t *testing.T, p *Proc, w wrapper, n int) {
	t.Helper()
	base := w.CountCalls("ls-remote")
	waitFor(t, syncDeadline, func() bool {
		if !p.Running() {
			t.Fatalf("git-sync exited (code %d):\n%s", p.ExitCode(), tail(p.Logs(), 40))
		}
		return w.CountCalls("ls-remote") >= base+n
	}, "%d idle polls", n)
}

// shapeWaitSyncDone waits until the sync of p that published hash has
// ended (gc included): its "published" log record, written when the sync
// returns, names hash.
func shapeWaitSyncDone(t *testing.T, p *Proc, hash string) {
	t.Helper()
	waitFor(t, syncDeadline, func() bool {
		records, _ := parseLogs(p.Logs())
		for _, r := range records {
			msg, _ := r["msg"].(string)
			if r["hash"] == hash && strings.Contains(msg, "publish") {
				return true
			}
		}
		return false
	}, "the log record of the sync that published %s", hash)
}

// shapeCountObjects parses `git count-objects -v` in root.
func shapeCountObjects(t *testing.T, root string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, line := range strings.Split(gitIn(t, root, "count-objects", "-v"), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			out[k] = n
		}
	}
	return out
}

// shapeHasObject reports whether the repository at root holds object oid.
func shapeHasObject(root, oid string) bool {
	_, err := gittest.RunGit(root, gitEnv, "cat-file", "-e", oid)
	return err == nil
}

func TestShapeGitGC(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode    string // "" = the default
		gc      bool   // gc runs after a removal
		flag    string // must appear in gc's arguments
		noFlags []string
		reclaim bool // superseded objects are gone afterwards
	}{
		{mode: "", gc: true, noFlags: []string{"--auto", "--aggressive"}, reclaim: true},
		{mode: "always", gc: true, noFlags: []string{"--auto", "--aggressive"}, reclaim: true},
		{mode: "aggressive", gc: true, flag: "--aggressive", noFlags: []string{"--auto"}, reclaim: true},
		{mode: "auto", gc: true, flag: "--auto", noFlags: []string{"--aggressive"}},
		{mode: "off", gc: false},
	} {
		name := tc.mode
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			up, hs := shapeLinear(t, 1)
			root := newRoot(t)
			link := filepath.Join(root, "link")
			w := gitWrapper(t, wrapperOpts{})
			args := append(syncArgs(up, root), "--period=50ms", "--git="+w.Path)
			if tc.mode != "" {
				args = append(args, "--git-gc="+tc.mode)
			}
			p := start(t, args...)
			waitForLink(t, p, link, hs[0])
			shapeWaitPolls(t, p, w, 5)
			if calls := shapeGCCalls(w); len(calls) > 0 {
				t.Fatalf("gc ran before anything was removed: %q", calls)
			}

			next := up.Commit(map[string]string{"file.txt": "second\n", "big.bin": shapeRandom(1, 64<<10)}, "c2")
			waitForLink(t, p, link, next)
			waitFor(t, syncDeadline, func() bool { return !exists(worktreePath(root, hs[0])) },
				"the superseded worktree %s to be removed", hs[0])
			want := 0
			if tc.gc {
				want = 1
				waitFor(t, syncDeadline, func() bool { return len(shapeGCCalls(w)) >= 1 }, "gc after the removal")
			}
			shapeWaitPolls(t, p, w, 5)
			calls := shapeGCCalls(w)
			if len(calls) != want {
				t.Fatalf("gc ran %d times (%q) over one removal and idle polls, want %d", len(calls), calls, want)
			}
			for _, c := range calls {
				if tc.flag != "" && !strings.Contains(c, tc.flag) {
					t.Errorf("--git-gc=%s ran `git %s`, want %s", tc.mode, c, tc.flag)
				}
				for _, f := range tc.noFlags {
					if strings.Contains(c, f) {
						t.Errorf("--git-gc=%s ran `git %s`, which must not have %s", tc.mode, c, f)
					}
				}
			}
			if code := p.Stop(); code != 0 {
				t.Errorf("git-sync exit %d after SIGTERM, want 0", code)
			}
			objs := shapeCountObjects(t, root)
			switch {
			case tc.reclaim:
				if shapeHasObject(root, hs[0]) {
					t.Errorf("superseded commit %s is still in the object store after gc", hs[0])
				}
				if objs["count"] != 0 {
					t.Errorf("%d loose objects after gc, want 0 (%v)", objs["count"], objs)
				}
			case tc.mode == "off":
				if !shapeHasObject(root, hs[0]) {
					t.Errorf("superseded commit %s vanished with --git-gc=off", hs[0])
				}
			}
			shapeAssertTree(t, link, shapeExpected(t, up, next, shapeWant{}))
		})
	}
}

// TestShapeGitGCReclaimsManyUpdates publishes 100 updates, each bringing
// 32 KiB of incompressible data (3.2 MiB in all, against 32 KiB for the
// last commit, and several full collections at the --git-gc=always
// growth bound), and checks that the root then uses no more than twice
// what a fresh sync of the final commit uses. (200 updates took two and a
// half minutes of a CI run on 2 cores and showed nothing more; the
// benchmark's disk scenario runs 200.)
func TestShapeGitGCReclaimsManyUpdates(t *testing.T) {
	t.Parallel()
	const updates = 100
	up := newShapeRepo(t)
	first := up.Commit(map[string]string{"data.bin": shapeRandom(0, 32<<10), "n.txt": "0\n"}, "u0")
	root := newRoot(t)
	link := filepath.Join(root, "link")
	p := start(t, append(syncArgs(up, root), "--period=20ms")...)
	waitForLink(t, p, link, first)
	started := time.Now()
	var hs []string
	for i := 1; i <= updates; i++ {
		h := up.Commit(map[string]string{"data.bin": shapeRandom(uint64(i), 32<<10), "n.txt": fmt.Sprintf("%d\n", i)}, fmt.Sprintf("u%d", i))
		hs = append(hs, h)
		waitForLink(t, p, link, h)
	}
	t.Logf("%d updates published in %v", updates, time.Since(started).Round(time.Millisecond))
	last := hs[len(hs)-1]
	// The superseded worktree of the last update, and gc, go at the end
	// of that same sync; wait for it to end before measuring.
	shapeWaitSyncDone(t, p, last)
	if code := p.Stop(); code != 0 {
		t.Errorf("git-sync exit %d after SIGTERM, want 0", code)
	}
	if errs := errorRecords(p.Logs()); len(errs) > 0 {
		t.Errorf("errors logged:\n%s", strings.Join(errs[:min(len(errs), 10)], "\n"))
	}
	shapeAssertTree(t, link, shapeExpected(t, up, last, shapeWant{}))

	fresh := newRoot(t)
	shapeSyncOnce(t, syncArgs(up, fresh)...)
	used, ideal := shapeDirSize(t, root), shapeDirSize(t, fresh)
	objs := shapeCountObjects(t, root)
	t.Logf("root after %d updates: %d bytes; fresh sync of the last commit: %d bytes; objects: %v", updates, used, ideal, objs)
	if used > 2*ideal {
		t.Errorf("root uses %d bytes after %d updates, more than twice the %d bytes of a fresh sync: superseded commits are not reclaimed", used, updates, ideal)
	}
	if objs["count"] != 0 || objs["packs"] > 2 {
		t.Errorf("object store after gc: %d loose objects, %d packs; want 0 loose and at most 2 packs", objs["count"], objs["packs"])
	}
	if commits := shapeLocalObjects(t, root)["commit"]; len(commits) != 1 || !commits[last] {
		t.Errorf("%d commits in the object store, want only the published %s", len(commits), last)
	}
	if shallow := shapeShallow(t, root); len(shallow) != 1 || shallow[0] != last {
		t.Errorf(".git/shallow lists %d commits, want only %s", len(shallow), last)
	}
}

// TestShapeGitGCReclaimsPartialClone is the reclaim check for a partial
// clone (--filter=blob:none, default depth 1): every update lazily fetches
// the new commit's blobs, and once the commit is superseded gc must
// reclaim them like any other object; they can always be fetched again.
func TestShapeGitGCReclaimsPartialClone(t *testing.T) {
	t.Parallel()
	const updates = 20
	up := newShapeRepo(t)
	first := up.Commit(map[string]string{"data.bin": shapeRandom(0, 32<<10), "n.txt": "0\n"}, "u0")
	root := newRoot(t)
	link := filepath.Join(root, "link")
	args := append(syncArgs(up, root), "--filter=blob:none")
	p := start(t, append(args, "--period=20ms")...)
	waitForLink(t, p, link, first)
	last := first
	for i := 1; i <= updates; i++ {
		last = up.Commit(map[string]string{"data.bin": shapeRandom(uint64(i), 32<<10), "n.txt": fmt.Sprintf("%d\n", i)}, fmt.Sprintf("u%d", i))
		waitForLink(t, p, link, last)
	}
	shapeWaitSyncDone(t, p, last)
	if code := p.Stop(); code != 0 {
		t.Errorf("git-sync exit %d after SIGTERM, want 0", code)
	}
	shapeAssertTree(t, link, shapeExpected(t, up, last, shapeWant{}))
	shapeAssertPartial(t, root)

	fresh := newRoot(t)
	shapeSyncOnce(t, append(syncArgs(up, fresh), "--filter=blob:none")...)
	used, ideal := shapeDirSize(t, filepath.Join(root, ".git", "objects")), shapeDirSize(t, filepath.Join(fresh, ".git", "objects"))
	objs := shapeLocalObjects(t, root)
	t.Logf("object store after %d updates: %d bytes, %d commits, %d blobs; fresh partial clone of the last commit: %d bytes",
		updates, used, len(objs["commit"]), len(objs["blob"]), ideal)
	if used > 2*ideal {
		t.Errorf("object store uses %d bytes after %d updates, more than twice the %d bytes of a fresh partial clone: superseded commits and their blobs are not reclaimed", used, updates, ideal)
	}
	if len(objs["commit"]) != 1 || !objs["commit"][last] {
		t.Errorf("%d commits in the object store, want only the published %s", len(objs["commit"]), last)
	}
	shapeAssertObjects(t, root, "blob", shapeUpstreamObjects(t, up, last, "blob", nil))
}
