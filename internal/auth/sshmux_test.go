package auth

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// keptAuth returns an Auth for an ssh:// --repo on s whose kept connection
// is up.
func keptAuth(t *testing.T, s *gittest.SSHServer) *Auth {
	t.Helper()
	base, _ := upstreamRepo(t)
	cfg := baseConfig(s.URL(filepath.Join(base, "upstream")))
	cfg.SSHKeyFiles = []string{s.KeyFile()}
	cfg.SSHKnownHostsFile = s.KnownHostsFile()
	a := newTestAuth(t, cfg, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if a.kept.socket() == "" {
		t.Fatal("no kept SSH connection after Refresh")
	}
	return a
}

// runSession runs command on a's kept connection with input on its stdin
// and returns its stdout, stderr and exit status.
func runSession(t *testing.T, a *Auth, command, input string, env ...string) (stdout, stderr string, status int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := a.OpenSSHSession(ctx, command, env)
	if err != nil {
		t.Fatalf("OpenSSHSession(%q): %v", command, err)
	}
	defer s.Close()
	if _, err := io.WriteString(s.Stdin, input); err != nil {
		t.Fatal(err)
	}
	s.Stdin.Close()
	out, err := io.ReadAll(s.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	status, err = s.Wait()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return string(out), s.Stderr(), status
}

// TestMuxSession runs commands over a real OpenSSH master, without any ssh
// client process: input, output, stderr, exit status and environment.
func TestMuxSession(t *testing.T) {
	s := gittest.SSHD(t, gittest.SSHDOptions{AcceptEnv: []string{"GIT_PROTOCOL"}})
	a := keptAuth(t, s)
	logins := len(s.Logins())

	out, errOut, status := runSession(t, a, "tr a-z A-Z; echo oops >&2; exit 3", "hello\n")
	if out != "HELLO\n" || strings.TrimSpace(errOut) != "oops" || status != 3 {
		t.Errorf("got stdout %q, stderr %q, status %d; want \"HELLO\\n\", \"oops\", 3", out, errOut, status)
	}
	// Only GIT_PROTOCOL gets through (the master's SendEnv), as for git's
	// own ssh.
	out, _, status = runSession(t, a, `echo "[$GIT_PROTOCOL][$GITSYNC_OTHER]"`, "", "GIT_PROTOCOL=version=2", "GITSYNC_OTHER=x")
	if out != "[version=2][]\n" || status != 0 {
		t.Errorf("environment: got %q (status %d), want %q", out, status, "[version=2][]\n")
	}
	if n := len(s.Logins()) - logins; n != 0 {
		t.Errorf("sessions made %d new logins, want 0", n)
	}
}

// TestMuxSessionCancel: a cancelled context ends the session; the master
// closes its channel and stays usable.
func TestMuxSessionCancel(t *testing.T) {
	s := gittest.SSHD(t, gittest.SSHDOptions{})
	a := keptAuth(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	sess, err := a.OpenSSHSession(ctx, "cat", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(sess.Stdin, "ping\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(sess.Stdout, buf); err != nil || string(buf) != "ping\n" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	cancel()
	if _, err := sess.Stdout.Read(buf); err == nil {
		t.Error("read after cancel succeeded")
	}
	if _, err := sess.Wait(); err == nil {
		t.Error("Wait after cancel reported an exit status")
	}
	if out, _, status := runSession(t, a, "echo again", ""); out != "again\n" || status != 0 {
		t.Errorf("after a cancelled session: %q, status %d", out, status)
	}
}

// TestMuxSessionRefused: with sshd's MaxSessions 1 and a session open, the
// master refuses the next one with the server's reason.
func TestMuxSessionRefused(t *testing.T) {
	s := gittest.SSHD(t, gittest.SSHDOptions{MaxSessions: 1})
	a := keptAuth(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hold, err := a.OpenSSHSession(ctx, "cat", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	_, err = a.OpenSSHSession(ctx, "echo second", nil)
	var refused *MuxRefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("second session: %v, want a refusal", err)
	}
	if !strings.Contains(refused.Reason, "refused") {
		t.Errorf("reason %q does not say refused", refused.Reason)
	}
	// Once the first ends, sessions work again. The exit status comes
	// before sshd has closed the channel and freed its slot, so a refusal
	// right after it is still possible: wait for the slot.
	if status, err := hold.Wait(); err != nil || status != 0 {
		t.Fatalf("first session: status %d, %v", status, err)
	}
	var third *MuxSession
	for deadline := time.Now().Add(10 * time.Second); third == nil; {
		third, err = a.OpenSSHSession(ctx, "echo third", nil)
		if err != nil && (!errors.As(err, &refused) || time.Now().After(deadline)) {
			t.Fatalf("a session after the first ended: %v", err)
		}
		if err != nil {
			time.Sleep(20 * time.Millisecond) // polling the server's slot
		}
	}
	defer third.Close()
	third.Stdin.Close()
	if out, err := io.ReadAll(third.Stdout); err != nil || string(out) != "third\n" {
		t.Errorf("third session: %q, %v", out, err)
	}
}

// TestMuxSessionNoMaster: without a kept connection (not an SSH --repo, or
// none up yet) the caller is told to use git.
func TestMuxSessionNoMaster(t *testing.T) {
	a := newTestAuth(t, baseConfig("https://example.invalid/r"), Options{})
	if _, err := a.OpenSSHSession(context.Background(), "true", nil); !errors.Is(err, ErrNoKeptSSH) {
		t.Errorf("https repo: %v, want ErrNoKeptSSH", err)
	}
	s := gittest.SSHD(t, gittest.SSHDOptions{})
	cfg := baseConfig(s.URL("/nonexistent"))
	cfg.SSHKeyFiles = []string{s.KeyFile()}
	cfg.SSHKnownHostsFile = s.KnownHostsFile()
	b := newTestAuth(t, cfg, Options{}) // no Refresh: no master yet
	if _, err := b.OpenSSHSession(context.Background(), "true", nil); !errors.Is(err, ErrNoKeptSSH) {
		t.Errorf("before Refresh: %v, want ErrNoKeptSSH", err)
	}
}
