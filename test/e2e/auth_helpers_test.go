package e2e

// Helpers for the authentication tests (auth_*_test.go): upstreams served
// over smart HTTP, an askpass URL server, a fake GitHub API that checks the
// app's JWT like GitHub does, a cookie-checking proxy, a /proc/*/cmdline
// scanner, secret searches in text and files, and running git-sync as
// another UID.

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// authServeDir returns a fresh directory in which each name links to the
// repository of the same key, for a server's base directory.
func authServeDir(t testing.TB, repos map[string]*gittest.Repo) string {
	t.Helper()
	dir := t.TempDir()
	for name, r := range repos {
		if err := os.Symlink(r.Dir(), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// authHTTPUpstream makes an upstream with one commit, serves it as "repo"
// on a new smart-HTTP server with opts, and returns the upstream, the
// server, the repository's URL and the commit.
func authHTTPUpstream(t testing.TB, opts gittest.HTTPOptions) (*gittest.Repo, *gittest.HTTP, string, string) {
	t.Helper()
	up, h1 := gittest.NewRepoWithCommit(t)
	srv := gittest.HTTPServer(t, authServeDir(t, map[string]*gittest.Repo{"repo": up}), opts)
	return up, srv, srv.URL("repo"), h1
}

// authSecret returns a fresh random secret that starts with prefix, so a
// leak is recognisable and never matches another test's value.
func authSecret(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + "-" + hex.EncodeToString(b)
}

// authBasic is the base64 form of user:pass as it travels in an HTTP
// Authorization header (and would appear in a curl trace).
func authBasic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// authMetricsArgs returns a fresh address for --http-bind and the flags
// that serve /metrics there.
func authMetricsArgs(t testing.TB) (string, []string) {
	t.Helper()
	addr := freeAddr(t)
	return addr, []string{"--http-bind=" + addr, "--http-metrics"}
}

// authShortTempDir returns a new directory with a short path (for TMPDIR:
// git-sync's credential socket path must stay under about 100 bytes),
// removed when the test ends.
func authShortTempDir(t testing.TB, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// authWriteFile writes content to path with mode, replacing it atomically
// (write a temp file beside it, then rename), the way a secret mount is
// updated.
func authWriteFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// authSyncErrors is the number of failed syncs counted on /metrics at addr
// (-1 if it cannot be read).
func authSyncErrors(addr string) float64 {
	return tryMetric(addr, "git_sync_count_total", "status", "error")
}

// authWaitRunning fails the test at once if p has exited.
func authWaitRunning(t testing.TB, p *Proc) {
	t.Helper()
	if !p.Running() {
		t.Fatalf("git-sync exited (code %d) unexpectedly\n%s", p.ExitCode(), tail(p.Logs(), 60))
	}
}

// ---------------------------------------------------------------------------
// The askpass URL.

// askpassServer answers git-sync's --askpass-url; answer decides the status
// and body of call n (1-based).
type askpassServer struct {
	srv    *httptest.Server
	answer func(n int) (int, string)

	mu     sync.Mutex
	calls  int
	status map[int]int // status code -> how many answered with it
	bad    []string    // requests that were not what git-sync should send
}

// newAskpassServer starts an askpass server on 127.0.0.1.
func newAskpassServer(t testing.TB, answer func(n int) (int, string)) *askpassServer {
	t.Helper()
	a := &askpassServer{answer: answer, status: map[int]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

// newAskpassServerAt is newAskpassServer listening on addr (for a server
// that comes up after git-sync started using it).
func newAskpassServerAt(t testing.TB, addr string, answer func(n int) (int, string)) *askpassServer {
	t.Helper()
	a := &askpassServer{answer: answer, status: map[int]int{}}
	var l net.Listener
	var err error
	// The address was free a moment ago; a parallel test may have taken it
	// for an outgoing connection's port in between, so retry briefly.
	if !poll(5*time.Second, func() bool {
		l, err = net.Listen("tcp", addr)
		return err == nil
	}) {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(a.serve))
	a.srv.Listener.Close()
	a.srv.Listener = l
	a.srv.Start()
	t.Cleanup(a.srv.Close)
	return a
}

func (a *askpassServer) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.calls++
	n := a.calls
	if r.Method != http.MethodGet {
		a.bad = append(a.bad, r.Method+" "+r.URL.String())
	}
	a.mu.Unlock()
	code, body := a.answer(n)
	a.mu.Lock()
	a.status[code]++
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// URL is the address to give --askpass-url.
func (a *askpassServer) URL() string { return a.srv.URL + "/askpass" }

// Calls is the number of requests so far.
func (a *askpassServer) Calls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

// Answered is the number of requests answered with status code.
func (a *askpassServer) Answered(code int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status[code]
}

// Bad lists requests that were not GETs.
func (a *askpassServer) Bad() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.bad...)
}

// askpassBody is an askpass answer.
func askpassBody(user, pass string) string {
	return "username=" + user + "\npassword=" + pass + "\n"
}

// ---------------------------------------------------------------------------
// The GitHub API.

// githubAPI is an httptest server for POST {base}/app/installations/{id}/
// access_tokens. Like GitHub it checks the bearer JWT (RS256 signature with
// the app's public key, the issuer, iat and exp) before it issues a token.
type githubAPI struct {
	srv          *httptest.Server
	prefix       string // path prefix of the base URL, e.g. "/api/v3"
	pub          *rsa.PublicKey
	issuer       any // int64 application id or string client id
	installation int64
	// lifetime is how long token n (1-based) is valid.
	lifetime func(n int) time.Duration
	// onIssue sees every token before the client gets it (e.g. to make
	// the git server demand it).
	onIssue func(token string)
	// tokenPrefix, when set, makes token n tokenPrefix-n (known in advance).
	tokenPrefix string

	mu       sync.Mutex
	issued   []string
	jwts     []string
	rejected []string
}

// githubAPIOptions configures newGitHubAPI.
type githubAPIOptions struct {
	Prefix       string
	Public       *rsa.PublicKey
	Issuer       any
	Installation int64
	Lifetime     func(n int) time.Duration
	OnIssue      func(token string)
	// TokenPrefix makes the tokens predictable: TokenPrefix-1, -2, ...
	// (default: random ghs_ tokens).
	TokenPrefix string
}

func newGitHubAPI(t testing.TB, o githubAPIOptions) *githubAPI {
	t.Helper()
	g := &githubAPI{
		prefix: o.Prefix, pub: o.Public, issuer: o.Issuer, installation: o.Installation,
		lifetime: o.Lifetime, onIssue: o.OnIssue, tokenPrefix: o.TokenPrefix,
	}
	if g.lifetime == nil {
		g.lifetime = func(int) time.Duration { return time.Hour }
	}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

// BaseURL is the value for --github-base-url.
func (g *githubAPI) BaseURL() string { return g.srv.URL + g.prefix }

func (g *githubAPI) reject(w http.ResponseWriter, code int, why string) {
	g.mu.Lock()
	g.rejected = append(g.rejected, why)
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]string{"message": why})
	_, _ = w.Write(b)
}

func (g *githubAPI) serve(w http.ResponseWriter, r *http.Request) {
	wantPath := fmt.Sprintf("%s/app/installations/%d/access_tokens", g.prefix, g.installation)
	if r.URL.Path != wantPath {
		g.reject(w, http.StatusNotFound, "Not Found: "+r.Method+" "+r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		g.reject(w, http.StatusMethodNotAllowed, "method "+r.Method)
		return
	}
	jwt, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		g.reject(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
		return
	}
	if err := verifyAppJWT(jwt, g.pub, g.issuer, time.Now()); err != nil {
		g.reject(w, http.StatusUnauthorized, "JWT rejected: "+err.Error())
		return
	}
	g.mu.Lock()
	n := len(g.issued) + 1
	tok := fmt.Sprintf("%s-%d", g.tokenPrefix, n)
	if g.tokenPrefix == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		tok = "ghs_" + hex.EncodeToString(b)
	}
	g.jwts = append(g.jwts, jwt)
	g.issued = append(g.issued, tok)
	g.mu.Unlock()
	if g.onIssue != nil {
		g.onIssue(tok)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	out, _ := json.Marshal(map[string]any{
		"token":      tok,
		"expires_at": time.Now().Add(g.lifetime(n)).UTC().Format(time.RFC3339),
	})
	_, _ = w.Write(out)
}

// Issued returns the tokens issued so far.
func (g *githubAPI) Issued() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.issued...)
}

// JWTs returns the accepted JWTs.
func (g *githubAPI) JWTs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.jwts...)
}

// Rejected returns why requests were refused.
func (g *githubAPI) Rejected() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.rejected...)
}

// verifyAppJWT checks a GitHub App JWT the way GitHub does: RS256 signed by
// pub, "iss" equal to the application id (a JSON number) or the client id
// (a string), issued no later than now, not expired, and expiring at most
// 10 minutes after now.
func verifyAppJWT(tok string, pub *rsa.PublicKey, wantIss any, now time.Time) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fmt.Errorf("want 3 dot-separated parts, got %d", len(parts))
	}
	enc := base64.RawURLEncoding
	hdrJSON, err := enc.DecodeString(parts[0])
	if err != nil {
		return fmt.Errorf("header: %v", err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(hdrJSON, &hdr); err != nil {
		return fmt.Errorf("header: %v", err)
	}
	if hdr["alg"] != "RS256" {
		return fmt.Errorf("alg %v, want RS256", hdr["alg"])
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature: %v", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("signature does not verify with the app's public key")
	}
	claimsJSON, err := enc.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("claims: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(claimsJSON))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return fmt.Errorf("claims: %v", err)
	}
	switch want := wantIss.(type) {
	case int64:
		n, ok := claims["iss"].(json.Number)
		if !ok || n.String() != strconv.FormatInt(want, 10) {
			return fmt.Errorf("iss %#v, want the number %d", claims["iss"], want)
		}
	case string:
		s, ok := claims["iss"].(string)
		if !ok || s != want {
			return fmt.Errorf("iss %#v, want the string %q", claims["iss"], want)
		}
	}
	unix := func(name string) (time.Time, error) {
		n, ok := claims[name].(json.Number)
		if !ok {
			return time.Time{}, fmt.Errorf("claim %s missing or not a number", name)
		}
		v, err := n.Int64()
		if err != nil {
			return time.Time{}, fmt.Errorf("claim %s: %v", name, err)
		}
		return time.Unix(v, 0), nil
	}
	iat, err := unix("iat")
	if err != nil {
		return err
	}
	exp, err := unix("exp")
	if err != nil {
		return err
	}
	const skew = 5 * time.Second
	switch {
	case iat.After(now.Add(skew)):
		return fmt.Errorf("iat %v is in the future", iat)
	case !exp.After(now):
		return fmt.Errorf("expired at %v", exp)
	case exp.After(now.Add(10*time.Minute + skew)):
		return fmt.Errorf("exp %v is more than 10 minutes ahead", exp)
	case !exp.After(iat):
		return fmt.Errorf("exp %v is not after iat %v", exp, iat)
	}
	return nil
}

// authRSAKey generates a GitHub App key pair and returns it with its PEM
// encodings (PKCS#1 and PKCS#8).
func authRSAKey(t testing.TB) (key *rsa.PrivateKey, pkcs1, pkcs8 string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p8 := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return key, string(p1), string(p8)
}

// pemBodyLines returns the base64 lines of a PEM document (each one is a
// piece of the key that must never leak).
func pemBodyLines(p string) []string {
	var out []string
	for _, l := range strings.Split(p, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// A reverse proxy in front of a git server.

// gateProxy is an HTTP server that forwards to target when allow accepts
// the request and answers 403 otherwise.
type gateProxy struct {
	srv *httptest.Server

	mu      sync.Mutex
	allowed int
	denied  int
}

func newGateProxy(t testing.TB, target string, allow func(*http.Request) bool) *gateProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	g := &gateProxy{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := allow(r)
		g.mu.Lock()
		if ok {
			g.allowed++
		} else {
			g.denied++
		}
		g.mu.Unlock()
		if !ok {
			http.Error(w, "no session cookie", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// Counts returns how many requests were let through and refused.
func (g *gateProxy) Counts() (allowed, denied int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.allowed, g.denied
}

// ---------------------------------------------------------------------------
// Looking for secrets.

// findSecrets returns the secrets that occur in text.
func findSecrets(text string, secrets []string) []string {
	var out []string
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			out = append(out, s)
		}
	}
	return out
}

// cmdlineScanner reads /proc/*/cmdline of every process over and over, in
// the background, recording any command line that holds a secret.
type cmdlineScanner struct {
	secrets []string
	marker  string
	exclude map[int]bool
	stop    chan struct{}
	done    chan struct{}

	mu     sync.Mutex
	leaks  []string
	marked map[int]string       // pids whose command line holds marker
	env    map[string][]envLeak // variable name -> processes holding a secret in it
	rounds int
	cache  []string // command lines that mention credential-cache
}

// startCmdlineScan starts scanning. Command lines containing marker are
// recorded (to prove the scan saw git-sync's children); pids in exclude
// (e.g. git-sync itself when the user put a secret in its argv) are not
// checked.
func startCmdlineScan(secrets []string, marker string, exclude ...int) *cmdlineScanner {
	s := &cmdlineScanner{
		secrets: secrets, marker: marker, exclude: map[int]bool{},
		stop: make(chan struct{}), done: make(chan struct{}), marked: map[int]string{},
		env: map[string][]envLeak{},
	}
	for _, p := range exclude {
		s.exclude[p] = true
	}
	go s.loop()
	return s
}

func (s *cmdlineScanner) loop() {
	defer close(s.done)
	self := os.Getpid()
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil || len(b) == 0 {
				continue
			}
			cmd := strings.ReplaceAll(string(bytes.TrimRight(b, "\x00")), "\x00", " ")
			s.mu.Lock()
			if s.marker != "" && strings.Contains(cmd, s.marker) {
				if _, seen := s.marked[pid]; !seen {
					env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
					for _, kv := range strings.Split(string(env), "\x00") {
						name, val, _ := strings.Cut(kv, "=")
						if len(s.env[name]) < 5 && len(findSecrets(val, s.secrets)) > 0 {
							s.env[name] = append(s.env[name], envLeak{Pid: pid, Cmd: cmd})
						}
					}
				}
				s.marked[pid] = cmd
			}
			if strings.Contains(cmd, "credential-cache") {
				s.cache = append(s.cache, fmt.Sprintf("pid %d: %s", pid, cmd))
			}
			if !s.exclude[pid] {
				if found := findSecrets(cmd, s.secrets); len(found) > 0 {
					s.leaks = append(s.leaks, fmt.Sprintf("pid %d: %q holds %q", pid, cmd, found))
				}
			}
			s.mu.Unlock()
		}
		s.mu.Lock()
		s.rounds++
		s.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
}

// envLeak is a process whose environment held a secret.
type envLeak struct {
	Pid int
	Cmd string
}

// EnvLeaks maps each environment variable that held a secret in a marked
// process other than pid to one such process.
func (s *cmdlineScanner) EnvLeaks(pid int) map[string]envLeak {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]envLeak{}
	for k, leaks := range s.env {
		for _, l := range leaks {
			if l.Pid != pid {
				out[k] = l
				break
			}
		}
	}
	return out
}

// Stop ends the scan and returns the leaks, the command lines that held the
// marker, the processes that mentioned credential-cache, and the number of
// complete passes over /proc.
func (s *cmdlineScanner) Stop() (leaks []string, marked map[int]string, cache []string, rounds int) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leaks, s.marked, s.cache, s.rounds
}

// secretFile is a file under a scanned directory that holds a secret.
type secretFile struct {
	Path    string
	Mode    fs.FileMode
	Secrets []string
}

// filesWithSecrets walks dir (not following symlinks) and returns every
// regular file whose content holds one of secrets. A missing dir is empty.
func filesWithSecrets(t testing.TB, dir string, secrets []string) []secretFile {
	t.Helper()
	var out []secretFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking (e.g. a temp file)
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.Size() > 64<<20 {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if found := findSecrets(string(b), secrets); len(found) > 0 {
			out = append(out, secretFile{Path: p, Mode: fi.Mode().Perm(), Secrets: found})
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("scanning %s: %v", dir, err)
	}
	return out
}

// authPrivateDirs returns git-sync's owner-only credential directories in
// tmp (named git-sync-auth-*: see internal/auth).
func authPrivateDirs(tmp string) []string {
	m, _ := filepath.Glob(filepath.Join(tmp, "git-sync-auth-*"))
	return m
}

// processesMentioning returns the live processes (other than this test
// binary) whose command line contains any of needles.
func processesMentioning(needles ...string) []string {
	var out []string
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || !processAlive(pid) {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(bytes.TrimRight(b, "\x00")), "\x00", " ")
		for _, n := range needles {
			if n != "" && strings.Contains(cmd, n) {
				out = append(out, fmt.Sprintf("pid %d: %s", pid, cmd))
				break
			}
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Running as another user.

// authPublicDir returns a new directory under the system temp dir that
// every user can enter (0755), removed when the test ends: t.TempDir()
// directories are owner-only, so another UID could not reach anything in
// them.
func authPublicDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gitsync-e2e-uid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// authCopyFile copies src to dst with mode and owner uid:gid.
func authCopyFile(t testing.TB, src, dst string, mode os.FileMode, uid, gid int) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dst, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// runAs runs the binary at bin with args as uid:gid (no supplementary
// groups) in env exactly (no HOME unless env has one), to completion.
func runAs(t testing.TB, bin string, uid, gid int, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s as uid %d: %v", bin, uid, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(runDeadline):
		killTree(cmd.Process.Pid)
		<-done
		t.Fatalf("git-sync as uid %d did not exit within %v\n%s", uid, runDeadline, tail(stderr.String(), 60))
	}
	res := result{Code: exitCode(err), Stdout: stdout.String(), Stderr: stderr.String()}
	if res.Code == -2 {
		t.Fatalf("git-sync as uid %d: %v", uid, err)
	}
	return res
}

// backupPasswd saves /etc/passwd (content and mode) and restores both when
// the test ends.
func backupPasswd(t testing.TB) {
	t.Helper()
	const p = "/etc/passwd"
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Rewrite in place: /etc/passwd may be a bind mount, which a
		// rename could not replace.
		if err := os.WriteFile(p, orig, fi.Mode().Perm()); err != nil {
			t.Errorf("restoring %s: %v", p, err)
		}
		if err := os.Chmod(p, fi.Mode().Perm()); err != nil {
			t.Errorf("restoring the mode of %s: %v", p, err)
		}
	})
}

// authSuperSub is a superproject served by one smart-HTTP server (A) whose
// submodule "sub" (holding sub.txt = "sub 1\n") is served by another (B).
type authSuperSub struct {
	super, sub *gittest.Repo
	srvA, srvB *gittest.HTTP
	h1         string // the superproject's commit that adds the submodule
}

// authSuperWithSub builds an authSuperSub; once the submodule is added, A
// demands userA/passA and B demands userB/passB.
func authSuperWithSub(t testing.TB, userA, passA, userB, passB string) authSuperSub {
	t.Helper()
	f := authSuperSub{super: gittest.NewRepo(t), sub: gittest.NewRepo(t)}
	f.sub.Commit(map[string]string{"sub.txt": "sub 1\n"}, "s1")
	f.srvB = gittest.HTTPServer(t, authServeDir(t, map[string]*gittest.Repo{"sub": f.sub}), gittest.HTTPOptions{})
	f.srvA = gittest.HTTPServer(t, authServeDir(t, map[string]*gittest.Repo{"super": f.super}), gittest.HTTPOptions{})
	f.super.Commit(map[string]string{"README": "super\n"}, "super 1")
	// The fixture adds the submodule while B is still open.
	f.h1 = f.super.AddSubmodule(f.sub, "sub", f.srvB.URL("sub"))
	f.srvA.SetCredentials(userA, passA)
	f.srvB.SetCredentials(userB, passB)
	return f
}
