// Package server is git-sync's HTTP endpoint (--http-bind): readiness on
// "/", Prometheus metrics on "/metrics" and Go profiling under
// "/debug/pprof/".
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
	s := &Server{
		ln: ln,
		srv: &http.Server{
			Handler:           newMux(opts),
			ReadHeaderTimeout: readHeaderTimeout,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
	return s, nil
}

// newMux builds the routing table for opts.
func newMux(opts Options) *http.ServeMux {
	mux := http.NewServeMux()
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
