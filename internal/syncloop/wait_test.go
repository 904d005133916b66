package syncloop

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gitsync/internal/repo"
	"gitsync/internal/status"
)

func TestWait(t *testing.T) {
	const p = 10 * time.Second
	cases := []struct {
		name                string
		failures, throttled int
		backoffMax          time.Duration
		jitter, r           float64
		want                time.Duration
	}{
		{"plain", 0, 0, 0, 0, 0.9, p},
		{"failures without the flag", 3, 0, 0, 0, 0, p},
		{"first failure doubles", 1, 0, time.Minute, 0, 0, 2 * p},
		{"third failure", 3, 0, time.Minute, 0, 0, time.Minute}, // 80s capped
		{"second failure", 2, 0, time.Minute, 0, 0, 4 * p},
		{"max below period", 3, 0, time.Second, 0, 0, p},
		{"throttled once", 1, 1, 0, 0, 0, p},
		{"throttled twice", 2, 2, 0, 0, 0, 2 * p},
		{"throttled often", 9, 9, 0, 0, 0, 8 * p},
		{"throttled often, larger max", 9, 9, 5 * time.Minute, 0, 0, 5 * time.Minute},
		{"jitter low", 0, 0, 0, 0.5, 0, p / 2},
		{"jitter high", 0, 0, 0, 0.5, 0.999999, 15*time.Second - 10*time.Microsecond},
		{"jitter middle", 0, 0, 0, 0.2, 0.5, p},
	}
	for _, c := range cases {
		got := Wait(p, c.failures, c.throttled, c.backoffMax, c.jitter, c.r)
		if d := got - c.want; d < -20*time.Microsecond || d > 20*time.Microsecond {
			t.Errorf("%s: Wait = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestThrottleStatus(t *testing.T) {
	for msg, want := range map[string]string{
		"fetch main from https://h/r: exit status 128: fatal: unable to access 'https://h/r/': The requested URL returned error: 429": "429",
		"error: RPC failed; HTTP 503 curl 22 The requested URL returned error: 503":                                                   "503",
		"fatal: unable to access 'https://h/r/': The requested URL returned error: 500":                                               "",
		"fatal: repository 'https://h/429/' not found":                                                                                "",
	} {
		if got := throttleStatus(errors.New(msg)); got != want {
			t.Errorf("throttleStatus(%q) = %q, want %q", msg, got, want)
		}
	}
}

// recorder is a Reporter that keeps what it was told.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(s string)             { r.mu.Lock(); r.events = append(r.events, s); r.mu.Unlock() }
func (r *recorder) AttemptStarted(time.Time) { r.add("start") }
func (r *recorder) AttemptFinished(_ time.Time, err error) {
	r.add(fmt.Sprintf("end err=%v", err != nil))
}
func (r *recorder) NextAttempt(at time.Time) { r.add(fmt.Sprintf("next zero=%v", at.IsZero())) }
func (r *recorder) ErrorCleared()            { r.add("cleared") }

func TestLoopReportsFacts(t *testing.T) {
	s := &scripted{script: []error{errBoom, nil}}
	l, _ := newLoop(t, s, -1, -1)
	rec := &recorder{}
	l.opts.Status = rec
	l.SyncOnce(t.Context(), false)
	l.SyncOnce(t.Context(), false)
	want := "start|end err=true|start|end err=false|cleared"
	if got := strings.Join(rec.events, "|"); got != want {
		t.Errorf("events %s, want %s", got, want)
	}
}

// stuck is a Syncer whose Prepare ignores its context until released: the
// only way an attempt outlives --sync-timeout, which /livez exists to see.
type stuck struct{ release chan struct{} }

func (s *stuck) Prepare(ctx context.Context, fetch bool) (repo.Candidate, error) {
	<-s.release
	return repo.Candidate{}, ctx.Err()
}
func (s *stuck) Publish(ctx context.Context, c repo.Candidate) (repo.Result, error) {
	return repo.Result{}, nil
}
func (s *stuck) Reject(ctx context.Context, c repo.Candidate) error { return nil }
func (s *stuck) HashDone() bool                                     { return false }

func TestStuckAttemptFailsLiveness(t *testing.T) {
	s := &stuck{release: make(chan struct{})}
	l, _ := newLoop(t, s, -1, -1)
	l.opts.SyncTimeout = 50 * time.Millisecond
	tr := status.New()
	tr.Configure(status.Options{SyncTimeout: l.opts.SyncTimeout, LiveGrace: 50 * time.Millisecond})
	l.opts.Status = tr
	if !tr.Live(time.Now()) {
		t.Fatal("not live before any attempt")
	}
	done := make(chan Attempt, 1)
	go func() { done <- l.SyncOnce(t.Context(), false) }()
	deadline := time.Now().Add(10 * time.Second)
	for tr.Live(time.Now()) {
		if time.Now().After(deadline) {
			t.Fatal("/livez never failed while an attempt was stuck past --sync-timeout plus the grace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(s.release)
	<-done
	if !tr.Live(time.Now()) {
		t.Error("still not live after the stuck attempt ended")
	}
}
