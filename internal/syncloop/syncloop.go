// Package syncloop schedules sync attempts (docs/CONTRACT.md, section 3):
// periods before and after the first success, the failure budget, --one-time,
// triggers from signals, and everything that follows an attempt (metrics,
// readiness, hooks, the touch and error files).
//
// SyncOnce does exactly one attempt and its bookkeeping; Run adds only the
// waiting. Tests drive SyncOnce directly.
package syncloop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"time"

	"gitsync/internal/errorfile"
	"gitsync/internal/metrics"
	"gitsync/internal/repo"
)

// Syncer does sync attempts in two halves (implemented by *repo.Repo):
// Prepare fetches and builds a candidate without changing what readers see,
// Publish makes it visible. The pre-publish hook runs between the two.
type Syncer interface {
	// Prepare with fetch set skips asking the remote whether anything
	// changed: a triggered sync fetches at once.
	Prepare(ctx context.Context, fetch bool) (repo.Candidate, error)
	Publish(ctx context.Context, c repo.Candidate) (repo.Result, error)
	// Reject discards a candidate a Check refused; the published tree stays.
	Reject(ctx context.Context, c repo.Candidate) error
	HashDone() bool
}

// Check decides whether a new commit may be published (implemented by
// *verify.Verifier and *gate.Gate). hash is the commit, object what the
// fetch of --ref named (an annotated tag's object for a tag). An error
// refuses the commit, unless ctx has ended (then the attempt failed).
type Check interface {
	Check(ctx context.Context, hash, object string) error
}

// KeyWatcher is a Check whose verdicts depend on files that can change
// (signature keys): a refused commit is checked again when they do.
type KeyWatcher interface {
	KeysChanged() bool
}

// Refresher refreshes credentials before each attempt (implemented by
// *auth.Auth). May be nil.
type Refresher interface {
	Refresh(ctx context.Context) error
}

// Hook is a latest-wins hook runner (implemented by *hook.Runner).
type Hook interface {
	Send(hash string)
	Once(ctx context.Context, hash string) error
}

// Metrics records sync outcomes (implemented by *metrics.Metrics).
type Metrics interface {
	ObserveSync(status string, d time.Duration)
	IncFetch()
	Trigger(source string)
}

// Reporter receives the facts of the loop for /status, readiness with
// --max-staleness, /livez and the state gauges (implemented by
// *status.Tracker). May be nil.
type Reporter interface {
	AttemptStarted(now time.Time)
	AttemptFinished(now time.Time, err error) // err nil for a success
	NextAttempt(at time.Time)                 // zero: none scheduled
	ErrorCleared()                            // --error-file removed after a success
}

// noReporter is the Reporter of a loop without one.
type noReporter struct{}

func (noReporter) AttemptStarted(time.Time)         {}
func (noReporter) AttemptFinished(time.Time, error) {}
func (noReporter) NextAttempt(time.Time)            {}
func (noReporter) ErrorCleared()                    {}

// Options configures a Loop.
type Options struct {
	Period, InitPeriod           time.Duration
	SyncTimeout                  time.Duration
	MaxFailures, InitMaxFailures int
	TouchFile                    string          // absolute, "" = none
	ErrorFile                    *errorfile.File // nil = none; written by the logger, removed here
	FileMode                     os.FileMode
	Log                          *slog.Logger
	// Checks run in order on each new commit between Prepare and Publish,
	// before the pre-publish hook; the first refusal keeps the commit from
	// being published.
	Checks []Check

	// PeriodJitter spreads every wait over wait*(1 ± PeriodJitter).
	PeriodJitter float64
	// FailureBackoffMax, when positive, doubles the wait after each
	// failure in a row, up to itself.
	FailureBackoffMax time.Duration
	// Status receives the loop's facts; nil for none.
	Status Reporter
}

// Loop runs sync attempts.
type Loop struct {
	opts       Options
	syncer     Syncer
	auth       Refresher
	metrics    Metrics
	prePublish Hook   // may be nil
	postHooks  []Hook // post-publish hooks
	trigger    chan struct{}
	ready      atomic.Bool
	held       bool // --ref names a refused commit: keep the error, re-check on key changes

	log *slog.Logger
}

// New creates a Loop. auth and prePublish may be nil.
func New(opts Options, syncer Syncer, auth Refresher, metrics Metrics, prePublish Hook, postHooks []Hook) *Loop {
	if opts.Status == nil {
		opts.Status = noReporter{}
	}
	return &Loop{
		opts: opts, syncer: syncer, auth: auth, metrics: metrics,
		prePublish: prePublish, postHooks: postHooks,
		trigger: make(chan struct{}, 1),
		log:     opts.Log,
	}
}

// Ready reports whether a sync has succeeded in this run (readiness probe).
func (l *Loop) Ready() bool { return l.ready.Load() }

// Trigger sources (the values of git_sync_triggers_total's label).
const (
	SourceSignal  = metrics.TriggerSignal
	SourceHTTP    = metrics.TriggerHTTP
	SourceWebhook = metrics.TriggerWebhook
)

// Trigger asks for a sync now, or right after the one running; source says
// who asked (SourceSignal, SourceHTTP, SourceWebhook). Triggers that arrive
// while one is pending collapse into it: any number of them during a sync
// cause exactly one more. Never blocks.
func (l *Loop) Trigger(source string) {
	l.metrics.Trigger(source)
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// ErrTooManyFailures is returned by Run when the failure budget is spent.
var ErrTooManyFailures = errors.New("too many sync failures")

// Attempt is the outcome of one SyncOnce.
type Attempt struct {
	Result repo.Result
	Err    error
	// PrePublishErr is the pre-publish hook's error; publishing went ahead
	// (upstream's semantics).
	PrePublishErr error
	// Rejected is a Check's refusal of the new commit: nothing new was
	// published. Not a sync failure: the loop keeps polling.
	Rejected error
}

// SyncOnce runs one attempt bounded by --sync-timeout and does its
// bookkeeping. With oneTime the pre-publish hook gets its single attempt
// and no background retries.
func (l *Loop) SyncOnce(ctx context.Context, oneTime bool) Attempt {
	return l.syncOnce(ctx, oneTime, false)
}

// syncOnce is SyncOnce; triggered marks an attempt asked for by a trigger
// (a signal), which fetches without asking the remote first: whoever
// triggered it expects a change, and the question would only add a round
// trip before the fetch.
func (l *Loop) syncOnce(ctx context.Context, oneTime, triggered bool) Attempt {
	start := time.Now()
	l.opts.Status.AttemptStarted(start)
	ctx, cancel := context.WithTimeout(ctx, l.opts.SyncTimeout)
	defer cancel()

	a := l.attempt(ctx, oneTime, triggered)
	if a.Err != nil && ctx.Err() == context.DeadlineExceeded {
		a.Err = fmt.Errorf("sync timed out after %v: %w", l.opts.SyncTimeout, a.Err)
	}
	// A refusal is a failed attempt; the polls that follow while the
	// refused commit is held are not (the published tree is the one that
	// should be published).
	l.opts.Status.AttemptFinished(time.Now(), errors.Join(a.Err, a.Rejected))
	res := a.Result
	switch {
	case a.Err != nil, a.Rejected != nil:
		l.metrics.ObserveSync(metrics.StatusError, time.Since(start))
	case res.Fetched:
		l.metrics.ObserveSync(metrics.StatusSuccess, time.Since(start))
		l.metrics.IncFetch()
	default:
		l.metrics.ObserveSync(metrics.StatusNoop, time.Since(start))
	}
	if a.Err != nil {
		return a
	}
	if a.Rejected != nil {
		l.logError("new commit refused; the published tree stays", a.Rejected)
		return a
	}
	if res.Fetched {
		l.ready.Store(true)
		if res.NewHash {
			l.log.Info("published new commit", "hash", res.Hash)
		} else if res.Published {
			l.log.Info("rebuilt and republished worktree", "hash", res.Hash)
		} else {
			l.log.Log(ctx, slog.Level(-1), "confirmed published commit", "hash", res.Hash)
		}
		if a.PrePublishErr != nil {
			l.logError("pre-publish hook failed; published anyway", a.PrePublishErr)
		}
		if !oneTime {
			for _, h := range l.postHooks {
				h.Send(res.Hash)
			}
		}
		l.touch()
	} else {
		l.log.Log(ctx, slog.Level(-2), "no change", "hash", res.Hash)
	}
	if a.PrePublishErr == nil && !l.held {
		l.clearError()
	}
	return a
}

// attempt refreshes credentials, prepares a candidate, runs the pre-publish
// hook for a new hash, and publishes.
func (l *Loop) attempt(ctx context.Context, oneTime, triggered bool) Attempt {
	if l.auth != nil {
		if err := l.auth.Refresh(ctx); err != nil {
			return Attempt{Err: fmt.Errorf("refresh credentials: %w", err)}
		}
	}
	c, err := l.syncer.Prepare(ctx, triggered || l.held && l.keysChanged())
	if err != nil {
		return Attempt{Err: err}
	}
	l.held = c.Held != ""
	if c.NewHash {
		if rejected, err := l.check(ctx, c); err != nil || rejected != nil {
			return Attempt{Result: repo.Result{Hash: c.Hash}, Err: err, Rejected: rejected}
		}
	}
	var a Attempt
	if c.NewHash && l.prePublish != nil {
		a.PrePublishErr = l.prePublish.Once(ctx, c.Hash)
		if a.PrePublishErr != nil && !oneTime {
			l.prePublish.Send(c.Hash) // keep retrying in the background
		}
	}
	a.Result, a.Err = l.syncer.Publish(ctx, c)
	return a
}

// check runs the Checks on the candidate c. A refusal discards c (its
// worktree goes) and is returned as rejected; err is a failed attempt.
func (l *Loop) check(ctx context.Context, c repo.Candidate) (rejected, err error) {
	for _, chk := range l.opts.Checks {
		rejected = chk.Check(ctx, c.Hash, c.Object())
		if rejected != nil {
			break
		}
	}
	if rejected == nil {
		return nil, nil
	}
	if ctx.Err() != nil {
		return nil, rejected
	}
	l.held = true
	if err := l.syncer.Reject(ctx, c); err != nil {
		return nil, errors.Join(rejected, err)
	}
	return rejected, nil
}

// keysChanged reports whether a Check's key files changed since it last
// read them.
func (l *Loop) keysChanged() bool {
	for _, chk := range l.opts.Checks {
		if w, ok := chk.(KeyWatcher); ok && w.KeysChanged() {
			return true
		}
	}
	return false
}

// RunOnce implements --one-time: one sync, then exactly one attempt of each
// post-publish hook it triggers, waited for. It returns an error when the
// sync or any hook attempt failed.
func (l *Loop) RunOnce(ctx context.Context) error {
	a := l.SyncOnce(ctx, true)
	if a.Err != nil {
		if ctx.Err() != nil {
			// Stopped by SIGTERM/SIGINT: a clean shutdown, not a failure.
			return nil
		}
		l.logError("sync failed", a.Err)
		return a.Err
	}
	if a.Rejected != nil {
		return a.Rejected // logged by SyncOnce
	}
	var errs []error
	if a.PrePublishErr != nil {
		errs = append(errs, fmt.Errorf("pre-publish hook: %w", a.PrePublishErr))
	}
	if a.Result.Fetched {
		for _, h := range l.postHooks {
			if err := h.Once(ctx, a.Result.Hash); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				l.logError("hook failed", err)
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Run syncs until ctx ends (returns nil) or the failure budget is spent
// (returns an error wrapping ErrTooManyFailures).
func (l *Loop) Run(ctx context.Context) error {
	failures, throttled := 0, 0
	succeeded, triggered := false, false
	for {
		a := l.syncOnce(ctx, false, triggered)
		triggered = false
		if ctx.Err() != nil {
			return nil
		}
		var refused *repo.RefusedError
		if errors.As(a.Err, &refused) {
			l.logError("sync failed", a.Err)
			return a.Err
		}
		if a.Err != nil {
			failures++
			l.logError("sync failed", a.Err, "failures", failures)
			if code := throttleStatus(a.Err); code != "" {
				throttled++
			} else {
				throttled = 0
			}
			allowed := l.opts.MaxFailures
			if !succeeded {
				allowed = l.opts.InitMaxFailures
			}
			// As in git-sync v4: reaching the number exits (0 and 1 both
			// mean the first failure).
			if allowed >= 0 && failures >= allowed {
				err := fmt.Errorf("%w: %d consecutive failures, last: %w", ErrTooManyFailures, failures, a.Err)
				l.logError("too many failures, giving up", err, "failures", failures)
				return err
			}
		} else {
			throttled = 0
			if a.Rejected == nil {
				failures = 0
				succeeded = true
			}
		}
		if succeeded && l.syncer.HashDone() {
			l.log.Info("--ref is a commit hash and it is published; no more polling")
			l.opts.Status.NextAttempt(time.Time{})
			<-ctx.Done()
			return nil
		}
		base := l.opts.Period
		if !succeeded {
			base = l.opts.InitPeriod
		}
		wait := Wait(base, failures, throttled, l.opts.FailureBackoffMax, l.opts.PeriodJitter, rand.Float64())
		if throttled > 0 {
			l.log.Warn("the remote asks git-sync to slow down (HTTP "+throttleStatus(a.Err)+"); backing off",
				"wait", wait.String(), "throttled", throttled)
		}
		l.opts.Status.NextAttempt(time.Now().Add(wait))
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-l.trigger:
			timer.Stop()
			triggered = true
			l.log.Log(ctx, slog.Level(-2), "sync triggered")
		case <-timer.C:
			l.metrics.Trigger(metrics.TriggerPeriod)
		}
	}
}

// Wait is how long the loop waits before the next attempt: base (the
// period, or the init period before the first success), doubled after each
// of failures in a row up to backoffMax when that is positive; at least
// base doubled on each repeat after throttled answers (HTTP 429/503) in a
// row, up to the larger of backoffMax and 8*base; then spread by jitter,
// with r a uniform random number in [0, 1).
func Wait(base time.Duration, failures, throttled int, backoffMax time.Duration, jitter, r float64) time.Duration {
	w := base
	if failures > 0 && backoffMax > 0 {
		w = doubled(base, failures, max(backoffMax, base))
	}
	if throttled > 0 {
		w = max(w, doubled(base, throttled-1, max(backoffMax, 8*base)))
	}
	if jitter > 0 {
		w = time.Duration(float64(w) * (1 + jitter*(2*r-1)))
	}
	return w
}

// doubled is base*2^n, at most limit.
func doubled(base time.Duration, n int, limit time.Duration) time.Duration {
	w := base
	for i := 0; i < n && w < limit; i++ {
		w *= 2
	}
	return min(w, limit)
}

// throttlePattern finds the HTTP status in git's messages about a refused
// request ("The requested URL returned error: 429", "RPC failed; HTTP 503").
var throttlePattern = regexp.MustCompile(`(?:returned error:|HTTP) (429|503)\b`)

// throttleStatus returns "429" or "503" when err says the remote answered
// so, "" otherwise.
func throttleStatus(err error) string {
	if err == nil {
		return ""
	}
	m := throttlePattern.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	return m[1]
}

// logError logs an error; the logger mirrors every error into
// --error-file (package errorfile).
func (l *Loop) logError(msg string, err error, args ...any) {
	l.log.Error(msg, append([]any{"error", err}, args...)...)
}

// clearError removes --error-file after a successful sync, idle polls
// included: the failure it reported has ended. errorfile.File makes this
// free on the idle path unless an error was written since.
func (l *Loop) clearError() {
	l.opts.Status.ErrorCleared()
	if err := l.opts.ErrorFile.Remove(); err != nil {
		l.log.Error("could not remove --error-file", "path", l.opts.ErrorFile.Path(), "error", err)
	}
}

// touch updates --touch-file: the sign, for users and tests, that a sync is
// completely done.
func (l *Loop) touch() {
	if l.opts.TouchFile == "" {
		return
	}
	now := time.Now()
	err := os.Chtimes(l.opts.TouchFile, now, now)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(l.opts.TouchFile), 0o777); err == nil {
			var f *os.File
			if f, err = os.OpenFile(l.opts.TouchFile, os.O_CREATE|os.O_WRONLY, l.opts.FileMode); err == nil {
				err = f.Close()
			}
		}
	}
	if err != nil {
		l.log.Error("touch --touch-file", "path", l.opts.TouchFile, "error", err.Error())
	}
}
