package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestInitialValues checks that a fresh Metrics exposes the three sync
// outcomes at zero and nothing else with labels yet.
func TestInitialValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg)
	want := `
# HELP git_sync_count_total Number of sync attempts, by outcome.
# TYPE git_sync_count_total counter
git_sync_count_total{status="error"} 0
git_sync_count_total{status="noop"} 0
git_sync_count_total{status="success"} 0
# HELP git_fetch_count_total Number of syncs that fetched and published (or confirmed) a commit.
# TYPE git_fetch_count_total counter
git_fetch_count_total 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"git_sync_count_total", "git_fetch_count_total",
		"git_sync_askpass_calls", "git_sync_refresh_github_app_token_count",
		"git_sync_hook_run_count_total"); err != nil {
		t.Error(err)
	}
}

func TestObservations(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.ObserveSync(StatusSuccess, 1500*time.Millisecond)
	m.ObserveSync(StatusSuccess, 500*time.Millisecond)
	m.ObserveSync(StatusNoop, 250*time.Millisecond)
	m.ObserveSync(StatusError, 0)
	m.IncFetch()
	m.IncFetch()
	m.AskpassCall("success")
	m.AskpassCall("error")
	m.AskpassCall("success")
	m.GitHubAppRefresh("success")
	m.HookRun("exechook", "success")
	m.HookRun("webhook", "error")
	m.HookRun("webhook", "error")

	want := `
# HELP git_sync_count_total Number of sync attempts, by outcome.
# TYPE git_sync_count_total counter
git_sync_count_total{status="error"} 1
git_sync_count_total{status="noop"} 1
git_sync_count_total{status="success"} 2
# HELP git_sync_duration_seconds Time taken by sync attempts, by outcome.
# TYPE git_sync_duration_seconds summary
git_sync_duration_seconds_sum{status="error"} 0
git_sync_duration_seconds_count{status="error"} 1
git_sync_duration_seconds_sum{status="noop"} 0.25
git_sync_duration_seconds_count{status="noop"} 1
git_sync_duration_seconds_sum{status="success"} 2
git_sync_duration_seconds_count{status="success"} 2
# HELP git_fetch_count_total Number of syncs that fetched and published (or confirmed) a commit.
# TYPE git_fetch_count_total counter
git_fetch_count_total 2
# HELP git_sync_askpass_calls Number of calls to the askpass URL, by outcome.
# TYPE git_sync_askpass_calls counter
git_sync_askpass_calls{status="error"} 1
git_sync_askpass_calls{status="success"} 2
# HELP git_sync_refresh_github_app_token_count Number of GitHub App token refreshes, by outcome.
# TYPE git_sync_refresh_github_app_token_count counter
git_sync_refresh_github_app_token_count{status="success"} 1
# HELP git_sync_hook_run_count_total Number of hook attempts, by hook name and outcome.
# TYPE git_sync_hook_run_count_total counter
git_sync_hook_run_count_total{name="exechook",status="success"} 1
git_sync_hook_run_count_total{name="webhook",status="error"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestExposedNames checks the names as a scraper sees them over HTTP:
// counters keep exactly the names dashboards use, with no _total added to or
// removed from any of them.
func TestExposedNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.ObserveSync(StatusSuccess, time.Second)
	m.IncFetch()
	m.AskpassCall("success")
	m.GitHubAppRefresh("error")
	m.HookRun("exechook", "success")

	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	for _, line := range []string{
		`git_sync_count_total{status="success"} 1`,
		`git_sync_count_total{status="error"} 0`,
		`git_sync_count_total{status="noop"} 0`,
		`git_sync_duration_seconds_count{status="success"} 1`,
		`git_sync_duration_seconds_sum{status="success"} 1`,
		`git_fetch_count_total 1`,
		`git_sync_askpass_calls{status="success"} 1`,
		`git_sync_refresh_github_app_token_count{status="error"} 1`,
		`git_sync_hook_run_count_total{name="exechook",status="success"} 1`,
	} {
		if !containsLine(body, line) {
			t.Errorf("exposition lacks line %q; got:\n%s", line, body)
		}
	}
	for _, bad := range []string{"git_sync_askpass_calls_total", "git_sync_refresh_github_app_token_count_total", "_total_total"} {
		if strings.Contains(body, bad) {
			t.Errorf("exposition contains %q", bad)
		}
	}
}

func containsLine(body, line string) bool {
	for l := range strings.Lines(body) {
		if strings.TrimSuffix(l, "\n") == line {
			return true
		}
	}
	return false
}

func TestNilMetricsIgnoresCalls(t *testing.T) {
	var m *Metrics
	m.ObserveSync(StatusSuccess, time.Second)
	m.IncFetch()
	m.AskpassCall("success")
	m.GitHubAppRefresh("success")
	m.HookRun("x", "success")
}

func TestDoubleRegistrationPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg)
	defer func() {
		if recover() == nil {
			t.Error("second New on one registry did not panic")
		}
	}()
	New(reg)
}
