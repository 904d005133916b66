// Package metrics keeps git-sync's counters and writes them in the
// Prometheus text exposition format, together with the standard go_* and
// process_* series of the Go client's default registry (runtime.go).
//
// The metric names and labels are part of the drop-in contract
// (docs/CONTRACT.md, section 6): existing dashboards and alerts query them by
// name, so they match upstream git-sync v4 exactly, standard series included.
//
// The exposition is written here rather than with client_golang, by
// measurement: the idle daemon of the benchmark (go run ./bench -quick
// -scenarios rss, small repository over file://, static build, metrics
// scraped throughout) had a steady RSS of 10.5-10.6 MiB before the standard
// series, 10.7-10.9 MiB with them written here, and 12.8-12.9 MiB with
// client_golang v1.25's default registry serving them instead (13.2-13.5
// MiB after 1,000 more polls, against 11.2): the library and the protobuf
// runtime it pulls in cost about 2 MiB of a budget of about 11 MiB, for a
// fixed set of series that a few hundred lines write. Tests parse the
// exposition with the Prometheus project's own parser.
package metrics

import (
	"bytes"
	"io"
	"math"
	"net/http"
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
	gateRejects  *family
	sigFailures  *family
	kept         *family
	triggers     *family
	webhookReqs  *family
	state        func() (lastAttempt, lastSuccess time.Time, failures int)
	sshKept      *family
	sshRenewals  *family
	serveReqs    *family
	serveBytes   *family
	serveActive  *family
}

// Trigger sources, the values of the source label of git_sync_triggers_total.
const (
	TriggerPeriod  = "period"
	TriggerSignal  = "signal"
	TriggerHTTP    = "http"
	TriggerWebhook = "webhook"
)

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
		gateRejects:  newFamily("git_sync_gate_rejections_total", "counter", "Number of new commits the publish gate refused."),
		sigFailures:  newFamily("git_sync_signature_failures_total", "counter", "Number of new commits refused by signature verification, by reason.", "reason"),
		kept:         newFamily("git_sync_worktrees_kept", "gauge", "Number of trees on disk besides the published one (see --keep-worktrees)."),
		triggers:     newFamily("git_sync_triggers_total", "counter", "Number of reasons to sync (timer, signal, POST /sync, webhook), coalesced or not.", "source"),
		webhookReqs:  newFamily("git_sync_webhook_requests_total", "counter", "Number of POST /webhook requests, by forge and result.", "forge", "result"),
		// git-sync's own (upstream has no kept SSH connection).
		sshKept:     newFamily("git_sync_ssh_kept_connection", "gauge", "1 while a kept SSH connection (an OpenSSH master) to the --repo host is up for git's ssh sessions, else 0."),
		sshRenewals: newFamily("git_sync_ssh_kept_connection_renewals_total", "counter", "Number of kept SSH connections replaced by a new one, by reason (key_file, known_hosts, repo, age, lost).", "reason"),
		// The relay (--serve-bind), git-sync's own.
		serveReqs:   newFamily("git_sync_serve_requests_total", "counter", "Number of git requests on --serve-bind, by result (ok, error, busy, unauthorized, forbidden, not_found, bad_request).", "result"),
		serveBytes:  newFamily("git_sync_serve_bytes_sent_total", "counter", "Bytes of git responses sent on --serve-bind."),
		serveActive: newFamily("git_sync_serve_active_requests", "gauge", "Number of git requests being served on --serve-bind."),
	}
	for _, s := range []string{TriggerPeriod, TriggerSignal, TriggerHTTP, TriggerWebhook} {
		m.triggers.counts[s] = 0
	}
	m.gateRejects.counts[""] = 0
	m.kept.counts[""] = 0
	m.sshKept.counts[""] = 0
	for _, s := range []string{StatusSuccess, StatusError, StatusNoop} {
		m.syncCount.counts[s] = 0
		m.syncDuration.counts[s] = 0
		m.syncDuration.sums[s] = 0
	}
	m.fetchCount.counts[""] = 0
	return m
}

// EnableServe makes the relay's series present from the start (with
// --serve-bind only: without it they would be noise).
func (m *Metrics) EnableServe() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.serveBytes.counts[""] = 0
	m.serveActive.counts[""] = 0
	for _, r := range []string{"ok", "error", "busy"} {
		m.serveReqs.counts[r] = 0
	}
	m.mu.Unlock()
}

// ServeRequest counts one request on --serve-bind by result.
func (m *Metrics) ServeRequest(result string) {
	m.add(func(m *Metrics) *family { return m.serveReqs }, result)
}

// ServeSent adds n bytes to the bytes sent on --serve-bind.
func (m *Metrics) ServeSent(n int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.serveBytes.counts[""] += float64(n)
	m.mu.Unlock()
}

// ServeActive adds delta (1 when a request starts, -1 when it ends) to the
// requests being served.
func (m *Metrics) ServeActive(delta int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.serveActive.counts[""] += float64(delta)
	m.mu.Unlock()
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
// confirmed a commit (not idle polls, not failures; see docs/CONTRACT.md,
// section 6).
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

// GateRejection counts one commit refused by the publish gate.
func (m *Metrics) GateRejection() { m.add(func(m *Metrics) *family { return m.gateRejects }) }

// SignatureFailure counts one commit refused by signature verification;
// reason is one of the verify package's reasons.
func (m *Metrics) SignatureFailure(reason string) {
	m.add(func(m *Metrics) *family { return m.sigFailures }, reason)
}

// SetWorktreesKept sets the number of trees on disk besides the published one.
func (m *Metrics) SetWorktreesKept(n int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.kept.counts[""] = float64(n)
	m.mu.Unlock()
}

// Trigger counts one reason to sync from source (TriggerPeriod, ...).
// Triggers that arrive during a sync are counted, though they coalesce into
// one more sync.
func (m *Metrics) Trigger(source string) {
	m.add(func(m *Metrics) *family { return m.triggers }, source)
}

// WebhookRequest counts one POST /webhook by forge and result; its
// signature fits webhook.Handler's Count.
func (m *Metrics) WebhookRequest(forge, result string) {
	m.add(func(m *Metrics) *family { return m.webhookReqs }, forge, result)
}

// SetSyncState installs the source of the gauges
// git_sync_last_attempt_timestamp_seconds,
// git_sync_last_success_timestamp_seconds and git_sync_consecutive_failures,
// read at each scrape (the status tracker keeps them).
func (m *Metrics) SetSyncState(fn func() (lastAttempt, lastSuccess time.Time, failures int)) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.state = fn
	m.mu.Unlock()
}

// SSHKeptConnection records whether a kept SSH connection is up.
func (m *Metrics) SSHKeptConnection(up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.mu.Lock()
	m.sshKept.counts[""] = v
	m.mu.Unlock()
}

// SSHKeptConnectionRenewal counts one kept SSH connection replaced by a new
// one; reason is "key_file", "known_hosts", "repo", "age" or "lost" (the
// previous one ended on its own).
func (m *Metrics) SSHKeptConnectionRenewal(reason string) {
	m.add(func(m *Metrics) *family { return m.sshRenewals }, reason)
}

// ServeHTTP serves the exposition (GET /metrics).
func (m *Metrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_ = m.WriteText(w)
}

// WriteText writes every metric in the Prometheus text format, version
// 0.0.4: git-sync's own families, then the go_* and process_* series of
// the Go client's default registry (runtime.go).
func (m *Metrics) WriteText(w io.Writer) error {
	var b bytes.Buffer
	m.mu.Lock()
	for _, f := range []*family{m.syncDuration, m.syncCount, m.fetchCount, m.askpassCalls, m.appRefresh, m.hookRuns, m.gateRejects, m.sigFailures, m.kept, m.triggers, m.webhookReqs, m.sshKept, m.sshRenewals, m.serveReqs, m.serveBytes, m.serveActive} {
		f.write(&b)
	}
	state := m.state
	m.mu.Unlock()
	if state != nil {
		lastAttempt, lastSuccess, failures := state()
		gauge(&b, "git_sync_last_attempt_timestamp_seconds", "When the last sync attempt ended, in seconds since the epoch; 0 before the first.", unixSeconds(lastAttempt))
		gauge(&b, "git_sync_last_success_timestamp_seconds", "When the last successful sync (idle polls included) ended, in seconds since the epoch; 0 before the first.", unixSeconds(lastSuccess))
		gauge(&b, "git_sync_consecutive_failures", "Number of sync attempts in a row that failed; 0 after a success.", float64(failures))
	}
	writeGo(&b)
	m.writeProcess(&b)
	_, err := w.Write(b.Bytes())
	return err
}

func (f *family) write(b *bytes.Buffer) {
	writeHeader(b, f.name, f.typ, f.help)
	keys := make([]string, 0, len(f.counts))
	for k := range f.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		labels := f.labelText(k)
		if f.typ == "summary" {
			sample(b, f.name+"_sum", labels, f.sums[k])
			sample(b, f.name+"_count", labels, f.counts[k])
			continue
		}
		sample(b, f.name, labels, f.counts[k])
	}
}

// labelText renders name="value",... for the label values in k.
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
	return strings.Join(parts, ",")
}

// labelEscaper escapes a label value for the text format.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// helpEscaper escapes HELP text: backslashes and line feeds only.
var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

// writeHeader writes the HELP and TYPE lines of a family.
func writeHeader(b *bytes.Buffer, name, typ, help string) {
	b.WriteString("# HELP ")
	b.WriteString(name)
	b.WriteByte(' ')
	b.WriteString(helpEscaper.Replace(help))
	b.WriteString("\n# TYPE ")
	b.WriteString(name)
	b.WriteByte(' ')
	b.WriteString(typ)
	b.WriteByte('\n')
}

// sample writes one sample line; labels is the text between the braces,
// "" for none.
func sample(b *bytes.Buffer, name, labels string, v float64) {
	b.WriteString(name)
	if labels != "" {
		b.WriteByte('{')
		b.WriteString(labels)
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
}

// gauge writes a family of one unlabelled gauge sample.
func gauge(b *bytes.Buffer, name, help string, v float64) {
	writeHeader(b, name, "gauge", help)
	sample(b, name, "", v)
}

// counter writes a family of one unlabelled counter sample.
func counter(b *bytes.Buffer, name, help string, v float64) {
	writeHeader(b, name, "counter", help)
	sample(b, name, "", v)
}

// formatFloat writes whole numbers below 2^53 as plain integers (a counter
// at a million reads "1000000", not "1e+06": the contract promises integers)
// and anything else in Go's shortest form, which the format accepts.
func formatFloat(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
