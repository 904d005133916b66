package e2e

// --sparse-checkout-file: only the listed paths appear (the file is used
// verbatim, in git's non-cone format); a changed file on restart applies
// to the next published worktree; it combines with --depth.

import (
	"path"
	"path/filepath"
	"strings"
	"testing"

	"gitsync/internal/gittest"
)

// shapeSparseUpstream is a repository with files in several directories, an
// executable and a symlink.
func shapeSparseUpstream(t *testing.T) (*gittest.Repo, string) {
	t.Helper()
	up := newShapeRepo(t)
	h := shapeCommit(t, up, map[string]shapeEntry{
		"top.txt":                {Content: "top\n"},
		"README.md":              {Content: "readme\n"},
		"docs/a.md":              {Content: "a\n"},
		"docs/b.txt":             {Content: "b\n"},
		"docs/private/secret.md": {Content: "secret\n"},
		"src/main.go":            {Content: "package main\n"},
		"src/run.sh":             {Content: "#!/bin/sh\n", Exec: true},
		"src/main-link":          {Content: "main.go", Symlink: true},
		"vendor/x/y.txt":         {Content: "y\n"},
		"deep/a/b/c.md":          {Content: "c\n"},
	}, "s1")
	return up, h
}

// Sparse files and the paths they select, written out by hand so that the
// test does not depend on a matcher of its own.
const shapeSparseV1 = "/top.txt\n/docs/\n!/docs/private/\n/src/\n"

var shapeKeepV1 = map[string]bool{
	"top.txt": true, "docs/a.md": true, "docs/b.txt": true,
	"src/main.go": true, "src/run.sh": true, "src/main-link": true,
	"src/added.go": true,
}

const shapeSparseV2 = "*.md\n/vendor/\n"

func shapeKeepV2(p string) bool {
	return path.Ext(p) == ".md" || strings.HasPrefix(p, "vendor/")
}

func shapeKeepSet(m map[string]bool) func(string) bool {
	return func(p string) bool { return m[p] }
}

func TestShapeSparseCheckout(t *testing.T) {
	t.Parallel()

	t.Run("restart with a changed file", func(t *testing.T) {
		t.Parallel()
		up, h1 := shapeSparseUpstream(t)
		root := newRoot(t)
		link := filepath.Join(root, "link")
		sparse := filepath.Join(t.TempDir(), "sparse")
		shapeWriteFile(t, sparse, shapeSparseV1)
		args := append(syncArgs(up, root), "--sparse-checkout-file="+sparse)

		shapeSyncOnce(t, args...)
		assertPublished(t, root, link, h1)
		shapeAssertTree(t, link, shapeExpected(t, up, h1, shapeWant{Keep: shapeKeepSet(shapeKeepV1)}))
		if got := gitIn(t, link, "status", "--porcelain"); got != "" {
			t.Errorf("git status in the sparse tree is not clean:\n%s", got)
		}

		// An upstream update keeps the same selection.
		h2 := shapeCommit(t, up, map[string]shapeEntry{
			"src/added.go": {Content: "package main // added\n"},
			"vendor/x/new": {Content: "not selected\n"},
			"docs/a.md":    {Content: "a 2\n"},
		}, "s2")
		shapeSyncOnce(t, args...)
		assertPublished(t, root, link, h2)
		shapeAssertTree(t, link, shapeExpected(t, up, h2, shapeWant{Keep: shapeKeepSet(shapeKeepV1)}))

		// A different file on restart applies to the next worktree.
		shapeWriteFile(t, sparse, shapeSparseV2)
		h3 := up.Commit(map[string]string{"vendor/x/y.txt": "y 3\n"}, "s3")
		shapeSyncOnce(t, args...)
		assertPublished(t, root, link, h3)
		shapeAssertTree(t, link, shapeExpected(t, up, h3, shapeWant{Keep: shapeKeepV2}))

		// Without the flag, the next worktree is complete again.
		h4 := up.Commit(map[string]string{"top.txt": "top 4\n"}, "s4")
		shapeSyncOnce(t, syncArgs(up, root)...)
		assertPublished(t, root, link, h4)
		shapeAssertTree(t, link, shapeExpected(t, up, h4, shapeWant{}))
	})

	// Submodules follow the selection: one inside it is checked out, one
	// outside it does not appear at all, whether or not .gitmodules itself
	// is selected (git reads it from the index when it is not).
	inside, outside := newShapeRepo(t), newShapeRepo(t)
	inside.Commit(map[string]string{"in.txt": "inside\n"}, "in")
	outside.Commit(map[string]string{"out.txt": "outside\n"}, "out")
	subUp := newShapeRepo(t)
	subUp.Commit(map[string]string{"docs/a.md": "a\n", "src/b.go": "b\n"}, "files")
	subUp.AddSubmodule(inside, "docs/sub", "")
	subHead := subUp.AddSubmodule(outside, "libs/out", "")
	for _, tc := range []struct{ name, sparse string }{
		{"with submodules", "/docs/\n"},
		{"with submodules and .gitmodules selected", "/docs/\n/.gitmodules\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sparse := filepath.Join(t.TempDir(), "sparse")
			shapeWriteFile(t, sparse, tc.sparse)
			root := newRoot(t)
			link := filepath.Join(root, "link")
			shapeSyncOnce(t, append(syncArgs(subUp, root), "--sparse-checkout-file="+sparse, "--git-config=protocol.file.allow:always")...)
			assertPublished(t, root, link, subHead)
			shapeAssertTree(t, link, shapeExpected(t, subUp, subHead, shapeWant{
				Subs: map[string]*gittest.Repo{"docs/sub": inside},
				Keep: func(p string) bool {
					return strings.HasPrefix(p, "docs/") || p == ".gitmodules" && strings.Contains(tc.sparse, ".gitmodules")
				},
			}))
		})
	}

	t.Run("with depth", func(t *testing.T) {
		t.Parallel()
		up, h1 := shapeSparseUpstream(t)
		hs := []string{h1}
		for _, c := range []string{"2", "3", "4"} {
			hs = append(hs, up.Commit(map[string]string{"docs/a.md": "a " + c + "\n", "vendor/x/y.txt": c}, "s"+c))
		}
		root := newRoot(t)
		link := filepath.Join(root, "link")
		sparse := filepath.Join(t.TempDir(), "sparse")
		shapeWriteFile(t, sparse, shapeSparseV1)
		shapeSyncOnce(t, append(syncArgs(up, root), "--sparse-checkout-file="+sparse, "--depth=2")...)
		assertPublished(t, root, link, hs[3])
		shapeAssertDepth(t, root, hs, 2)
		shapeAssertTree(t, link, shapeExpected(t, up, hs[3], shapeWant{Keep: shapeKeepSet(shapeKeepV1)}))

		// A running git-sync keeps both across updates.
		p := start(t, append(syncArgs(up, root), "--sparse-checkout-file="+sparse, "--depth=2", "--period=100ms")...)
		waitForLink(t, p, link, hs[3])
		hs = append(hs, up.Commit(map[string]string{"src/main.go": "package main // 5\n"}, "s5"))
		waitForLink(t, p, link, hs[4])
		shapeAssertDepth(t, root, hs, 2)
		shapeAssertTree(t, link, shapeExpected(t, up, hs[4], shapeWant{Keep: shapeKeepSet(shapeKeepV1)}))
		if code := p.Stop(); code != 0 {
			t.Errorf("git-sync exit %d after SIGTERM, want 0", code)
		}
	})
}
