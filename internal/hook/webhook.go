package hook

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"

	"gitsync/internal/config"
	"gitsync/internal/redact"
)

// maxDrain bounds how much of a response body is read (and discarded) so that
// the connection can be reused; a longer body just costs a new connection.
const maxDrain = 64 << 10

// webhook notifies an HTTP endpoint; see NewWebhook.
type webhook struct {
	cfg    config.WebhookConfig
	shown  string // cfg.URL without its user information and query, for messages
	client *http.Client
	log    *slog.Logger
}

// NewWebhook returns a Hook named "webhook" that makes one HTTP request per
// attempt to cfg.URL, with method cfg.Method, no body and the header
// "Gitsync-Hash: <hash>", bounded by cfg.Timeout (0 = none of its own,
// only the attempt's context). The attempt succeeds when the response
// status is cfg.SuccessStatus. With SuccessStatus 0 or negative the webhook
// is fire and forget: once the request has been written, any answer, or
// none before the timeout, is success; only failing to send it (for example
// a refused connection) is an error. Bodies are drained and closed; responses
// without Content-Length, ended by the peer closing the connection, are
// accepted.
func NewWebhook(cfg config.WebhookConfig, log *slog.Logger) Hook {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Tokens travel in the query as often as in the user information:
	// neither may reach a log line or an error.
	shown := redact.Text(cfg.URL)
	// A transport of its own: proxies from the environment as usual, but
	// no connection state shared with other users of the default one.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &webhook{cfg: cfg, shown: shown, client: &http.Client{Transport: tr}, log: log}
}

// Name implements Hook.
func (w *webhook) Name() string { return "webhook" }

// fireAndForget reports whether any answer counts as success.
func (w *webhook) fireAndForget() bool { return w.cfg.SuccessStatus <= 0 }

// Do implements Hook.
func (w *webhook) Do(ctx context.Context, hash string) error {
	if w.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.cfg.Timeout)
		defer cancel()
	}
	var sent atomic.Bool
	trace := &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				sent.Store(true)
			}
		},
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), w.cfg.Method, w.cfg.URL, nil)
	if err != nil {
		return fmt.Errorf("webhook %s %s: %w", w.cfg.Method, w.shown, redact.Error(err))
	}
	req.Header.Set("Gitsync-Hash", hash)

	w.log.Log(ctx, slog.Level(-5), "calling webhook", "method", w.cfg.Method, "url", w.shown, "hash", hash)
	resp, err := w.client.Do(req)
	if err != nil {
		if w.fireAndForget() && sent.Load() {
			w.log.Log(ctx, slog.Level(-2), "webhook sent, no answer", "url", w.shown, "hash", hash, "error", redact.Error(err))
			return nil
		}
		// The client's error already names the URL (without its password,
		// but with its query).
		return fmt.Errorf("webhook: %w", redact.Error(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
	if w.fireAndForget() || resp.StatusCode == w.cfg.SuccessStatus {
		return nil
	}
	return fmt.Errorf("webhook %s %s: got status %d, want %d", w.cfg.Method, w.shown, resp.StatusCode, w.cfg.SuccessStatus)
}
