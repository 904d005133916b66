package e2e

// --submodules=recursive|shallow|off: nested submodules, relative URLs
// resolved against origin, submodules served by other servers than the
// superproject, --depth passed on to submodules, submodules added, moved
// and removed between commits, and completeness before the link flips.

import (
	"fmt"
	"net/http"
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

// shapeSubFixture is a superproject with three submodules, each reached a
// different way:
//
//   - libs/lib: file:// URL; it has a submodule of its own, nested/leaf
//     (file:// too);
//   - deps/daemon: git:// URL of a second server (git daemon);
//   - rel: the relative URL "../rel", which resolves against origin (the
//     superproject's smart-HTTP server, which serves rel beside it).
//
// Files include an executable and symlinks, so trees check modes too.
type shapeSubFixture struct {
	super, lib, leaf, dsub, rel *gittest.Repo
	superURL                    string
	daemon                      *gittest.Daemon
	head                        string // the superproject's commit with all three submodules
}

// subs maps every submodule path of the first commit to its fixture.
func (f *shapeSubFixture) subs(nested bool) map[string]*gittest.Repo {
	m := map[string]*gittest.Repo{
		"libs/lib":    f.lib,
		"deps/daemon": f.dsub,
		"rel":         f.rel,
	}
	if nested {
		m["libs/lib/nested/leaf"] = f.leaf
	}
	return m
}

func newShapeSubFixture(t *testing.T) *shapeSubFixture {
	t.Helper()
	f := &shapeSubFixture{
		super: newShapeRepo(t), lib: newShapeRepo(t), leaf: newShapeRepo(t),
		dsub: newShapeRepo(t), rel: newShapeRepo(t),
	}
	shapeCommit(t, f.leaf, map[string]shapeEntry{
		"leaf.txt":    {Content: "leaf 1\n"},
		"bin/tool.sh": {Content: "#!/bin/sh\necho leaf\n", Exec: true},
	}, "leaf 1")
	shapeCommit(t, f.lib, map[string]shapeEntry{
		"lib.txt":  {Content: "lib 1\n"},
		"lib-link": {Content: "lib.txt", Symlink: true},
	}, "lib 1")
	f.lib.AddSubmodule(f.leaf, "nested/leaf", "")
	for i := 1; i <= 3; i++ {
		f.dsub.Commit(map[string]string{"daemon.txt": fmt.Sprintf("daemon %d\n", i)}, fmt.Sprintf("d%d", i))
		f.rel.Commit(map[string]string{"rel.txt": fmt.Sprintf("rel %d\n", i)}, fmt.Sprintf("r%d", i))
	}
	f.daemon = gittest.GitDaemon(t, shapeServeDir(t, map[string]*gittest.Repo{"dsub": f.dsub}))
	h := gittest.HTTPServer(t, shapeServeDir(t, map[string]*gittest.Repo{"super": f.super, "rel": f.rel}), gittest.HTTPOptions{})
	f.superURL = h.URL("super")
	// The relative URL resolves against the fixture's origin, the same
	// address git-sync will use.
	f.super.Git("remote", "add", "origin", f.superURL)

	shapeCommit(t, f.super, map[string]shapeEntry{
		"README.md":    {Content: "super\n"},
		"run.sh":       {Content: "#!/bin/sh\necho run\n", Exec: true},
		"docs/readme":  {Content: "../README.md", Symlink: true},
		"docs/guide.t": {Content: "guide\n"},
	}, "super 1")
	f.super.AddSubmodule(f.lib, "libs/lib", "")
	f.super.AddSubmodule(f.dsub, "deps/daemon", f.daemon.URL("dsub"))
	f.head = f.super.AddSubmodule(f.rel, "rel", "../rel")
	if got := f.super.Git("config", "--file", ".gitmodules", "submodule.rel.url"); got != "../rel" {
		t.Fatalf("fixture: submodule rel has URL %q, want the relative ../rel", got)
	}
	return f
}

// subArgs is the usual command line for the fixture: file:// submodules
// need protocol.file.allow (git >= 2.38.1 refuses them by default).
func (f *shapeSubFixture) subArgs(root string, extra ...string) []string {
	return append([]string{"--repo=" + f.superURL, "--root=" + root, "--link=link",
		"--git-config=protocol.file.allow:always"}, extra...)
}

// shapeAssertSubDepths checks, for each repository path under the published
// tree ("." for the top), that `git log` there lists want[path] commits,
// and that the repository is shallow exactly when git-sync fetched with
// --depth=depth > 0 and the history reached that limit (git marks the
// commit at the limit shallow even when it is a root commit).
func shapeAssertSubDepths(t *testing.T, link string, want map[string]int, depth int) {
	t.Helper()
	for p, n := range want {
		shallow := depth > 0 && n == depth
		dir := filepath.Join(link, filepath.FromSlash(p))
		if got := shapeRevCount(t, dir); got != n {
			t.Errorf("%s: rev-list --count HEAD = %d, want %d", p, got, n)
		}
		if got := gitIn(t, dir, "rev-parse", "--is-shallow-repository"); got != fmt.Sprint(shallow) {
			t.Errorf("%s: is-shallow-repository = %s, want %v", p, got, shallow)
		}
	}
}

func TestShapeSubmodules(t *testing.T) {
	t.Parallel()
	f := newShapeSubFixture(t)

	for _, tc := range []struct {
		name   string
		flags  []string
		subs   map[string]*gittest.Repo
		depths map[string]int // rev-list --count per repository, "." = the top
	}{
		{
			name: "recursive by default at depth 1",
			subs: f.subs(true),
			depths: map[string]int{".": 1, "libs/lib": 1, "libs/lib/nested/leaf": 1,
				"deps/daemon": 1, "rel": 1},
		},
		{
			name:   "recursive",
			flags:  []string{"--submodules=recursive"},
			subs:   f.subs(true),
			depths: map[string]int{"libs/lib/nested/leaf": 1},
		},
		{
			name:   "shallow is one level",
			flags:  []string{"--submodules=shallow"},
			subs:   f.subs(false),
			depths: map[string]int{"libs/lib": 1, "deps/daemon": 1, "rel": 1},
		},
		{
			name:  "off",
			flags: []string{"--submodules=off"},
			subs:  nil,
		},
		{
			name:  "depth 2 reaches submodules",
			flags: []string{"--depth=2"},
			subs:  f.subs(true),
			depths: map[string]int{".": 2, "libs/lib": 2, "libs/lib/nested/leaf": 1,
				"deps/daemon": 2, "rel": 2},
		},
		{
			name:  "depth 0 is full history everywhere",
			flags: []string{"--depth=0"},
			subs:  f.subs(true),
			depths: map[string]int{".": 4, "libs/lib": 2, "libs/lib/nested/leaf": 1,
				"deps/daemon": 3, "rel": 3},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := newRoot(t)
			link := filepath.Join(root, "link")
			shapeSyncOnce(t, f.subArgs(root, tc.flags...)...)
			assertPublished(t, root, link, f.head)
			shapeAssertTree(t, link, shapeExpected(t, f.super, f.head, shapeWant{Subs: tc.subs}))
			depth := 1
			for _, fl := range tc.flags {
				if v, ok := strings.CutPrefix(fl, "--depth="); ok {
					depth, _ = strconv.Atoi(v)
				}
			}
			shapeAssertSubDepths(t, link, tc.depths, depth)
		})
	}

	t.Run("file submodules need protocol.file.allow", func(t *testing.T) {
		t.Parallel()
		root := newRoot(t)
		res := runOnce(t, "--repo="+f.superURL, "--root="+root, "--link=link", "--one-time")
		if res.Code == 0 {
			t.Fatalf("file:// submodules synced without protocol.file.allow=always; git refuses them by default: %s", res)
		}
		if !strings.Contains(res.Stderr, "transport 'file' not allowed") {
			t.Errorf("the log does not carry git's refusal (transport 'file' not allowed): %s", res)
		}
		if exists(filepath.Join(root, "link")) {
			t.Errorf("a worktree with missing submodules was published")
		}
	})
}

// TestShapeSubmoduleChanges runs git-sync while the superproject adds a
// submodule, moves one to a commit that is not its branch tip, removes
// one, and finally drops .gitmodules. Every published tree must match its
// commit exactly, and must be complete, submodules included, at the
// moment the link names it: a reader samples the link continuously while
// a slow `git submodule` (delayed by a --git wrapper) widens the window a
// premature flip would show in.
func TestShapeSubmoduleChanges(t *testing.T) {
	t.Parallel()
	f := newShapeSubFixture(t)
	extra := newShapeRepo(t)
	shapeCommit(t, extra, map[string]shapeEntry{"extra.txt": {Content: "extra\n"}, "x.sh": {Content: "x", Exec: true}}, "extra")
	dsubCommits := strings.Fields(f.dsub.Git("rev-list", "--reverse", "main"))

	root := newRoot(t)
	link := filepath.Join(root, "link")
	w := gitWrapper(t, wrapperOpts{SleepCmd: "submodule", Sleep: 300 * time.Millisecond})

	// The reader: record the tree behind every new link target as soon as
	// it is seen.
	var (
		mu        sync.Mutex
		snapshots = map[string]map[string]shapeTreeEntry{}
		readErrs  []string
		stop      atomic.Bool
		wg        sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := ""
		for !stop.Load() {
			h := tryLinkHash(link)
			if h != "" && h != last {
				tree, err := shapeReadDisk(worktreePath(root, h))
				mu.Lock()
				if err != nil {
					readErrs = append(readErrs, fmt.Sprintf("%s: %v", h, err))
				} else if _, seen := snapshots[h]; !seen {
					snapshots[h] = tree
				}
				mu.Unlock()
				last = h
			}
			time.Sleep(time.Millisecond)
		}
	}()
	defer func() { stop.Store(true); wg.Wait() }()

	p := start(t, f.subArgs(root, "--period=100ms", "--git="+w.Path)...)
	type step struct {
		hash string
		subs map[string]*gittest.Repo
	}
	steps := []step{{f.head, f.subs(true)}}
	waitForLink(t, p, link, f.head)
	shapeAssertTree(t, link, shapeExpected(t, f.super, f.head, shapeWant{Subs: steps[0].subs}))

	// Add a submodule; move deps/daemon back to its first commit, which is
	// not the tip of any branch of its server.
	// AddSubmodule commits on its own: git-sync may publish that commit
	// too, and then it must be as complete as the others.
	hAdded := f.super.AddSubmodule(extra, "added/extra", "")
	if _, err := gittest.RunGit(filepath.Join(f.super.Dir(), "deps", "daemon"), f.super.Environ(), "checkout", "--quiet", dsubCommits[0]); err != nil {
		t.Fatal(err)
	}
	h2 := f.super.Commit(nil, "add extra, move deps/daemon")
	subs2 := f.subs(true)
	subs2["added/extra"] = extra
	steps = append(steps, step{h2, subs2})
	optional := step{hAdded, subs2} // the same submodules, at other commits
	waitForLink(t, p, link, h2)
	shapeAssertTree(t, link, shapeExpected(t, f.super, h2, shapeWant{Subs: subs2}))
	if got := gitIn(t, filepath.Join(link, "deps", "daemon"), "rev-parse", "HEAD"); got != dsubCommits[0] {
		t.Errorf("deps/daemon is at %s, want %s", got, dsubCommits[0])
	}

	// Remove libs/lib (and with it the nested leaf); move rel to a new
	// commit of its own.
	r4 := f.rel.Commit(map[string]string{"rel.txt": "rel 4\n", "rel-new.txt": "new\n"}, "r4")
	relDir := filepath.Join(f.super.Dir(), "rel")
	if _, err := gittest.RunGit(relDir, f.super.Environ(), "fetch", "--quiet", "origin"); err != nil {
		t.Fatal(err)
	}
	if _, err := gittest.RunGit(relDir, f.super.Environ(), "checkout", "--quiet", r4); err != nil {
		t.Fatal(err)
	}
	f.super.Git("rm", "--quiet", "libs/lib")
	h3 := f.super.Commit(nil, "remove libs/lib, move rel")
	subs3 := map[string]*gittest.Repo{"deps/daemon": f.dsub, "rel": f.rel, "added/extra": extra}
	steps = append(steps, step{h3, subs3})
	waitForLink(t, p, link, h3)
	shapeAssertTree(t, link, shapeExpected(t, f.super, h3, shapeWant{Subs: subs3}))
	if exists(filepath.Join(link, "libs")) {
		t.Errorf("libs/ survives the removal of its submodule")
	}

	// Drop every submodule and .gitmodules itself.
	f.super.Git("rm", "--quiet", "deps/daemon", "rel", "added/extra")
	f.super.Remove(".gitmodules")
	h4 := f.super.Commit(map[string]string{"README.md": "no submodules\n"}, "no submodules")
	steps = append(steps, step{h4, nil})
	waitForLink(t, p, link, h4)
	shapeAssertTree(t, link, shapeExpected(t, f.super, h4, shapeWant{}))

	if code := p.Stop(); code != 0 {
		t.Errorf("git-sync exit %d after SIGTERM, want 0", code)
	}
	stop.Store(true)
	wg.Wait()
	if errs := errorRecords(p.Logs()); len(errs) > 0 {
		t.Errorf("errors logged:\n%s", strings.Join(errs, "\n"))
	}
	mu.Lock()
	defer mu.Unlock()
	if _, ok := snapshots[optional.hash]; ok {
		steps = append(steps, optional)
	}
	for _, e := range readErrs {
		t.Errorf("reading a published tree: %s", e)
	}
	for _, s := range steps {
		got, ok := snapshots[s.hash]
		if !ok {
			t.Errorf("the reader never saw %s published", s.hash)
			continue
		}
		if d := shapeTreeDiff(got, shapeExpected(t, f.super, s.hash, shapeWant{Subs: s.subs})); d != "" {
			t.Errorf("%s was incomplete when the link first named it:\n%s", s.hash, d)
		}
	}
	if len(snapshots) != len(steps) {
		t.Errorf("the link named %d different commits, want %d", len(snapshots), len(steps))
	}
	// Superseded worktrees, with their submodules, are gone.
	ents, _ := os.ReadDir(filepath.Join(root, ".worktrees"))
	if len(ents) != 1 || ents[0].Name() != h4 {
		t.Errorf(".worktrees holds %v, want only %s", ents, h4)
	}
	admins, _ := os.ReadDir(filepath.Join(root, ".git", "worktrees"))
	if len(admins) != 1 || admins[0].Name() != h4 {
		t.Errorf(".git/worktrees holds %v, want only %s", admins, h4)
	}
}

// shapeMoveSubmodule points the submodule at path in up's working tree at
// commit rev, fetched from url (which becomes the checkout's origin).
func shapeMoveSubmodule(t *testing.T, up *gittest.Repo, path, url, rev string) {
	t.Helper()
	dir := filepath.Join(up.Dir(), filepath.FromSlash(path))
	for _, args := range [][]string{
		{"remote", "set-url", "origin", url},
		{"fetch", "--quiet", "origin"},
		{"checkout", "--quiet", rev},
	} {
		if _, err := gittest.RunGit(dir, up.Environ(), args...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestShapeSubmoduleURLChanges changes where a submodule comes from: its
// URL in .gitmodules between two commits, and, for a relative URL, the
// superproject's own address between two runs (a move to a mirror while
// the old server is down). Each new worktree must use the address its own
// commit (and the current --repo) gives, not one remembered from an
// earlier worktree.
func TestShapeSubmoduleURLChanges(t *testing.T) {
	t.Parallel()

	t.Run(".gitmodules URL changed", func(t *testing.T) {
		t.Parallel()
		a, b := newShapeRepo(t), newShapeRepo(t)
		a.Commit(map[string]string{"a.txt": "a\n"}, "a")
		bHead := b.Commit(map[string]string{"b.txt": "b\n"}, "b")
		up := newShapeRepo(t)
		up.Commit(map[string]string{"README": "r\n"}, "r")
		h1 := up.AddSubmodule(a, "dep", "")
		root := newRoot(t)
		link := filepath.Join(root, "link")
		args := append(syncArgs(up, root), "--git-config=protocol.file.allow:always")
		shapeSyncOnce(t, args...)
		shapeAssertTree(t, link, shapeExpected(t, up, h1, shapeWant{Subs: map[string]*gittest.Repo{"dep": a}}))

		up.Git("config", "--file", ".gitmodules", "submodule.dep.url", b.URL())
		shapeMoveSubmodule(t, up, "dep", b.URL(), bHead)
		h2 := up.Commit(nil, "dep now comes from b")
		shapeSyncOnce(t, args...)
		assertPublished(t, root, link, h2)
		shapeAssertTree(t, link, shapeExpected(t, up, h2, shapeWant{Subs: map[string]*gittest.Repo{"dep": b}}))
	})

	t.Run("relative URL after --repo moved", func(t *testing.T) {
		t.Parallel()
		super, rel := newShapeRepo(t), newShapeRepo(t)
		rel.Commit(map[string]string{"rel.txt": "1\n"}, "r1")
		dir := shapeServeDir(t, map[string]*gittest.Repo{"super": super, "rel": rel})
		old := gittest.HTTPServer(t, dir, gittest.HTTPOptions{})
		mirror := gittest.GitDaemon(t, dir)
		super.Git("remote", "add", "origin", old.URL("super"))
		super.Commit(map[string]string{"README": "r\n"}, "s0")
		h1 := super.AddSubmodule(rel, "rel", "../rel")
		subs := map[string]*gittest.Repo{"rel": rel}
		root := newRoot(t)
		link := filepath.Join(root, "link")
		shapeSyncOnce(t, "--repo="+old.URL("super"), "--root="+root, "--link=link")
		shapeAssertTree(t, link, shapeExpected(t, super, h1, shapeWant{Subs: subs}))

		r2 := rel.Commit(map[string]string{"rel.txt": "2\n"}, "r2")
		shapeMoveSubmodule(t, super, "rel", old.URL("rel"), r2)
		h2 := super.Commit(nil, "move rel")
		old.SetFailStatus(http.StatusServiceUnavailable)
		shapeSyncOnce(t, "--repo="+mirror.URL("super"), "--root="+root, "--link=link")
		assertPublished(t, root, link, h2)
		shapeAssertTree(t, link, shapeExpected(t, super, h2, shapeWant{Subs: subs}))
		if got := gitIn(t, filepath.Join(link, "rel"), "config", "--get", "remote.origin.url"); got != mirror.URL("rel") {
			t.Errorf("rel was cloned from %s, want %s (../rel against the new --repo)", got, mirror.URL("rel"))
		}
	})
}
