package e2e

// URLs in logs and error messages lose their user information and their
// query (where tokens travel), whichever flag they came from. The request
// itself still carries them.

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"gitsync/internal/gittest"
)

func TestAuthWebhookURLRedacted(t *testing.T) {
	t.Parallel()

	// A webhook that answers 500 at first: its failures are logged (with
	// the URL), then it succeeds. The token reaches the server every time.
	t.Run("failing webhook", func(t *testing.T) {
		t.Parallel()
		token := authSecret(t, "hook-token")
		pass := authSecret(t, "hook-pass")
		var calls, withToken atomic.Int64
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := calls.Add(1)
			if u, p, ok := r.BasicAuth(); ok && u == "hooker" && p == pass && r.URL.Query().Get("token") == token {
				withToken.Add(1)
			}
			if n <= 2 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusOK)
		}))
		t.Cleanup(hook.Close)
		hookURL := strings.Replace(hook.URL, "http://", "http://hooker:"+pass+"@", 1) + "/notify?token=" + token + "&x=1"

		up, h1 := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		p := start(t, concat(syncArgs(up, root), []string{
			"--period=100ms", "--webhook-url=" + hookURL, "--webhook-backoff=1s", "-v=9",
		})...)
		waitForLink(t, p, filepath.Join(root, "link"), h1)
		waitFor(t, syncDeadline, func() bool { return calls.Load() >= 3 }, "the webhook to be retried until it succeeds")
		if withToken.Load() != calls.Load() {
			t.Errorf("%d of %d webhook requests carried the URL's credentials and token", withToken.Load(), calls.Load())
		}
		logs := p.Logs()
		if !strings.Contains(logs, "500") {
			t.Errorf("the logs do not report the webhook's 500:\n%s", tail(logs, 20))
		}
		if found := findSecrets(logs, []string{token, pass}); len(found) > 0 {
			t.Errorf("the webhook URL's secrets appear in the logs at -v=9: %q", found)
		}
	})

	// Nothing listens: the HTTP client's own error quotes the URL.
	t.Run("unreachable webhook", func(t *testing.T) {
		t.Parallel()
		token := authSecret(t, "hook-token")
		hookURL := "http://" + freeAddr(t) + "/notify?token=" + token
		up, h1 := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		p := start(t, concat(syncArgs(up, root), []string{
			"--period=100ms", "--webhook-url=" + hookURL, "--webhook-backoff=1s", "-v=9",
		})...)
		waitForLink(t, p, filepath.Join(root, "link"), h1)
		waitFor(t, syncDeadline, func() bool { return strings.Contains(p.Logs(), "connection refused") },
			"a logged webhook failure")
		if found := findSecrets(p.Logs(), []string{token}); len(found) > 0 {
			t.Errorf("the webhook URL's token appears in the logs at -v=9: %q", found)
		}
	})
}
