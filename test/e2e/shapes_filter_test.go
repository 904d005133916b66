package e2e

// --filter (partial clone): alone (blob:none, tree:0), with sparse
// checkout, and across several updates. The assertions look into the local
// object store: a promisor pack exists, and exactly the objects the
// published checkouts needed were downloaded, no others.

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"gitsync/internal/gittest"
)

// shapeAssertPartial checks the basics of a partial clone in root: a promisor
// pack is present.
func shapeAssertPartial(t *testing.T, root string) {
	t.Helper()
	if len(shapePromisorPacks(t, root)) == 0 {
		t.Errorf("no promisor pack in %s/.git/objects/pack after a fetch with --filter", root)
	}
}

// shapeAssertObjects compares the objects of one type present in root with
// want, listing the differences.
func shapeAssertObjects(t *testing.T, root, typ string, want map[string]bool) {
	t.Helper()
	have := shapeLocalObjects(t, root)[typ]
	extra, missing := shapeSetDiff(have, want), shapeSetDiff(want, have)
	if len(extra) > 0 || len(missing) > 0 {
		t.Errorf("local %ss: %d present, want %d; %d unexpected, e.g. %v; %d missing, e.g. %v",
			typ, len(have), len(want), len(extra), extra[:min(len(extra), 5)], len(missing), missing[:min(len(missing), 5)])
	}
}

// shapeRandom returns n incompressible bytes, the same for the same seed.
func shapeRandom(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

func TestShapeFilter(t *testing.T) {
	t.Parallel()

	t.Run("blob:none with full history", func(t *testing.T) {
		t.Parallel()
		up, hs := shapeLinear(t, 5)
		tip := hs[4]
		root := newRoot(t)
		link := filepath.Join(root, "link")
		shapeSyncOnce(t, append(syncArgs(up, root), "--filter=blob:none", "--depth=0")...)
		assertPublished(t, root, link, tip)
		shapeAssertPartial(t, root)
		shapeAssertTree(t, link, shapeExpected(t, up, tip, shapeWant{}))
		shapeAssertDepth(t, root, hs, 0)
		// All commits and trees of the history, but only the blobs the
		// checkout needed; the others are promised, not present.
		allTrees, allBlobs := map[string]bool{}, map[string]bool{}
		for _, h := range hs {
			maps.Copy(allTrees, shapeUpstreamObjects(t, up, h, "tree", nil))
			maps.Copy(allBlobs, shapeUpstreamObjects(t, up, h, "blob", nil))
		}
		tipBlobs := shapeUpstreamObjects(t, up, tip, "blob", nil)
		shapeAssertObjects(t, root, "blob", tipBlobs)
		shapeAssertObjects(t, root, "tree", allTrees)
		if got := len(shapeLocalObjects(t, root)["commit"]); got != 5 {
			t.Errorf("%d local commits, want 5", got)
		}
		missing := shapeMissing(t, root, tip)
		want := map[string]bool{}
		for _, b := range shapeSetDiff(allBlobs, tipBlobs) {
			want[b] = true
		}
		if d1, d2 := shapeSetDiff(missing, want), shapeSetDiff(want, missing); len(d1)+len(d2) > 0 {
			t.Errorf("promised (missing) objects differ from the history's other blobs: unexpected %v, not missing %v", d1, d2)
		}
	})

	t.Run("tree:0 with full history", func(t *testing.T) {
		t.Parallel()
		up, hs := shapeLinear(t, 4)
		tip := hs[3]
		root := newRoot(t)
		link := filepath.Join(root, "link")
		shapeSyncOnce(t, append(syncArgs(up, root), "--filter=tree:0", "--depth=0")...)
		assertPublished(t, root, link, tip)
		shapeAssertPartial(t, root)
		shapeAssertTree(t, link, shapeExpected(t, up, tip, shapeWant{}))
		shapeAssertDepth(t, root, hs, 0)
		shapeAssertObjects(t, root, "blob", shapeUpstreamObjects(t, up, tip, "blob", nil))
		shapeAssertObjects(t, root, "tree", shapeUpstreamObjects(t, up, tip, "tree", nil))
		missing := shapeMissing(t, root, tip)
		for _, h := range hs[:3] {
			if tree := up.Git("rev-parse", h+"^{tree}"); !missing[tree] {
				t.Errorf("the root tree of older commit %s was downloaded; tree:0 should leave it promised", h)
			}
		}
	})

	t.Run("blob:none across depth changes", func(t *testing.T) {
		t.Parallel()
		up, hs := shapeLinear(t, 5)
		tip := hs[4]
		root := newRoot(t)
		link := filepath.Join(root, "link")
		for _, depth := range []int{1, 0, 2, 0} {
			shapeSyncOnce(t, append(syncArgs(up, root), "--filter=blob:none", fmt.Sprintf("--depth=%d", depth))...)
			assertPublished(t, root, link, tip)
			shapeAssertDepth(t, root, hs, depth)
			shapeAssertPartial(t, root)
			// Deepening or unshallowing a partial clone brings history
			// without its blobs.
			shapeAssertObjects(t, root, "blob", shapeUpstreamObjects(t, up, tip, "blob", nil))
			shapeAssertTree(t, link, shapeExpected(t, up, tip, shapeWant{}))
			if t.Failed() {
				t.Fatalf("after the run with --depth=%d", depth)
			}
		}
	})

	t.Run("blob:none with sparse checkout", func(t *testing.T) {
		t.Parallel()
		up := newShapeRepo(t)
		files := map[string]string{}
		total := 0
		for i := range 300 {
			content := shapeRandom(uint64(i), 4096)
			files[fmt.Sprintf("all/d%02d/f%03d.bin", i%10, i)] = content
			total += len(content)
		}
		for i := range 5 {
			files[fmt.Sprintf("keep/k%d.txt", i)] = fmt.Sprintf("kept %d\n", i)
		}
		tip := up.Commit(files, "many files")
		keep := func(p string) bool { return strings.HasPrefix(p, "keep/") }
		sparse := filepath.Join(t.TempDir(), "sparse")
		shapeWriteFile(t, sparse, "/keep/\n")
		root := newRoot(t)
		link := filepath.Join(root, "link")
		shapeSyncOnce(t, append(syncArgs(up, root), "--filter=blob:none", "--sparse-checkout-file="+sparse)...)
		assertPublished(t, root, link, tip)
		shapeAssertPartial(t, root)
		shapeAssertTree(t, link, shapeExpected(t, up, tip, shapeWant{Keep: keep}))
		shapeAssertObjects(t, root, "blob", shapeUpstreamObjects(t, up, tip, "blob", keep))
		size := shapeDirSize(t, filepath.Join(root, ".git", "objects"))
		t.Logf("object store: %d bytes on disk; upstream blobs: %d bytes", size, total)
		if size > int64(total)/8 {
			t.Errorf("object store uses %d bytes for a sparse checkout of 5 small files; the %d bytes of unselected blobs must not be downloaded", size, total)
		}
	})
}

// TestShapeFilterUpdates runs git-sync with --filter=blob:none and full
// history over smart HTTP through several updates, with and without a
// sparse file: after each update the store holds exactly the blobs that
// the checkouts published so far needed (history stays blob-less).
func TestShapeFilterUpdates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		keep func(string) bool
	}{
		{"alone", nil},
		{"with sparse checkout", func(p string) bool { return strings.HasPrefix(p, "keep/") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := newShapeRepo(t)
			first := up.Commit(map[string]string{
				"keep/a.txt": "a 0\n", "keep/b.txt": "b 0\n", "other/c.txt": "c 0\n", "other/d.txt": "d 0\n",
			}, "u0")
			srv := gittest.HTTPServer(t, shapeServeDir(t, map[string]*gittest.Repo{"up": up}), gittest.HTTPOptions{})
			root := newRoot(t)
			link := filepath.Join(root, "link")
			args := []string{"--repo=" + srv.URL("up"), "--root=" + root, "--link=link",
				"--filter=blob:none", "--depth=0", "--period=100ms"}
			if tc.keep != nil {
				sparse := filepath.Join(t.TempDir(), "sparse")
				shapeWriteFile(t, sparse, "/keep/\n")
				args = append(args, "--sparse-checkout-file="+sparse)
			}
			p := start(t, args...)
			published := []string{first}
			wantBlobs := shapeUpstreamObjects(t, up, first, "blob", tc.keep)
			waitForLink(t, p, link, first)
			for i := 1; i <= 3; i++ {
				h := up.Commit(map[string]string{
					"keep/a.txt":                      fmt.Sprintf("a %d\n", i),
					"other/c.txt":                     fmt.Sprintf("c %d\n", i),
					fmt.Sprintf("other/new%d.txt", i): "new\n",
				}, fmt.Sprintf("u%d", i))
				published = append(published, h)
				waitForLink(t, p, link, h)
				shapeAssertPartial(t, root)
				shapeAssertTree(t, link, shapeExpected(t, up, h, shapeWant{Keep: tc.keep}))
				shapeAssertDepth(t, root, published, 0)
				maps.Copy(wantBlobs, shapeUpstreamObjects(t, up, h, "blob", tc.keep))
				shapeAssertObjects(t, root, "blob", wantBlobs)
				if t.Failed() {
					t.FailNow()
				}
			}
			if code := p.Stop(); code != 0 {
				t.Errorf("git-sync exit %d after SIGTERM, want 0", code)
			}
			if errs := errorRecords(p.Logs()); len(errs) > 0 {
				t.Errorf("errors logged:\n%s", strings.Join(errs, "\n"))
			}
		})
	}
}
