package app

import (
	"reflect"
	"testing"
)

func TestChildEnvDropsSecrets(t *testing.T) {
	env := []string{
		"PATH=/bin",
		"GITSYNC_PASSWORD=pw",
		"GIT_SYNC_PASSWORD=pw",
		"GITSYNC_GITHUB_APP_PRIVATE_KEY=key",
		"GITSYNC_CREDENTIAL={}",
		"GITSYNC_REPO=https://u:pw@host/r.git",
		"GIT_SYNC_REPO=https://host/r.git",
		"GITSYNC_ASKPASS_URL=http://host/ask?token=t",
		"GIT_ASKPASS_URL=http://host/ask",
		"GITSYNC_USERNAME=u",
		"GITSYNC_WEBHOOK_URL=https://hooks.example/x?token=t",
		"GIT_SYNC_WEBHOOK_URL=https://hooks.example/x",
	}
	want := []string{"PATH=/bin", "GIT_SYNC_REPO=https://host/r.git", "GIT_ASKPASS_URL=http://host/ask", "GITSYNC_USERNAME=u",
		"GIT_SYNC_WEBHOOK_URL=https://hooks.example/x"}
	if got := childEnv(env); !reflect.DeepEqual(got, want) {
		t.Fatalf("childEnv =\n%q\nwant\n%q", got, want)
	}
}
