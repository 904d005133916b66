package gate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// script writes an executable /bin/sh script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gate")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func newGate(t *testing.T, cmd string, timeout time.Duration, rejections *int) (*Gate, string) {
	t.Helper()
	dir := t.TempDir()
	return New(Options{
		Command: cmd, Timeout: timeout,
		Dir: func(string) string { return dir }, Env: []string{"PATH=" + os.Getenv("PATH"), "FROM_BASE=yes"},
		OnReject: func() { *rejections++ },
	}), dir
}

func TestAcceptRunsInTreeWithHookEnvironment(t *testing.T) {
	var rejections int
	g, dir := newGate(t, script(t, `[ "$FROM_BASE" = yes ] && [ "$GITSYNC_HASH" = abc ] && [ "$(pwd)" = "$EXPECT" ]`), time.Minute, &rejections)
	g.opts.Env = append(g.opts.Env, "EXPECT="+dir)
	if err := g.Check(context.Background(), "abc", ""); err != nil {
		t.Fatalf("Check = %v, want accepted", err)
	}
	if rejections != 0 || g.Runs() != 1 {
		t.Fatalf("rejections %d, runs %d; want 0, 1", rejections, g.Runs())
	}
}

func TestRejectQuotesLastLinesAndIsRemembered(t *testing.T) {
	var rejections int
	g, _ := newGate(t, script(t, `i=0; while [ $i -lt 50 ]; do echo "line $i"; i=$((i+1)); done; echo "fatal: broken" >&2; exit 4`), time.Minute, &rejections)
	for range 3 {
		err := g.Check(context.Background(), "abc", "")
		var rej *RejectedError
		if !errors.As(err, &rej) {
			t.Fatalf("Check = %v, want a *RejectedError", err)
		}
		if rej.Reason != "exit status 4" || !strings.HasSuffix(rej.Output, "fatal: broken") ||
			strings.Contains(rej.Output, "line 30\n") || !strings.Contains(rej.Output, "line 31") {
			t.Fatalf("rejection %q / output %q: want exit status 4 and the last %d lines", rej.Reason, rej.Output, tailLines)
		}
	}
	if g.Runs() != 1 || rejections != 3 {
		t.Fatalf("runs %d, rejections %d; want 1 run (remembered) and 3 rejections", g.Runs(), rejections)
	}
	if err := g.Check(context.Background(), "def", ""); err == nil || g.Runs() != 2 {
		t.Fatalf("another hash must be gated anew: err %v, runs %d", err, g.Runs())
	}
}

func TestTimeoutKillsGroupAndRejects(t *testing.T) {
	var rejections int
	pidFile := filepath.Join(t.TempDir(), "pid")
	g, _ := newGate(t, script(t, `sleep 1000 & echo $! > `+pidFile+`; echo waiting; wait`), time.Second, &rejections)
	err := g.Check(context.Background(), "abc", "")
	var rej *RejectedError
	if !errors.As(err, &rej) || !strings.Contains(rej.Reason, "timed out after 1s") || rej.Output != "waiting" {
		t.Fatalf("Check = %v, want a timeout rejection with the output", err)
	}
	b, _ := os.ReadFile(pidFile)
	pid := strings.TrimSpace(string(b))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + pid); err != nil {
			break
		}
		if st, _ := os.ReadFile("/proc/" + pid + "/stat"); strings.Contains(string(st), ") Z ") {
			break // killed, not yet reaped by init
		}
		if time.Now().After(deadline) {
			t.Fatalf("background child %s of the gate survived its timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestInterruptedIsNoVerdict(t *testing.T) {
	var rejections int
	g, _ := newGate(t, script(t, `sleep 1000`), time.Minute, &rejections)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := g.Check(ctx, "abc", "")
	var rej *RejectedError
	if err == nil || errors.As(err, &rej) || !errors.Is(err, context.DeadlineExceeded) || rejections != 0 {
		t.Fatalf("Check = %v (rejections %d), want an interruption, not a verdict", err, rejections)
	}
	if _, known := g.verdicts["abc"]; known {
		t.Fatal("an interrupted run was remembered as a verdict")
	}
}

func TestLastLines(t *testing.T) {
	long := strings.Repeat("x", tailBytes+100)
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"  one\n\n", "one"},
		{"a\nb\nc", "a\nb\nc"},
		{long + "\nend", "end"},
	} {
		if got := lastLines(tc.in); got != tc.want {
			t.Errorf("lastLines(%.20q) = %.40q, want %q", tc.in, got, tc.want)
		}
	}
}
