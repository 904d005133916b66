package metrics

import (
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q", ct)
	}
	return rec.Body.String()
}

func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	have := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		have[l] = true
	}
	for _, l := range lines {
		if !have[l] {
			t.Errorf("missing line %q in:\n%s", l, text)
		}
	}
}

func TestInitialValues(t *testing.T) {
	text := scrape(t, New())
	wantLines(t, text,
		"# TYPE git_sync_count_total counter",
		`git_sync_count_total{status="success"} 0`,
		`git_sync_count_total{status="error"} 0`,
		`git_sync_count_total{status="noop"} 0`,
		"# TYPE git_sync_duration_seconds summary",
		`git_sync_duration_seconds_count{status="noop"} 0`,
		`git_sync_duration_seconds_sum{status="noop"} 0`,
		"git_fetch_count_total 0",
		"# TYPE git_sync_askpass_calls counter",
		"# TYPE git_sync_refresh_github_app_token_count counter",
		"# TYPE git_sync_hook_run_count_total counter",
		"# TYPE process_resident_memory_bytes gauge",
	)
	if strings.Contains(text, "git_sync_askpass_calls_total") || strings.Contains(text, "git_sync_refresh_github_app_token_count_total") {
		t.Error("upstream's names have no _total suffix for askpass and GitHub App counters")
	}
}

func TestObservations(t *testing.T) {
	m := New()
	m.ObserveSync(StatusSuccess, 1500*time.Millisecond)
	m.ObserveSync(StatusNoop, time.Second)
	m.ObserveSync(StatusNoop, time.Second)
	m.IncFetch()
	m.AskpassCall("success")
	m.AskpassCall("error")
	m.AskpassCall("error")
	m.GitHubAppRefresh("success")
	m.HookRun("exechook", "error")
	m.HookRun("webhook", "success")
	m.HookRun(`we"ird`, "success")
	wantLines(t, scrape(t, m),
		`git_sync_count_total{status="success"} 1`,
		`git_sync_count_total{status="noop"} 2`,
		`git_sync_duration_seconds_sum{status="success"} 1.5`,
		`git_sync_duration_seconds_count{status="noop"} 2`,
		`git_sync_duration_seconds_sum{status="noop"} 2`,
		"git_fetch_count_total 1",
		`git_sync_askpass_calls{status="success"} 1`,
		`git_sync_askpass_calls{status="error"} 2`,
		`git_sync_refresh_github_app_token_count{status="success"} 1`,
		`git_sync_hook_run_count_total{name="exechook",status="error"} 1`,
		`git_sync_hook_run_count_total{name="webhook",status="success"} 1`,
		`git_sync_hook_run_count_total{name="we\"ird",status="success"} 1`,
	)
}

func TestConcurrentUse(t *testing.T) {
	m := New()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				m.ObserveSync(StatusNoop, time.Millisecond)
				m.HookRun("exechook", "success")
				_ = m.WriteText(&strings.Builder{})
			}
		}()
	}
	wg.Wait()
	wantLines(t, scrape(t, m),
		`git_sync_count_total{status="noop"} 800`,
		`git_sync_hook_run_count_total{name="exechook",status="success"} 800`)
}

func TestNilMetricsIgnoresCalls(t *testing.T) {
	var m *Metrics
	m.ObserveSync(StatusSuccess, time.Second)
	m.IncFetch()
	m.AskpassCall("success")
	m.GitHubAppRefresh("error")
	m.HookRun("x", "success")
}

// parse reads an exposition with the Prometheus project's own parser, so
// that anything a real scraper would reject fails the test.
func parse(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, text)
	}
	return families
}

// standardFamilies are the series the Go client's default registry serves
// (its Go and process collectors, as of client_golang v1.25 on Linux) with
// their types. Upstream git-sync serves that registry; dashboards and alerts
// query these names.
var standardFamilies = map[string]dto.MetricType{
	"go_gc_duration_seconds":               dto.MetricType_SUMMARY,
	"go_gc_gogc_percent":                   dto.MetricType_GAUGE,
	"go_gc_gomemlimit_bytes":               dto.MetricType_GAUGE,
	"go_goroutines":                        dto.MetricType_GAUGE,
	"go_info":                              dto.MetricType_GAUGE,
	"go_memstats_alloc_bytes":              dto.MetricType_GAUGE,
	"go_memstats_alloc_bytes_total":        dto.MetricType_COUNTER,
	"go_memstats_buck_hash_sys_bytes":      dto.MetricType_GAUGE,
	"go_memstats_frees_total":              dto.MetricType_COUNTER,
	"go_memstats_gc_sys_bytes":             dto.MetricType_GAUGE,
	"go_memstats_heap_alloc_bytes":         dto.MetricType_GAUGE,
	"go_memstats_heap_idle_bytes":          dto.MetricType_GAUGE,
	"go_memstats_heap_inuse_bytes":         dto.MetricType_GAUGE,
	"go_memstats_heap_objects":             dto.MetricType_GAUGE,
	"go_memstats_heap_released_bytes":      dto.MetricType_GAUGE,
	"go_memstats_heap_sys_bytes":           dto.MetricType_GAUGE,
	"go_memstats_last_gc_time_seconds":     dto.MetricType_GAUGE,
	"go_memstats_mallocs_total":            dto.MetricType_COUNTER,
	"go_memstats_mcache_inuse_bytes":       dto.MetricType_GAUGE,
	"go_memstats_mcache_sys_bytes":         dto.MetricType_GAUGE,
	"go_memstats_mspan_inuse_bytes":        dto.MetricType_GAUGE,
	"go_memstats_mspan_sys_bytes":          dto.MetricType_GAUGE,
	"go_memstats_next_gc_bytes":            dto.MetricType_GAUGE,
	"go_memstats_other_sys_bytes":          dto.MetricType_GAUGE,
	"go_memstats_stack_inuse_bytes":        dto.MetricType_GAUGE,
	"go_memstats_stack_sys_bytes":          dto.MetricType_GAUGE,
	"go_memstats_sys_bytes":                dto.MetricType_GAUGE,
	"go_sched_gomaxprocs_threads":          dto.MetricType_GAUGE,
	"go_threads":                           dto.MetricType_GAUGE,
	"process_cpu_seconds_total":            dto.MetricType_COUNTER,
	"process_max_fds":                      dto.MetricType_GAUGE,
	"process_network_receive_bytes_total":  dto.MetricType_COUNTER,
	"process_network_transmit_bytes_total": dto.MetricType_COUNTER,
	"process_open_fds":                     dto.MetricType_GAUGE,
	"process_resident_memory_bytes":        dto.MetricType_GAUGE,
	"process_start_time_seconds":           dto.MetricType_GAUGE,
	"process_virtual_memory_bytes":         dto.MetricType_GAUGE,
	"process_virtual_memory_max_bytes":     dto.MetricType_GAUGE,
}

// ownFamilies are git-sync's own metrics (docs/CONTRACT.md, section 6) with
// their types.
var ownFamilies = map[string]dto.MetricType{
	"git_sync_duration_seconds":               dto.MetricType_SUMMARY,
	"git_sync_count_total":                    dto.MetricType_COUNTER,
	"git_fetch_count_total":                   dto.MetricType_COUNTER,
	"git_sync_askpass_calls":                  dto.MetricType_COUNTER,
	"git_sync_refresh_github_app_token_count": dto.MetricType_COUNTER,
	"git_sync_hook_run_count_total":           dto.MetricType_COUNTER,
	// Beyond upstream (issue 15).
	"git_sync_gate_rejections_total":    dto.MetricType_COUNTER,
	"git_sync_signature_failures_total": dto.MetricType_COUNTER,
	"git_sync_worktrees_kept":           dto.MetricType_GAUGE,
	// Beyond upstream (issue 12).
	"git_sync_triggers_total":                 dto.MetricType_COUNTER,
	"git_sync_webhook_requests_total":         dto.MetricType_COUNTER,
	"git_sync_last_attempt_timestamp_seconds": dto.MetricType_GAUGE,
	"git_sync_last_success_timestamp_seconds": dto.MetricType_GAUGE,
	"git_sync_consecutive_failures":           dto.MetricType_GAUGE,
	// Beyond upstream (issue 16).
	"git_sync_ssh_kept_connection":                dto.MetricType_GAUGE,
	"git_sync_ssh_kept_connection_renewals_total": dto.MetricType_COUNTER,
}

// value returns the value of the only, unlabelled sample of family name.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil || len(f.Metric) != 1 {
		t.Fatalf("%s: want one sample, have %v", name, f)
	}
	m := f.Metric[0]
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	t.Fatalf("%s: not a gauge or counter", name)
	return 0
}

// TestStandardSeries checks that /metrics carries the default registry's
// go_* and process_* families under the same names and types, with help
// text, and with values that describe this process.
func TestStandardSeries(t *testing.T) {
	m := New()
	m.HookRun("exechook", "success")
	m.AskpassCall("success")
	m.GitHubAppRefresh("error")
	m.SignatureFailure("unsigned")
	m.WebhookRequest("github", "accepted")
	m.SetSyncState(func() (time.Time, time.Time, int) { return time.Now(), time.Now(), 0 })
	m.SSHKeptConnectionRenewal("age")
	fams := parse(t, scrape(t, m))

	for _, want := range []map[string]dto.MetricType{standardFamilies, ownFamilies} {
		for name, typ := range want {
			f := fams[name]
			if f == nil {
				t.Errorf("family %s is missing", name)
				continue
			}
			if f.GetType() != typ {
				t.Errorf("%s has type %v, want %v", name, f.GetType(), typ)
			}
			if f.GetHelp() == "" {
				t.Errorf("%s has no help text", name)
			}
		}
	}
	for name := range fams {
		_, std := standardFamilies[name]
		_, own := ownFamilies[name]
		if !std && !own {
			t.Errorf("unexpected family %s", name)
		}
	}
	if t.Failed() {
		return
	}

	// Values that must describe this very process.
	var self syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &self); err != nil {
		t.Fatal(err)
	}
	if got := value(t, fams, "process_max_fds"); got != float64(self.Cur) {
		t.Errorf("process_max_fds = %v, want the soft RLIMIT_NOFILE %d", got, self.Cur)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	// ReadDir's own descriptor is in its listing, as the scrape's was in
	// its count (and is subtracted there); a few more may open meanwhile.
	if got := value(t, fams, "process_open_fds"); got < 3 || got > float64(len(fds)+4) {
		t.Errorf("process_open_fds = %v, /proc/self/fd lists %d", got, len(fds))
	}
	rss := value(t, fams, "process_resident_memory_bytes")
	vsz := value(t, fams, "process_virtual_memory_bytes")
	if rss < 1<<20 || vsz < rss {
		t.Errorf("process_resident_memory_bytes = %v, process_virtual_memory_bytes = %v", rss, vsz)
	}
	started := value(t, fams, "process_start_time_seconds")
	if now := float64(time.Now().Unix()); started > now+1 || started < now-3600 {
		t.Errorf("process_start_time_seconds = %v, now is %v", started, now)
	}
	if got := value(t, fams, "process_cpu_seconds_total"); got < 0 {
		t.Errorf("process_cpu_seconds_total = %v", got)
	}
	if got := value(t, fams, "go_goroutines"); got < 1 {
		t.Errorf("go_goroutines = %v", got)
	}
	if got := value(t, fams, "go_threads"); got < 1 {
		t.Errorf("go_threads = %v", got)
	}
	if got := value(t, fams, "go_sched_gomaxprocs_threads"); got != float64(runtime.GOMAXPROCS(0)) {
		t.Errorf("go_sched_gomaxprocs_threads = %v, want %d", got, runtime.GOMAXPROCS(0))
	}
	if got := value(t, fams, "go_gc_gomemlimit_bytes"); got != float64(debug.SetMemoryLimit(-1)) {
		t.Errorf("go_gc_gomemlimit_bytes = %v, want %d", got, debug.SetMemoryLimit(-1))
	}
	inuse := value(t, fams, "go_memstats_heap_inuse_bytes")
	if sys := value(t, fams, "go_memstats_heap_sys_bytes"); inuse <= 0 || sys < inuse {
		t.Errorf("go_memstats_heap_inuse_bytes = %v, go_memstats_heap_sys_bytes = %v", inuse, sys)
	}
	if alloc, total := value(t, fams, "go_memstats_alloc_bytes"), value(t, fams, "go_memstats_alloc_bytes_total"); alloc <= 0 || total < alloc {
		t.Errorf("go_memstats_alloc_bytes = %v, go_memstats_alloc_bytes_total = %v", alloc, total)
	}
	info := fams["go_info"].Metric
	if len(info) != 1 || len(info[0].Label) != 1 || info[0].Label[0].GetName() != "version" || info[0].Label[0].GetValue() != runtime.Version() {
		t.Errorf("go_info = %v, want one sample labelled version=%q", info, runtime.Version())
	}
	gc := fams["go_gc_duration_seconds"].Metric
	if len(gc) != 1 || len(gc[0].GetSummary().GetQuantile()) != 5 {
		t.Fatalf("go_gc_duration_seconds = %v, want one summary with 5 quantiles", gc)
	}
}

// TestGCSeriesFollowCollections checks that the GC series move with real
// collections: the pause summary counts them and the last-GC time follows.
func TestGCSeriesFollowCollections(t *testing.T) {
	m := New()
	runtime.GC()
	before := parse(t, scrape(t, m))
	runtime.GC()
	runtime.GC()
	after := parse(t, scrape(t, m))
	n0 := before["go_gc_duration_seconds"].Metric[0].GetSummary().GetSampleCount()
	n1 := after["go_gc_duration_seconds"].Metric[0].GetSummary().GetSampleCount()
	if n1 < n0+2 {
		t.Errorf("go_gc_duration_seconds_count went from %d to %d over two collections", n0, n1)
	}
	last := value(t, after, "go_memstats_last_gc_time_seconds")
	if now := float64(time.Now().UnixNano()) / 1e9; last > now || last < now-60 {
		t.Errorf("go_memstats_last_gc_time_seconds = %v, now is %v", last, now)
	}
	q := after["go_gc_duration_seconds"].Metric[0].GetSummary().GetQuantile()
	for i := 1; i < len(q); i++ {
		if q[i].GetValue() < q[i-1].GetValue() {
			t.Errorf("quantile %v = %v is below quantile %v = %v", q[i].GetQuantile(), q[i].GetValue(), q[i-1].GetQuantile(), q[i-1].GetValue())
		}
	}
}

// TestRuntimeNamesExist guards against a Go release renaming a
// runtime/metrics sample: a name it does not know would read as a silent 0.
func TestRuntimeNamesExist(t *testing.T) {
	known := map[string]rtmetrics.ValueKind{}
	for _, d := range rtmetrics.All() {
		known[d.Name] = d.Kind
	}
	for _, name := range runtimeNames {
		if k, ok := known[name]; !ok || k != rtmetrics.KindUint64 {
			t.Errorf("runtime/metrics sample %s: known %v, kind %v; want a uint64", name, ok, k)
		}
	}
}

// TestLargeCountersAreIntegers checks the contract that counter values are
// integers in the exposition, also past a million.
func TestLargeCountersAreIntegers(t *testing.T) {
	m := New()
	m.mu.Lock()
	m.syncCount.counts[StatusNoop] = 12345678
	m.mu.Unlock()
	wantLines(t, scrape(t, m), `git_sync_count_total{status="noop"} 12345678`)
}

// TestPublishCounters: the gate, signature and retention series count what
// they are told, through the real parser.
func TestPublishCounters(t *testing.T) {
	m := New()
	fams := parse(t, scrape(t, m))
	if v := value(t, fams, "git_sync_gate_rejections_total"); v != 0 {
		t.Fatalf("gate rejections before any = %v", v)
	}
	m.GateRejection()
	m.GateRejection()
	m.SetWorktreesKept(7)
	m.SetWorktreesKept(5)
	m.SignatureFailure("expired-key")
	fams = parse(t, scrape(t, m))
	if v := value(t, fams, "git_sync_gate_rejections_total"); v != 2 {
		t.Errorf("gate rejections = %v, want 2", v)
	}
	if v := value(t, fams, "git_sync_worktrees_kept"); v != 5 {
		t.Errorf("worktrees kept = %v, want 5", v)
	}
	f := fams["git_sync_signature_failures_total"]
	if f == nil || len(f.Metric) != 1 || f.Metric[0].GetLabel()[0].GetValue() != "expired-key" || f.Metric[0].Counter.GetValue() != 1 {
		t.Errorf("signature failures = %v", f)
	}
}

// TestSSHKeptConnection: the gauge is 0 until a kept connection is up and
// follows it; renewals count by reason.
func TestSSHKeptConnection(t *testing.T) {
	m := New()
	fams := parse(t, scrape(t, m))
	if v := value(t, fams, "git_sync_ssh_kept_connection"); v != 0 {
		t.Errorf("gauge at start = %v, want 0", v)
	}
	m.SSHKeptConnection(true)
	m.SSHKeptConnectionRenewal("key_file")
	m.SSHKeptConnectionRenewal("key_file")
	m.SSHKeptConnectionRenewal("age")
	fams = parse(t, scrape(t, m))
	if v := value(t, fams, "git_sync_ssh_kept_connection"); v != 1 {
		t.Errorf("gauge when up = %v, want 1", v)
	}
	got := map[string]float64{}
	for _, s := range fams["git_sync_ssh_kept_connection_renewals_total"].GetMetric() {
		got[s.GetLabel()[0].GetValue()] = s.GetCounter().GetValue()
	}
	if got["key_file"] != 2 || got["age"] != 1 || len(got) != 2 {
		t.Errorf("renewals = %v, want key_file 2, age 1", got)
	}
	m.SSHKeptConnection(false)
	fams = parse(t, scrape(t, m))
	if v := value(t, fams, "git_sync_ssh_kept_connection"); v != 0 {
		t.Errorf("gauge when down = %v, want 0", v)
	}
}
