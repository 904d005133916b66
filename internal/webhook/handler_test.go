package webhook

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// writeSecret replaces the file at path the way Kubernetes updates a
// mounted Secret: a new file renamed over the old one.
func writeSecret(t *testing.T, path, value string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestSecretFileIsReadAgainWhenReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	writeSecret(t, path, "first\n")
	f := NewSecretFile(path)
	got, err := f.Get()
	if err != nil || string(got) != "first" {
		t.Fatalf("Get = %q, %v; want \"first\" (blanks trimmed)", got, err)
	}
	writeSecret(t, path, "second")
	if got, _ := f.Get(); string(got) != "second" {
		t.Errorf("after replacing the file: %q, want \"second\"", got)
	}
	writeSecret(t, path, "  \n")
	if _, err := f.Get(); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("an empty file: %v, want an error saying it is empty", err)
	}
	os.Remove(path)
	if _, err := f.Get(); err == nil {
		t.Error("a missing file gave no error")
	}
}

type fixture struct {
	srv       *httptest.Server
	triggers  atomic.Int32
	results   []string
	secretPth string
}

func newFixture(t *testing.T, ref string) *fixture {
	f := &fixture{secretPth: filepath.Join(t.TempDir(), "secret")}
	writeSecret(t, f.secretPth, "s3cret")
	h := &Handler{
		Secret: NewSecretFile(f.secretPth), Ref: ref,
		Trigger: func() { f.triggers.Add(1) },
		Count:   func(forge, result string) { f.results = append(f.results, forge+"/"+result) },
		Log:     slog.New(slog.DiscardHandler),
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) post(t *testing.T, h http.Header, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL, strings.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHandlerStatuses(t *testing.T) {
	f := newFixture(t, "main")
	push := `{"ref":"refs/heads/main","repository":{"default_branch":"main"}}`
	other := `{"ref":"refs/heads/dev","repository":{"default_branch":"main"}}`
	gh := func(event, body, secret string) http.Header {
		return headers("X-GitHub-Event", event, "X-Hub-Signature-256", "sha256="+mac(secret, body))
	}
	cases := []struct {
		name     string
		h        http.Header
		body     string
		status   int
		say      string
		triggers int32
	}{
		{"push", gh("push", push, "s3cret"), push, 202, "accepted", 1},
		{"ping", gh("ping", `{"zen":"x"}`, "s3cret"), `{"zen":"x"}`, 200, "pong", 1},
		{"other ref", gh("push", other, "s3cret"), other, 202, "ignored", 1},
		{"other event", gh("issues", push, "s3cret"), push, 202, "ignored", 1},
		{"bad signature", gh("push", push, "wrong"), push, 401, "unauthorized", 1},
		{"no forge", headers("X-Hub-Signature-256", "sha256="+mac("s3cret", push)), push, 401, "unauthorized", 1},
		{"signed garbage", gh("push", `{"ref":`, "s3cret"), `{"ref":`, 400, "malformed", 1},
		{"too large", gh("push", push, "s3cret"), strings.Repeat("x", MaxBody+1), 413, "too large", 1},
	}
	for _, c := range cases {
		code, body := f.post(t, c.h, c.body)
		if code != c.status || !strings.Contains(body, c.say) {
			t.Errorf("%s: %d %q, want %d and %q", c.name, code, body, c.status, c.say)
		}
		if n := f.triggers.Load(); n != c.triggers {
			t.Errorf("%s: %d triggers so far, want %d", c.name, n, c.triggers)
		}
		if strings.Contains(body, "s3cret") || strings.Contains(body, mac("s3cret", push)) {
			t.Errorf("%s: the answer shows the secret or the signature: %q", c.name, body)
		}
	}
	resp, err := http.Get(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
	want := []string{"github/accepted", "github/accepted", "github/ignored", "github/ignored", "github/unauthorized",
		"unknown/unauthorized", "github/malformed", "github/too_large"}
	if strings.Join(f.results, " ") != strings.Join(want, " ") {
		t.Errorf("counted %v, want %v", f.results, want)
	}
}

func TestEndpointsOffAnswer404(t *testing.T) {
	for _, h := range []http.Handler{&Handler{}, &SyncHandler{}} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
		if rec.Code != 404 {
			t.Errorf("%T with no secret: %d, want 404", h, rec.Code)
		}
	}
}

func TestSyncHandler(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	writeSecret(t, path, "tok-1\n")
	var n atomic.Int32
	h := &SyncHandler{Token: NewSecretFile(path), Trigger: func() { n.Add(1) }, Log: slog.New(slog.DiscardHandler)}
	try := func(method, auth string) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, "/sync", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	checks := []struct {
		method, auth string
		want         int
		triggers     int32
	}{
		{"POST", "Bearer tok-1", 202, 1},
		{"POST", "", 401, 1},
		{"POST", "Bearer tok-2", 401, 1},
		{"POST", "Basic dG9rLTE=", 401, 1},
		{"POST", "Bearer tok-", 401, 1},
		{"GET", "Bearer tok-1", 405, 1},
	}
	for _, c := range checks {
		if got := try(c.method, c.auth); got != c.want || n.Load() != c.triggers {
			t.Errorf("%s with %q: %d and %d triggers, want %d and %d", c.method, c.auth, got, n.Load(), c.want, c.triggers)
		}
	}
	writeSecret(t, path, "tok-2")
	if got := try("POST", "Bearer tok-1"); got != 401 {
		t.Errorf("the old token after rotation: %d, want 401", got)
	}
	if got := try("POST", "Bearer tok-2"); got != 202 || n.Load() != 2 {
		t.Errorf("the new token after rotation: %d, want 202", got)
	}
}
