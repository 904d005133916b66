package e2e

// Large repositories: 50,000 files and 1,000 commits, generated with
// `git fast-import`, synced and updated with the defaults and with
// --filter=blob:none plus a sparse file, by two git-sync processes at once.

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

const (
	largeFiles   = 50_000
	largeCommits = 1_000
	largeDirSize = 500 // files per directory
	// largeDeadline bounds a sync of the large repository on a small,
	// busy CI machine (the first one checks out 50,000 files).
	largeDeadline = 120 * time.Second
)

// largeModel is what the generated repository holds at its tip: each
// file's version (its content is "file N vV\n"), which files are gone,
// which are executable, and the extra files.
type largeModel struct {
	version []int
	deleted map[int]bool
	exec    map[int]bool
	extra   map[string]shapeTreeEntry
	commits int
	now     int64 // committer time of the last commit
}

func largePath(i int) string {
	return fmt.Sprintf("d%03d/f%04d.txt", i/largeDirSize, i%largeDirSize)
}

func largeContent(i, v int) string { return fmt.Sprintf("file %d v%d\n", i, v) }

// tree is the expected published tree; keep selects paths (sparse).
func (m *largeModel) tree(keep func(string) bool) map[string]shapeTreeEntry {
	out := map[string]shapeTreeEntry{}
	for i, v := range m.version {
		p := largePath(i)
		if m.deleted[i] || keep != nil && !keep(p) {
			continue
		}
		kind := "file"
		if m.exec[i] {
			kind = "exec"
		}
		out[p] = shapeTreeEntry{Kind: kind, Data: largeContent(i, v)}
	}
	for p, e := range m.extra {
		if keep == nil || keep(p) {
			out[p] = e
		}
	}
	return out
}

// fastImportData appends a fast-import "data" command holding s.
func fastImportData(b *bytes.Buffer, s string) {
	fmt.Fprintf(b, "data %d\n%s\n", len(s), s)
}

// largeCommitHeader starts a commit on refs/heads/main in a fast-import
// stream.
func (m *largeModel) commitHeader(b *bytes.Buffer, msg string) {
	m.commits++
	m.now++
	fmt.Fprintf(b, "commit refs/heads/main\ncommitter gittest <gittest@example.invalid> %d +0000\n", m.now)
	fastImportData(b, msg)
}

// fastImport feeds stream to `git fast-import` in up.
func fastImport(t *testing.T, up *gittest.Repo, stream []byte) {
	t.Helper()
	cmd := exec.Command("git", "fast-import", "--quiet", "--done")
	cmd.Dir = up.Dir()
	// fast-import sets up a zlib stream per object; glibc's default of
	// mmap-ing such buffers costs a page fault storm (about 4x the time
	// for 50,000 objects). Keep them on the heap.
	cmd.Env = append(up.Environ(), "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=16777216:glibc.malloc.trim_threshold=67108864")
	cmd.Stdin = bytes.NewReader(stream)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git fast-import: %v\n%s", err, out)
	}
}

// newLargeRepo generates the upstream: a first commit with largeFiles
// files (plus an executable and a symlink), then largeCommits-1 commits
// that each rewrite one file.
func newLargeRepo(t *testing.T) (*gittest.Repo, *largeModel) {
	t.Helper()
	up := newShapeRepo(t)
	m := &largeModel{
		version: make([]int, largeFiles),
		deleted: map[int]bool{},
		exec:    map[int]bool{},
		extra: map[string]shapeTreeEntry{
			"bin/run.sh": {Kind: "exec", Data: "#!/bin/sh\necho run\n"},
			"latest":     {Kind: "symlink", Data: largePath(0)},
		},
		now: 1_700_000_000,
	}
	var b bytes.Buffer
	b.Grow(4 << 20)
	m.commitHeader(&b, "many files")
	for i := range largeFiles {
		fmt.Fprintf(&b, "M 100644 inline %s\n", largePath(i))
		fastImportData(&b, largeContent(i, 0))
	}
	b.WriteString("M 100755 inline bin/run.sh\n")
	fastImportData(&b, m.extra["bin/run.sh"].Data)
	b.WriteString("M 120000 inline latest\n")
	fastImportData(&b, m.extra["latest"].Data)
	for k := 1; k < largeCommits; k++ {
		i := k * 7919 % largeFiles
		m.commitHeader(&b, fmt.Sprintf("rewrite %d", i))
		m.version[i] = k
		fmt.Fprintf(&b, "M 100644 inline %s\n", largePath(i))
		fastImportData(&b, largeContent(i, k))
	}
	b.WriteString("done\n")
	fastImport(t, up, b.Bytes())
	if n := up.Git("rev-list", "--count", "main"); n != fmt.Sprint(largeCommits) {
		t.Fatalf("generated %s commits, want %d", n, largeCommits)
	}
	return up, m
}

// update makes one more commit: rewrites files (one of them in the sparse
// directory d007), deletes one, makes one executable, adds one.
func (m *largeModel) update(t *testing.T, up *gittest.Repo) string {
	t.Helper()
	var b bytes.Buffer
	m.commitHeader(&b, "update")
	fmt.Fprintf(&b, "from refs/heads/main^0\n")
	k := m.commits
	for _, i := range []int{7*largeDirSize + 3, 12345, 49_999} {
		m.version[i] = k
		fmt.Fprintf(&b, "M 100644 inline %s\n", largePath(i))
		fastImportData(&b, largeContent(i, k))
	}
	gone := 7*largeDirSize + 10
	m.deleted[gone] = true
	fmt.Fprintf(&b, "D %s\n", largePath(gone))
	x := 7*largeDirSize + 20
	m.exec[x] = true
	fmt.Fprintf(&b, "M 100755 inline %s\n", largePath(x))
	fastImportData(&b, largeContent(x, m.version[x]))
	m.extra["d007/new.txt"] = shapeTreeEntry{Kind: "file", Data: "new file\n"}
	b.WriteString("M 100644 inline d007/new.txt\n")
	fastImportData(&b, "new file\n")
	b.WriteString("done\n")
	fastImport(t, up, b.Bytes())
	return up.Head("main")
}

func TestShapeLargeRepo(t *testing.T) {
	t.Parallel()
	began := time.Now()
	up, m := newLargeRepo(t)
	tip := up.Head("main")
	t.Logf("generated %d files and %d commits in %v", largeFiles, largeCommits, time.Since(began).Round(time.Millisecond))

	keep := func(p string) bool { return strings.HasPrefix(p, "d007/") || strings.HasPrefix(p, "bin/") }
	sparse := filepath.Join(t.TempDir(), "sparse")
	shapeWriteFile(t, sparse, "/d007/\n/bin/\n")
	type run struct {
		name string
		root string
		keep func(string) bool
		p    *Proc
	}
	runs := []*run{
		{name: "defaults", root: newRoot(t)},
		{name: "blob:none + sparse", root: newRoot(t), keep: keep},
	}
	for _, r := range runs {
		args := append(syncArgs(up, r.root), "--period=200ms")
		if r.keep != nil {
			args = append(args, "--filter=blob:none", "--sparse-checkout-file="+sparse)
		}
		r.p = startWith(t, runOpts{Name: "git-sync " + r.name}, args...)
	}
	check := func(r *run, hash string, wantBlobs map[string]bool) {
		t.Helper()
		link := filepath.Join(r.root, "link")
		waitFor(t, largeDeadline, func() bool {
			if !r.p.Running() {
				t.Fatalf("git-sync %s exited (code %d):\n%s", r.name, r.p.ExitCode(), tail(r.p.Logs(), 40))
			}
			return tryLinkHash(link) == hash
		}, "git-sync %s to publish %s", r.name, hash)
		assertPublished(t, r.root, link, hash)
		if d := shapeTreeDiff(shapeDiskTree(t, link), m.tree(r.keep)); d != "" {
			t.Errorf("%s: published tree differs from upstream:\n%s", r.name, d)
		}
		if n := shapeRevCount(t, link); n != 1 {
			t.Errorf("%s: %d commits of history, want 1 (default depth)", r.name, n)
		}
		if r.keep != nil {
			shapeAssertPartial(t, r.root)
			have := shapeLocalObjects(t, r.root)["blob"]
			if extra := shapeSetDiff(have, wantBlobs); len(extra) > 0 {
				t.Errorf("%s: %d blobs downloaded that no sparse path needed (of %d present), e.g. %v", r.name, len(extra), len(have), extra[:min(len(extra), 5)])
			}
			if missing := shapeSetDiff(shapeUpstreamObjects(t, up, hash, "blob", r.keep), have); len(missing) > 0 {
				t.Errorf("%s: blobs of the sparse checkout are not present: %v", r.name, missing[:min(len(missing), 5)])
			}
		}
	}

	sparseBlobs := shapeUpstreamObjects(t, up, tip, "blob", keep)
	for _, r := range runs {
		check(r, tip, sparseBlobs)
		t.Logf("%s: first sync done at %v", r.name, time.Since(began).Round(time.Millisecond))
	}

	next := m.update(t, up)
	for b := range shapeUpstreamObjects(t, up, next, "blob", keep) {
		sparseBlobs[b] = true
	}
	for _, r := range runs {
		check(r, next, sparseBlobs)
		t.Logf("%s: update done at %v", r.name, time.Since(began).Round(time.Millisecond))
	}
	for _, r := range runs {
		if code := r.p.Stop(); code != 0 {
			t.Errorf("git-sync %s exit %d after SIGTERM, want 0", r.name, code)
		}
		if errs := errorRecords(r.p.Logs()); len(errs) > 0 {
			t.Errorf("git-sync %s logged errors:\n%s", r.name, strings.Join(errs, "\n"))
		}
	}
}
