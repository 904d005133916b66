// Package server is git-sync's HTTP endpoint (--http-bind): readiness on
// "/", liveness on "/livez", the state on "/status", Prometheus metrics on
// "/metrics", Go profiling under "/debug/pprof/", and the sync triggers
// POST "/sync" and "/webhook" (or those two alone on --webhook-bind).
//
// Both listeners are meant to be reachable from outside the pod: they bound
// the time a client may take to send its request, the number of
// connections open at once, and the size of request headers.
//
// The listener is opened by Listen, before the first sync starts, so that a
// bad address fails at startup and probes get an answer (503) rather than a
// refused connection while the first, possibly slow, sync runs. Handlers live
// on the server's own ServeMux: nothing is served from http.DefaultServeMux,
// so importing net/http/pprof elsewhere exposes nothing by accident.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// readHeaderTimeout bounds how long a client may take to send its request
// headers, so that idle or malicious connections cannot pile up.
const readHeaderTimeout = 10 * time.Second

// Further limits for clients: the whole request (a webhook body is at most
// 1 MiB), an idle kept-alive connection, the headers, and the connections
// open at once (beyond it, new connections wait in the kernel's backlog).
const (
	readTimeout    = 30 * time.Second
	idleTimeout    = 120 * time.Second
	maxHeaderBytes = 64 << 10
	maxConns       = 128
)

// Options configures the endpoint.
type Options struct {
	// Bind is the TCP address to listen on, as for net.Listen ("host:port",
	// ":port"; port 0 picks a free one, see Server.Addr). An empty Bind
	// would listen on a random port: callers do not start the endpoint
	// when --http-bind is unset.
	Bind string
	// Metrics, if not nil, is served at /metrics.
	Metrics http.Handler
	// Pprof serves net/http/pprof under /debug/pprof/.
	Pprof bool
	// Ready reports whether the first sync has succeeded. It is called on
	// every readiness request and must be safe for concurrent use. Nil
	// means never ready.
	Ready func() bool
	// Fresh, if not nil, reports whether the last success is recent enough
	// (--max-staleness); readiness fails while it is not.
	Fresh func() bool
	// Status serves GET /status and Live GET /livez, if not nil.
	Status, Live http.Handler
	// Sync and Webhook serve POST /sync and POST /webhook, if not nil.
	Sync, Webhook http.Handler
	// TriggersOnly serves nothing but Sync and Webhook (--webhook-bind).
	TriggersOnly bool
	// Log receives the server's own errors (nil discards them).
	Log *slog.Logger
}

// Server is a bound, not yet (or currently) serving HTTP endpoint.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds opts.Bind and prepares the handlers. It does not serve yet:
// call Serve. Binding here, not in Serve, lets the caller report a bad or
// busy address before doing anything else.
func Listen(opts Options) (*Server, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", opts.Bind)
	if err != nil {
		return nil, fmt.Errorf("http server: %w", err)
	}
	ln = limitListener(ln, maxConns)
	s := &Server{
		ln: ln,
		srv: &http.Server{
			Handler:           newMux(opts),
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
	return s, nil
}

// newMux builds the routing table for opts.
func newMux(opts Options) *http.ServeMux {
	mux := http.NewServeMux()
	if opts.Sync != nil {
		mux.Handle("/sync", opts.Sync)
	}
	if opts.Webhook != nil {
		mux.Handle("/webhook", opts.Webhook)
	}
	if opts.TriggersOnly {
		return mux
	}
	if opts.Status != nil {
		mux.Handle("/status", opts.Status)
	}
	if opts.Live != nil {
		mux.Handle("/livez", opts.Live)
	}
	// "/" matches every path not claimed below: upstream git-sync answers
	// readiness on any path, and probes configured against it (for example
	// "/healthz") must keep working.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if opts.Ready == nil || !opts.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready: the first sync has not succeeded yet\n")
			return
		}
		if opts.Fresh != nil && !opts.Fresh() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready: the last successful sync is older than --max-staleness\n")
			return
		}
		io.WriteString(w, "ok\n")
	})
	if opts.Metrics != nil {
		mux.Handle("/metrics", opts.Metrics)
	}
	if opts.Pprof {
		// pprof.Index also serves the named profiles (heap, goroutine,
		// allocs, ...) below /debug/pprof/.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Addr returns the address actually bound, useful when Bind asked for port 0.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers requests until Shutdown is called, then returns nil. Any
// other return is an error of the listener.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, releases the address, and waits for
// requests in flight to finish until ctx ends. It may be called before or
// without Serve.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	// Serve may never have run, in which case http.Server does not know the
	// listener; closing it twice is harmless.
	if cerr := s.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
		err = cerr
	}
	return err
}
