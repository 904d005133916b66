// Package serve is the relay (--serve-bind): it answers git clients over
// git's smart HTTP protocol with what git-sync has published, so that one
// git-sync fetches from the git host and any number of followers, clones
// and Airflow GitDagBundles fetch from it inside the cluster.
//
// git's own server side does the work: every request runs `git upload-pack
// --stateless-rpc` (through gitcmd, in its own process group) in the root's
// repository, inside the git namespace where the repo package keeps the
// served refs (repo.ServeNamespace), so only published commits are
// advertised. Pushes are refused. The handler adds what a server inside a
// cluster needs around it: a cap on requests served at once (503 with
// Retry-After beyond it), timeouts for slow or stalled clients, an optional
// token, metrics, and the Guard that keeps garbage collection from removing
// objects a running upload-pack is sending.
package serve

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"gitsync/internal/gitcmd"
)

// Limits for clients. A request's headers and body must arrive in time; a
// response must make progress (writeIdle without a successful write ends
// it, so a client that stops reading cannot hold an upload-pack, and with
// it garbage collection, forever). readTimeout bounds reading the request
// only: the server lifts it once the body has been read, so a long
// response (a large clone) is not cut off.
const (
	readHeaderTimeout = 10 * time.Second
	writeIdle         = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	// shutdownGrace is how long requests may finish when git-sync stops,
	// before their upload-packs are killed.
	shutdownGrace = time.Second
)

// readTimeout bounds the time a request body may take to arrive (a
// variable for tests).
var readTimeout = 60 * time.Second

// Request results, the values of git_sync_serve_requests_total's label.
const (
	ResultOK           = "ok"
	ResultError        = "error"
	ResultBusy         = "busy"
	ResultUnauthorized = "unauthorized"
	ResultForbidden    = "forbidden"
	ResultNotFound     = "not_found"
	ResultBadRequest   = "bad_request"
)

// Metrics receives what the relay counts (*metrics.Metrics).
type Metrics interface {
	ServeRequest(result string)
	ServeSent(n int)
	ServeActive(delta int)
}

// Token is the secret a client must present; Get returns the current one
// (it may be re-read from a file) or an error when there is none.
type Token interface {
	Get() ([]byte, error)
}

// Options configures the relay.
type Options struct {
	// Bind is the TCP address to listen on ("host:port"; port 0 picks one,
	// see Server.Addr).
	Bind string
	// Git runs upload-pack, with the environment the repository's own git
	// commands get (its private configuration among it).
	Git *gitcmd.Runner
	// GitDir is the repository to serve and Namespace the git namespace in
	// it whose refs are advertised.
	GitDir, Namespace string
	// MaxRequests caps the requests served at once; 0 means no cap.
	MaxRequests int
	// Token, if not nil, is required of every client.
	Token Token
	// Guard is shared with garbage collection; nil serves without it.
	Guard   *Guard
	Metrics Metrics
	Log     *slog.Logger
}

// Server is the relay's listener and handler.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	h      *handler
	cancel context.CancelFunc
}

// Listen binds opts.Bind, so that a bad address fails at startup.
func Listen(opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", opts.Bind)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &handler{opts: opts}
	if opts.MaxRequests > 0 {
		h.slots = make(chan struct{}, opts.MaxRequests)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// Requests run upload-pack under this context: Shutdown ends it,
		// which kills what is still running.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	if opts.Log != nil {
		srv.ErrorLog = slog.NewLogLogger(opts.Log.Handler(), slog.Level(-1))
	}
	return &Server{ln: ln, srv: srv, h: h, cancel: cancel}, nil
}

// Addr is the address the relay listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until Shutdown.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting, gives running requests a moment to finish, then
// kills their upload-packs and waits until every one has been reaped.
func (s *Server) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.cancel()
	s.h.running.Wait()
}

// handler answers the smart HTTP requests of one repository, whatever the
// path before the protocol's own part ("/repo.git/info/refs" and
// "/info/refs" are the same).
type handler struct {
	opts    Options
	slots   chan struct{} // nil: no cap
	running sync.WaitGroup

	// v2adv is the protocol v2 capability advertisement: it lists no refs,
	// so it is the same for every client and is produced once.
	mu    sync.Mutex
	v2adv []byte
}

// route names what a request asks for: "advertise" (GET info/refs for
// upload-pack), "upload-pack", "push", or "" (nothing served here).
func route(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/info/refs"):
		switch r.URL.Query().Get("service") {
		case "git-upload-pack":
			return "advertise"
		case "git-receive-pack":
			return "push"
		}
	case strings.HasSuffix(p, "/git-upload-pack"):
		return "upload-pack"
	case strings.HasSuffix(p, "/git-receive-pack"):
		return "push"
	}
	return ""
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	result := h.serve(w, r)
	if h.opts.Metrics != nil {
		h.opts.Metrics.ServeRequest(result)
	}
}

// serve answers r and returns the result to count.
func (h *handler) serve(w http.ResponseWriter, r *http.Request) string {
	if h.opts.Token != nil && !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="git-sync"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return ResultUnauthorized
	}
	what := route(r)
	switch what {
	case "":
		http.Error(w, "not found: this is a git smart HTTP server (git clone http://host:port/repo.git)", http.StatusNotFound)
		return ResultNotFound
	case "push":
		http.Error(w, "this repository is read-only", http.StatusForbidden)
		return ResultForbidden
	case "advertise":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return ResultBadRequest
		}
	case "upload-pack":
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return ResultBadRequest
		}
		if r.Header.Get("Content-Type") != "application/x-git-upload-pack-request" {
			http.Error(w, "unexpected content type", http.StatusUnsupportedMediaType)
			return ResultBadRequest
		}
	}
	if h.slots != nil {
		select {
		case h.slots <- struct{}{}:
			defer func() { <-h.slots }()
		default:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many requests at once; try again", http.StatusServiceUnavailable)
			return ResultBusy
		}
	}
	h.running.Add(1)
	defer h.running.Done()
	if m := h.opts.Metrics; m != nil {
		m.ServeActive(1)
		defer m.ServeActive(-1)
	}
	ctx := r.Context()
	if g := h.opts.Guard; g != nil {
		if err := g.Serve(ctx); err != nil {
			return ResultError
		}
		defer g.Served()
	}
	out := &responseWriter{w: w, rc: http.NewResponseController(w), metrics: h.opts.Metrics}
	env := []string{"GIT_NAMESPACE=" + h.opts.Namespace}
	proto := protocol(r.Header.Get("Git-Protocol"))
	if proto != "" {
		env = append(env, "GIT_PROTOCOL="+proto)
	}
	// What upload-pack will speak: v2 only if it is told so.
	v2 := strings.Contains(proto, "version=2")
	var err error
	if what == "advertise" {
		err = h.advertise(ctx, out, env, v2)
	} else {
		err = h.uploadPack(ctx, r, out, env, v2)
	}
	if err != nil {
		if !out.started {
			http.Error(w, "git upload-pack failed", http.StatusInternalServerError)
		}
		if ctx.Err() == nil && h.opts.Log != nil {
			h.opts.Log.Warn("serving a git request failed", "path", r.URL.Path, "error", err.Error())
		}
		return ResultError
	}
	return ResultOK
}

// advertise answers GET info/refs: the refs and capabilities for protocol
// v0 and v1 (after the "# service" line smart HTTP adds), the capabilities
// alone for v2 (which lists refs in a later request, ls-refs).
func (h *handler) advertise(ctx context.Context, out *responseWriter, env []string, v2 bool) error {
	hdr := out.w.Header()
	hdr.Set("Content-Type", "application/x-git-upload-pack-advertisement")
	hdr.Set("Cache-Control", "no-cache")
	args := []string{"upload-pack", "--stateless-rpc", "--advertise-refs", h.opts.GitDir}
	if v2 {
		h.mu.Lock()
		cached := h.v2adv
		h.mu.Unlock()
		if cached == nil {
			var b bytes.Buffer
			if err := h.opts.Git.Stream(ctx, h.opts.GitDir, env, nil, &b, args...); err != nil {
				return err
			}
			cached = b.Bytes()
			h.mu.Lock()
			h.v2adv = cached
			h.mu.Unlock()
		}
		_, err := out.Write(cached)
		return err
	}
	if _, err := out.Write([]byte("001e# service=git-upload-pack\n0000")); err != nil {
		return err
	}
	return h.opts.Git.Stream(ctx, h.opts.GitDir, env, nil, out, args...)
}

// uploadPack answers POST git-upload-pack: the client's wants and haves
// (or a v2 command such as ls-refs) go to upload-pack, its answer back.
func (h *handler) uploadPack(ctx context.Context, r *http.Request, out *responseWriter, env []string, v2 bool) error {
	body := io.Reader(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return fmt.Errorf("read gzip request: %w", err)
		}
		defer zr.Close()
		body = zr
	}
	// git's stdin is copied from the body by a goroutine that Stream waits
	// for; when the request is cancelled (shutdown, client gone) a read
	// blocked on a client that sends nothing more must end too.
	stop := context.AfterFunc(ctx, func() { _ = out.rc.SetReadDeadline(time.Now()) })
	defer stop()
	hdr := out.w.Header()
	hdr.Set("Content-Type", "application/x-git-upload-pack-result")
	hdr.Set("Cache-Control", "no-cache")
	if v2 {
		head, fetch, wants, rest, err := v2Wants(body)
		if err != nil {
			return err
		}
		if fetch && len(wants) > 0 {
			bad, err := h.notServed(ctx, wants)
			if err != nil {
				return err
			}
			if bad != "" {
				_, err := out.Write(errorPacket("upload-pack: not our ref " + bad))
				return errors.Join(fmt.Errorf("refused a want no served ref reaches: %s", bad), err)
			}
		}
		body = io.MultiReader(bytes.NewReader(head), rest)
	}
	return h.opts.Git.Stream(ctx, h.opts.GitDir, env, body, out, "upload-pack", "--stateless-rpc", h.opts.GitDir)
}

// authorized reports whether r carries the token, as a Bearer token or as
// the password of HTTP Basic (git sends credentials that way; the user
// name is not checked).
func (h *handler) authorized(r *http.Request) bool {
	want, err := h.opts.Token.Get()
	if err != nil {
		if h.opts.Log != nil {
			h.opts.Log.Warn("refusing git requests: no serve token", "error", err.Error())
		}
		return false
	}
	auth := r.Header.Get("Authorization")
	var got []byte
	if tok, ok := strings.CutPrefix(auth, "Bearer "); ok {
		got = []byte(strings.TrimSpace(tok))
	} else if enc, ok := strings.CutPrefix(auth, "Basic "); ok {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
		if err != nil {
			return false
		}
		_, pass, ok := bytes.Cut(raw, []byte(":"))
		if !ok {
			return false
		}
		got = pass
	} else {
		return false
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}

// protocol returns the Git-Protocol header if it is well-formed
// (key=value pairs separated by colons), else "": it becomes GIT_PROTOCOL
// in git's environment.
func protocol(h string) string {
	if h == "" || len(h) > 256 {
		return ""
	}
	for _, c := range h {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("=:._-", c)
		if !ok {
			return ""
		}
	}
	return h
}

// responseWriter counts what is sent, records whether anything was, and
// pushes the write deadline forward before each write (see writeIdle).
type responseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	metrics Metrics
	started bool
}

func (o *responseWriter) Write(p []byte) (int, error) {
	_ = o.rc.SetWriteDeadline(time.Now().Add(writeIdle))
	o.started = true
	n, err := o.w.Write(p)
	if o.metrics != nil {
		o.metrics.ServeSent(n)
	}
	return n, err
}
