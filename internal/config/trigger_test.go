package config

import (
	"strings"
	"testing"
	"time"
)

// The options of issue 12 that only make sense with a listener.
func TestTriggerSettings(t *testing.T) {
	r := mustParse(t, []string{"--http-bind=:8080", "--max-staleness=5m", "--sync-token-file=/s/token",
		"--webhook-secret-file=/s/hook", "--webhook-bind=:9090"})
	c := r.Config
	if c.MaxStaleness != 5*time.Minute || c.SyncTokenFile != "/s/token" || c.WebhookSecretFile != "/s/hook" || c.WebhookBind != ":9090" {
		t.Errorf("parsed %+v", c)
	}
	r = mustParse(t, nil, "GITSYNC_WEBHOOK_BIND=:9090", "GITSYNC_WEBHOOK_SECRET_FILE=/s/hook",
		"GITSYNC_SYNC_TOKEN_FILE=/s/token", "GITSYNC_MAX_STALENESS=1m", "GITSYNC_HTTP_BIND=:1")
	c = r.Config
	if c.MaxStaleness != time.Minute || c.SyncTokenFile != "/s/token" || c.WebhookSecretFile != "/s/hook" || c.WebhookBind != ":9090" {
		t.Errorf("from the environment: %+v", c)
	}
	// Only the trigger listener: fine.
	mustParse(t, []string{"--webhook-bind=:9090", "--webhook-secret-file=/s/hook"})

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-staleness=1m"}, "--max-staleness needs --http-bind"},
		{[]string{"--http-bind=:1", "--max-staleness=-1s"}, "--max-staleness must not be negative, got -1s"},
		{[]string{"--failure-backoff-max=-1s"}, "--failure-backoff-max must not be negative, got -1s"},
		{[]string{"--period-jitter=1"}, "--period-jitter must be at least 0 and below 1, got 1"},
		{[]string{"--period-jitter=-0.1"}, "--period-jitter must be at least 0 and below 1, got -0.1"},
		{[]string{"--period-jitter=NaN"}, "--period-jitter must be at least 0 and below 1, got NaN"},
		{[]string{"--webhook-bind=:9090"}, "--webhook-bind needs --sync-token-file or --webhook-secret-file"},
		{[]string{"--sync-token-file=/s/t"}, "--sync-token-file and --webhook-secret-file need --http-bind or --webhook-bind"},
	} {
		if err := parseErr(t, tc.args); !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
