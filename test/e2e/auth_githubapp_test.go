package e2e

// GitHub App authentication: git-sync signs an RS256 JWT with the app's
// private key, exchanges it at {--github-base-url}/app/installations/{id}/
// access_tokens for an installation token, and gives git that token as the
// password of user "-"; it renews the token before it expires. The fake
// GitHub API verifies the JWT with the app's public key and its claims, and
// the git server then demands the newest token.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

func TestAuthGitHubApp(t *testing.T) {
	t.Parallel()

	t.Run("application id and key file, renewal", func(t *testing.T) {
		t.Parallel()
		key, pkcs1, _ := authRSAKey(t)
		keyFile := filepath.Join(t.TempDir(), "app.pem")
		if err := os.WriteFile(keyFile, []byte(pkcs1), 0o600); err != nil {
			t.Fatal(err)
		}
		up, srv, repoURL, h1 := authHTTPUpstream(t, gittest.HTTPOptions{Username: "-", Password: authSecret(t, "no-token-yet")})
		const appID, installation = int64(4242), int64(99)
		api := newGitHubAPI(t, githubAPIOptions{
			Public: &key.PublicKey, Issuer: appID, Installation: installation,
			// The first token expires in 32 s, within a couple of seconds
			// of the 30 s renewal margin; later ones last an hour.
			Lifetime: func(n int) time.Duration {
				if n == 1 {
					return 32 * time.Second
				}
				return time.Hour
			},
			// Only the newest token opens the git server.
			OnIssue: srv.SetPassword,
		})
		root := newRoot(t)
		link := filepath.Join(root, "link")
		addr, margs := authMetricsArgs(t)
		p := start(t, concat([]string{
			"--repo=" + repoURL, "--root=" + root, "--link=link",
			"--github-app-private-key-file=" + keyFile,
			"--github-app-application-id=4242", "--github-app-installation-id=99",
			"--github-base-url=" + api.BaseURL(),
			"--period=100ms", "--max-failures=-1", "-v=9",
		}, margs)...)
		waitForLink(t, p, link, h1)
		assertPublished(t, root, link, h1)
		waitForMetric(t, addr, func(v float64) bool { return v >= 2 }, "the token renewed before it expires",
			"git_sync_refresh_github_app_token_count", "status", "success")
		// The git server now takes only the second token.
		h2 := up.Commit(map[string]string{"README": "two\n"}, "c2")
		waitForLink(t, p, link, h2)

		// A token that is valid for an hour is not renewed at every sync.
		noop := func() float64 { return tryMetric(addr, "git_sync_count_total", "status", "noop") }
		n0 := noop()
		waitFor(t, syncDeadline, func() bool { return noop() >= n0+5 }, "five idle polls")
		if got := len(api.Issued()); got != 2 {
			t.Errorf("the API issued %d tokens, want 2 (one renewal)", got)
		}
		if v := metric(t, addr, "git_sync_refresh_github_app_token_count", "status", "success"); v != 2 {
			t.Errorf("git_sync_refresh_github_app_token_count{status=success} = %v, want 2", v)
		}
		if v := metric(t, addr, "git_sync_refresh_github_app_token_count", "status", "error"); v != 0 {
			t.Errorf("git_sync_refresh_github_app_token_count{status=error} = %v, want 0", v)
		}
		if r := api.Rejected(); len(r) > 0 {
			t.Errorf("the API rejected requests: %q", r)
		}
		secrets := append(append(api.Issued(), api.JWTs()...), pemBodyLines(pkcs1)...)
		if found := findSecrets(p.Logs(), secrets); len(found) > 0 {
			t.Errorf("tokens, JWTs or key material appear in the logs at -v=9: %q", found)
		}
		if found := findSecrets(metricsText(t, addr), secrets); len(found) > 0 {
			t.Errorf("tokens, JWTs or key material appear in /metrics: %q", found)
		}
	})

	// The client id is a string issuer; the key comes from the environment
	// (PKCS#8); a GitHub Enterprise base URL with a path and no final slash.
	t.Run("client id and key in environment", func(t *testing.T) {
		t.Parallel()
		key, _, pkcs8 := authRSAKey(t)
		_, srv, repoURL, h1 := authHTTPUpstream(t, gittest.HTTPOptions{Username: "-", Password: authSecret(t, "no-token-yet")})
		const clientID = "Iv1.0123456789abcdef"
		api := newGitHubAPI(t, githubAPIOptions{
			Prefix: "/api/v3", Public: &key.PublicKey, Issuer: clientID, Installation: 7,
			OnIssue: srv.SetPassword,
		})
		root := newRoot(t)
		res := runWith(t, runOpts{Env: []string{"GITSYNC_GITHUB_APP_PRIVATE_KEY=" + pkcs8}},
			"--repo="+repoURL, "--root="+root, "--link=link", "--one-time", "-v=9",
			"--github-app-client-id="+clientID, "--github-app-installation-id=7",
			"--github-base-url="+api.BaseURL())
		if res.Code != 0 {
			t.Fatalf("want exit 0, got %s\nAPI rejections: %q", res, api.Rejected())
		}
		assertPublished(t, root, filepath.Join(root, "link"), h1)
		if got := len(api.Issued()); got != 1 {
			t.Errorf("the API issued %d tokens, want 1", got)
		}
		secrets := append(append(api.Issued(), api.JWTs()...), pemBodyLines(pkcs8)...)
		if found := findSecrets(res.Stderr+res.Stdout, secrets); len(found) > 0 {
			t.Errorf("tokens, JWTs or key material appear in the logs at -v=9: %q", found)
		}
	})

	// A JWT signed with another key is refused by the API: counted as a
	// refresh error, the sync fails with GitHub's message, and nothing is
	// published.
	t.Run("key the app does not have", func(t *testing.T) {
		t.Parallel()
		key, _, _ := authRSAKey(t)
		_, wrongPEM, _ := authRSAKey(t)
		keyFile := filepath.Join(t.TempDir(), "wrong.pem")
		if err := os.WriteFile(keyFile, []byte(wrongPEM), 0o600); err != nil {
			t.Fatal(err)
		}
		_, srv, repoURL, _ := authHTTPUpstream(t, gittest.HTTPOptions{Username: "-", Password: authSecret(t, "no-token-yet")})
		api := newGitHubAPI(t, githubAPIOptions{Public: &key.PublicKey, Issuer: int64(1), Installation: 2, OnIssue: srv.SetPassword})
		root := newRoot(t)
		addr, margs := authMetricsArgs(t)
		p := start(t, concat([]string{
			"--repo=" + repoURL, "--root=" + root, "--link=link",
			"--github-app-private-key-file=" + keyFile,
			"--github-app-application-id=1", "--github-app-installation-id=2",
			"--github-base-url=" + api.BaseURL(),
			"--period=100ms", "--max-failures=-1",
		}, margs)...)
		waitForMetric(t, addr, func(v float64) bool { return v >= 2 }, "refused token requests counted",
			"git_sync_refresh_github_app_token_count", "status", "error")
		if v := metric(t, addr, "git_sync_refresh_github_app_token_count", "status", "success"); v != 0 {
			t.Errorf("git_sync_refresh_github_app_token_count{status=success} = %v, want 0", v)
		}
		if len(api.Issued()) != 0 {
			t.Error("the API issued a token for a JWT signed with the wrong key")
		}
		logs := p.Logs()
		if !strings.Contains(logs, "401") || !strings.Contains(logs, "signature does not verify") {
			t.Errorf("the logs do not carry the API's refusal (401 and its message):\n%s", tail(logs, 10))
		}
		if exists(filepath.Join(root, "link")) {
			t.Error("published without a token")
		}
	})
}
