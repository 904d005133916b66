package e2e

// In-place upgrade of a root written by git-sync v3: the repository is a
// clone in ROOT (with branches and remote-tracking refs), worktrees sit
// directly under ROOT as rev-HASH or HASH, and the link points at one of
// them. The first run republishes into ROOT/.worktrees and removes the old
// worktree.

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// shapeV3Root builds, with plain git, the root git-sync v3 would have left
// after syncing url at hash: `git clone --no-checkout`, `git worktree add
// ROOT/<dir>`, and the link ROOT/link -> <dir> (relative).
func shapeV3Root(t *testing.T, url, hash, dir string) string {
	t.Helper()
	root := newRoot(t)
	gitIn(t, filepath.Dir(root), "clone", "--quiet", "--no-checkout", "--depth=1", url, root)
	gitIn(t, root, "worktree", "add", "--quiet", "--detach", filepath.Join(root, dir), hash)
	if err := os.Symlink(dir, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if got := gitIn(t, filepath.Join(root, "link"), "rev-parse", "HEAD"); got != hash {
		t.Fatalf("v3 fixture: link names %s, want %s", got, hash)
	}
	if refs := gitIn(t, root, "for-each-ref", "--format=%(refname)"); refs == "" {
		t.Fatalf("v3 fixture: the clone has no refs")
	}
	return root
}

func TestShapeV3Upgrade(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		prefix string // v3 worktree directory name = prefix + hash
		update bool   // upstream moves on between v3's sync and the upgrade
	}{
		{"rev-HASH at the same commit", "rev-", false},
		{"rev-HASH with an update", "rev-", true},
		{"HASH with an update", "", true},
		{"HASH at the same commit", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up, hs := shapeLinear(t, 2)
			old := hs[1]
			v3dir := tc.prefix + old
			root := shapeV3Root(t, up.URL(), old, v3dir)
			want := old
			if tc.update {
				want = up.Commit(map[string]string{"file.txt": "after the upgrade\n"}, "c3")
			}
			link := filepath.Join(root, "link")

			shapeSyncOnce(t, syncArgs(up, root)...)
			assertPublished(t, root, link, want)
			shapeAssertTree(t, link, shapeExpected(t, up, want, shapeWant{}))
			if exists(filepath.Join(root, v3dir)) {
				t.Errorf("the v3 worktree %s is still there after the upgrade", v3dir)
			}
			admins, _ := os.ReadDir(filepath.Join(root, ".git", "worktrees"))
			if len(admins) != 1 || admins[0].Name() != want {
				var names []string
				for _, a := range admins {
					names = append(names, a.Name())
				}
				t.Errorf(".git/worktrees holds %v, want only %s", names, want)
			}
			if out := gitIn(t, root, "worktree", "list", "--porcelain"); !slices.Contains(strings.Split(out, "\n"), "worktree "+worktreePath(root, want)) {
				t.Errorf("git worktree list does not show the new worktree:\n%s", out)
			}
			// Nothing else of v3 remains at the top of the root.
			ents, err := os.ReadDir(root)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if n := e.Name(); n != "link" && n != ".git" && n != ".worktrees" && (len(n) == 0 || n[0] != '.') {
					t.Errorf("unexpected entry %s at the top of the root after the upgrade", n)
				}
			}
			// v3's refs would pin superseded commits; they are gone, and
			// so (gc after the removal) is a superseded commit. Only
			// git-sync's own branch remains, naming the published commit.
			if refs := gitIn(t, root, "for-each-ref", "--format=%(refname) %(objectname)"); refs != "refs/heads/git-sync "+want {
				t.Errorf("refs after the upgrade:\n%s\nwant only refs/heads/git-sync at %s", refs, want)
			}
			if tc.update && shapeHasObject(root, old) {
				t.Errorf("the v3 commit %s is still in the object store after the upgrade", old)
			}

			// The next run is an ordinary one: nothing to do.
			shapeSyncOnce(t, syncArgs(up, root)...)
			assertPublished(t, root, link, want)
		})
	}
}
