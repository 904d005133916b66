package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// start listens on a free loopback port, serves in the background and
// registers a cleanup that shuts down and checks Serve's result.
func start(t *testing.T, opts Options) *Server {
	t.Helper()
	opts.Bind = "127.0.0.1:0"
	s, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func get(t *testing.T, s *Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestReadiness(t *testing.T) {
	var ready atomic.Bool
	s := start(t, Options{Ready: ready.Load})
	if code, _ := get(t, s, "/"); code != http.StatusServiceUnavailable {
		t.Errorf("before ready: GET / = %d, want 503", code)
	}
	ready.Store(true)
	code, body := get(t, s, "/")
	if code != http.StatusOK {
		t.Errorf("after ready: GET / = %d, want 200", code)
	}
	if body == "" {
		t.Error("after ready: empty body")
	}
	// Probes set up for upstream on other paths keep working.
	if code, _ := get(t, s, "/healthz"); code != http.StatusOK {
		t.Errorf("after ready: GET /healthz = %d, want 200", code)
	}
}

func TestNilReadyIsNotReady(t *testing.T) {
	s := start(t, Options{})
	if code, _ := get(t, s, "/"); code != http.StatusServiceUnavailable {
		t.Errorf("GET / = %d, want 503", code)
	}
}

func TestMetrics(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "test_things_total 3\n") })
	on := start(t, Options{Metrics: h})
	code, body := get(t, on, "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "test_things_total 3\n") {
		t.Errorf("metrics on: GET /metrics = %d %q", code, body)
	}
	// Without the option the path is not metrics (it falls to readiness).
	off := start(t, Options{})
	code, body = get(t, off, "/metrics")
	if code == http.StatusOK || strings.Contains(body, "test_things_total") {
		t.Errorf("metrics off: GET /metrics = %d %q", code, body)
	}
}

func TestPprof(t *testing.T) {
	on := start(t, Options{Pprof: true})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		if code, _ := get(t, on, path); code != http.StatusOK {
			t.Errorf("pprof on: GET %s = %d, want 200", path, code)
		}
	}
	code, body := get(t, on, "/debug/pprof/goroutine?debug=1")
	if code != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("pprof on: goroutine profile = %d %q", code, body)
	}
	off := start(t, Options{})
	code, body = get(t, off, "/debug/pprof/goroutine?debug=1")
	if code == http.StatusOK || strings.Contains(body, "goroutine profile:") {
		t.Errorf("pprof off: GET /debug/pprof/goroutine = %d %q", code, body)
	}
}

func TestBadAddressFailsFast(t *testing.T) {
	for _, bind := range []string{"127.0.0.1:notaport", "256.0.0.1:80"} {
		if s, err := Listen(Options{Bind: bind}); err == nil {
			s.Shutdown(context.Background())
			t.Errorf("Listen(%q) succeeded", bind)
		}
	}
	// An address in use fails too.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if s, err := Listen(Options{Bind: ln.Addr().String()}); err == nil {
		s.Shutdown(context.Background())
		t.Errorf("Listen on a busy address %s succeeded", ln.Addr())
	}
}

// TestShutdownReleasesAddress checks that the port is free again once
// Shutdown returns, and that Serve then returns nil.
func TestShutdownReleasesAddress(t *testing.T) {
	s, err := Listen(Options{Bind: "127.0.0.1:0", Ready: func() bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	if code, _ := get(t, s, "/"); code != http.StatusOK {
		t.Fatalf("GET / = %d", code)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
	ln, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Fatalf("address not released: %v", err)
	}
	ln.Close()
}

func TestShutdownWithoutServe(t *testing.T) {
	s, err := Listen(Options{Bind: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("address not released: %v", err)
	}
	ln.Close()
}

func TestStalenessFailsReadiness(t *testing.T) {
	var fresh atomic.Bool
	s := start(t, Options{Ready: func() bool { return true }, Fresh: fresh.Load})
	code, body := get(t, s, "/")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "--max-staleness") {
		t.Errorf("stale: GET / = %d %q, want 503 naming --max-staleness", code, body)
	}
	fresh.Store(true)
	if code, _ := get(t, s, "/"); code != http.StatusOK {
		t.Errorf("fresh again: GET / = %d, want 200", code)
	}
}

func TestTriggersOnlyListener(t *testing.T) {
	hit := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	}
	s := start(t, Options{TriggersOnly: true, Sync: hit("sync"), Webhook: hit("webhook"),
		Status: hit("status"), Live: hit("live"), Metrics: hit("metrics"), Pprof: true, Ready: func() bool { return true }})
	for path, want := range map[string]int{"/sync": 200, "/webhook": 200, "/": 404, "/status": 404, "/livez": 404, "/metrics": 404, "/debug/pprof/": 404} {
		if code, _ := get(t, s, path); code != want {
			t.Errorf("GET %s on the triggers listener = %d, want %d", path, code, want)
		}
	}
}

// Connections beyond the bound wait in the backlog until one closes.
func TestConnectionBound(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limitListener(ln, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, second := <-accepted, <-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted while two were open")
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the third connection was not accepted after one closed")
	}
	second.Close()
}
