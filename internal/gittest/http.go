package gittest

import (
	"crypto/subtle"
	"encoding/pem"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// HTTPOptions configures HTTPServer.
type HTTPOptions struct {
	// Username and Password, when Username is set, make the server demand
	// HTTP basic auth (401 with a Basic challenge otherwise). SetPassword
	// changes the password while the server runs.
	Username string
	Password string
	// TLS serves https with a self-signed certificate for 127.0.0.1; git
	// trusts it through http.sslCAInfo=CAFile().
	TLS bool
}

// HTTP is a smart-HTTP git server: git http-backend behind net/http/cgi,
// serving every repository under one directory (fetch and push).
type HTTP struct {
	srv    *httptest.Server
	caFile string

	mu         sync.Mutex
	username   string
	password   string
	failStatus int

	requests     atomic.Int64
	authFailures atomic.Int64
}

// HTTPServer serves the repositories under dir (bare, or non-bare with
// their .git) on 127.0.0.1 at a random port until the test ends. Repository
// "name" is dir/name; URL(name) is its address. For a Repo r:
// HTTPServer(t, filepath.Dir(r.Dir()), opts).URL(filepath.Base(r.Dir())).
func HTTPServer(t testing.TB, dir string, opts HTTPOptions) *HTTP {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("gittest: git not found on PATH (install it: apt-get install -y git): %v", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("gittest: %v", err)
	}
	h := &HTTP{username: opts.Username, password: opts.Password}
	stderr := &serverOutput{}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Dir:  abs,
		Env: append([]string{
			"GIT_PROJECT_ROOT=" + abs,
			"GIT_HTTP_EXPORT_ALL=1",
			"HOME=" + abs,
		}, serverGitConfigEnv()...),
		InheritEnv: []string{"PATH", "LANG", "TMPDIR"},
		Stderr:     stderr,
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		h.mu.Lock()
		user, pass, fail := h.username, h.password, h.failStatus
		h.mu.Unlock()
		if fail != 0 {
			http.Error(w, "gittest: failing on purpose", fail)
			return
		}
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
				subtle.ConstantTimeCompare([]byte(p), []byte(pass)) != 1 {
				h.authFailures.Add(1)
				w.Header().Set("WWW-Authenticate", `Basic realm="gittest"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	})
	h.srv = httptest.NewUnstartedServer(handler)
	if opts.TLS {
		h.srv.StartTLS()
		h.caFile = filepath.Join(t.TempDir(), "ca.pem")
		block := &pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw}
		if err := os.WriteFile(h.caFile, pem.EncodeToMemory(block), 0o644); err != nil {
			h.srv.Close()
			t.Fatalf("gittest: write CA file: %v", err)
		}
	} else {
		h.srv.Start()
	}
	t.Cleanup(func() {
		h.srv.Close()
		if t.Failed() {
			t.Logf("gittest: git http-backend stderr:\n%s", stderr.String())
		}
	})
	return h
}

// serverGitConfigEnv isolates the git processes of a test server from the
// machine's configuration, trusts every repository (tests may create them
// as another user), and lets smart HTTP accept pushes without auth.
func serverGitConfigEnv() []string {
	return []string{
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_CONFIG_COUNT=2",
		"GIT_CONFIG_KEY_0=safe.directory",
		"GIT_CONFIG_VALUE_0=*",
		"GIT_CONFIG_KEY_1=http.receivepack",
		"GIT_CONFIG_VALUE_1=true",
	}
}

// BaseURL is the server's root, e.g. "http://127.0.0.1:PORT" (no slash).
func (h *HTTP) BaseURL() string { return h.srv.URL }

// URL is the address of repository name (a path relative to the served
// directory), e.g. "https://127.0.0.1:PORT/upstream".
func (h *HTTP) URL(name string) string {
	return h.srv.URL + "/" + strings.TrimPrefix(filepath.ToSlash(name), "/")
}

// CAFile is a PEM file holding the certificate that signs the server's TLS
// certificate, for git's http.sslCAInfo; "" without TLS.
func (h *HTTP) CAFile() string { return h.caFile }

// SetPassword changes the password the server accepts (rotation tests).
func (h *HTTP) SetPassword(password string) {
	h.mu.Lock()
	h.password = password
	h.mu.Unlock()
}

// SetCredentials changes the username and password the server demands; an
// empty username turns authentication off.
func (h *HTTP) SetCredentials(username, password string) {
	h.mu.Lock()
	h.username, h.password = username, password
	h.mu.Unlock()
}

// SetFailStatus makes every request fail with HTTP status code (e.g. 503)
// until called again with 0.
func (h *HTTP) SetFailStatus(code int) {
	h.mu.Lock()
	h.failStatus = code
	h.mu.Unlock()
}

// Requests is the number of HTTP requests received so far (all of them,
// including refused ones).
func (h *HTTP) Requests() int64 { return h.requests.Load() }

// AuthFailures is the number of requests refused for missing or wrong
// credentials.
func (h *HTTP) AuthFailures() int64 { return h.authFailures.Load() }
