package auth

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// askpassServer answers each call with what respond returns for the call
// number (1, 2, ...).
type askpassServer struct {
	mu      sync.Mutex
	calls   int
	respond func(call int) (status int, body string)
}

func (s *askpassServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls++
	n := s.calls
	respond := s.respond
	s.mu.Unlock()
	if r.Method != http.MethodGet {
		http.Error(w, "want GET", http.StatusMethodNotAllowed)
		return
	}
	status, body := respond(n)
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func (s *askpassServer) setRespond(f func(int) (int, string)) {
	s.mu.Lock()
	s.respond = f
	s.mu.Unlock()
}

func askpassAuth(t *testing.T, url string) (*Auth, *metricsRecorder) {
	t.Helper()
	m := newMetricsRecorder()
	cfg := baseConfig("https://git.example.com/org/repo")
	cfg.AskpassURL = url
	return newTestAuth(t, cfg, Options{Metrics: m}), m
}

func wantMetrics(t *testing.T, m *metricsRecorder, ok, bad int) {
	t.Helper()
	gotOK, gotBad, _, _ := m.counts()
	if gotOK != ok || gotBad != bad {
		t.Fatalf("askpass metrics: success=%d error=%d, want %d and %d", gotOK, gotBad, ok, bad)
	}
}

func TestAskpass(t *testing.T) {
	srv := &askpassServer{respond: func(int) (int, string) {
		return http.StatusOK, "username=ask-user\npassword=ask-pw-1\n"
	}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	a, m := askpassAuth(t, hs.URL+"/creds?token=query-secret")
	env := childEnv(t, a)

	// No credentials before the first Refresh.
	wantNoCredential(t, env, "https://git.example.com/org/repo")
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantCredential(t, env, "https://git.example.com/org/repo", "ask-user", "ask-pw-1")
	wantMetrics(t, m, 1, 0)

	// 5xx for a while: errors, the last answer stays in use, then success.
	srv.setRespond(func(n int) (int, string) {
		if n <= 4 {
			return http.StatusServiceUnavailable, "password=leak-in-body\n"
		}
		return http.StatusOK, "password=ask-pw-2\r\nusername=ask-user\r\nignored line\n"
	})
	for i := 0; i < 3; i++ {
		err := a.Refresh(context.Background())
		if err == nil || !strings.Contains(err.Error(), "503") {
			t.Fatalf("Refresh during outage = %v", err)
		}
		for _, leak := range []string{"query-secret", "leak-in-body", "ask-pw"} {
			if strings.Contains(err.Error(), leak) {
				t.Fatalf("error reveals %q: %v", leak, err)
			}
		}
		wantCredential(t, env, "https://git.example.com/org/repo", "ask-user", "ask-pw-1")
	}
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantCredential(t, env, "https://git.example.com/org/repo", "ask-user", "ask-pw-2")
	wantMetrics(t, m, 2, 3)

	// Intermittent: every other call fails.
	srv.setRespond(func(n int) (int, string) {
		if n%2 == 0 {
			return http.StatusInternalServerError, ""
		}
		return http.StatusOK, fmt.Sprintf("username=u%d\npassword=p%d\n", n, n)
	})
	ok, bad := 0, 0
	for i := 0; i < 6; i++ {
		if err := a.Refresh(context.Background()); err != nil {
			bad++
		} else {
			ok++
		}
	}
	if ok != 3 || bad != 3 {
		t.Fatalf("intermittent: %d successes, %d errors", ok, bad)
	}
	wantMetrics(t, m, 5, 6)

	// A 200 without a password is an error; so is a redirect loop's end.
	srv.setRespond(func(int) (int, string) { return http.StatusOK, "username=only\n" })
	if err := a.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "no password") {
		t.Fatalf("Refresh without password = %v", err)
	}
	srv.setRespond(func(int) (int, string) { return http.StatusNoContent, "" })
	if err := a.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "204") {
		t.Fatalf("Refresh with 204 = %v", err)
	}
	wantMetrics(t, m, 5, 8)
}

// TestAskpassComingUpLate: the askpass server is not listening yet (refused
// connections), then starts on the configured address.
func TestAskpassComingUpLate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	a, m := askpassAuth(t, "http://"+addr+"/askpass?key=query-secret")
	env := childEnv(t, a)
	for i := 0; i < 2; i++ {
		err := a.Refresh(context.Background())
		if err == nil || !strings.Contains(err.Error(), "--askpass-url") {
			t.Fatalf("Refresh with server down = %v", err)
		}
		if strings.Contains(err.Error(), "query-secret") {
			t.Fatalf("error reveals the URL's query: %v", err)
		}
	}
	wantMetrics(t, m, 0, 2)
	wantNoCredential(t, env, "https://git.example.com/org/repo")

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	hs := httptest.NewUnstartedServer(&askpassServer{respond: func(int) (int, string) {
		return http.StatusOK, "username=late\npassword=late-pw\n"
	}})
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	defer hs.Close()
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantMetrics(t, m, 1, 2)
	wantCredential(t, env, "https://git.example.com/org/repo", "late", "late-pw")
}

func TestAskpassContextCancelled(t *testing.T) {
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hs.Close()
	defer close(release)
	a, m := askpassAuth(t, hs.URL)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Refresh(ctx); err == nil {
		t.Fatal("Refresh with a cancelled context succeeded")
	}
	wantMetrics(t, m, 0, 1)
}
