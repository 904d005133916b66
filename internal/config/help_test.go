package config

import (
	"strings"
	"testing"
)

func TestHelpListsEveryOption(t *testing.T) {
	var b strings.Builder
	WriteHelp(&b)
	help := b.String()
	for _, o := range newParser(nil).opts {
		if o.hidden {
			continue
		}
		if !strings.Contains(help, "  "+optionHeading(o)+"\n") {
			t.Errorf("--help does not list %s", optionHeading(o))
		}
		if n := o.newEnvName(); n != "" && !strings.Contains(help, "$"+n) {
			t.Errorf("--help does not name $%s", n)
		}
		if o.def != "" && !strings.Contains(help, "Default: "+o.def+".") {
			t.Errorf("--help does not give the default of %s", optionHeading(o))
		}
	}
	for _, s := range []string{"-h, -?, --help", "-v, --verbose=N", "$GITSYNC_PASSWORD", "$GITSYNC_GITHUB_APP_PRIVATE_KEY",
		"--password still works but is deprecated", "$GIT_SSH_KEY_FILE", "$GIT_SYNC_PERMISSIONS"} {
		if !strings.Contains(help, s) {
			t.Errorf("--help does not contain %q", s)
		}
	}
	for i, line := range strings.Split(help, "\n") {
		if len(line) > helpWidth {
			t.Errorf("--help line %d is %d columns wide: %q", i+1, len(line), line)
		}
	}
}

func TestManIsComplete(t *testing.T) {
	var b strings.Builder
	WriteMan(&b)
	man := b.String()
	want := []string{
		// Sections.
		"NAME\n", "SYNOPSIS\n", "DESCRIPTION\n", "THE ROOT DIRECTORY\n", "HOW ONE SYNC WORKS\n", "OPTIONS\n",
		"ENVIRONMENT\n", "GIT CONFIGURATION SYNTAX\n", "HOOKS\n", "AUTHENTICATION\n", "HTTP ENDPOINT\n",
		"LOGGING\n", "EXIT STATUS\n", "EXAMPLES\n",
		// The on-disk contract.
		".worktrees/HASH", "relative", "basename", "rename(2)",
		// Hooks.
		"idempotent", "more than once", "GITSYNC_HASH", "Gitsync-Hash",
		// Metrics.
		"git_sync_duration_seconds{status}", "git_sync_count_total{status}", "git_fetch_count_total",
		"git_sync_askpass_calls{status}", "git_sync_refresh_github_app_token_count{status}",
		"git_sync_hook_run_count_total{name,status}",
		// Examples.
		"Airflow",
		// Every deprecated variable.
		"$GIT_SYNC_BRANCH", "$GIT_SYNC_REV", "$GIT_SYNC_DEST", "$GIT_SYNC_WAIT", "$GIT_SYNC_TIMEOUT",
		"$GIT_SYNC_MAX_SYNC_FAILURES", "$GIT_SYNC_HOOK_COMMAND", "$GIT_SYNC_PERMISSIONS", "$GIT_SSH_KEY_FILE",
		"$GIT_KNOWN_HOSTS", "$GIT_SYNC_KNOWN_HOSTS", "$GIT_SSH_KNOWN_HOSTS_FILE", "$GIT_COOKIE_FILE",
		"$GIT_ASKPASS_URL", "$GIT_SYNC_PASSWORD", "$GIT_SYNC_PERIOD",
	}
	for _, s := range want {
		if !strings.Contains(man, s) {
			t.Errorf("--man does not contain %q", s)
		}
	}
	for _, o := range newParser(nil).opts {
		if !o.hidden && !strings.Contains(man, optionHeading(o)+"\n") {
			t.Errorf("--man does not describe %s", optionHeading(o))
		}
	}
}
