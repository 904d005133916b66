// Package metrics keeps git-sync's counters and writes them in the
// Prometheus text exposition format.
//
// The metric names and labels are part of the drop-in contract (SPEC section
// 6): existing dashboards and alerts query them by name, so they match
// upstream git-sync v4 exactly. The exposition is written here rather than
// with client_golang: the set of metrics is small and fixed, and that
// library (with the protobuf runtime it pulls in) costs about 3 MiB of
// resident memory in a process whose whole budget is 12 MiB (issue 6).
package metrics

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sync outcomes, the values of the status label of git_sync_count_total and
// git_sync_duration_seconds.
const (
	StatusSuccess = "success"
	StatusError   = "error"
	StatusNoop    = "noop"
)

// family is one metric name with its samples keyed by label values.
type family struct {
	name, help, typ string
	labels          []string
	counts          map[string]float64 // counter value, or summary _count
	sums            map[string]float64 // summary _sum
}

func newFamily(name, typ, help string, labels ...string) *family {
	return &family{name: name, typ: typ, help: help, labels: labels,
		counts: map[string]float64{}, sums: map[string]float64{}}
}

// key joins label values; \xff never occurs in them.
func key(values ...string) string { return strings.Join(values, "\xff") }

// Metrics holds git-sync's metrics. Its methods are safe for concurrent use,
// and a nil *Metrics ignores every call, so code paths that run without
// metrics (unit tests of other packages) need no checks.
type Metrics struct {
	mu           sync.Mutex
	start        time.Time
	syncDuration *family
	syncCount    *family
	fetchCount   *family
	askpassCalls *family
	appRefresh   *family
	hookRuns     *family
}

// New creates the metrics, with every sync outcome present from the start
// so that rate() and dashboards see a zero rather than a missing series.
func New() *Metrics {
	m := &Metrics{
		start:        time.Now(),
		syncDuration: newFamily("git_sync_duration_seconds", "summary", "Time taken by sync attempts, by outcome.", "status"),
		syncCount:    newFamily("git_sync_count_total", "counter", "Number of sync attempts, by outcome.", "status"),
		fetchCount:   newFamily("git_fetch_count_total", "counter", "Number of syncs that fetched and published (or confirmed) a commit."),
		// Upstream exposes these two counters without the conventional
		// _total suffix; dashboards use the names as they are.
		askpassCalls: newFamily("git_sync_askpass_calls", "counter", "Number of calls to the askpass URL, by outcome.", "status"),
		appRefresh:   newFamily("git_sync_refresh_github_app_token_count", "counter", "Number of GitHub App token refreshes, by outcome.", "status"),
		hookRuns:     newFamily("git_sync_hook_run_count_total", "counter", "Number of hook attempts, by hook name and outcome.", "name", "status"),
	}
	for _, s := range []string{StatusSuccess, StatusError, StatusNoop} {
		m.syncCount.counts[s] = 0
		m.syncDuration.counts[s] = 0
		m.syncDuration.sums[s] = 0
	}
	m.fetchCount.counts[""] = 0
	return m
}

// add increments the sample of the family pick chooses.
func (m *Metrics) add(pick func(*Metrics) *family, values ...string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	pick(m).counts[key(values...)]++
	m.mu.Unlock()
}

// ObserveSync records one sync attempt: status is StatusSuccess, StatusError
// or StatusNoop and d is how long the attempt took.
func (m *Metrics) ObserveSync(status string, d time.Duration) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.syncCount.counts[status]++
	m.syncDuration.counts[status]++
	m.syncDuration.sums[status] += d.Seconds()
	m.mu.Unlock()
}

// IncFetch counts one sync that fetched and published, republished or
// confirmed a commit (not idle polls, not failures; see SPEC section 6).
func (m *Metrics) IncFetch() { m.add(func(m *Metrics) *family { return m.fetchCount }) }

// AskpassCall counts one call to the askpass URL; status is "success" or
// "error".
func (m *Metrics) AskpassCall(status string) {
	m.add(func(m *Metrics) *family { return m.askpassCalls }, status)
}

// GitHubAppRefresh counts one attempt to obtain a GitHub App installation
// token; status is "success" or "error".
func (m *Metrics) GitHubAppRefresh(status string) {
	m.add(func(m *Metrics) *family { return m.appRefresh }, status)
}

// HookRun counts one attempt of the hook called name; status is "success" or
// "error". Its signature fits hook.NewRunner's onRun callback.
func (m *Metrics) HookRun(name, status string) {
	m.add(func(m *Metrics) *family { return m.hookRuns }, name, status)
}

// ServeHTTP serves the exposition (GET /metrics).
func (m *Metrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_ = m.WriteText(w)
}

// WriteText writes every metric in the Prometheus text format, version
// 0.0.4, followed by a few process and Go runtime gauges under their usual
// names.
func (m *Metrics) WriteText(w io.Writer) error {
	var b strings.Builder
	m.mu.Lock()
	for _, f := range []*family{m.syncDuration, m.syncCount, m.fetchCount, m.askpassCalls, m.appRefresh, m.hookRuns} {
		f.write(&b)
	}
	m.mu.Unlock()
	m.writeProcess(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

func (f *family) write(b *strings.Builder) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.typ)
	keys := make([]string, 0, len(f.counts))
	for k := range f.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		labels := f.labelText(k)
		if f.typ == "summary" {
			fmt.Fprintf(b, "%s_sum%s %s\n", f.name, labels, formatFloat(f.sums[k]))
			fmt.Fprintf(b, "%s_count%s %s\n", f.name, labels, formatFloat(f.counts[k]))
			continue
		}
		fmt.Fprintf(b, "%s%s %s\n", f.name, labels, formatFloat(f.counts[k]))
	}
}

// labelText renders {name="value",...} for the label values in k.
func (f *family) labelText(k string) string {
	if len(f.labels) == 0 {
		return ""
	}
	values := strings.Split(k, "\xff")
	parts := make([]string, len(f.labels))
	for i, l := range f.labels {
		v := ""
		if i < len(values) {
			v = values[i]
		}
		parts[i] = l + `="` + escapeLabel(v) + `"`
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// writeProcess adds the process_* and go_* gauges dashboards commonly chart
// next to git-sync's own metrics.
func (m *Metrics) writeProcess(b *strings.Builder) {
	gauge := func(name, typ, help string, v float64) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, typ, name, formatFloat(v))
	}
	gauge("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch in seconds.",
		float64(m.start.UnixNano())/1e9)
	gauge("go_goroutines", "gauge", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	if stat, err := os.ReadFile("/proc/self/stat"); err == nil {
		// Fields after the command name (which may contain spaces).
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
			f := strings.Fields(string(stat)[i+1:])
			if len(f) > 21 {
				utime, _ := strconv.ParseFloat(f[11], 64)
				stime, _ := strconv.ParseFloat(f[12], 64)
				rss, _ := strconv.ParseFloat(f[21], 64)
				const ticks = 100 // USER_HZ on Linux
				gauge("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", (utime+stime)/ticks)
				gauge("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss*float64(os.Getpagesize()))
			}
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		gauge("process_open_fds", "gauge", "Number of open file descriptors.", float64(len(fds)))
	}
}
