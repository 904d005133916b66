package e2e

// --askpass-url: an httptest server that answers username=/password= lines,
// called before every sync. Wrong answers, flaky answers, 5xx for a while
// and a server that comes up late are retried per the failure policy and
// recover; git_sync_askpass_calls{status} counts the calls.

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"gitsync/internal/gittest"
)

// askpassFixture is an upstream behind basic auth with the credentials the
// askpass server hands out when it answers right.
type askpassFixture struct {
	up      *gittest.Repo
	srv     *gittest.HTTP
	repoURL string
	h1      string
	user    string
	pass    string
}

func newAskpassFixture(t *testing.T) *askpassFixture {
	t.Helper()
	f := &askpassFixture{user: "askuser", pass: authSecret(t, "askpass")}
	f.up, f.srv, f.repoURL, f.h1 = authHTTPUpstream(t, gittest.HTTPOptions{Username: f.user, Password: f.pass})
	return f
}

// right and wrong are the two answers of a 200 response.
func (f *askpassFixture) right() (int, string) { return http.StatusOK, askpassBody(f.user, f.pass) }
func (f *askpassFixture) wrong() (int, string) {
	return http.StatusOK, askpassBody(f.user, "wrong-"+f.pass)
}

// start runs git-sync against the fixture with --askpass-url=url, a 100ms
// period and the given failure policy, and returns it with its metrics
// address.
func (f *askpassFixture) start(t *testing.T, url string, extra ...string) (*Proc, string, string) {
	t.Helper()
	root := newRoot(t)
	addr, margs := authMetricsArgs(t)
	p := start(t, concat([]string{
		"--repo=" + f.repoURL, "--root=" + root, "--link=link",
		"--askpass-url=" + url, "--period=100ms", "-v=9",
	}, margs, extra)...)
	return p, root, addr
}

func askpassCalls(addr, status string) float64 {
	return tryMetric(addr, "git_sync_askpass_calls", "status", status)
}

// checkSecrets fails if the askpass password shows up in the logs or on
// /metrics at addr.
func (f *askpassFixture) checkSecrets(t *testing.T, p *Proc, addr string) {
	t.Helper()
	secrets := []string{f.pass, authBasic(f.user, f.pass)}
	if found := findSecrets(p.Logs(), secrets); len(found) > 0 {
		t.Errorf("the askpass answer appears in the logs at -v=9: %q", found)
	}
	if found := findSecrets(metricsText(t, addr), secrets); len(found) > 0 {
		t.Errorf("the askpass answer appears in /metrics: %q", found)
	}
}

func TestAuthAskpassURL(t *testing.T) {
	t.Parallel()

	// The URL is fetched before every sync, and its answer is what git
	// gets: idle polls keep calling it.
	t.Run("called before every sync", func(t *testing.T) {
		t.Parallel()
		f := newAskpassFixture(t)
		ask := newAskpassServer(t, func(int) (int, string) { return f.right() })
		p, root, addr := f.start(t, ask.URL())
		link := filepath.Join(root, "link")
		waitForLink(t, p, link, f.h1)
		assertPublished(t, root, link, f.h1)
		syncs := func() float64 {
			return tryMetric(addr, "git_sync_count_total", "status", "success") +
				tryMetric(addr, "git_sync_count_total", "status", "noop") + authSyncErrors(addr)
		}
		base := ask.Calls()
		waitFor(t, syncDeadline, func() bool { return ask.Calls() >= base+3 }, "three more askpass calls on idle polls")
		h2 := f.up.Commit(map[string]string{"README": "two\n"}, "c2")
		waitForLink(t, p, link, h2)
		// Every sync made one call: compare the server's count with the
		// syncs counted on /metrics (one may be in flight between reads).
		s1 := syncs()
		calls := float64(ask.Calls())
		s2 := syncs()
		if calls < s1 || calls > s2+1 {
			t.Errorf("askpass calls = %v, syncs counted = %v..%v: want one call per sync", calls, s1, s2)
		}
		if v := askpassCalls(addr, "success"); v < float64(base+3) {
			t.Errorf("git_sync_askpass_calls{status=success} = %v, want >= %d", v, base+3)
		}
		if v := askpassCalls(addr, "error"); v != 0 {
			t.Errorf("git_sync_askpass_calls{status=error} = %v, want 0", v)
		}
		if bad := ask.Bad(); len(bad) > 0 {
			t.Errorf("askpass requests that are not GETs: %q", bad)
		}
		f.checkSecrets(t, p, addr)
	})

	// Wrong credentials for the first calls: git fails (no prompt), the
	// next sync asks again and gets the right ones.
	t.Run("wrong credentials first", func(t *testing.T) {
		t.Parallel()
		f := newAskpassFixture(t)
		ask := newAskpassServer(t, func(n int) (int, string) {
			if n <= 3 {
				return f.wrong()
			}
			return f.right()
		})
		p, root, addr := f.start(t, ask.URL(), "--max-failures=5")
		waitForLink(t, p, filepath.Join(root, "link"), f.h1)
		if f.srv.AuthFailures() == 0 {
			t.Error("the git server refused nothing: the wrong answers were not used")
		}
		if v := authSyncErrors(addr); v < 3 {
			t.Errorf("git_sync_count_total{status=error} = %v, want >= 3 (one per wrong answer)", v)
		}
		if v := askpassCalls(addr, "success"); v < 4 {
			t.Errorf("git_sync_askpass_calls{status=success} = %v, want >= 4 (200 answers count as success)", v)
		}
		f.checkSecrets(t, p, addr)
	})

	// A server that answers wrong every other time: syncs alternate between
	// failing and succeeding, and updates still arrive.
	t.Run("sometimes wrong", func(t *testing.T) {
		t.Parallel()
		f := newAskpassFixture(t)
		ask := newAskpassServer(t, func(n int) (int, string) {
			if n%2 == 1 {
				return f.wrong()
			}
			return f.right()
		})
		p, root, addr := f.start(t, ask.URL(), "--max-failures=-1")
		link := filepath.Join(root, "link")
		waitForLink(t, p, link, f.h1)
		h2 := f.up.Commit(map[string]string{"README": "two\n"}, "c2")
		waitForLink(t, p, link, h2)
		assertPublished(t, root, link, h2)
		waitFor(t, syncDeadline, func() bool { return authSyncErrors(addr) >= 2 }, "failed syncs counted for the wrong answers")
		authWaitRunning(t, p)
	})

	// 5xx for a while: each is an askpass error (counted), the sync fails
	// within the failure budget, and the first 200 recovers.
	t.Run("5xx for a while", func(t *testing.T) {
		t.Parallel()
		f := newAskpassFixture(t)
		const outage = 4
		ask := newAskpassServer(t, func(n int) (int, string) {
			if n <= outage {
				return http.StatusServiceUnavailable, "try later\n"
			}
			return f.right()
		})
		p, root, addr := f.start(t, ask.URL(), "--max-failures=10")
		waitForLink(t, p, filepath.Join(root, "link"), f.h1)
		if got := ask.Answered(http.StatusServiceUnavailable); got != outage {
			t.Fatalf("the server answered 503 %d times, want %d", got, outage)
		}
		if v := askpassCalls(addr, "error"); v != outage {
			t.Errorf("git_sync_askpass_calls{status=error} = %v, want %d", v, outage)
		}
		waitForMetric(t, addr, func(v float64) bool { return v >= 1 }, "successful askpass call",
			"git_sync_askpass_calls", "status", "success")
		if v := authSyncErrors(addr); v != outage {
			t.Errorf("git_sync_count_total{status=error} = %v, want %d", v, outage)
		}
		if !strings.Contains(p.Logs(), "503") {
			t.Error("the logs do not mention the askpass URL's 503")
		}
		f.checkSecrets(t, p, addr)
	})

	// Nothing listens at the askpass URL at first: connection errors are
	// retried until the server comes up.
	t.Run("server comes up late", func(t *testing.T) {
		t.Parallel()
		f := newAskpassFixture(t)
		addrAsk := freeAddr(t)
		p, root, addr := f.start(t, "http://"+addrAsk+"/askpass", "--max-failures=-1")
		waitForMetric(t, addr, func(v float64) bool { return v >= 2 }, "askpass errors while nothing listens",
			"git_sync_askpass_calls", "status", "error")
		if exists(filepath.Join(root, "link")) {
			t.Fatal("published without credentials")
		}
		ask := newAskpassServerAt(t, addrAsk, func(int) (int, string) { return f.right() })
		waitForLink(t, p, filepath.Join(root, "link"), f.h1)
		if ask.Calls() < 1 {
			t.Error("the late server saw no call")
		}
		waitForMetric(t, addr, func(v float64) bool { return v >= 1 }, "successful askpass call",
			"git_sync_askpass_calls", "status", "success")
	})

	// The failure policy still applies: with --max-failures=3 an askpass
	// URL that keeps failing ends git-sync after three attempts.
	t.Run("failure budget spent", func(t *testing.T) {
		t.Parallel()
		f := newAskpassFixture(t)
		ask := newAskpassServer(t, func(int) (int, string) { return http.StatusInternalServerError, "down\n" })
		p, _, _ := f.start(t, ask.URL(), "--max-failures=3")
		if code := p.Wait(syncDeadline); code != 1 {
			t.Fatalf("exit code %d, want 1 once the failure budget is spent\n%s", code, tail(p.Logs(), 20))
		}
		if got := ask.Calls(); got != 3 {
			t.Errorf("askpass calls = %d, want 3 (the third failure in a row ends the run)", got)
		}
		if !strings.Contains(p.Logs(), "askpass") {
			t.Error("the logs do not say that the askpass URL failed")
		}
	})
}
