package hook

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Hook makes a single attempt to notify about a commit. Implementations
// return nil only when the attempt succeeded; retries are the Runner's job.
type Hook interface {
	// Name identifies the hook in logs and in the name label of
	// git_sync_hook_run_count_total.
	Name() string
	// Do makes one attempt for hash, giving up when ctx ends.
	Do(ctx context.Context, hash string) error
}

// Attempt outcomes passed to the onRun callback of NewRunner.
const (
	StatusSuccess = "success"
	StatusError   = "error"
)

// Runner applies the retry and latest-wins policy described in the package
// documentation to one Hook.
type Runner struct {
	hook    Hook
	backoff time.Duration
	log     *slog.Logger
	onRun   func(name, status string)

	// wake tells Run that Send changed want; one pending signal is enough.
	wake chan struct{}

	// attemptMu is held for the whole of an attempt, so attempts from Run
	// and Once never overlap and Run decides what to attempt only while no
	// attempt is in flight.
	attemptMu sync.Mutex

	mu        sync.Mutex // guards the fields below; never held during an attempt
	want      string     // newest hash from Send or Once; "" = none yet
	done      string     // hash of the latest attempt if it succeeded, else ""
	notBefore time.Time  // end of the backoff after a failed attempt
}

// NewRunner returns a Runner for h that retries failures after backoff.
// onRun, if not nil, is called after every attempt with h.Name() and
// StatusSuccess or StatusError; callers wire it to metrics.HookRun. A nil
// log discards log output.
func NewRunner(h Hook, backoff time.Duration, log *slog.Logger, onRun func(name, status string)) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{
		hook:    h,
		backoff: backoff,
		log:     log.With("hook", h.Name()),
		onRun:   onRun,
		wake:    make(chan struct{}, 1),
	}
}

// Send asks for an attempt for hash, the commit just published. It never
// blocks: the Run worker does the work. A hash whose latest attempt
// succeeded is not attempted again; a hash whose latest attempt failed is
// retried after the backoff. An empty hash is ignored.
func (r *Runner) Send(hash string) {
	if hash == "" {
		return
	}
	r.mu.Lock()
	r.want = hash
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run is the worker behind Send. It attempts the newest sent hash until an
// attempt succeeds, waiting the backoff after each failure, then sleeps
// until the next Send. It returns when ctx ends; an attempt in flight is
// cancelled through ctx (exec hooks are killed). Call Run once per Runner.
func (r *Runner) Run(ctx context.Context) {
	for ctx.Err() == nil {
		wait, idle := r.attemptNext(ctx)
		switch {
		case idle:
			select {
			case <-ctx.Done():
			case <-r.wake:
			}
		case wait > 0:
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
}

// attemptNext makes an attempt for the newest hash if one is due. Otherwise
// it reports whether there is nothing to do (idle) or how long the current
// backoff still lasts.
func (r *Runner) attemptNext(ctx context.Context) (wait time.Duration, idle bool) {
	r.attemptMu.Lock()
	defer r.attemptMu.Unlock()
	r.mu.Lock()
	hash := r.want
	idle = hash == "" || hash == r.done
	wait = time.Until(r.notBefore)
	r.mu.Unlock()
	if idle || wait > 0 {
		return wait, idle
	}
	r.attempt(ctx, hash)
	return 0, false
}

// Once makes exactly one attempt for hash now, ignoring any backoff, and
// returns its result. It waits for an attempt already in flight to finish
// first. The result counts for later Sends: after a success, Send(hash) does
// nothing; after a failure, Send(hash) retries it once the backoff has
// passed.
func (r *Runner) Once(ctx context.Context, hash string) error {
	r.attemptMu.Lock()
	defer r.attemptMu.Unlock()
	r.mu.Lock()
	// hash is now the newest: Run must not go back to an older one.
	r.want = hash
	r.mu.Unlock()
	return r.attempt(ctx, hash)
}

// attempt runs the hook once and records the outcome. The caller holds
// attemptMu.
func (r *Runner) attempt(ctx context.Context, hash string) error {
	start := time.Now()
	err := r.hook.Do(ctx, hash)
	end := time.Now()

	r.mu.Lock()
	if err == nil {
		r.done = hash
		r.notBefore = time.Time{}
	} else {
		r.done = ""
		r.notBefore = end.Add(r.backoff)
	}
	r.mu.Unlock()

	status := StatusSuccess
	if err != nil {
		status = StatusError
	}
	if r.onRun != nil {
		r.onRun(r.hook.Name(), status)
	}
	switch {
	case err == nil:
		r.log.Log(ctx, slog.Level(-1), "hook succeeded", "hash", hash, "duration", end.Sub(start))
	case ctx.Err() != nil:
		r.log.Info("hook stopped", "hash", hash, "error", err)
	default:
		r.log.Error("hook failed", "hash", hash, "duration", end.Sub(start), "backoff", r.backoff, "error", err)
	}
	return err
}
