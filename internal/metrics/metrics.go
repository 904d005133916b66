// Package metrics defines git-sync's Prometheus collectors.
//
// The metric names and labels are part of the drop-in contract (SPEC section
// 6): existing dashboards and alerts query them by name, so they must match
// upstream git-sync v4 exactly. Collectors are registered on a Registerer
// handed in by the caller; nothing here touches the global default registry,
// so tests can build as many independent Metrics values as they like.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sync outcomes, the values of the status label of git_sync_count_total and
// git_sync_duration_seconds.
const (
	StatusSuccess = "success"
	StatusError   = "error"
	StatusNoop    = "noop"
)

// Metrics holds git-sync's collectors. Its methods are safe for concurrent
// use, and a nil *Metrics ignores every call, so code paths that run without
// metrics (unit tests of other packages) need no checks.
type Metrics struct {
	syncDuration *prometheus.SummaryVec
	syncCount    *prometheus.CounterVec
	fetchCount   prometheus.Counter
	askpassCalls *prometheus.CounterVec
	appRefresh   *prometheus.CounterVec
	hookRuns     *prometheus.CounterVec
}

// New creates the collectors and registers them on reg. It panics if reg
// already holds collectors with the same names, which is a programming error
// (New called twice on one registry).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		syncDuration: prometheus.NewSummaryVec(prometheus.SummaryOpts{
			Name: "git_sync_duration_seconds",
			Help: "Time taken by sync attempts, by outcome.",
		}, []string{"status"}),
		syncCount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "git_sync_count_total",
			Help: "Number of sync attempts, by outcome.",
		}, []string{"status"}),
		fetchCount: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "git_fetch_count_total",
			Help: "Number of syncs that fetched and published (or confirmed) a commit.",
		}),
		// Upstream exposes these two counters without the conventional
		// _total suffix; dashboards use the names as they are.
		askpassCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "git_sync_askpass_calls",
			Help: "Number of calls to the askpass URL, by outcome.",
		}, []string{"status"}),
		appRefresh: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "git_sync_refresh_github_app_token_count",
			Help: "Number of GitHub App token refreshes, by outcome.",
		}, []string{"status"}),
		hookRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "git_sync_hook_run_count_total",
			Help: "Number of hook attempts, by hook name and outcome.",
		}, []string{"name", "status"}),
	}
	reg.MustRegister(m.syncDuration, m.syncCount, m.fetchCount,
		m.askpassCalls, m.appRefresh, m.hookRuns)
	// Export every sync outcome from the start, so that rate() and
	// dashboards see a zero rather than a missing series.
	for _, s := range []string{StatusSuccess, StatusError, StatusNoop} {
		m.syncCount.WithLabelValues(s)
		m.syncDuration.WithLabelValues(s)
	}
	return m
}

// ObserveSync records one sync attempt: status is StatusSuccess, StatusError
// or StatusNoop and d is how long the attempt took.
func (m *Metrics) ObserveSync(status string, d time.Duration) {
	if m == nil {
		return
	}
	m.syncCount.WithLabelValues(status).Inc()
	m.syncDuration.WithLabelValues(status).Observe(d.Seconds())
}

// IncFetch counts one sync that fetched and published, republished or
// confirmed a commit (not idle polls, not failures; see SPEC section 6).
func (m *Metrics) IncFetch() {
	if m == nil {
		return
	}
	m.fetchCount.Inc()
}

// AskpassCall counts one call to the askpass URL; status is "success" or
// "error".
func (m *Metrics) AskpassCall(status string) {
	if m == nil {
		return
	}
	m.askpassCalls.WithLabelValues(status).Inc()
}

// GitHubAppRefresh counts one attempt to obtain a GitHub App installation
// token; status is "success" or "error".
func (m *Metrics) GitHubAppRefresh(status string) {
	if m == nil {
		return
	}
	m.appRefresh.WithLabelValues(status).Inc()
}

// HookRun counts one attempt of the hook called name; status is "success" or
// "error". Its signature fits hook.NewRunner's onRun callback.
func (m *Metrics) HookRun(name, status string) {
	if m == nil {
		return
	}
	m.hookRuns.WithLabelValues(name, status).Inc()
}
