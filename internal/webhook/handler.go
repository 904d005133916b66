package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"gitsync/internal/filestamp"
)

// MaxBody is the largest request body accepted (413 beyond). Forges cap
// their push payloads well below it (GitHub at 25 MiB, but a push of
// twenty commits is a few tens of KiB).
const MaxBody = 1 << 20

// SecretFile is a secret kept in a file that may be replaced while
// git-sync runs (Kubernetes swaps a mounted Secret's files atomically). It
// is read again whenever the file's identity, size or time changes; a stat
// per request costs far less than the request.
type SecretFile struct {
	path string

	mu     sync.Mutex
	stamp  filestamp.Stamp
	secret []byte
	err    error
}

// NewSecretFile returns the secret at path; the file is read at first use.
func NewSecretFile(path string) *SecretFile { return &SecretFile{path: path} }

// Load reads the file once, to report a missing or empty file at startup.
func (f *SecretFile) Load() error {
	_, err := f.Get()
	return err
}

// Get returns the current secret, without surrounding blanks (files made
// with echo end in a newline). An empty secret is an error: it would let
// anybody in.
func (f *SecretFile) Get() ([]byte, error) {
	st := filestamp.Of(f.path)
	f.mu.Lock()
	defer f.mu.Unlock()
	if st.Exists() && st == f.stamp && (f.secret != nil || f.err != nil) {
		return f.secret, f.err
	}
	data, err := os.ReadFile(f.path)
	switch {
	case err != nil:
		f.secret, f.err = nil, fmt.Errorf("read secret file %s: %w", f.path, err)
	case len(bytes.TrimSpace(data)) == 0:
		f.secret, f.err = nil, fmt.Errorf("secret file %s is empty", f.path)
	default:
		f.secret, f.err = bytes.TrimSpace(data), nil
	}
	f.stamp = st
	return f.secret, f.err
}

// Handler serves POST /webhook.
type Handler struct {
	// Secret is the shared secret; nil turns the endpoint off (404).
	Secret *SecretFile
	// Ref is --ref.
	Ref string
	// Trigger asks the sync loop for a sync; it must not block.
	Trigger func()
	// Count records one request by forge and result (may be nil).
	Count func(forge, result string)
	// FailDelay holds back each 401 (see refuse).
	FailDelay time.Duration
	Log       *slog.Logger
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !postTo(w, r, h.Secret != nil) {
		return
	}
	forge := Identify(r.Header)
	result, status, msg := h.handle(r, forge)
	if h.Count != nil {
		h.Count(forge, result)
	}
	h.Log.Log(r.Context(), slog.Level(-1), "webhook request", "forge", forge, "result", result, "status", status)
	if status == http.StatusUnauthorized {
		refuse(r, h.FailDelay)
	}
	reply(w, status, msg)
}

// handle decides the answer to a POST from forge.
func (h *Handler) handle(r *http.Request, forge string) (result string, status int, msg string) {
	if r.ContentLength > MaxBody {
		return TooLarge, http.StatusRequestEntityTooLarge, "body too large"
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return TooLarge, http.StatusRequestEntityTooLarge, "body too large"
		}
		return Malformed, http.StatusBadRequest, "could not read the body"
	}
	if forge == Unknown {
		return Unauthorized, http.StatusUnauthorized, "unauthorized: no forge signature headers"
	}
	secret, err := h.Secret.Get()
	if err != nil {
		h.Log.Error("webhook secret unavailable; rejecting webhooks", "error", err)
		return Unauthorized, http.StatusUnauthorized, "unauthorized"
	}
	if !Verify(forge, r.Header, body, secret) {
		return Unauthorized, http.StatusUnauthorized, "unauthorized: bad or missing signature"
	}
	switch Kind(forge, r.Header) {
	case PingEvent:
		return Accepted, http.StatusOK, "pong"
	case OtherEvent:
		return Ignored, http.StatusAccepted, "ignored: not a push event"
	}
	push, err := PushedRefs(forge, body)
	if err != nil {
		return Malformed, http.StatusBadRequest, "malformed push payload"
	}
	if !Matches(h.Ref, push) {
		return Ignored, http.StatusAccepted, "ignored: the push does not change " + h.Ref
	}
	h.Trigger()
	return Accepted, http.StatusAccepted, "accepted: sync triggered"
}

// SyncHandler serves POST /sync.
type SyncHandler struct {
	// Token is the bearer token; nil turns the endpoint off (404).
	Token   *SecretFile
	Trigger func()
	// FailDelay holds back each 401 (see refuse).
	FailDelay time.Duration
	Log       *slog.Logger
}

// ServeHTTP implements http.Handler.
func (h *SyncHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !postTo(w, r, h.Token != nil) {
		return
	}
	token, err := h.Token.Get()
	if err != nil {
		h.Log.Error("sync token unavailable; rejecting sync requests", "error", err)
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if err != nil || !ok || !equalSecret([]byte(strings.TrimSpace(got)), token) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="git-sync"`)
		h.Log.Log(r.Context(), slog.Level(-1), "sync request refused", "status", http.StatusUnauthorized)
		refuse(r, h.FailDelay)
		reply(w, http.StatusUnauthorized, "unauthorized")
		return
	}
	// The body means nothing; drain a little of it so the connection can
	// be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 4096))
	h.Trigger()
	h.Log.Log(r.Context(), slog.Level(-1), "sync requested over HTTP")
	reply(w, http.StatusAccepted, "accepted: sync triggered")
}

// postTo answers what is not a POST to an endpoint that is on: 404 when
// it is off (no secret or token file configured), 405 for another method.
// It reports whether the request is to be handled.
func postTo(w http.ResponseWriter, r *http.Request, on bool) bool {
	if !on {
		http.NotFound(w, r)
		return false
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return false
	}
	return true
}

// refuse waits d before a 401 is answered (or until the client gives up).
// A client guessing secrets, or flooding the endpoint with bad signatures
// one request after another, is slowed to a few requests a second, which
// leaves the CPU to the syncs; and every refusal takes the same time, so
// the answer's timing says nothing about how close a guess was.
func refuse(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

func reply(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}
