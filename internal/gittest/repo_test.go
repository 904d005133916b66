package gittest

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestNewRepoIsIsolatedFromMachineConfig(t *testing.T) {
	// A hostile global config in the parent's HOME must not reach the
	// fixture: if it did, the default branch and the identity would change.
	home := t.TempDir()
	cfg := "[init]\n\tdefaultBranch = hostile\n[user]\n\tname = Hostile\n\temail = h@h\n"
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	t.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(home, ".gitconfig"))
	t.Setenv("GIT_DIR", "/nonexistent")

	r := NewRepo(t)
	h := r.Commit(map[string]string{"a.txt": "a\n"}, "first")
	if got := r.Git("symbolic-ref", "--short", "HEAD"); got != DefaultBranch {
		t.Errorf("current branch = %q, want %q", got, DefaultBranch)
	}
	if got := r.Git("log", "-1", "--format=%an <%ae>"); got != "gittest <gittest@example.invalid>" {
		t.Errorf("author = %q", got)
	}
	if len(h) != 40 {
		t.Errorf("Commit returned %q, want a full hash", h)
	}
	if got := r.Head(DefaultBranch); got != h {
		t.Errorf("Head(main) = %q, want %q", got, h)
	}
}

func TestEnvDropsMachineVariables(t *testing.T) {
	t.Setenv("GITSYNC_REPO", "x")
	t.Setenv("GIT_SYNC_REPO", "x")
	t.Setenv("GIT_DIR", "x")
	t.Setenv("SSH_AUTH_SOCK", "x")
	env := Env(t)
	seen := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		seen[k] = v
	}
	for _, k := range []string{"GITSYNC_REPO", "GIT_SYNC_REPO", "GIT_DIR", "SSH_AUTH_SOCK"} {
		if _, ok := seen[k]; ok {
			t.Errorf("%s leaked into Env", k)
		}
	}
	if seen["GIT_CONFIG_NOSYSTEM"] != "1" {
		t.Errorf("GIT_CONFIG_NOSYSTEM = %q", seen["GIT_CONFIG_NOSYSTEM"])
	}
	if h := seen["HOME"]; h == "" || h == os.Getenv("HOME") {
		t.Errorf("HOME = %q, want a fresh directory", h)
	}
	if _, err := os.Stat(seen["GIT_CONFIG_GLOBAL"]); err != nil {
		t.Errorf("GIT_CONFIG_GLOBAL: %v", err)
	}
}

func TestRefsMoveForwardsBackwardsAndSideways(t *testing.T) {
	r := NewRepo(t)
	c1 := r.Commit(map[string]string{"f": "1"}, "c1")
	c2 := r.Commit(map[string]string{"f": "2", "dir/sub/g": "x"}, "c2")

	r.Tag("light", c1)
	tagObj := r.AnnotatedTag("annotated", c1, "msg")
	if tagObj == c1 {
		t.Errorf("annotated tag object equals the commit hash")
	}
	if got := r.Head("annotated"); got != c1 {
		t.Errorf("Head(annotated) = %s, want commit %s", got, c1)
	}
	// Re-point both tags.
	r.Tag("light", c2)
	r.AnnotatedTag("annotated", c2, "moved")
	if r.Head("light") != c2 || r.Head("annotated") != c2 {
		t.Errorf("tags did not move to %s", c2)
	}

	r.Branch("side", c1)
	if got := r.Head("side"); got != c1 {
		t.Errorf("Head(side) = %s, want %s", got, c1)
	}
	r.ForcePush("side", c2)
	if got := r.Head("side"); got != c2 {
		t.Errorf("after ForcePush Head(side) = %s, want %s", got, c2)
	}

	// Backwards on the checked-out branch.
	r.ForcePush(DefaultBranch, c1)
	if got := r.Head("HEAD"); got != c1 {
		t.Errorf("after ForcePush(main, c1) HEAD = %s", got)
	}
	if _, err := os.Stat(filepath.Join(r.Dir(), "dir")); !os.IsNotExist(err) {
		t.Errorf("working tree not reset: dir still present (%v)", err)
	}
	r.ResetHard(c2)
	if got := r.Show("HEAD", "dir/sub/g"); got != "x" {
		t.Errorf("Show = %q", got)
	}

	r.Checkout("feature")
	c3 := r.Commit(map[string]string{"h": "3"}, "c3")
	if r.Head("feature") != c3 || r.Head(DefaultBranch) != c2 {
		t.Errorf("commit on feature moved the wrong branch")
	}
	r.Checkout(DefaultBranch)

	r.Remove("f")
	c4 := r.Commit(nil, "remove f")
	files := r.Files(c4)
	if strings.Join(files, ",") != "dir/sub/g" {
		t.Errorf("Files(c4) = %v, want [dir/sub/g]", files)
	}
	empty := r.Commit(nil, "empty")
	if empty == c4 {
		t.Errorf("empty commit not created")
	}
}

func TestURLIsFetchable(t *testing.T) {
	r, h := NewRepoWithCommit(t)
	if !strings.HasPrefix(r.URL(), "file:///") {
		t.Fatalf("URL = %q", r.URL())
	}
	dst := t.TempDir()
	env := Env(t)
	if _, err := RunGit(dst, env, "init", "--quiet"); err != nil {
		t.Fatal(err)
	}
	if _, err := RunGit(dst, env, "fetch", "--quiet", "--depth=1", r.URL(), DefaultBranch); err != nil {
		t.Fatal(err)
	}
	got, err := RunGit(dst, env, "rev-parse", "FETCH_HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if got != h {
		t.Errorf("fetched %s, want %s", got, h)
	}
}

func TestConcurrentTryCommit(t *testing.T) {
	r, _ := NewRepoWithCommit(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.TryCommit(map[string]string{"n": strings.Repeat("x", i)}, "c"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := r.Git("rev-list", "--count", "HEAD"); n != "9" {
		t.Errorf("commit count = %s, want 9", n)
	}
}

func TestTryCommitFastWritesValidObjects(t *testing.T) {
	r, first := NewRepoWithCommit(t)
	files := map[string]string{
		"a.txt":       "1\n",
		"a-b.txt":     "x",
		"a/inner.txt": "same\n",
		"a0/z":        "same\n",
		"d/e/f/g.txt": "deep",
		"empty":       "",
	}
	h, err := r.TryCommitFast(files, "fast one")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 40 {
		t.Fatalf("hash %q", h)
	}
	if got := r.Head("HEAD"); got != h {
		t.Errorf("HEAD = %s, want %s", got, h)
	}
	if got := r.Git("rev-parse", "HEAD^"); got != first {
		t.Errorf("parent = %s, want %s", got, first)
	}
	r.Git("fsck", "--strict", "--no-dangling")
	for name, content := range files {
		if got := r.Show(h, name); got != content {
			t.Errorf("%s = %q, want %q", name, got, content)
		}
	}
	if got := strings.Join(r.Files(h), ","); got != "a-b.txt,a.txt,a/inner.txt,a0/z,d/e/f/g.txt,empty" {
		t.Errorf("files = %s", got)
	}
	if got := r.Git("log", "-1", "--format=%s|%an|%ce", h); got != "fast one|gittest|gittest@example.invalid" {
		t.Errorf("commit metadata = %q", got)
	}
	h2, err := r.TryCommitFast(map[string]string{"a.txt": "2\n"}, "second")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Git("rev-parse", h2+"^"); got != h {
		t.Errorf("second commit's parent = %s, want %s", got, h)
	}
	r.Git("fsck", "--strict", "--no-dangling")

	// A client fetches it like any commit.
	dst := t.TempDir()
	env := Env(t)
	if _, err := RunGit(dst, env, "init", "--quiet"); err != nil {
		t.Fatal(err)
	}
	if _, err := RunGit(dst, env, "fetch", "--quiet", "--depth=1", r.URL(), DefaultBranch); err != nil {
		t.Fatal(err)
	}
	if got, _ := RunGit(dst, env, "rev-parse", "FETCH_HEAD"); got != h2 {
		t.Errorf("fetched %s, want %s", got, h2)
	}
}

func TestTryCommitFastOnEmptyRepo(t *testing.T) {
	r := NewRepo(t)
	h, err := r.TryCommitFast(map[string]string{"x": "y"}, "root commit")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Git("rev-list", "--count", h); got != "1" {
		t.Errorf("a root commit has %s commits in its history", got)
	}
	r.Git("fsck", "--strict", "--no-dangling")
}

func TestBadFileNamesAreRejected(t *testing.T) {
	r := NewRepo(t)
	for _, name := range []string{"../x", "/abs", ".git/config", "."} {
		if _, err := r.TryCommit(map[string]string{name: "x"}, "bad"); err == nil {
			t.Errorf("TryCommit(%q) succeeded, want an error", name)
		}
	}
}

func TestAddSubmodule(t *testing.T) {
	sub, subHash := NewRepoWithCommit(t)
	r, _ := NewRepoWithCommit(t)
	h := r.AddSubmodule(sub, "libs/sub", "")
	got := r.Git("ls-tree", h, "libs/sub")
	if !strings.Contains(got, "commit "+subHash) {
		t.Errorf("ls-tree libs/sub = %q, want gitlink to %s", got, subHash)
	}
	if !strings.Contains(r.Show(h, ".gitmodules"), sub.URL()) {
		t.Errorf(".gitmodules does not name %s", sub.URL())
	}
}
