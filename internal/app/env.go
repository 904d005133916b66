package app

import (
	"strings"

	"gitsync/internal/redact"
)

// secretVars carry secrets that git-sync has already read into memory. Git
// and hooks get credentials through the credential helper, so these are
// dropped from their environment: a child (or anything that can read its
// /proc/PID/environ) never sees them.
var secretVars = map[string]bool{
	"GITSYNC_PASSWORD": true, "GIT_SYNC_PASSWORD": true,
	"GITSYNC_GITHUB_APP_PRIVATE_KEY": true, "GIT_SYNC_GITHUB_APP_PRIVATE_KEY": true,
	"GITSYNC_CREDENTIAL": true, "GIT_SYNC_CREDENTIAL": true,
}

// urlVars may hold a URL with credentials or a token in it; they are
// dropped only when they do.
var urlVars = map[string]bool{
	"GITSYNC_REPO": true, "GIT_SYNC_REPO": true,
	"GITSYNC_ASKPASS_URL": true, "GIT_SYNC_ASKPASS_URL": true, "GIT_ASKPASS_URL": true,
	"GITSYNC_WEBHOOK_URL": true, "GIT_SYNC_WEBHOOK_URL": true,
}

// childEnv returns env without the variables that carry secrets.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if secretVars[k] || urlVars[k] && redact.HasSecret(v) {
			continue
		}
		out = append(out, kv)
	}
	return out
}
