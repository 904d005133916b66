package e2e

// Credentials for a file:// --repo. Upstream's own e2e suite checks
// --askpass-url this way: the repository is a plain directory (file://),
// and a --git wrapper asks `git credential fill` for url=file:///... before
// every clone, fetch and ls-remote, refusing to go on unless git-sync's
// credential helper answers the expected pair. So the helper must answer
// for the --repo URL whatever its scheme. The four upstream cases that need
// it (correct password, sometimes wrong, flaky, slow start) are reproduced
// here, plus the other sources of credentials for the same URL.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitsync/internal/gittest"
)

// credCheckWrapper is a --git program made by newCredCheckWrapper.
type credCheckWrapper struct {
	Path string
	dir  string
}

// newCredCheckWrapper writes a --git wrapper like upstream's
// _test_tools/git_askpass.sh: for clone, fetch and ls-remote it runs
// `git credential fill` for the file:// URL among its arguments, in the
// environment git-sync gave it, and exits 1 unless the answer is user and
// pass; then it execs the real git. Each check is recorded ("ok" or
// "refused"); the pair itself is never printed.
func newCredCheckWrapper(t testing.TB, user, pass string) credCheckWrapper {
	t.Helper()
	dir := t.TempDir()
	w := credCheckWrapper{Path: filepath.Join(dir, "git-credcheck"), dir: dir}
	script := fmt.Sprintf(`#!/bin/sh
REAL=%q
STATE=%q
case "$1" in
clone|fetch|ls-remote)
	REPO=$(printf '%%s\n' "$@" | grep -o 'file://.*' | head -n 1)
	OUT=$(printf 'url=%%s\n\n' "$REPO" | "$REAL" credential fill 2>/dev/null)
	U=$(printf '%%s\n' "$OUT" | grep '^username=')
	P=$(printf '%%s\n' "$OUT" | grep '^password=')
	if [ "$U" != %q ] || [ "$P" != %q ]; then
		echo refused >> "$STATE/checks.log"
		echo "git-credcheck: git credential fill did not give the expected username/password for $REPO" >&2
		exit 1
	fi
	echo ok >> "$STATE/checks.log"
	;;
esac
exec "$REAL" "$@"
`, realGit, dir, "username="+user, "password="+pass)
	if err := os.WriteFile(w.Path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return w
}

// Checks returns how many checks passed and how many were refused.
func (w credCheckWrapper) Checks() (ok, refused int) {
	b, _ := os.ReadFile(filepath.Join(w.dir, "checks.log"))
	for _, l := range strings.Fields(string(b)) {
		switch l {
		case "ok":
			ok++
		case "refused":
			refused++
		}
	}
	return ok, refused
}

// askpassFileFixture is a file:// upstream, the pair the wrapper demands
// and the askpass answers.
type askpassFileFixture struct {
	up   *gittest.Repo
	h1   string
	user string
	pass string
	git  credCheckWrapper
}

func newAskpassFileFixture(t *testing.T) *askpassFileFixture {
	t.Helper()
	f := &askpassFileFixture{user: "my-username", pass: authSecret(t, "my-password")}
	f.up, f.h1 = gittest.NewRepoWithCommit(t)
	f.git = newCredCheckWrapper(t, f.user, f.pass)
	return f
}

func (f *askpassFileFixture) right() (int, string) { return http.StatusOK, askpassBody(f.user, f.pass) }
func (f *askpassFileFixture) wrong() (int, string) {
	return http.StatusOK, askpassBody(f.user, "wrong")
}

// args are the flags of upstream's cases: the file:// repo, the checking
// wrapper as --git, and the askpass URL.
func (f *askpassFileFixture) args(root, askURL string, extra ...string) []string {
	return append([]string{
		"--repo=" + f.up.URL(), "--root=" + root, "--link=link",
		"--git=" + f.git.Path, "--askpass-url=" + askURL, "-v=5",
	}, extra...)
}

// moveForwardAndBack is the second half of upstream's sometimes-wrong and
// flaky cases: a new commit is published, then a reset back to the first.
func (f *askpassFileFixture) moveForwardAndBack(t *testing.T, p *Proc, root string) {
	t.Helper()
	link := filepath.Join(root, "link")
	waitForLink(t, p, link, f.h1)
	assertPublished(t, root, link, f.h1)
	h2 := f.up.Commit(map[string]string{"README": "two\n"}, "c2")
	waitForLink(t, p, link, h2)
	assertCompleteTree(t, f.up, link, h2)
	f.up.ResetHard(f.h1)
	waitForLink(t, p, link, f.h1)
	assertCompleteTree(t, f.up, link, f.h1)
}

func TestAuthAskpassFileURL(t *testing.T) {
	t.Parallel()

	t.Run("correct password", func(t *testing.T) {
		t.Parallel()
		f := newAskpassFileFixture(t)
		ask := newAskpassServer(t, func(int) (int, string) { return f.right() })
		root := newRoot(t)
		res := runOnce(t, f.args(root, ask.URL(), "--one-time")...)
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s", res)
		}
		assertPublished(t, root, filepath.Join(root, "link"), f.h1)
		if ok, refused := f.git.Checks(); ok == 0 || refused != 0 {
			t.Errorf("credential checks: %d ok, %d refused; want some ok and none refused", ok, refused)
		}
		if found := findSecrets(res.Stderr, []string{f.pass}); len(found) > 0 {
			t.Errorf("the password appears in the logs: %q", found)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		f := newAskpassFileFixture(t)
		ask := newAskpassServer(t, func(int) (int, string) { return f.wrong() })
		root := newRoot(t)
		res := runOnce(t, f.args(root, ask.URL(), "--one-time")...)
		if res.Code != 1 {
			t.Fatalf("want exit 1, got %s", res)
		}
		if exists(filepath.Join(root, "link")) {
			t.Error("published with the wrong password")
		}
	})

	t.Run("sometimes wrong", func(t *testing.T) {
		t.Parallel()
		f := newAskpassFileFixture(t)
		ask := newAskpassServer(t, func(n int) (int, string) {
			if n%2 == 1 {
				return f.wrong()
			}
			return f.right()
		})
		root := newRoot(t)
		p := start(t, f.args(root, ask.URL(), "--period=100ms", "--max-failures=2")...)
		f.moveForwardAndBack(t, p, root)
		if _, refused := f.git.Checks(); refused == 0 {
			t.Error("no check was refused: the wrong answers were not used")
		}
	})

	t.Run("flaky", func(t *testing.T) {
		t.Parallel()
		f := newAskpassFileFixture(t)
		ask := newAskpassServer(t, func(n int) (int, string) {
			if n%2 == 1 {
				return http.StatusServiceUnavailable, ""
			}
			return f.right()
		})
		root := newRoot(t)
		p := start(t, f.args(root, ask.URL(), "--period=100ms", "--max-failures=2")...)
		f.moveForwardAndBack(t, p, root)
		if ask.Answered(http.StatusServiceUnavailable) == 0 {
			t.Error("the askpass server never answered 503")
		}
	})

	// Nothing listens at the askpass URL at first; upstream brings its
	// server up 4 s after git-sync (--period=1s, --max-failures=5). Here
	// it comes up once two attempts have failed for lack of it.
	t.Run("slow start", func(t *testing.T) {
		t.Parallel()
		f := newAskpassFileFixture(t)
		askAddr := freeAddr(t)
		root := newRoot(t)
		addr, margs := authMetricsArgs(t)
		p := start(t, concat(f.args(root, "http://"+askAddr+"/askpass", "--period=1s", "--max-failures=5"), margs)...)
		waitForMetric(t, addr, func(v float64) bool { return v >= 2 }, "askpass errors while nothing listens",
			"git_sync_askpass_calls", "status", "error")
		if exists(filepath.Join(root, "link")) {
			t.Fatal("published before the askpass server was up")
		}
		newAskpassServerAt(t, askAddr, func(int) (int, string) { return f.right() })
		link := filepath.Join(root, "link")
		waitForLink(t, p, link, f.h1)
		assertPublished(t, root, link, f.h1)
	})
}

// TestAuthFileURLOtherSources: every other way of giving credentials also
// answers git's request for a file:// --repo.
func TestAuthFileURLOtherSources(t *testing.T) {
	t.Parallel()
	type source struct {
		user string
		args func(t *testing.T, up *gittest.Repo, pass string) ([]string, []string) // flags, environment
	}
	sources := map[string]source{
		"username and GITSYNC_PASSWORD": {"fileuser", func(t *testing.T, _ *gittest.Repo, pass string) ([]string, []string) {
			return []string{"--username=fileuser"}, []string{"GITSYNC_PASSWORD=" + pass}
		}},
		"password file": {"fileuser", func(t *testing.T, _ *gittest.Repo, pass string) ([]string, []string) {
			pw := filepath.Join(t.TempDir(), "password")
			authWriteFile(t, pw, pass+"\n", 0o600)
			return []string{"--username=fileuser", "--password-file=" + pw}, nil
		}},
		"credential for the repo URL": {"creduser", func(t *testing.T, up *gittest.Repo, pass string) ([]string, []string) {
			return []string{fmt.Sprintf(`--credential={"url":%q,"username":"creduser","password-file":%q}`,
				up.URL(), writePassword(t, pass))}, nil
		}},
		"GitHub App": {"-", func(t *testing.T, _ *gittest.Repo, pass string) ([]string, []string) {
			key, pkcs1, _ := authRSAKey(t)
			keyFile := filepath.Join(t.TempDir(), "app.pem")
			authWriteFile(t, keyFile, pkcs1, 0o600)
			api := newGitHubAPI(t, githubAPIOptions{Public: &key.PublicKey, Issuer: int64(11), Installation: 12, TokenPrefix: pass})
			return []string{"--github-app-private-key-file=" + keyFile, "--github-app-application-id=11",
				"--github-app-installation-id=12", "--github-base-url=" + api.BaseURL()}, nil
		}},
	}
	for name, s := range sources {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			up, h1 := gittest.NewRepoWithCommit(t)
			pass := authSecret(t, "file-pw")
			args, env := s.args(t, up, pass)
			want := pass
			if s.user == "-" {
				want = pass + "-1" // the first token the fake API issues
			}
			w := newCredCheckWrapper(t, s.user, want)
			root := newRoot(t)
			res := runWith(t, runOpts{Env: env}, concat([]string{
				"--repo=" + up.URL(), "--root=" + root, "--link=link", "--git=" + w.Path, "--one-time", "-v=9",
			}, args)...)
			if res.Code != 0 {
				t.Fatalf("want exit 0, got %s", res)
			}
			assertPublished(t, root, filepath.Join(root, "link"), h1)
			if ok, refused := w.Checks(); ok == 0 || refused != 0 {
				t.Errorf("credential checks: %d ok, %d refused; want some ok and none refused", ok, refused)
			}
			if found := findSecrets(res.Stderr, []string{pass}); len(found) > 0 {
				t.Errorf("the password appears in the logs at -v=9: %q", found)
			}
		})
	}
}

// writePassword writes pass to a new owner-only file and returns its path.
func writePassword(t testing.TB, pass string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "password")
	authWriteFile(t, p, pass+"\n", 0o600)
	return p
}
