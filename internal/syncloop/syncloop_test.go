package syncloop

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gitsync/internal/errorfile"
	"gitsync/internal/metrics"
	"gitsync/internal/repo"
)

// scripted is a Syncer whose attempts follow a script: each entry is the
// error of one attempt (nil = a successful fetch of "h<n>"). Past the end of
// the script every attempt is an idle no-op. It stands in for the repo, not
// for git: the loop's policy is what is under test.
type scripted struct {
	mu       sync.Mutex
	script   []error
	attempts int
	hashDone bool
	gate     func(attempt int) // if set, called at the start of each attempt (0-based)
	rejected []string          // hashes passed to Reject
}

func (s *scripted) Prepare(ctx context.Context, fetch bool) (repo.Candidate, error) {
	s.mu.Lock()
	n := s.attempts
	s.attempts++
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		gate(n)
	}
	if n >= len(s.script) {
		return repo.Candidate{Hash: "h"}, nil
	}
	if err := s.script[n]; err != nil {
		return repo.Candidate{}, err
	}
	return repo.Candidate{Hash: "h", Fetched: true, NewHash: true}, nil
}

func (s *scripted) Publish(ctx context.Context, c repo.Candidate) (repo.Result, error) {
	return repo.Result{Hash: c.Hash, Fetched: c.Fetched, Published: c.NewHash, NewHash: c.NewHash}, nil
}

func (s *scripted) Reject(ctx context.Context, c repo.Candidate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected = append(s.rejected, c.Hash)
	return nil
}

func (s *scripted) HashDone() bool { return s.hashDone }

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

var errBoom = errors.New("boom")

func newLoop(t *testing.T, s Syncer, maxFailures, initMaxFailures int) (*Loop, *metrics.Metrics) {
	t.Helper()
	m := metrics.New()
	ef := errorfile.New(filepath.Join(t.TempDir(), "error.json"), 0o644)
	l := New(Options{
		Period: time.Millisecond, InitPeriod: time.Millisecond, SyncTimeout: time.Second,
		MaxFailures: maxFailures, InitMaxFailures: initMaxFailures,
		ErrorFile: ef, FileMode: 0o644,
		Log: slog.New(ef.Handler(slog.NewJSONHandler(io.Discard, nil))),
	}, s, nil, m, nil, nil)
	return l, m
}

func TestFailurePolicy(t *testing.T) {
	ok := error(nil)
	cases := []struct {
		name            string
		script          []error
		max, initMax    int
		wantAttempts    int
		wantTooManyFail bool
	}{
		{"first failure is fatal by default", []error{errBoom}, 0, 0, 1, true},
		{"max-failures=1 is the first failure too", []error{ok, errBoom}, 1, 1, 2, true},
		{"max-failures=N exits on the Nth failure in a row", []error{ok, errBoom, errBoom, errBoom}, 3, 3, 4, true},
		{"a success resets the count", []error{ok, errBoom, errBoom, ok, errBoom, errBoom, errBoom}, 3, 3, 7, true},
		{"init-max-failures applies before the first success", []error{errBoom, errBoom, errBoom, ok, errBoom}, 0, 4, 5, true},
		{"init-max-failures reached", []error{errBoom, errBoom}, 5, 2, 2, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &scripted{script: c.script}
			l, _ := newLoop(t, s, c.max, c.initMax)
			err := l.Run(context.Background())
			if !errors.Is(err, ErrTooManyFailures) {
				t.Fatalf("Run = %v, want ErrTooManyFailures", err)
			}
			if s.count() != c.wantAttempts {
				t.Fatalf("gave up after %d attempts, want %d", s.count(), c.wantAttempts)
			}
			if _, err := os.Stat(l.opts.ErrorFile.Path()); err != nil {
				t.Fatalf("error file not written on exit: %v", err)
			}
		})
	}
}

func TestNegativeMaxFailuresRetriesForever(t *testing.T) {
	script := make([]error, 51) // 50 failures, then a success
	for i := range script[:50] {
		script[i] = errBoom
	}
	s := &scripted{script: script}
	l, _ := newLoop(t, s, -1, -1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for s.count() < 60 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling the attempt counter, not synchronising
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after cancel, want nil", err)
	}
	if s.count() < 60 || !l.Ready() {
		t.Fatalf("attempts = %d, ready = %v: want it past the 50 failures and ready", s.count(), l.Ready())
	}
	if _, err := os.Stat(l.opts.ErrorFile.Path()); !os.IsNotExist(err) {
		t.Fatalf("error file not removed after the first success: %v", err)
	}
}

func TestRunOnceReportsFailure(t *testing.T) {
	l, _ := newLoop(t, &scripted{script: []error{errBoom}}, 0, 0)
	if err := l.RunOnce(context.Background()); !errors.Is(err, errBoom) {
		t.Fatalf("RunOnce = %v, want the sync error", err)
	}
	l, _ = newLoop(t, &scripted{script: []error{nil}}, 0, 0)
	if err := l.RunOnce(context.Background()); err != nil || !l.Ready() {
		t.Fatalf("RunOnce = %v, ready = %v", err, l.Ready())
	}
}

func TestHashDoneStopsPolling(t *testing.T) {
	// The first attempt publishes the hash; any later attempt would fail,
	// which with the default failure budget ends Run with an error.
	s := &scripted{script: []error{nil, errBoom}, hashDone: true}
	l, _ := newLoop(t, s, 0, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !l.Ready() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling readiness, not synchronising
	}
	if !l.Ready() {
		t.Fatal("the first attempt did not succeed")
	}
	// An absence check: over a window of 50 periods no further attempt
	// may start (one would fail and end Run).
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while the hash was published, after %d attempts", err, s.count())
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after cancel, want nil", err)
	}
	if s.count() != 1 {
		t.Fatalf("%d attempts after the hash was published, want 1", s.count())
	}
}

func TestTriggerCollapses(t *testing.T) {
	// Attempts happen only when triggered (the period is an hour). While
	// the first attempt runs, five triggers arrive: they must collapse into
	// exactly one more attempt.
	started := make(chan int, 10)
	release := make(chan struct{})
	s := &scripted{script: []error{nil}, gate: func(n int) {
		started <- n
		if n == 0 {
			<-release
		}
	}}
	l, _ := newLoop(t, s, 0, 0)
	l.opts.Period, l.opts.InitPeriod = time.Hour, time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()

	if n := <-started; n != 0 {
		t.Fatalf("first attempt numbered %d", n)
	}
	for i := 0; i < 5; i++ {
		l.Trigger(SourceSignal) // never blocks
	}
	close(release)
	select {
	case n := <-started:
		if n != 1 {
			t.Fatalf("second attempt numbered %d", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the triggers during the first attempt did not start another")
	}
	// The second attempt consumed the only pending trigger; nothing is
	// left that would start a third before the hour is up.
	if len(l.trigger) != 0 {
		t.Fatalf("%d triggers still pending after the second attempt started, want 0", len(l.trigger))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := s.count(); got != 2 {
		t.Fatalf("%d attempts, want 2", got)
	}
}

// refuseAll is a Check that refuses every commit and counts its calls.
type refuseAll struct{ calls int }

func (r *refuseAll) Check(ctx context.Context, hash, object string) error {
	r.calls++
	return errors.New("refused " + hash)
}

// TestRejectionIsNotAFailure: a refused commit is discarded, not published,
// reported in the error file, and does not spend the failure budget
// (--max-failures=0 exits on the first failure).
func TestRejectionIsNotAFailure(t *testing.T) {
	s := &scripted{script: []error{nil}}
	chk := &refuseAll{}
	l, _ := newLoop(t, s, 0, 0)
	l.opts.Checks = []Check{chk}
	a := l.SyncOnce(context.Background(), false)
	if a.Err != nil || a.Rejected == nil || a.Result.Published {
		t.Fatalf("attempt = %+v, want a rejection that published nothing", a)
	}
	if len(s.rejected) != 1 || chk.calls != 1 {
		t.Fatalf("Reject calls %v, checks %d; want one each", s.rejected, chk.calls)
	}
	if _, err := os.Stat(l.opts.ErrorFile.Path()); err != nil {
		t.Fatalf("error file not written for a rejection: %v", err)
	}
	if l.Ready() {
		t.Fatal("ready after a rejection with nothing published")
	}
	if err := l.RunOnce(context.Background()); err != nil {
		t.Fatalf("RunOnce on an idle poll = %v", err)
	}
}
