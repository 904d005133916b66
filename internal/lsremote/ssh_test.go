package lsremote

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitsync/internal/auth"
	"gitsync/internal/gitcmd"
	"gitsync/internal/gittest"
)

// sshRemote is a Remote for an SSH URL on srv with git-sync's Auth (its
// kept connection up when refresh is set), running git through a wrapper
// that records its arguments, one call a line, in the returned file.
func sshRemote(t *testing.T, srv *gittest.SSHServer, url string, refresh bool, env ...string) (*Remote, *auth.Auth, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{
		Repo:              url,
		SSHKeyFiles:       []string{srv.KeyFile()},
		SSHKnownHosts:     true,
		SSHKnownHostsFile: srv.KnownHostsFile(),
	}, auth.Options{Self: self, Env: []string{"GIT_SSH_COMMAND=ssh -F " + srv.ClientConfigFile()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if refresh {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	wrapper := filepath.Join(dir, "git")
	script := "#!/bin/sh\necho \"$*\" >> '" + calls + "'\nexec '" + gitPath + "' \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	repoDir := t.TempDir()
	runner := &gitcmd.Runner{Git: wrapper, Env: append(append(gittest.Env(t), a.Env()...), env...), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, err := runner.Run(context.Background(), repoDir, "init", "--quiet"); err != nil {
		t.Fatal(err)
	}
	r := New(runner, repoDir, url, true, a, runner.Log)
	t.Cleanup(r.Close)
	return r, a, calls
}

// lsRemotePolls counts the `git ls-remote` polls recorded in calls (not
// the --get-url checks).
func lsRemotePolls(t *testing.T, calls string) int {
	t.Helper()
	b, err := os.ReadFile(calls)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "ls-remote ") && !strings.Contains(line, "--get-url") {
			n++
		}
	}
	return n
}

// TestSSHPollOverKeptConnection: polls over the kept connection find
// refs, see every push at once (a fresh upload-pack each time), run no git
// and log in no more, against a server that speaks protocol v0 to ssh
// clients (Debian's default sshd_config) and one that accepts
// GIT_PROTOCOL (v2), with both URL forms.
func TestSSHPollOverKeptConnection(t *testing.T) {
	for _, tc := range []struct {
		name   string
		accept []string
		scp    bool
	}{
		{"v0 ssh URL", nil, false},
		{"v2 ssh URL", []string{"GIT_PROTOCOL"}, false},
		{"v2 scp-like", []string{"GIT_PROTOCOL"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, first := gittest.NewRepoWithCommit(t)
			srv := gittest.SSHD(t, gittest.SSHDOptions{AcceptEnv: tc.accept})
			url := srv.URL(up.Dir())
			if tc.scp {
				url = srv.SCPURL(up.Dir())
			}
			r, _, calls := sshRemote(t, srv, url, true)
			logins := len(srv.Logins())

			mustLookup(t, r, gittest.DefaultBranch, first)
			for i := 0; i < 3; i++ {
				head := up.Commit(map[string]string{"f": itoa(i)}, "c")
				mustLookup(t, r, gittest.DefaultBranch, head)
				mustLookup(t, r, "refs/heads/"+gittest.DefaultBranch, head)
			}
			up.Git("tag", "-a", "-m", "annotated", "v1")
			mustLookup(t, r, "v1", up.Git("rev-parse", "v1"))
			mustLookup(t, r, "HEAD", up.Git("rev-parse", "HEAD"))
			mustLookup(t, r, "no-such-branch", "")

			if n := lsRemotePolls(t, calls); n != 0 {
				t.Errorf("%d polls ran git ls-remote, want none", n)
			}
			if n := len(srv.Logins()) - logins; n != 0 {
				t.Errorf("polls made %d logins, want none", n)
			}
			if r.sshOff || r.failures != 0 {
				t.Errorf("polls over the kept connection given up (off %v, failures %d)", r.sshOff, r.failures)
			}
		})
	}
}

// TestSSHPollFallsBack: without a kept connection, with a server that
// refuses the session, and for a missing repository, the poll answers (or
// fails) as git ls-remote does.
func TestSSHPollFallsBack(t *testing.T) {
	up, first := gittest.NewRepoWithCommit(t)

	t.Run("no kept connection", func(t *testing.T) {
		srv := gittest.SSHD(t, gittest.SSHDOptions{})
		r, _, calls := sshRemote(t, srv, srv.URL(up.Dir()), false)
		mustLookup(t, r, gittest.DefaultBranch, first)
		if n := lsRemotePolls(t, calls); n != 1 {
			t.Errorf("%d git ls-remote polls, want 1", n)
		}
		if r.sshOff || r.failures != 0 {
			t.Errorf("no connection up must not count as a failure (off %v, failures %d)", r.sshOff, r.failures)
		}
	})

	t.Run("MaxSessions refusal", func(t *testing.T) {
		srv := gittest.SSHD(t, gittest.SSHDOptions{MaxSessions: 1})
		r, a, calls := sshRemote(t, srv, srv.URL(up.Dir()), true)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		hold, err := a.OpenSSHSession(ctx, "cat", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer hold.Close()
		for i := 0; i < maxSessionFailures; i++ {
			mustLookup(t, r, gittest.DefaultBranch, first)
		}
		if n := lsRemotePolls(t, calls); n != maxSessionFailures {
			t.Errorf("%d git ls-remote polls, want %d", n, maxSessionFailures)
		}
		if !r.sshOff {
			t.Errorf("polls over the kept connection not given up after %d refusals", maxSessionFailures)
		}
	})

	t.Run("missing repository", func(t *testing.T) {
		srv := gittest.SSHD(t, gittest.SSHDOptions{})
		r, _, _ := sshRemote(t, srv, srv.URL(filepath.Join(up.Dir(), "missing")), true)
		_, _, err := r.Lookup(context.Background(), gittest.DefaultBranch)
		if err == nil || !strings.Contains(err.Error(), "ls-remote") || !strings.Contains(err.Error(), "does not appear to be a git repository") {
			t.Fatalf("Lookup of a missing repository = %v, want git ls-remote's error", err)
		}
		if r.failures != 0 {
			t.Errorf("a failure git ls-remote shares counted against the kept connection (%d)", r.failures)
		}
	})

	t.Run("insteadOf", func(t *testing.T) {
		srv := gittest.SSHD(t, gittest.SSHDOptions{})
		const fake = "ssh://nowhere.invalid/x"
		r, _, calls := sshRemote(t, srv, fake, true, configEnv("url."+srv.URL(up.Dir())+".insteadOf", fake)...)
		mustLookup(t, r, gittest.DefaultBranch, first)
		if !r.sshOff || lsRemotePolls(t, calls) != 1 {
			t.Errorf("a URL that insteadOf rewrites must be polled with git ls-remote")
		}
	})
}

// TestSSHLsRefsAgainstUploadPack runs the protocol code against a local
// git-upload-pack in both protocol versions.
func TestSSHLsRefsAgainstUploadPack(t *testing.T) {
	up, _ := gittest.NewRepoWithCommit(t)
	up.Git("tag", "-a", "-m", "annotated", "v1")
	for i := 0; i < 50; i++ {
		up.Git("branch", "other-"+itoa(i%10)+itoa(i/10))
	}
	head := up.Git("rev-parse", "HEAD")
	for _, proto := range []string{"", "version=2"} {
		cmd := exec.Command("git", "upload-pack", up.Dir())
		cmd.Env = append(gittest.Env(t), "GIT_PROTOCOL="+proto)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		refs, err := sshLsRefs(bufio.NewReader(stdout), stdin, Candidates("v1"))
		stdin.Close()
		if werr := cmd.Wait(); err == nil && werr != nil {
			err = werr
		}
		if err != nil {
			t.Fatalf("GIT_PROTOCOL=%q: %v", proto, err)
		}
		if got, ok := Pick(refs, "v1"); !ok || got != up.Git("rev-parse", "v1") || got == head {
			t.Errorf("GIT_PROTOCOL=%q: v1 = %q, %v; want the tag object", proto, got, ok)
		}
		if _, ok := refs["refs/heads/other-00"]; ok {
			t.Errorf("GIT_PROTOCOL=%q: kept a ref that was not asked for", proto)
		}
	}
}
