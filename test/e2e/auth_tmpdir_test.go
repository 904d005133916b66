package e2e

// $TMPDIR and the credential socket. git-sync serves credentials to git
// over a unix socket in an owner-only directory, and a unix socket's path
// is limited (107 bytes on Linux). git-sync must never fail because
// $TMPDIR is long or unusable: without credentials it makes no socket at
// all, and with credentials it falls back to a short directory of its own,
// owner-only and removed on exit.

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gitsync/internal/gittest"
)

// tmpdirOfLength returns a new directory whose absolute path is exactly n
// bytes long (n must leave room for a short temp dir and one more name).
func tmpdirOfLength(t *testing.T, n int) string {
	t.Helper()
	base := authShortTempDir(t, "gs-tmpdir-")
	pad := n - len(base) - 1
	if pad < 1 {
		t.Fatalf("cannot make a %d-byte path under %s", n, base)
	}
	dir := filepath.Join(base, strings.Repeat("t", pad))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if len(dir) != n {
		t.Fatalf("made %s of %d bytes, want %d", dir, len(dir), n)
	}
	return dir
}

// helperRecorder is a --git wrapper that records the credential.helper
// values git sees (one line each, in Dir/helpers), then runs git.
func helperRecorder(t *testing.T) wrapper {
	t.Helper()
	return gitWrapper(t, wrapperOpts{
		Extra: `"$REAL" config --global --includes --get-all credential.helper >> "$STATE/helpers" 2>/dev/null`,
	})
}

// helpers returns the non-empty credential.helper values recorded by a
// helperRecorder.
func helpers(w wrapper) []string {
	b, _ := os.ReadFile(filepath.Join(w.Dir, "helpers"))
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// helperSocket extracts the socket path from git-sync's credential.helper
// value ("!SELF __gitsync-credential-helper SOCKET", shell-quoted).
func helperSocket(t *testing.T, helper string) string {
	t.Helper()
	f := strings.Fields(helper)
	if len(f) < 3 || !strings.Contains(helper, "__gitsync-credential-helper") {
		t.Fatalf("credential.helper %q is not git-sync's helper", helper)
	}
	return strings.Trim(f[len(f)-1], "'")
}

func TestAuthTMPDIR(t *testing.T) {
	t.Parallel()

	// No credentials, no socket: any TMPDIR will do, and nothing is
	// created in it.
	t.Run("no credentials", func(t *testing.T) {
		t.Parallel()
		up, h1 := gittest.NewRepoWithCommit(t)
		for _, n := range []int{60, 61, 120, 250} {
			tmp := tmpdirOfLength(t, n)
			root := newRoot(t)
			res := runWith(t, runOpts{Env: []string{"TMPDIR=" + tmp}}, concat(syncArgs(up, root), []string{"--one-time"})...)
			if res.Code != 0 {
				t.Fatalf("TMPDIR of %d bytes: want exit 0, got %s", n, res)
			}
			assertPublished(t, root, filepath.Join(root, "link"), h1)
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Errorf("TMPDIR of %d bytes: git-sync left %d entries in it", n, len(ents))
			}
		}

		// While it runs: no credential directory, and git is given no
		// helper of git-sync's.
		tmp := authShortTempDir(t, "gs-nocred-")
		w := helperRecorder(t)
		root := newRoot(t)
		p := startWith(t, runOpts{Env: []string{"TMPDIR=" + tmp}},
			concat(syncArgs(up, root), []string{"--git=" + w.Path, "--period=100ms"})...)
		waitForLink(t, p, filepath.Join(root, "link"), h1)
		if dirs := authPrivateDirs(tmp); len(dirs) != 0 {
			t.Errorf("credential directories without credentials: %q", dirs)
		}
		if h := helpers(w); len(h) != 0 {
			t.Errorf("credential helpers configured without credentials: %q", h)
		}
	})

	// With credentials, every TMPDIR works: long ones (around the length
	// where the socket path stops fitting, and far beyond) and one that
	// does not exist.
	t.Run("credentials", func(t *testing.T) {
		t.Parallel()
		pass := authSecret(t, "tmpdir")
		_, _, repoURL, h1 := authHTTPUpstream(t, gittest.HTTPOptions{Username: "tim", Password: pass})
		env := func(tmp string) []string { return []string{"TMPDIR=" + tmp, "GITSYNC_PASSWORD=" + pass} }
		var tmps []string
		for _, n := range []int{59, 60, 61, 68, 69, 70, 100, 200} {
			tmps = append(tmps, tmpdirOfLength(t, n))
		}
		tmps = append(tmps, filepath.Join(t.TempDir(), "does-not-exist"))
		for _, tmp := range tmps {
			root := newRoot(t)
			// HOME is not written to (the manual says it may be read-only).
			home := t.TempDir()
			res := runWith(t, runOpts{Env: append(env(tmp), "HOME="+home)}, "--repo="+repoURL, "--root="+root, "--link=link",
				"--username=tim", "--one-time")
			if res.Code != 0 {
				t.Fatalf("TMPDIR of %d bytes (%s): want exit 0, got %s", len(tmp), tmp, res)
			}
			assertPublished(t, root, filepath.Join(root, "link"), h1)
			if dirs := authPrivateDirs(tmp); len(dirs) != 0 {
				t.Errorf("TMPDIR of %d bytes: credential directories left after exit: %q", len(tmp), dirs)
			}
			if ents, _ := os.ReadDir(home); len(ents) != 0 {
				t.Errorf("git-sync wrote %d entries into HOME", len(ents))
			}
		}
	})

	// Where the socket goes when TMPDIR is too long: a short directory
	// that only git-sync's user can enter, removed on exit.
	t.Run("fallback directory", func(t *testing.T) {
		t.Parallel()
		pass := authSecret(t, "fallback")
		_, _, repoURL, h1 := authHTTPUpstream(t, gittest.HTTPOptions{Username: "tim", Password: pass})
		tmp := tmpdirOfLength(t, 200)
		w := helperRecorder(t)
		root := newRoot(t)
		p := startWith(t, runOpts{Env: []string{"TMPDIR=" + tmp, "GITSYNC_PASSWORD=" + pass}},
			"--repo="+repoURL, "--root="+root, "--link=link", "--username=tim",
			"--git="+w.Path, "--period=100ms")
		waitForLink(t, p, filepath.Join(root, "link"), h1)
		hs := helpers(w)
		if len(hs) == 0 {
			t.Fatal("git saw no credential helper")
		}
		sock := helperSocket(t, hs[0])
		dir := filepath.Dir(sock)
		if len(sock) > 107 {
			t.Errorf("socket path %s is %d bytes, more than a unix socket allows", sock, len(sock))
		}
		if strings.HasPrefix(sock, tmp+"/") {
			t.Errorf("socket %s is in the over-long TMPDIR", sock)
		}
		fi, err := os.Lstat(dir)
		if err != nil {
			t.Fatalf("the socket's directory: %v", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 || int(st.Uid) != os.Geteuid() {
			t.Errorf("socket directory %s: mode %v, uid %d; want an owner-only directory of uid %d",
				dir, fi.Mode(), st.Uid, os.Geteuid())
		}
		if fi, err := os.Lstat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
			t.Errorf("no socket at %s: %v", sock, err)
		}
		if code := p.Stop(); code != 0 {
			t.Fatalf("exit %d after SIGTERM", code)
		}
		if exists(dir) {
			t.Errorf("the socket directory %s is still there after exit", dir)
		}
	})
}

// TestAuthManWritablePaths: --man says what git-sync writes, for those who
// run it with a read-only root filesystem.
func TestAuthManWritablePaths(t *testing.T) {
	t.Parallel()
	res := runOnce(t, "--man")
	if res.Code != 0 {
		t.Fatalf("--man: %s", res)
	}
	for _, want := range []string{"FILES GIT-SYNC WRITES", "readOnlyRootFilesystem", "emptyDir at /tmp", "$TMPDIR", "/dev/shm", "HOME"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("--man does not mention %q", want)
		}
	}
}
