package repo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitsync/internal/gittest"
)

// mk creates the files (content "") and directories (names ending in "/")
// under dir.
func mk(t *testing.T, dir string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		full := filepath.Join(dir, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestClassifyRoot(t *testing.T) {
	repoDirs := []string{".git/HEAD", ".git/config", ".git/objects/", ".git/refs/"}
	cases := []struct {
		name  string
		paths []string
		want  rootKind
	}{
		{"missing", nil, rootEmpty},
		{"only the lock file", []string{LockFileName}, rootEmpty},
		{"a git-sync repository", append([]string{".worktrees/", LockFileName}, repoDirs...), rootGitSync},
		{"a repository without worktrees yet (v4 after init)", repoDirs, rootGitSync},
		{"git-sync's state but .git lost", []string{StateDirName + "/gitconfig", ".worktrees/x/"}, rootGitSync},
		{"worktrees but .git lost", []string{".worktrees/"}, rootGitSync},
		{"a clone with a checkout", append([]string{".git/index", "README"}, repoDirs...), rootForeign},
		{"a .git file", []string{".git"}, rootForeign},
		{"a bare repository", []string{"HEAD", "config", "objects/", "refs/"}, rootForeign},
		{"junk", []string{"lost+found/", "notes.txt"}, rootOther},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			if c.paths != nil {
				mk(t, root, c.paths...)
			}
			got, why := classifyRoot(root, "")
			if got != c.want {
				t.Fatalf("classifyRoot = %v (%q), want %v", got, why, c.want)
			}
			if got == rootForeign && why == "" {
				t.Fatal("a refusal without a reason")
			}
		})
	}
}

func TestClassifyRootSource(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	mk(t, root, "src/.git/HEAD")
	for _, source := range []string{root, filepath.Join(root, "src")} {
		if got, why := classifyRoot(root, source); got != rootForeign || !strings.Contains(why, "source repository") {
			t.Errorf("source %s in root %s: %v %q, want a refusal naming the source", source, root, got, why)
		}
	}
	// A root inside the source's working tree is fine (the README's
	// first command syncs the project into a directory of its own).
	if got, _ := classifyRoot(root, parent); got == rootForeign {
		t.Errorf("a root below the source was refused")
	}
	if got, _ := classifyRoot(root, filepath.Join(parent, "root2")); got == rootForeign {
		t.Errorf("a sibling whose name starts like the root's was taken for it")
	}
}

func TestLocalSource(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	cases := map[string]string{
		"file://" + dir:              dir,
		dir:                          dir,
		"./rel":                      filepath.Join(wd, "rel"),
		"https://host/org/repo.git":  "",
		"ssh://git@host/org/repo":    "",
		"git@github.com:org/repo":    "",
		"host:path/repo":             "",
		"git://host/repo":            "",
		"relative/dir":               filepath.Join(wd, "relative/dir"),
		"relative/with:colon/inside": filepath.Join(wd, "relative/with:colon/inside"),
	}
	for in, want := range cases {
		if got := localSource(in); got != want {
			t.Errorf("localSource(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRemoveStaleLocks(t *testing.T) {
	gitDir := filepath.Join(t.TempDir(), ".git")
	stale := []string{
		"shallow.lock", "index.lock", "HEAD.lock", "config.lock", "packed-refs.lock", "gc.pid",
		"refs/heads/git-sync.lock", "refs/heads/deep/er.lock",
		"worktrees/abc/index.lock", "worktrees/abc/HEAD.lock",
		"worktrees/abc/modules/sub/shallow.lock", "modules/sub/index.lock",
		"objects/info/commit-graphs/commit-graph-chain.lock",
		"objects/pack/tmp_pack_XyZ", "objects/pack/pack-1.keep",
	}
	keep := []string{
		"HEAD", "config", "shallow", "refs/heads/git-sync", "worktrees/abc/index",
		"objects/pack/pack-1.pack", "objects/pack/pack-1.idx", "objects/ab/cdef.lock",
	}
	mk(t, gitDir, append(stale, keep...)...)
	removeStaleLocks(gitDir)
	for _, p := range stale {
		if _, err := os.Lstat(filepath.Join(gitDir, p)); err == nil {
			t.Errorf("%s was left", p)
		}
	}
	for _, p := range keep {
		if _, err := os.Lstat(filepath.Join(gitDir, p)); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}

func TestRepairHEAD(t *testing.T) {
	gitDir := t.TempDir()
	for _, content := range []string{"", "garbage", strings.Repeat("f", 40) + "\n"} {
		os.WriteFile(filepath.Join(gitDir, "HEAD"), []byte(content), 0o644)
		if err := repairHEAD(gitDir); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(gitDir, "HEAD")); string(b) != "ref: "+OwnRef+"\n" {
			t.Errorf("HEAD %q repaired to %q", content, b)
		}
	}
	os.Remove(filepath.Join(gitDir, "HEAD"))
	if err := repairHEAD(gitDir); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(gitDir, "HEAD"), []byte("ref: refs/heads/main\n"), 0o644)
	if err := repairHEAD(gitDir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(gitDir, "HEAD")); string(b) != "ref: refs/heads/main\n" {
		t.Errorf("a symbolic HEAD was rewritten to %q", b)
	}
}

func TestLockHeld(t *testing.T) {
	root := t.TempDir()
	l, err := AcquireLock(root)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if !l.Held() {
		t.Fatal("a fresh lock is not held")
	}
	if _, err := AcquireLock(root); err == nil || !strings.Contains(err.Error(), "already using") {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	// The root emptied by someone else: the file on disk is a new one.
	os.Remove(filepath.Join(root, LockFileName))
	if l.Held() {
		t.Fatal("the lock counts as held after its file was removed")
	}
	var nilLock *Lock
	if nilLock.Held() {
		t.Fatal("a nil lock is held")
	}
}

func TestOwnRefAndForeignRefs(t *testing.T) {
	up, c1 := gittest.NewRepoWithCommit(t)
	root := t.TempDir()
	r := open(t, root, up.URL(), "main", nil)
	mustSync(t, r)
	if got := r.ownRef(); got != c1 {
		t.Fatalf("own ref = %q, want %s", got, c1)
	}
	// What git-sync v3 or a person leaves: branches, tags, remote refs,
	// reflogs, and v4's branch packed by its gc.
	gitDir := filepath.Join(root, ".git")
	mk(t, gitDir, "refs/heads/main", "refs/tags/v1", "refs/remotes/origin/main", "logs/HEAD")
	for _, p := range []string{"refs/heads/main", "refs/tags/v1", "refs/remotes/origin/main"} {
		os.WriteFile(filepath.Join(gitDir, p), []byte(c1+"\n"), 0o644)
	}
	os.Remove(filepath.Join(gitDir, OwnRef))
	os.WriteFile(filepath.Join(gitDir, "packed-refs"), []byte("# pack-refs with: peeled fully-peeled sorted\n"+c1+" "+OwnRef+"\n"+c1+" refs/tags/v0\n"), 0o644)
	r.dropForeignRefs()
	if got := r.ownRef(); got != c1 {
		t.Errorf("own ref after dropping foreign ones = %q, want %s (salvaged from packed-refs)", got, c1)
	}
	for _, p := range []string{"refs/heads/main", "refs/tags/v1", "refs/remotes/origin", "logs", "packed-refs"} {
		if _, err := os.Lstat(filepath.Join(gitDir, p)); err == nil {
			t.Errorf("%s left", p)
		}
	}
}

func TestStoreSizeCountsPacksAndLooseObjects(t *testing.T) {
	objects := t.TempDir()
	write := func(p string, n int) {
		full := filepath.Join(objects, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, make([]byte, n), 0o644)
	}
	write("pack/pack-1.pack", 1000)
	write("pack/pack-1.idx", 100)
	write("pack/pack-2.pack", 10)
	write("ab/cdef0123", 7)
	write("info/packs", 50) // not an object
	size, packs := storeSize(objects)
	if size != 1117 || packs != 2 {
		t.Fatalf("storeSize = %d bytes, %d packs; want 1117, 2", size, packs)
	}
}
