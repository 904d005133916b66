package hook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/config"
)

var (
	hashA = strings.Repeat("a", 40)
	hashB = strings.Repeat("b", 40)
	hashC = strings.Repeat("c", 40)
	hashD = strings.Repeat("d", 40)
	hashE = strings.Repeat("e", 40)
)

// worktrees makes a directory per hash under a temp root, as the repo
// package does, and returns the dir function for NewExec.
func worktrees(t *testing.T, hashes ...string) func(string) string {
	t.Helper()
	root := t.TempDir()
	for _, h := range hashes {
		if err := os.MkdirAll(filepath.Join(root, h), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return func(h string) string { return filepath.Join(root, h) }
}

// baseEnv is the minimal environment the test scripts need.
func baseEnv(extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH")}, extra...)
}

func TestExecEnvDirAndArgs(t *testing.T) {
	t.Setenv("GITSYNC_TEST_PARENT_ONLY", "leaked")
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	script := writeScript(t, tmp, "hook.sh", `
printf '%s|%s|%s|%s|%s\n' "$#" "$GITSYNC_HASH" "$(pwd -P)" "$EXTRA" "$GITSYNC_TEST_PARENT_ONLY" >> "$OUT"
`)
	dir := worktrees(t, hashA)
	h := NewExec("exechook", config.HookConfig{Command: script, Timeout: 10 * time.Second}, dir,
		baseEnv("OUT="+out, "EXTRA=two words"), nil)
	if h.Name() != "exechook" {
		t.Errorf("Name() = %q", h.Name())
	}
	if err := h.Do(context.Background(), hashA); err != nil {
		t.Fatal(err)
	}
	wantDir, err := filepath.EvalSymlinks(dir(hashA))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("0|%s|%s|two words|", hashA, wantDir)
	if got := readLines(t, out); !slices.Equal(got, []string{want}) {
		t.Errorf("hook saw\n%q\nwant\n%q", got, want)
	}
}

func TestExecFailureReportsStderr(t *testing.T) {
	tmp := t.TempDir()
	script := writeScript(t, tmp, "hook.sh", `
echo "normal output"
echo "boom: it's broken" >&2
exit 3
`)
	var verbose, quiet syncBuffer
	for _, c := range []struct {
		buf   *syncBuffer
		level slog.Level
	}{{&verbose, -6}, {&quiet, -5}} {
		log := slog.New(slog.NewJSONHandler(c.buf, &slog.HandlerOptions{Level: c.level}))
		h := NewExec("exechook", config.HookConfig{Command: script, Timeout: 10 * time.Second},
			worktrees(t, hashA), baseEnv(), log)
		err := h.Do(context.Background(), hashA)
		if err == nil {
			t.Fatal("failing hook returned nil")
		}
		for _, s := range []string{"exit status 3", "boom: it's broken"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q lacks %q", err, s)
			}
		}
	}
	for _, s := range []string{`"stdout":"normal output\n"`, `"stderr":"boom: it's broken\n"`} {
		if !strings.Contains(verbose.String(), s) {
			t.Errorf("verbosity 6 log lacks %s:\n%s", s, verbose.String())
		}
	}
	if strings.Contains(quiet.String(), "normal output") {
		t.Errorf("verbosity 5 log shows hook output:\n%s", quiet.String())
	}
}

func TestExecMissingCommand(t *testing.T) {
	h := NewExec("exechook", config.HookConfig{Command: filepath.Join(t.TempDir(), "nope")},
		worktrees(t, hashA), baseEnv(), nil)
	if err := h.Do(context.Background(), hashA); err == nil {
		t.Error("missing command returned nil")
	}
}

// processGone reports whether pid has exited (a zombie waiting for its new
// parent to reap it counts as exited).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// readPid waits for a pid file and returns its pid.
func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// hangingScript starts a background grandchild and then blocks, recording
// both pids.
const hangingScript = `
sleep 300 &
echo $! > "$DIR/grandchild.pid"
echo $$ > "$DIR/child.pid"
sleep 300
`

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	tmp := t.TempDir()
	script := writeScript(t, tmp, "hook.sh", hangingScript)
	const timeout = time.Second
	h := NewExec("exechook", config.HookConfig{Command: script, Timeout: timeout},
		worktrees(t, hashA), baseEnv("DIR="+tmp), nil)
	start := time.Now()
	err := h.Do(context.Background(), hashA)
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("hung hook returned nil")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("error %q does not say it timed out", err)
	}
	if elapsed < timeout || elapsed > 8*time.Second {
		t.Errorf("Do returned after %v, want about %v", elapsed, timeout)
	}
	for _, name := range []string{"child.pid", "grandchild.pid"} {
		pid := readPid(t, filepath.Join(tmp, name))
		waitFor(t, name+" process to be killed", func() bool { return processGone(pid) })
	}
}

func TestExecKillsLeftoverBackgroundChild(t *testing.T) {
	tmp := t.TempDir()
	script := writeScript(t, tmp, "hook.sh", `
sleep 300 >/dev/null 2>&1 &
echo $! > "$DIR/grandchild.pid"
`)
	h := NewExec("exechook", config.HookConfig{Command: script, Timeout: 10 * time.Second},
		worktrees(t, hashA), baseEnv("DIR="+tmp), nil)
	if err := h.Do(context.Background(), hashA); err != nil {
		t.Fatal(err)
	}
	pid := readPid(t, filepath.Join(tmp, "grandchild.pid"))
	waitFor(t, "background child to be killed", func() bool { return processGone(pid) })
}

func TestExecRunnerRetriesUntilSuccess(t *testing.T) {
	tmp := t.TempDir()
	out := filepath.Join(tmp, "attempts")
	// Fails on its first three attempts, whatever the hash.
	script := writeScript(t, tmp, "hook.sh", `
echo "$GITSYNC_HASH $(date +%s%N)" >> "$OUT"
n=$(wc -l < "$OUT")
if [ "$n" -le 3 ]; then echo "attempt $n fails" >&2; exit 1; fi
`)
	const backoff = 150 * time.Millisecond
	h := NewExec("exechook", config.HookConfig{Command: script, Timeout: 10 * time.Second},
		worktrees(t, hashA, hashB), baseEnv("OUT="+out), nil)
	var rs runs
	r := NewRunner(h, backoff, nil, rs.record)
	startRunner(t, r)

	r.Send(hashA)
	waitFor(t, "first success", func() bool { return rs.count(StatusSuccess) == 1 })
	lines := readLines(t, out)
	if len(lines) != 4 {
		t.Fatalf("got %d attempts, want 4: %q", len(lines), lines)
	}
	var prev int64
	for i, l := range lines {
		hash, ts, _ := strings.Cut(l, " ")
		if hash != hashA {
			t.Errorf("attempt %d for %s, want %s", i, hash, hashA)
		}
		ns, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && time.Duration(ns-prev) < backoff {
			t.Errorf("attempt %d started %v after the previous one, want >= %v", i, time.Duration(ns-prev), backoff)
		}
		prev = ns
	}

	// The hash that succeeded is not attempted again; a new one is, once.
	r.Send(hashA)
	r.Send(hashB)
	waitFor(t, "second success", func() bool { return rs.count(StatusSuccess) == 2 })
	lines = readLines(t, out)
	if len(lines) != 5 || !strings.HasPrefix(lines[4], hashB+" ") {
		t.Errorf("attempts after the first success: %q, want one for %s", lines[4:], hashB)
	}
	want := []string{"exechook:error", "exechook:error", "exechook:error", "exechook:success", "exechook:success"}
	if got := rs.get(); !slices.Equal(got, want) {
		t.Errorf("onRun calls = %q, want %q", got, want)
	}
}

func TestExecRunnerLatestWins(t *testing.T) {
	tmp := t.TempDir()
	calls := filepath.Join(tmp, "calls")
	release := filepath.Join(tmp, "release")
	// Blocks on the first hash until the test creates the release file.
	script := writeScript(t, tmp, "hook.sh", `
echo "$GITSYNC_HASH" >> "$CALLS"
if [ "$GITSYNC_HASH" = "$BLOCK" ]; then
	while [ ! -e "$RELEASE" ]; do sleep 0.01; done
fi
`)
	h := NewExec("exechook", config.HookConfig{Command: script, Timeout: 30 * time.Second},
		worktrees(t, hashA, hashB, hashC, hashD, hashE),
		baseEnv("CALLS="+calls, "RELEASE="+release, "BLOCK="+hashA), nil)
	var rs runs
	r := NewRunner(h, 10*time.Millisecond, nil, rs.record)
	startRunner(t, r)

	r.Send(hashA)
	waitFor(t, "hook running for the first hash", func() bool { return len(readLines(t, calls)) == 1 })
	// These return at once although the hook is stuck.
	r.Send(hashB)
	r.Send(hashC)
	r.Send(hashD)
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two successes", func() bool { return rs.count(StatusSuccess) == 2 })
	r.Send(hashE)
	waitFor(t, "three successes", func() bool { return rs.count(StatusSuccess) == 3 })
	if got, want := readLines(t, calls), []string{hashA, hashD, hashE}; !slices.Equal(got, want) {
		t.Errorf("hook ran for %q, want %q", got, want)
	}
}

func TestRunCancelKillsRunningHook(t *testing.T) {
	tmp := t.TempDir()
	script := writeScript(t, tmp, "hook.sh", hangingScript)
	h := NewExec("exechook", config.HookConfig{Command: script, Timeout: time.Hour},
		worktrees(t, hashA), baseEnv("DIR="+tmp), nil)
	var rs runs
	r := NewRunner(h, time.Hour, nil, rs.record)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	r.Send(hashA)
	child := readPid(t, filepath.Join(tmp, "child.pid"))
	grandchild := readPid(t, filepath.Join(tmp, "grandchild.pid"))
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for _, pid := range []int{child, grandchild} {
		waitFor(t, "hook processes to be killed", func() bool { return processGone(pid) })
	}
}

// TestExecOutputIsBounded runs a hook that writes 64 MiB to each of stdout
// and stderr without pause and checks that git-sync reads it all (the hook
// is not blocked on a full pipe) but keeps only a bounded tail: memory
// allocated during the attempt stays far below what was written, the
// logged output is capped, and the error still ends with the hook's last
// words.
func TestExecOutputIsBounded(t *testing.T) {
	tmp := t.TempDir()
	script := writeScript(t, tmp, "hook.sh", `
head -c 67108864 /dev/zero
head -c 67108864 /dev/zero >&2
echo "it's the end" >&2
exit 1
`)
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.Level(-6)}))
	h := NewExec("exechook", config.HookConfig{Command: script, Timeout: time.Minute}, worktrees(t, hashA), baseEnv(), log)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := h.Do(context.Background(), hashA)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("the hook exits 1, Do returned nil")
	}
	const written = 128 << 20
	t.Logf("allocated %d KiB during an attempt that wrote %d MiB", (after.TotalAlloc-before.TotalAlloc)>>10, written>>20)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("the attempt allocated %d MiB for a hook that wrote %d MiB; its output must not be kept whole",
			alloc>>20, written>>20)
	}
	if !strings.HasSuffix(err.Error(), "it's the end") || len(err.Error()) > maxErrStderr+1024 {
		t.Errorf("error (%d bytes) does not end with the hook's last words: ...%s", len(err.Error()), tailOf(err.Error(), 100))
	}
	var rec struct{ Msg, Stdout, Stderr string }
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"hook output"`) {
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, out := range map[string]string{"stdout": rec.Stdout, "stderr": rec.Stderr} {
		if len(out) < MaxOutput || len(out) > MaxOutput+64 {
			t.Errorf("the verbose log holds %d bytes of the hook's %s, want its last %d and a note", len(out), name, MaxOutput)
		}
		if !strings.Contains(out, "earlier bytes not kept") {
			t.Errorf("the logged %s does not say that output was dropped", name)
		}
	}
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestTailWriter(t *testing.T) {
	w := NewTailWriter(8)
	if got := w.String(); got != "" {
		t.Errorf("empty: %q", got)
	}
	w.Write([]byte("abc"))
	w.Write([]byte("def"))
	if got := w.String(); got != "abcdef" {
		t.Errorf("under the limit: %q", got)
	}
	for _, s := range []string{"ghij", "k", "lmnopqrstu", "vwxyz"} {
		w.Write([]byte(s))
	}
	if got, want := w.String(), "[18 earlier bytes not kept]...stuvwxyz"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if cap(w.buf) > 16 {
		t.Errorf("buffer grew to %d bytes for a limit of 8", cap(w.buf))
	}
	// One write larger than the limit.
	w = NewTailWriter(4)
	if n, err := w.Write([]byte("0123456789")); n != 10 || err != nil {
		t.Errorf("Write = %d, %v", n, err)
	}
	if got, want := w.String(), "[6 earlier bytes not kept]...6789"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
