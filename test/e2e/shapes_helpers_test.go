package e2e

// Helpers shared by the shapes_*_test.go files: the end-to-end tests of the
// repository shapes git-sync must handle (shallow and full history,
// submodules, sparse checkout, partial clone, gc, group-writable roots,
// roots written by git-sync v3, large repositories).
//
// They compare what a user sees with what upstream holds, exactly: the
// published tree (every path, file content, executable bit, symlink target
// and empty submodule directory, recursing into submodules) and the local
// object store (shallow file, promisor packs, which objects are present).

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"gitsync/internal/gittest"
)

// newShapeRepo is gittest.NewRepo configured to serve what the shapes need:
// partial-clone filters and fetches of any object by hash (lazy blob
// fetches of a partial clone, submodule commits that are not a branch tip).
func newShapeRepo(t testing.TB) *gittest.Repo {
	t.Helper()
	up := gittest.NewRepo(t)
	up.Git("config", "uploadpack.allowFilter", "true")
	up.Git("config", "uploadpack.allowAnySHA1InWant", "true")
	return up
}

// shapeLinear makes a shape repo with n commits on main; commit i writes
// file.txt = "commit i" and log/i.txt, so every commit has new blobs. It
// returns the hashes in order.
func shapeLinear(t testing.TB, n int) (*gittest.Repo, []string) {
	t.Helper()
	up := newShapeRepo(t)
	var hs []string
	for i := 1; i <= n; i++ {
		hs = append(hs, up.Commit(map[string]string{
			"file.txt":                   fmt.Sprintf("commit %d\n", i),
			fmt.Sprintf("log/%d.txt", i): fmt.Sprintf("entry %d\n", i),
		}, fmt.Sprintf("c%d", i)))
	}
	return up, hs
}

// shapeEntry is one entry to write into an upstream working tree before a
// commit: a regular file (Exec sets the executable bit) or, when Symlink is
// set, a symbolic link whose target is Content.
type shapeEntry struct {
	Content string
	Exec    bool
	Symlink bool
}

// shapeCommit writes files (regular, executable or symlinks) into up's
// working tree and commits everything with msg; it returns the commit.
func shapeCommit(t testing.TB, up *gittest.Repo, files map[string]shapeEntry, msg string) string {
	t.Helper()
	for name, f := range files {
		p := filepath.Join(up.Dir(), filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(p)
		var err error
		switch {
		case f.Symlink:
			err = os.Symlink(f.Content, p)
		case f.Exec:
			err = os.WriteFile(p, []byte(f.Content), 0o755)
		default:
			err = os.WriteFile(p, []byte(f.Content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return up.Commit(nil, msg)
}

// shapeTreeEntry is what one path of a published tree is: a regular file
// ("file"), an executable file ("exec"), a symlink ("symlink", Data is the
// target) or an empty directory ("emptydir": an uninitialised submodule).
type shapeTreeEntry struct {
	Kind string
	Data string
}

func (e shapeTreeEntry) String() string {
	if len(e.Data) > 40 {
		return fmt.Sprintf("%s %q...", e.Kind, e.Data[:40])
	}
	return fmt.Sprintf("%s %q", e.Kind, e.Data)
}

// shapeWant describes the expected published tree of a commit.
type shapeWant struct {
	// Subs maps a submodule path (from the top of the published tree,
	// slash-separated, nested ones included) to the fixture repository
	// that holds its commits. A gitlink whose path is not in Subs is
	// expected as an empty directory (submodule not checked out).
	Subs map[string]*gittest.Repo
	// Keep, if not nil, selects the paths of the top repository that a
	// sparse checkout keeps.
	Keep func(path string) bool
}

// shapeExpected computes the exact published tree of commit rev of up.
func shapeExpected(t testing.TB, up *gittest.Repo, rev string, w shapeWant) map[string]shapeTreeEntry {
	t.Helper()
	out := map[string]shapeTreeEntry{}
	shapeAddExpected(t, out, up, rev, "", w, true)
	return out
}

func shapeAddExpected(t testing.TB, out map[string]shapeTreeEntry, up *gittest.Repo, rev, prefix string, w shapeWant, top bool) {
	t.Helper()
	ls := up.Git("ls-tree", "-r", "-z", "--full-tree", rev)
	type blob struct{ path, oid, mode string }
	var blobs []blob
	for _, ent := range strings.Split(ls, "\x00") {
		if ent == "" {
			continue
		}
		meta, name, _ := strings.Cut(ent, "\t")
		f := strings.Fields(meta)
		if len(f) != 3 {
			t.Fatalf("ls-tree line %q", ent)
		}
		full := path.Join(prefix, name)
		if top && w.Keep != nil && !w.Keep(full) {
			continue
		}
		switch f[1] {
		case "commit":
			sub := w.Subs[full]
			if sub == nil {
				out[full] = shapeTreeEntry{Kind: "emptydir"}
				continue
			}
			shapeAddExpected(t, out, sub, f[2], full, w, false)
		case "blob":
			blobs = append(blobs, blob{full, f[2], f[0]})
		}
	}
	oids := make([]string, len(blobs))
	for i, b := range blobs {
		oids[i] = b.oid
	}
	contents := shapeCatBlobs(t, up.Dir(), up.Environ(), oids)
	for _, b := range blobs {
		kind := "file"
		switch b.mode {
		case "100755":
			kind = "exec"
		case "120000":
			kind = "symlink"
		}
		out[b.path] = shapeTreeEntry{Kind: kind, Data: contents[b.oid]}
	}
}

// shapeCatBlobs reads the contents of oids from the repository in dir with one
// `git cat-file --batch`.
func shapeCatBlobs(t testing.TB, dir string, env []string, oids []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if len(oids) == 0 {
		return out
	}
	cmd := exec.Command("git", "cat-file", "--batch")
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = strings.NewReader(strings.Join(oids, "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("git cat-file --batch in %s: %v\n%s", dir, err, stderr.String())
	}
	r := bufio.NewReader(bytes.NewReader(raw))
	for range oids {
		header, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("cat-file --batch output: %v", err)
		}
		f := strings.Fields(header)
		if len(f) != 3 {
			t.Fatalf("cat-file --batch header %q", header)
		}
		size, _ := strconv.Atoi(f[2])
		buf := make([]byte, size+1)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatalf("cat-file --batch output: %v", err)
		}
		out[f[0]] = string(buf[:size])
	}
	return out
}

// shapeDiskTree reads the tree under dir (following dir itself if it is a
// link) as treeEntries: every regular file, executable, symlink and empty
// directory, skipping every entry named .git (the worktree's and its
// submodules' pointers).
func shapeDiskTree(t testing.TB, dir string) map[string]shapeTreeEntry {
	t.Helper()
	got, err := shapeReadDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func shapeReadDisk(dir string) (map[string]shapeTreeEntry, error) {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]shapeTreeEntry{}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".git" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = shapeTreeEntry{Kind: "symlink", Data: target}
		case d.IsDir():
			if rel == "." {
				return nil
			}
			ents, err := os.ReadDir(p)
			if err != nil {
				return err
			}
			if len(ents) == 0 {
				out[rel] = shapeTreeEntry{Kind: "emptydir"}
			}
		default:
			info, err := d.Info()
			if err != nil {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			kind := "file"
			if info.Mode().Perm()&0o100 != 0 {
				kind = "exec"
			}
			out[rel] = shapeTreeEntry{Kind: kind, Data: string(b)}
		}
		return nil
	})
	return out, err
}

// shapeTreeDiff lists the differences between a tree read from disk and the
// expected one (at most 20 lines); "" when they are equal.
func shapeTreeDiff(got, want map[string]shapeTreeEntry) string {
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var diffs []string
	for _, k := range keys {
		g, gok := got[k]
		w, wok := want[k]
		switch {
		case !gok:
			diffs = append(diffs, fmt.Sprintf("missing %s (want %v)", k, w))
		case !wok:
			diffs = append(diffs, fmt.Sprintf("unexpected %s (%v)", k, g))
		case g != w:
			diffs = append(diffs, fmt.Sprintf("%s: have %v, want %v", k, g, w))
		}
	}
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
	}
	return strings.Join(diffs, "\n")
}

// shapeAssertTree checks that dir holds exactly the tree want.
func shapeAssertTree(t testing.TB, dir string, want map[string]shapeTreeEntry) {
	t.Helper()
	if d := shapeTreeDiff(shapeDiskTree(t, dir), want); d != "" {
		t.Errorf("published tree %s differs from upstream:\n%s", dir, d)
	}
}

// ---------------------------------------------------------------------------
// The local object store.

// shapeShallow returns the commits listed in ROOT/.git/shallow, sorted;
// nil when the repository is not shallow.
func shapeShallow(t testing.TB, root string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, ".git", "shallow"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Fields(string(b))
	sort.Strings(out)
	return out
}

// shapePromisorPacks returns the names of the promisor packs in ROOT/.git.
func shapePromisorPacks(t testing.TB, root string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(root, ".git", "objects", "pack", "*.promisor"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// shapeLocalObjects returns the objects physically present in the repository
// at root (loose and packed, no lazy fetch), by type.
func shapeLocalObjects(t testing.TB, root string) map[string]map[string]bool {
	t.Helper()
	out := gitIn(t, root, "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)")
	objs := map[string]map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		oid, typ, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if objs[typ] == nil {
			objs[typ] = map[string]bool{}
		}
		objs[typ][oid] = true
	}
	return objs
}

// shapeMissing returns the objects reachable from rev that the
// repository at root lacks (a partial clone's promised objects), without
// fetching them.
func shapeMissing(t testing.TB, root, rev string) map[string]bool {
	t.Helper()
	out := gitIn(t, root, "rev-list", "--objects", "--missing=print", rev)
	missing := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if oid, ok := strings.CutPrefix(line, "?"); ok {
			missing[strings.TrimSpace(oid)] = true
		}
	}
	return missing
}

// shapeUpstreamObjects returns the oids of the objects of type typ ("blob",
// "tree") reachable from rev in up, limited to blobs whose path keep
// accepts when keep is not nil.
func shapeUpstreamObjects(t testing.TB, up *gittest.Repo, rev, typ string, keep func(string) bool) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	switch typ {
	case "blob":
		ls := up.Git("ls-tree", "-r", "-z", "--full-tree", rev)
		for _, ent := range strings.Split(ls, "\x00") {
			meta, name, ok := strings.Cut(ent, "\t")
			f := strings.Fields(meta)
			if !ok || len(f) != 3 || f[1] != "blob" {
				continue
			}
			if keep == nil || keep(name) {
				out[f[2]] = true
			}
		}
	case "tree":
		out[up.Git("rev-parse", rev+"^{tree}")] = true
		ls := up.Git("ls-tree", "-r", "-t", "-z", "--full-tree", rev)
		for _, ent := range strings.Split(ls, "\x00") {
			meta, _, ok := strings.Cut(ent, "\t")
			f := strings.Fields(meta)
			if ok && len(f) == 3 && f[1] == "tree" {
				out[f[2]] = true
			}
		}
	default:
		t.Fatalf("shapeUpstreamObjects: type %q", typ)
	}
	return out
}

// shapeSetDiff returns the members of a that are not in b, sorted.
func shapeSetDiff(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// shapeDirSize is the disk use (allocated blocks) of everything under dir,
// symlinks not followed.
func shapeDirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += shapeDiskUsage(info)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// shapeDiskUsage is the space a file takes on disk.
func shapeDiskUsage(info os.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return info.Size()
}

// shapeRevCount is `git -C dir rev-list --count HEAD`.
func shapeRevCount(t testing.TB, dir string) int {
	t.Helper()
	n, err := strconv.Atoi(gitIn(t, dir, "rev-list", "--count", "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// shapeSyncOnce runs git-sync --one-time with args and fails the test unless
// it exits 0.
func shapeSyncOnce(t testing.TB, args ...string) result {
	t.Helper()
	res := runOnce(t, append(args, "--one-time")...)
	if res.Code != 0 {
		t.Fatalf("git-sync --one-time %q: want exit 0, got %s", args, res)
	}
	return res
}

// shapeServeDir makes a directory of symlinks name -> repository working tree,
// so that one server (smart HTTP or git daemon) can serve several fixture
// repositories under chosen names. It returns the directory.
func shapeServeDir(t testing.TB, repos map[string]*gittest.Repo) string {
	t.Helper()
	dir := t.TempDir()
	for name, r := range repos {
		if err := os.Symlink(r.Dir(), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// shapeWriteFile writes content to p, creating parent directories.
func shapeWriteFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
