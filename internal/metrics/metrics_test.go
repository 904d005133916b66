package metrics

import (
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
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
