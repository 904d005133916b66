package main

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// gitServer serves the upstream repositories over git's smart HTTP protocol
// (git http-backend run as CGI, as a web server in front of git does) on
// 127.0.0.1, and counts what crosses the wire so the runner can report
// bytes per poll.
type gitServer struct {
	URL string // base URL; a repository is URL + "/" + its directory name

	srv      *http.Server
	requests atomic.Int64
	reqBytes atomic.Int64 // request bodies received
	bytes    atomic.Int64 // response bodies sent
}

// serverCounts is a snapshot of a gitServer's counters.
type serverCounts struct {
	Requests, ReqBytes, Bytes int64
}

func (c serverCounts) sub(o serverCounts) serverCounts {
	return serverCounts{c.Requests - o.Requests, c.ReqBytes - o.ReqBytes, c.Bytes - o.Bytes}
}

// startGitServer serves the bare repositories under root. execPath is
// git's exec path (where git-http-backend lives); env is the environment
// passed to the backend.
func startGitServer(root, execPath string, env []string, errlog io.Writer) (*gitServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &gitServer{URL: "http://" + ln.Addr().String() + "/git"}
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Root: "/git",
		Env: append(append([]string(nil), env...),
			"GIT_PROJECT_ROOT="+root,
			"GIT_HTTP_EXPORT_ALL=1",
		),
		InheritEnv: []string{"PATH"},
		Stderr:     errlog,
		Logger:     log.New(errlog, "http-backend: ", 0),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/git/", func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if r.Body != nil {
			r.Body = &countingReader{r: r.Body, n: &s.reqBytes}
		}
		backend.ServeHTTP(&countingWriter{ResponseWriter: w, n: &s.bytes}, r)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(errlog, "http: ", 0)}
	go s.srv.Serve(ln)
	return s, nil
}

// RepoURL returns the URL of the repository directory name under root.
func (s *gitServer) RepoURL(name string) string {
	return s.URL + "/" + strings.TrimPrefix(name, "/")
}

// Counts returns the counters so far.
func (s *gitServer) Counts() serverCounts {
	return serverCounts{s.requests.Load(), s.reqBytes.Load(), s.bytes.Load()}
}

// Close stops the server.
func (s *gitServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type countingReader struct {
	r io.ReadCloser
	n *atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n.Add(int64(n))
	return n, err
}

func (r *countingReader) Close() error { return r.r.Close() }
