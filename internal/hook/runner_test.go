package hook

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gitsync/internal/config"
)

// call is one attempt seen by funcHook.
type call struct {
	hash  string
	start time.Time
}

// funcHook is a Hook whose attempts are decided by a Go function, for
// testing the Runner's policy without processes.
type funcHook struct {
	fn func(ctx context.Context, hash string) error

	mu    sync.Mutex
	calls []call
}

func (h *funcHook) Name() string { return "fake" }

func (h *funcHook) Do(ctx context.Context, hash string) error {
	h.mu.Lock()
	h.calls = append(h.calls, call{hash, time.Now()})
	h.mu.Unlock()
	return h.fn(ctx, hash)
}

func (h *funcHook) get() []call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

func (h *funcHook) hashes() []string {
	var s []string
	for _, c := range h.get() {
		s = append(s, c.hash)
	}
	return s
}

var errHook = errors.New("hook failed")

func TestSendSucceededHashDoesNothing(t *testing.T) {
	h := &funcHook{fn: func(context.Context, string) error { return nil }}
	var rs runs
	r := NewRunner(h, time.Millisecond, nil, rs.record)
	startRunner(t, r)
	r.Send(hashA)
	waitFor(t, "first success", func() bool { return rs.count(StatusSuccess) == 1 })
	r.Send(hashA) // e.g. an idle poll or a rebuilt worktree
	r.Send(hashB)
	waitFor(t, "second success", func() bool { return rs.count(StatusSuccess) == 2 })
	if got, want := h.hashes(), []string{hashA, hashB}; !slices.Equal(got, want) {
		t.Errorf("attempts %q, want %q", got, want)
	}
	if got, want := rs.get(), []string{"fake:success", "fake:success"}; !slices.Equal(got, want) {
		t.Errorf("onRun calls %q, want %q", got, want)
	}
}

func TestSendWithoutRunNeverBlocks(t *testing.T) {
	h := &funcHook{fn: func(context.Context, string) error { return nil }}
	r := NewRunner(h, time.Millisecond, nil, nil)
	for range 100 {
		r.Send(hashA)
		r.Send(hashB)
	}
	r.Send("")
	if len(h.get()) != 0 {
		t.Error("Send attempted the hook itself")
	}
}

// TestOnceFailureThenSend is the pre-publish hook's pattern: a synchronous
// first attempt, then background retries after the backoff.
func TestOnceFailureThenSend(t *testing.T) {
	var mu sync.Mutex
	failures := 2
	h := &funcHook{fn: func(context.Context, string) error {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return errHook
		}
		return nil
	}}
	const backoff = 100 * time.Millisecond
	var rs runs
	r := NewRunner(h, backoff, nil, rs.record)
	startRunner(t, r)
	if err := r.Once(context.Background(), hashA); !errors.Is(err, errHook) {
		t.Fatalf("Once = %v, want %v", err, errHook)
	}
	r.Send(hashA)
	waitFor(t, "success", func() bool { return rs.count(StatusSuccess) == 1 })
	calls := h.get()
	if len(calls) != 3 {
		t.Fatalf("got %d attempts, want 3", len(calls))
	}
	for i := 1; i < len(calls); i++ {
		if calls[i].hash != hashA {
			t.Errorf("attempt %d for %s", i, calls[i].hash)
		}
		if d := calls[i].start.Sub(calls[i-1].start); d < backoff {
			t.Errorf("attempt %d came %v after the previous one, want >= %v", i, d, backoff)
		}
	}
	if got, want := rs.get(), []string{"fake:error", "fake:error", "fake:success"}; !slices.Equal(got, want) {
		t.Errorf("onRun calls %q, want %q", got, want)
	}
}

func TestOnceSuccessThenSendSameHash(t *testing.T) {
	h := &funcHook{fn: func(context.Context, string) error { return nil }}
	var rs runs
	r := NewRunner(h, time.Millisecond, nil, rs.record)
	startRunner(t, r)
	if err := r.Once(context.Background(), hashA); err != nil {
		t.Fatal(err)
	}
	r.Send(hashA)
	r.Send(hashB)
	waitFor(t, "second success", func() bool { return rs.count(StatusSuccess) == 2 })
	if got, want := h.hashes(), []string{hashA, hashB}; !slices.Equal(got, want) {
		t.Errorf("attempts %q, want %q", got, want)
	}
}

// TestOnceSupersedesFailingHash checks that after Once for a newer hash
// succeeds, the background worker does not go back to retrying an older one.
func TestOnceSupersedesFailingHash(t *testing.T) {
	const backoff = 20 * time.Millisecond
	var failedAt time.Time
	var mu sync.Mutex
	h := &funcHook{fn: func(ctx context.Context, hash string) error {
		if hash == hashA {
			mu.Lock()
			failedAt = time.Now()
			mu.Unlock()
			return errHook
		}
		if hash == hashB {
			// Outlast A's backoff, so that the worker is due to retry
			// as soon as this attempt ends.
			mu.Lock()
			until := failedAt.Add(5 * backoff)
			mu.Unlock()
			for time.Now().Before(until) {
				time.Sleep(time.Millisecond)
			}
		}
		return nil
	}}
	var rs runs
	r := NewRunner(h, backoff, nil, rs.record)
	startRunner(t, r)
	r.Send(hashA)
	waitFor(t, "failure", func() bool { return rs.count(StatusError) == 1 })
	if err := r.Once(context.Background(), hashB); err != nil {
		t.Fatal(err)
	}
	r.Send(hashC)
	waitFor(t, "two successes", func() bool { return rs.count(StatusSuccess) == 2 })
	if got, want := h.hashes(), []string{hashA, hashB, hashC}; !slices.Equal(got, want) {
		t.Errorf("attempts %q, want %q", got, want)
	}
}

// TestSendDuringBackoff checks the documented choice: the retry after a
// failure waits the full backoff and is made for the newest hash.
func TestSendDuringBackoff(t *testing.T) {
	h := &funcHook{fn: func(_ context.Context, hash string) error {
		if hash == hashA {
			return errHook
		}
		return nil
	}}
	const backoff = 150 * time.Millisecond
	var rs runs
	r := NewRunner(h, backoff, nil, rs.record)
	startRunner(t, r)
	r.Send(hashA)
	waitFor(t, "failure", func() bool { return rs.count(StatusError) == 1 })
	r.Send(hashB)
	r.Send(hashC)
	waitFor(t, "success", func() bool { return rs.count(StatusSuccess) == 1 })
	calls := h.get()
	if got, want := h.hashes(), []string{hashA, hashC}; !slices.Equal(got, want) {
		t.Fatalf("attempts %q, want %q", got, want)
	}
	if d := calls[1].start.Sub(calls[0].start); d < backoff {
		t.Errorf("retry came %v after the failure, want >= %v", d, backoff)
	}
}

func TestRunStopsDuringBackoff(t *testing.T) {
	h := &funcHook{fn: func(context.Context, string) error { return errHook }}
	var rs runs
	r := NewRunner(h, time.Hour, nil, rs.record)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	r.Send(hashA)
	waitFor(t, "failure", func() bool { return rs.count(StatusError) == 1 })
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return during its backoff")
	}
	if n := len(h.get()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

// TestOnceWaitsForRunningAttempt checks that attempts never overlap: Once,
// called while Run's attempt for A is in flight, must not start its own
// attempt until A's has ended. The test holds A's attempt until Once is
// seen blocked (its goroutine parked inside Once, not in the hook), so a
// Once that does not wait has every chance to run B meanwhile and be caught.
func TestOnceWaitsForRunningAttempt(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	running, overlapped := 0, false
	var endA, startB time.Time
	h := &funcHook{fn: func(_ context.Context, hash string) error {
		mu.Lock()
		running++
		overlapped = overlapped || running > 1
		if hash == hashB {
			startB = time.Now()
		}
		mu.Unlock()
		if hash == hashA {
			<-release
		}
		mu.Lock()
		running--
		if hash == hashA {
			endA = time.Now()
		}
		mu.Unlock()
		return nil
	}}
	var rs runs
	r := NewRunner(h, time.Millisecond, nil, rs.record)
	startRunner(t, r)
	r.Send(hashA)
	waitFor(t, "attempt for A", func() bool { return len(h.get()) == 1 })

	onceDone := make(chan error, 1)
	go func() { onceDone <- r.Once(context.Background(), hashB) }()
	waitFor(t, "Once to block, or to attempt B", func() bool {
		return len(h.get()) > 1 || onceBlocked()
	})
	if got := h.hashes(); len(got) > 1 {
		close(release)
		<-onceDone
		t.Fatalf("Once attempted %s while the attempt for %s was in flight (attempts %q)", hashB, hashA, got)
	}
	close(release)
	if err := <-onceDone; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if overlapped {
		t.Error("Once ran while another attempt was in flight")
	}
	if startB.Before(endA) {
		t.Errorf("the attempt for B started %v before the one for A ended", endA.Sub(startB))
	}
	if got, want := h.hashes(), []string{hashA, hashB}; !slices.Equal(got, want) {
		t.Errorf("attempts %q, want %q", got, want)
	}
}

// onceBlocked reports whether some goroutine is parked (waiting on a lock,
// channel or condition, not running or runnable) inside Runner.Once and
// not inside a hook attempt. It reads the goroutine dump, so it does not
// depend on how Once waits.
func onceBlocked() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		parked := !strings.Contains(header, "[running]") && !strings.Contains(header, "[runnable]")
		if parked && strings.Contains(g, "hook.(*Runner).Once(") && !strings.Contains(g, "hook.(*funcHook).Do(") {
			return true
		}
	}
	return false
}

// TestLogRecordsUseErrorKey checks that every record about a failed
// attempt carries the error under the one key "error" that the rest of
// git-sync uses (log queries and the error file look for it).
func TestLogRecordsUseErrorKey(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.Level(-10)}))

	failing := &funcHook{fn: func(context.Context, string) error { return errHook }}
	r := NewRunner(failing, time.Millisecond, log, nil)
	_ = r.Once(context.Background(), hashA)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stopped := &funcHook{fn: func(ctx context.Context, _ string) error { return ctx.Err() }}
	_ = NewRunner(stopped, time.Millisecond, log, nil).Once(ctx, hashA)

	// A fire-and-forget webhook whose receiver never answers.
	rc := &receiver{hang: true}
	wh := NewWebhook(config.WebhookConfig{URL: newReceiver(t, rc), Method: "POST", Timeout: 200 * time.Millisecond}, log)
	if err := wh.Do(context.Background(), hashA); err != nil {
		t.Fatal(err)
	}

	want := map[string]bool{"hook failed": false, "hook stopped": false, "webhook sent, no answer": false}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		msg, _ := rec["msg"].(string)
		if _, ok := want[msg]; !ok {
			continue
		}
		want[msg] = true
		if s, _ := rec["error"].(string); s == "" {
			t.Errorf("record %q has no \"error\": %s", msg, line)
		}
		if _, ok := rec["err"]; ok {
			t.Errorf("record %q uses the key \"err\": %s", msg, line)
		}
	}
	for msg, seen := range want {
		if !seen {
			t.Errorf("no %q record in:\n%s", msg, buf.String())
		}
	}
}
