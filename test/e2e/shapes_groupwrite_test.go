package e2e

// --group-write across every shape: everything git-sync and git write
// under the root (repository, worktrees, submodules, promisor packs) is
// group-writable; and a second user of the same group can read and write
// the published trees, submodules included, and take the root over.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// shapeAssertGroupWritable walks root (symlinks not followed) and checks
// that every directory is group rwx and every file group-readable, and
// group-writable whenever its owner may write it (git's objects are
// read-only for everyone).
func shapeAssertGroupWritable(t *testing.T, root string) {
	t.Helper()
	var bad []string
	checked := 0
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&os.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		m := info.Mode().Perm()
		checked++
		switch {
		case d.IsDir() && m&0o070 != 0o070:
			bad = append(bad, fmt.Sprintf("%v %s", m, p))
		case !d.IsDir() && (m&0o040 == 0 || m&0o200 != 0 && m&0o020 == 0):
			bad = append(bad, fmt.Sprintf("%v %s", m, p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		t.Errorf("%d of %d entries under %s are not group-accessible with --group-write, e.g.:\n%s",
			len(bad), checked, root, strings.Join(bad[:min(len(bad), 15)], "\n"))
	}
}

// TestShapeGroupWriteEveryShape runs two syncs (an update in between, so
// that a worktree is removed and gc runs) with --group-write for each
// shape, and checks the modes of everything under the root.
func TestShapeGroupWriteEveryShape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		flags  []string
		sub    bool   // the upstream has a submodule with a nested one
		sparse string // sparse file content
	}{
		{name: "submodules", sub: true, flags: []string{"--git-config=protocol.file.allow:always"}},
		{name: "sparse with depth", sparse: "/docs/\n", flags: []string{"--depth=2"}},
		{name: "partial clone with sparse", sparse: "/docs/\n", flags: []string{"--filter=blob:none", "--depth=0"}},
		{name: "full history", flags: []string{"--depth=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := newShapeRepo(t)
			var subs map[string]*gittest.Repo
			if tc.sub {
				leaf := newShapeRepo(t)
				leaf.Commit(map[string]string{"leaf.txt": "leaf\n"}, "leaf")
				lib := newShapeRepo(t)
				shapeCommit(t, lib, map[string]shapeEntry{"lib.sh": {Content: "#!/bin/sh\n", Exec: true}}, "lib")
				lib.AddSubmodule(leaf, "nested/leaf", "")
				up.AddSubmodule(lib, "libs/lib", "")
				subs = map[string]*gittest.Repo{"libs/lib": lib, "libs/lib/nested/leaf": leaf}
			}
			shapeCommit(t, up, map[string]shapeEntry{
				"docs/a.md": {Content: "a\n"}, "src/x.sh": {Content: "x\n", Exec: true}, "top": {Content: "t\n"},
			}, "g1")
			root := newRoot(t)
			link := filepath.Join(root, "link")
			args := append(syncArgs(up, root), "--group-write")
			args = append(args, tc.flags...)
			var keep func(string) bool
			if tc.sparse != "" {
				sparse := filepath.Join(t.TempDir(), "sparse")
				shapeWriteFile(t, sparse, tc.sparse)
				args = append(args, "--sparse-checkout-file="+sparse)
				keep = func(p string) bool { return strings.HasPrefix(p, "docs/") }
			}
			shapeSyncOnce(t, args...)
			h := up.Commit(map[string]string{"docs/a.md": "a 2\n", "docs/b.md": "b\n"}, "g2")
			shapeSyncOnce(t, args...)
			assertPublished(t, root, link, h)
			shapeAssertTree(t, link, shapeExpected(t, up, h, shapeWant{Subs: subs, Keep: keep}))
			shapeAssertGroupWritable(t, root)
		})
	}
}

// shapeUser is a Unix account made for a test.
type shapeUser struct {
	name     string
	uid, gid uint32
	home     string
}

// shapeCreateUsers creates a fresh group and, for each name, a user whose
// primary group is its own and who is a member of the shared group. They
// are deleted when the test ends. It returns the users and the shared
// group's id.
func shapeCreateUsers(t *testing.T, homeBase string, names ...string) ([]shapeUser, uint32) {
	t.Helper()
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	sfx := hex.EncodeToString(suffix[:])
	group := "gsg" + sfx
	run := func(prog string, args ...string) {
		t.Helper()
		if out, err := exec.Command(prog, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s (the test runs as root and needs the passwd package: apt-get install -y passwd)", prog, strings.Join(args, " "), err, out)
		}
	}
	run("groupadd", group)
	t.Cleanup(func() { _ = exec.Command("groupdel", group).Run() })
	g, err := user.LookupGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	shared := mustUint32(t, g.Gid)
	var users []shapeUser
	for _, n := range names {
		name := "gs" + n + sfx
		run("useradd", "--no-create-home", "--user-group", "--groups", group, "--shell", "/bin/sh", name)
		t.Cleanup(func() {
			_ = exec.Command("userdel", name).Run()
			_ = exec.Command("groupdel", name).Run()
		})
		u, err := user.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		su := shapeUser{name: name, uid: mustUint32(t, u.Uid), gid: mustUint32(t, u.Gid), home: filepath.Join(homeBase, name)}
		if err := os.Mkdir(su.home, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(su.home, int(su.uid), int(su.gid)); err != nil {
			t.Fatal(err)
		}
		users = append(users, su)
	}
	return users, shared
}

func mustUint32(t *testing.T, s string) uint32 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

// shapeTraversable makes dir and every ancestor below the system temp
// directory searchable by everyone, so that other users can reach what
// the test creates there.
func shapeTraversable(t *testing.T, dir string) {
	t.Helper()
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir, err = filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; d != tmp && d != filepath.Dir(d) && strings.HasPrefix(d, tmp+string(filepath.Separator)); d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, info.Mode().Perm()|0o055); err != nil {
			t.Fatal(err)
		}
	}
}

// shapeRunAs runs prog with args as u, with the shared group as its only
// supplementary group, in u's home directory with env, and returns the exit
// code and combined output. It fails the test after runDeadline.
func shapeRunAs(t *testing.T, u shapeUser, shared uint32, env []string, stdin string, prog string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Dir = u.home
	cmd.Env = append(env, "HOME="+u.home, "USER="+u.name, "LOGNAME="+u.name)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
		Uid: u.uid, Gid: u.gid, Groups: []uint32{shared},
	}}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("run %s as %s: %v", prog, u.name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(err), out.String()
	case <-time.After(runDeadline):
		killTree(cmd.Process.Pid)
		<-done
		t.Fatalf("%s as %s did not exit within %v:\n%s", prog, u.name, runDeadline, tail(out.String(), 40))
	}
	return 0, ""
}

// shapeCheckAccess runs, as u, a read and an append on every regular file
// of the tree at dir and the creation of a file in every directory
// (submodules included; .git entries excluded), and returns the failures.
func shapeCheckAccess(t *testing.T, u shapeUser, shared uint32, env []string, dir, mark string) []string {
	t.Helper()
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	var list strings.Builder
	err = filepath.WalkDir(resolved, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".git" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			fmt.Fprintf(&list, "d %s\n", p)
		case d.Type().IsRegular():
			fmt.Fprintf(&list, "f %s\n", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	script := `while read -r kind p; do
	if [ "$kind" = d ]; then
		printf '' 2>/dev/null > "$p/.written-by-` + mark + `" || echo "cannot create a file in $p"
	else
		cat "$p" 2>/dev/null > /dev/null || echo "cannot read $p"
		printf '` + mark + `\n' 2>/dev/null >> "$p" || echo "cannot write $p"
	fi
done
`
	code, out := shapeRunAs(t, u, shared, env, list.String(), "/bin/sh", "-c", script)
	var fails []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			fails = append(fails, l)
		}
	}
	if code != 0 && len(fails) == 0 {
		fails = append(fails, fmt.Sprintf("access check exited %d", code))
	}
	return fails
}

// TestShapeGroupWriteTwoUsers runs git-sync with --group-write as user A
// on a root shared through a group (setgid directory owned by A:group),
// on a superproject with nested submodules, and checks as user B, another
// member of the group, that every file and directory of the published
// tree, submodules included, can be read and written. B then takes the
// root over (git-sync as B syncs an update on A's root), and A can work
// on B's tree in turn.
func TestShapeGroupWriteTwoUsers(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Fatalf("this test creates users and must run as root (CI runs as root); euid is %d", os.Geteuid())
	}
	base := t.TempDir()
	shapeTraversable(t, base)
	shapeTraversable(t, filepath.Dir(gitSyncBin))
	users, shared := shapeCreateUsers(t, base, "a", "b")
	a, b := users[0], users[1]

	// Upstreams over smart HTTP (served by the test, as root), with
	// relative submodule URLs.
	super, lib, leaf := newShapeRepo(t), newShapeRepo(t), newShapeRepo(t)
	srv := gittest.HTTPServer(t, shapeServeDir(t, map[string]*gittest.Repo{"super": super, "lib": lib, "leaf": leaf}), gittest.HTTPOptions{})
	shapeCommit(t, leaf, map[string]shapeEntry{"leaf.txt": {Content: "leaf\n"}}, "leaf")
	lib.Git("remote", "add", "origin", srv.URL("lib"))
	shapeCommit(t, lib, map[string]shapeEntry{"lib.txt": {Content: "lib\n"}, "bin/lib.sh": {Content: "#!/bin/sh\n", Exec: true}}, "lib")
	lib.AddSubmodule(leaf, "nested/leaf", "../leaf")
	super.Git("remote", "add", "origin", srv.URL("super"))
	shapeCommit(t, super, map[string]shapeEntry{"README": {Content: "super\n"}, "run.sh": {Content: "#!/bin/sh\n", Exec: true}}, "super")
	h1 := super.AddSubmodule(lib, "libs/lib", "../lib")
	subs := map[string]*gittest.Repo{"libs/lib": lib, "libs/lib/nested/leaf": leaf}

	root := filepath.Join(base, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(root, int(a.uid), int(shared)); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(root, 0o2775); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "link")
	env := append(gittest.CleanEnviron(os.Environ()), "GIT_CONFIG_NOSYSTEM=1")
	args := []string{"--repo=" + srv.URL("super"), "--root=" + root, "--link=link", "--group-write", "--one-time"}

	if code, out := shapeRunAs(t, a, shared, env, "", gitSyncBin, args...); code != 0 {
		t.Fatalf("git-sync as %s: exit %d\n%s", a.name, code, tail(out, 40))
	}
	assertPublished(t, root, link, h1)
	shapeAssertTree(t, link, shapeExpected(t, super, h1, shapeWant{Subs: subs}))
	shapeAssertGroupWritable(t, root)
	shapeAssertGroupOwner(t, link, shared)
	if fails := shapeCheckAccess(t, b, shared, env, link, b.name); len(fails) > 0 {
		t.Errorf("user %s (same group) cannot use the tree %s published:\n%s", b.name, a.name, strings.Join(fails[:min(len(fails), 20)], "\n"))
	}
	if got, err := os.ReadFile(filepath.Join(link, "libs", "lib", "nested", "leaf", "leaf.txt")); err != nil || string(got) != "leaf\n"+b.name+"\n" {
		t.Errorf("nested submodule file after %s's append = %q, %v", b.name, got, err)
	}

	// B takes the root over and syncs an update; A can use B's tree.
	h2 := super.Commit(map[string]string{"README": "super 2\n"}, "super 2")
	if code, out := shapeRunAs(t, b, shared, env, "", gitSyncBin, args...); code != 0 {
		t.Fatalf("git-sync as %s on the root of %s: exit %d\n%s", b.name, a.name, code, tail(out, 40))
	}
	assertPublished(t, root, link, h2)
	shapeAssertTree(t, link, shapeExpected(t, super, h2, shapeWant{Subs: subs}))
	if exists(worktreePath(root, h1)) {
		t.Errorf("the superseded worktree of %s was not removed by %s", a.name, b.name)
	}
	shapeAssertGroupWritable(t, root)
	if fails := shapeCheckAccess(t, a, shared, env, link, a.name); len(fails) > 0 {
		t.Errorf("user %s cannot use the tree %s published:\n%s", a.name, b.name, strings.Join(fails[:min(len(fails), 20)], "\n"))
	}
}

// shapeAssertGroupOwner checks that every entry of the tree at dir belongs
// to group gid (inherited from the setgid root).
func shapeAssertGroupOwner(t *testing.T, dir string, gid uint32) {
	t.Helper()
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	_ = filepath.WalkDir(resolved, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Gid != gid {
			bad = append(bad, fmt.Sprintf("gid %d %s", st.Gid, p))
		}
		return nil
	})
	if len(bad) > 0 {
		t.Errorf("%d entries of the published tree are not in the shared group %d, e.g.:\n%s", len(bad), gid, strings.Join(bad[:min(len(bad), 10)], "\n"))
	}
}
