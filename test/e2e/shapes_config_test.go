package e2e

// --git-config / --git-config-add with the settings the shapes need:
// url."X".insteadOf rewriting submodule URLs, http.postBuffer, and
// protocol.file.allow for file:// submodules. They must reach every git
// git-sync runs, submodule clones included, without landing in the
// repository's own config.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitsync/internal/gittest"
)

func TestShapeGitConfig(t *testing.T) {
	t.Parallel()
	lib := newShapeRepo(t)
	shapeCommit(t, lib, map[string]shapeEntry{
		"lib.txt": {Content: "lib\n"},
		"lib.sh":  {Content: "#!/bin/sh\n", Exec: true},
	}, "lib")
	// lib is reachable as file://MIRROR/lib.git only; .gitmodules names it
	// by an address that does not exist.
	mirror := shapeServeDir(t, map[string]*gittest.Repo{"lib.git": lib})
	const fake = "https://git.example.invalid/team/"

	super := newShapeRepo(t)
	super.Commit(map[string]string{"README": "super\n"}, "super")
	super.AddSubmodule(lib, "vendor/lib", "")
	super.Git("config", "--file", ".gitmodules", "submodule.vendor/lib.url", fake+"lib.git")
	head := super.Commit(nil, "point vendor/lib at its public address")
	srv := gittest.HTTPServer(t, shapeServeDir(t, map[string]*gittest.Repo{"super": super}), gittest.HTTPOptions{})

	// The wrapper records, for every git git-sync starts, the subcommand
	// and the http.postBuffer that git sees.
	w := gitWrapper(t, wrapperOpts{
		Extra: `echo "$1 $("$REAL" config --get http.postBuffer)" >> "$STATE/postbuffer.log"`,
	})
	root := newRoot(t)
	link := filepath.Join(root, "link")
	args := []string{"--repo=" + srv.URL("super"), "--root=" + root, "--link=link", "--git=" + w.Path,
		`--git-config=url."file://` + mirror + `/".insteadOf:` + fake + `,http.postBuffer:1048576000`,
		"--git-config-add=protocol.file.allow:always",
	}
	shapeSyncOnce(t, args...)
	assertPublished(t, root, link, head)
	shapeAssertTree(t, link, shapeExpected(t, super, head, shapeWant{Subs: map[string]*gittest.Repo{"vendor/lib": lib}}))
	if got := gitIn(t, filepath.Join(link, "vendor", "lib"), "config", "--get", "remote.origin.url"); got != fake+"lib.git" {
		t.Errorf("the submodule's origin is %q, want the address from .gitmodules %q (rewritten only when used)", got, fake+"lib.git")
	}

	b, err := os.ReadFile(filepath.Join(w.Dir, "postbuffer.log"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		sub, val, _ := strings.Cut(line, " ")
		switch sub {
		case "fetch", "ls-remote", "worktree", "submodule", "reset", "gc":
			checked++
			if val != "1048576000" {
				t.Errorf("git %s ran with http.postBuffer %q, want 1048576000", sub, val)
			}
		}
	}
	if checked == 0 {
		t.Errorf("no fetch or submodule call recorded by the wrapper:\n%s", b)
	}

	// The settings live in git-sync's private global config, not in the
	// repository's (where submodule clones would not see them).
	local, err := os.ReadFile(filepath.Join(root, ".git", "config"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"postBuffer", "insteadOf", "protocol"} {
		if strings.Contains(strings.ToLower(string(local)), strings.ToLower(s)) {
			t.Errorf("ROOT/.git/config holds %s:\n%s", s, local)
		}
	}

	// Without the rewrite the submodule's address does not resolve: the
	// setting is what made the sync work.
	res := runOnce(t, "--repo="+srv.URL("super"), "--root="+newRoot(t), "--link=link", "--one-time",
		"--git-config=protocol.file.allow:always")
	if res.Code == 0 {
		t.Errorf("sync succeeded without the insteadOf rewrite of %s", fake)
	}
}
