package hook

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gitsync/internal/config"
)

// request is what the test receiver saw.
type request struct {
	method, hash string
	at           time.Time
}

// receiver is an httptest webhook endpoint answering with the queued
// statuses in turn (then 200), or hanging until the client gives up.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	hang     bool
	seen     []request
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.seen = append(rc.seen, request{r.Method, r.Header.Get("Gitsync-Hash"), time.Now()})
	status := http.StatusOK
	if len(rc.statuses) > 0 {
		status, rc.statuses = rc.statuses[0], rc.statuses[1:]
	}
	hang := rc.hang
	rc.mu.Unlock()
	if hang {
		<-r.Context().Done()
		return
	}
	w.WriteHeader(status)
	w.Write([]byte("thanks\n"))
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.seen)
}

func newReceiver(t *testing.T, rc *receiver) string {
	t.Helper()
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestWebhookRequest(t *testing.T) {
	rc := &receiver{}
	h := NewWebhook(config.WebhookConfig{URL: newReceiver(t, rc) + "/hook", Method: "PUT",
		SuccessStatus: 200, Timeout: 10 * time.Second}, nil)
	if h.Name() != "webhook" {
		t.Errorf("Name() = %q", h.Name())
	}
	if err := h.Do(context.Background(), hashA); err != nil {
		t.Fatal(err)
	}
	got := rc.requests()
	if len(got) != 1 || got[0].method != "PUT" || got[0].hash != hashA {
		t.Errorf("receiver saw %+v, want one PUT with Gitsync-Hash %s", got, hashA)
	}
}

func TestWebhookWrongStatus(t *testing.T) {
	rc := &receiver{statuses: []int{404}}
	h := NewWebhook(config.WebhookConfig{URL: newReceiver(t, rc), Method: "POST",
		SuccessStatus: 200, Timeout: 10 * time.Second}, nil)
	err := h.Do(context.Background(), hashA)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("Do = %v, want an error naming status 404", err)
	}
	// A non-default success status is honoured.
	rc = &receiver{statuses: []int{204}}
	h = NewWebhook(config.WebhookConfig{URL: newReceiver(t, rc), Method: "POST",
		SuccessStatus: 204, Timeout: 10 * time.Second}, nil)
	if err := h.Do(context.Background(), hashA); err != nil {
		t.Errorf("Do with status 204 wanted: %v", err)
	}
}

func TestWebhookRunnerRetriesInOrder(t *testing.T) {
	rc := &receiver{statuses: []int{500, 503}}
	h := NewWebhook(config.WebhookConfig{URL: newReceiver(t, rc), Method: "POST",
		SuccessStatus: 200, Timeout: 10 * time.Second}, nil)
	const backoff = 100 * time.Millisecond
	var rs runs
	r := NewRunner(h, backoff, nil, rs.record)
	startRunner(t, r)
	r.Send(hashA)
	waitFor(t, "first success", func() bool { return rs.count(StatusSuccess) == 1 })
	r.Send(hashA)
	r.Send(hashB)
	waitFor(t, "second success", func() bool { return rs.count(StatusSuccess) == 2 })

	seen := rc.requests()
	var hashes []string
	for i, req := range seen {
		hashes = append(hashes, req.hash)
		if req.method != "POST" {
			t.Errorf("request %d method %s", i, req.method)
		}
		if i > 0 && i < 3 {
			if d := req.at.Sub(seen[i-1].at); d < backoff {
				t.Errorf("retry %d came %v after the previous request, want >= %v", i, d, backoff)
			}
		}
	}
	if want := []string{hashA, hashA, hashA, hashB}; !slices.Equal(hashes, want) {
		t.Errorf("requests for %q, want %q", hashes, want)
	}
	want := []string{"webhook:error", "webhook:error", "webhook:success", "webhook:success"}
	if got := rs.get(); !slices.Equal(got, want) {
		t.Errorf("onRun calls %q, want %q", got, want)
	}
}

func TestWebhookTimeout(t *testing.T) {
	rc := &receiver{hang: true}
	const timeout = 200 * time.Millisecond
	h := NewWebhook(config.WebhookConfig{URL: newReceiver(t, rc), Method: "POST",
		SuccessStatus: 200, Timeout: timeout}, nil)
	start := time.Now()
	err := h.Do(context.Background(), hashA)
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do = %v, want a deadline error", err)
	}
	if elapsed < timeout || elapsed > 8*time.Second {
		t.Errorf("Do returned after %v, want about %v", elapsed, timeout)
	}
}

// bareServer accepts connections on loopback and answers each request with
// a minimal HTTP/1.1 response that has no Content-Length, then closes the
// connection, as some hand-written receivers do. It returns the URL and the
// hashes it saw.
func bareServer(t *testing.T, response string) (string, func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var hashes []string
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			req, err := http.ReadRequest(bufio.NewReader(conn))
			if err == nil {
				mu.Lock()
				hashes = append(hashes, req.Header.Get("Gitsync-Hash"))
				mu.Unlock()
				conn.Write([]byte(response))
			}
			conn.Close()
		}
	}()
	return "http://" + ln.Addr().String() + "/", func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(hashes)
	}
}

func TestWebhookBareResponse(t *testing.T) {
	for _, resp := range []string{
		"HTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok, body ended by close",
	} {
		url, seen := bareServer(t, resp)
		h := NewWebhook(config.WebhookConfig{URL: url, Method: "POST", SuccessStatus: 200,
			Timeout: 5 * time.Second}, nil)
		for _, hash := range []string{hashA, hashB} {
			if err := h.Do(context.Background(), hash); err != nil {
				t.Errorf("response %q: %v", resp, err)
			}
		}
		if got, want := seen(), []string{hashA, hashB}; !slices.Equal(got, want) {
			t.Errorf("bare server saw %q, want %q", got, want)
		}
	}
}

func TestWebhookFireAndForget(t *testing.T) {
	for _, status := range []int{0, -1} {
		rc := &receiver{statuses: []int{500}}
		h := NewWebhook(config.WebhookConfig{URL: newReceiver(t, rc), Method: "POST",
			SuccessStatus: status, Timeout: 5 * time.Second}, nil)
		if err := h.Do(context.Background(), hashA); err != nil {
			t.Errorf("success status %d, answer 500: %v", status, err)
		}
		if n := len(rc.requests()); n != 1 {
			t.Errorf("success status %d: %d requests, want 1", status, n)
		}
	}

	// A receiver that never answers: the request was sent, that is enough.
	rc := &receiver{hang: true}
	h := NewWebhook(config.WebhookConfig{URL: newReceiver(t, rc), Method: "POST",
		Timeout: 200 * time.Millisecond}, nil)
	if err := h.Do(context.Background(), hashA); err != nil {
		t.Errorf("fire and forget to a hanging receiver: %v", err)
	}

	// Nothing listening: the request could not be sent, which is a failure.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h = NewWebhook(config.WebhookConfig{URL: "http://" + addr + "/", Method: "POST",
		Timeout: 5 * time.Second}, nil)
	if err := h.Do(context.Background(), hashA); err == nil {
		t.Error("fire and forget with nothing listening returned nil")
	}
}

func TestWebhookErrorHidesPassword(t *testing.T) {
	rc := &receiver{statuses: []int{500}}
	url := strings.Replace(newReceiver(t, rc), "http://", "http://user:hunter2@", 1)
	h := NewWebhook(config.WebhookConfig{URL: url, Method: "POST", SuccessStatus: 200,
		Timeout: 5 * time.Second}, nil)
	err := h.Do(context.Background(), hashA)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Do = %v, want an error without the password", err)
	}
	// Same for a transport error, which the HTTP client reports.
	h = NewWebhook(config.WebhookConfig{URL: "http://user:hunter2@127.0.0.1:1/", Method: "POST",
		SuccessStatus: 200, Timeout: 5 * time.Second}, nil)
	err = h.Do(context.Background(), hashA)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Do = %v, want an error without the password", err)
	}
}
