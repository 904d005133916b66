package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestTriggersWebhooksAndState(t *testing.T) {
	m := New()
	wantLines(t, scrape(t, m),
		`git_sync_triggers_total{source="period"} 0`,
		`git_sync_triggers_total{source="webhook"} 0`,
		"# TYPE git_sync_webhook_requests_total counter",
	)
	if strings.Contains(scrape(t, m), "git_sync_consecutive_failures") {
		t.Error("state gauges written without a source")
	}
	m.Trigger(TriggerWebhook)
	m.Trigger(TriggerWebhook)
	m.Trigger(TriggerHTTP)
	m.WebhookRequest("github", "accepted")
	m.WebhookRequest("gitlab", "unauthorized")
	at := time.Unix(1700000000, 500_000_000)
	m.SetSyncState(func() (time.Time, time.Time, int) { return at, time.Time{}, 3 })
	text := scrape(t, m)
	wantLines(t, text,
		`git_sync_triggers_total{source="webhook"} 2`,
		`git_sync_triggers_total{source="http"} 1`,
		`git_sync_webhook_requests_total{forge="github",result="accepted"} 1`,
		`git_sync_webhook_requests_total{forge="gitlab",result="unauthorized"} 1`,
		"# TYPE git_sync_consecutive_failures gauge",
		"git_sync_consecutive_failures 3",
		"git_sync_last_attempt_timestamp_seconds 1.7000000005e+09",
		"git_sync_last_success_timestamp_seconds 0",
	)
	p := expfmt.NewTextParser(model.LegacyValidation)
	if _, err := p.TextToMetricFamilies(strings.NewReader(text)); err != nil {
		t.Fatalf("the Prometheus parser rejects the exposition: %v", err)
	}
}
