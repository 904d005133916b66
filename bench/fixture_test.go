package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// smallFixtureHead is the head commit of the small fixture. The generator
// is deterministic, so this is the same on every machine; if a change to
// the generator moves it, bump fixtureVersion and update it here.
const smallFixtureHead = "3a7ad1a2d5c7fe51a75b01d555e7ca142cba0c02"

func TestFixtureStreamIsDeterministic(t *testing.T) {
	spec := fixtureSpecs["small"]
	sum := func() string {
		h := sha256.New()
		if err := writeFastImport(h, spec); err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	if a, b := sum(), sum(); a != b {
		t.Fatalf("two streams for the same spec differ: %s vs %s", a, b)
	}
}

func TestSmallFixture(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := gitEnv(home)
	dir := filepath.Join(t.TempDir(), "small.git")
	head, err := generateFixture(ctx, env, fixtureSpecs["small"], dir)
	if err != nil {
		t.Fatal(err)
	}
	if head != smallFixtureHead {
		t.Errorf("small fixture head = %s, want %s", head, smallFixtureHead)
	}
	if n, err := runGit(ctx, env, dir, "rev-list", "--count", "HEAD"); err != nil || n != "50" {
		t.Errorf("commits = %q (%v), want 50", n, err)
	}
	files, err := runGit(ctx, env, dir, "ls-tree", "-r", "--name-only", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Split(files, "\n")); n < 100 || n > 110 {
		t.Errorf("files = %d, want about 100", n)
	}

	// The benchmark's own committer writes objects and refs without git;
	// git must accept them.
	u, err := openUpstream(ctx, env, dir)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for i := 0; i < 3; i++ {
		if last, err = u.Commit("bench-update.txt", fmt.Sprintf("update %d\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := runGit(ctx, env, dir, "rev-parse", "refs/heads/main"); err != nil || got != last {
		t.Errorf("refs/heads/main = %q (%v), want %s", got, err, last)
	}
	if _, err := runGit(ctx, env, dir, "fsck", "--strict", "--no-progress"); err != nil {
		t.Errorf("fsck after commits: %v", err)
	}
	if got, err := runGit(ctx, env, dir, "show", "main:bench-update.txt"); err != nil || got != "update 2" {
		t.Errorf("bench-update.txt = %q (%v)", got, err)
	}
	if got, err := runGit(ctx, env, dir, "show", "main:README.md"); err != nil || !strings.HasPrefix(got, "# small") {
		t.Errorf("README.md lost by the committer: %q (%v)", got, err)
	}
}
