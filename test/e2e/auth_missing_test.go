package e2e

// Secret files that are not there yet when git-sync starts (a Kubernetes
// secret mounted late, a sidecar that writes the token) are sync errors
// like any other: each attempt fails, is logged and counted, and
// --max-failures decides when to give up. With --max-failures=-1 git-sync
// keeps trying and syncs once the file appears.

import (
	"path/filepath"
	"strings"
	"testing"

	"gitsync/internal/gittest"
)

// failedAttempts returns the "sync failed" records in logs whose error
// mentions what.
func failedAttempts(logs, what string) int {
	records, _ := parseLogs(logs)
	n := 0
	for _, r := range records {
		if r["msg"] == "sync failed" && strings.Contains(anyString(r["error"]), what) {
			n++
		}
	}
	return n
}

func anyString(v any) string {
	s, _ := v.(string)
	return s
}

func TestAuthMissingPasswordFile(t *testing.T) {
	t.Parallel()

	t.Run("retried until it appears", func(t *testing.T) {
		t.Parallel()
		pass := authSecret(t, "late-file")
		_, _, repoURL, h1 := authHTTPUpstream(t, gittest.HTTPOptions{Username: "lena", Password: pass})
		pwFile := filepath.Join(t.TempDir(), "password")
		root := newRoot(t)
		addr, margs := authMetricsArgs(t)
		p := start(t, concat([]string{
			"--repo=" + repoURL, "--root=" + root, "--link=link",
			"--username=lena", "--password-file=" + pwFile,
			"--period=100ms", "--max-failures=-1", "--error-file=error.json",
		}, margs)...)
		waitFor(t, syncDeadline, func() bool {
			authWaitRunning(t, p)
			return authSyncErrors(addr) >= 3
		}, "three failed syncs counted while the password file is missing")
		if n := failedAttempts(p.Logs(), pwFile); n < 3 {
			t.Errorf("%d logged sync failures name %s, want >= 3\n%s", n, pwFile, tail(p.Logs(), 20))
		}
		errFile := filepath.Join(root, "error.json")
		if !exists(errFile) {
			t.Error("no error file while the password file is missing")
		}
		authWriteFile(t, pwFile, pass+"\n", 0o600)
		link := filepath.Join(root, "link")
		waitForLink(t, p, link, h1)
		assertPublished(t, root, link, h1)
		waitFor(t, syncDeadline, func() bool { return !exists(errFile) }, "the error file to go after the first success")
	})

	// The budget applies: --max-failures=3 means three failed attempts,
	// then exit 1.
	t.Run("failure budget", func(t *testing.T) {
		t.Parallel()
		_, _, repoURL, _ := authHTTPUpstream(t, gittest.HTTPOptions{Username: "lena", Password: "unused"})
		pwFile := filepath.Join(t.TempDir(), "password")
		p := start(t, "--repo="+repoURL, "--root="+newRoot(t), "--link=link",
			"--username=lena", "--password-file="+pwFile, "--period=100ms", "--max-failures=3")
		if code := p.Wait(syncDeadline); code != 1 {
			t.Fatalf("exit code %d, want 1", code)
		}
		if n := failedAttempts(p.Logs(), pwFile); n != 3 {
			t.Errorf("%d logged sync failures name %s, want 3 (the third failure in a row ends the run)\n%s",
				n, pwFile, tail(p.Logs(), 20))
		}
	})
}

func TestAuthMissingSSHKeyFile(t *testing.T) {
	t.Parallel()
	srv := gittest.SSHD(t, gittest.SSHDOptions{})

	t.Run("retried until it appears", func(t *testing.T) {
		t.Parallel()
		up, h1 := gittest.NewRepoWithCommit(t)
		key := filepath.Join(t.TempDir(), "id")
		root := newRoot(t)
		addr, margs := authMetricsArgs(t)
		p := start(t, concat([]string{
			"--repo=" + srv.URL(up.Dir()), "--root=" + root, "--link=link",
			"--ssh-key-file=" + key, "--ssh-known-hosts-file=" + srv.KnownHostsFile(),
			"--period=100ms", "--max-failures=-1",
		}, margs)...)
		waitFor(t, syncDeadline, func() bool {
			authWaitRunning(t, p)
			return authSyncErrors(addr) >= 3
		}, "three failed syncs counted while the key file is missing")
		if n := failedAttempts(p.Logs(), key); n < 3 {
			t.Errorf("%d logged sync failures name %s, want >= 3\n%s", n, key, tail(p.Logs(), 20))
		}
		authCopyFile(t, srv.KeyFile(), key, 0o600, -1, -1)
		link := filepath.Join(root, "link")
		waitForLink(t, p, link, h1)
		assertPublished(t, root, link, h1)
	})

	t.Run("failure budget", func(t *testing.T) {
		t.Parallel()
		up, _ := gittest.NewRepoWithCommit(t)
		key := filepath.Join(t.TempDir(), "id")
		p := start(t, "--repo="+srv.URL(up.Dir()), "--root="+newRoot(t), "--link=link",
			"--ssh-key-file="+key, "--ssh-known-hosts-file="+srv.KnownHostsFile(),
			"--period=100ms", "--max-failures=3")
		if code := p.Wait(syncDeadline); code != 1 {
			t.Fatalf("exit code %d, want 1", code)
		}
		if n := failedAttempts(p.Logs(), key); n != 3 {
			t.Errorf("%d logged sync failures name %s, want 3 (the third failure in a row ends the run)\n%s",
				n, key, tail(p.Logs(), 20))
		}
	})
}
