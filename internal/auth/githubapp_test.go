package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"gitsync/internal/secret"
)

// fakeGitHub is the installation token endpoint of a GitHub API: it checks
// the request and the JWT (RS256 signature with the app's public key,
// header, iat/exp window, issuer) before issuing a token.
type fakeGitHub struct {
	pub            *rsa.PublicKey
	issuer         any // what "iss" must decode to: float64 or string
	installationID int64

	mu       sync.Mutex
	issued   int
	lifetime time.Duration // of the next token
	refuse   bool          // answer 401 as for a revoked app
	problems []string      // request checks that failed
}

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(r); err != nil {
		f.problems = append(f.problems, err.Error())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"message":%q}`, err.Error())
		return
	}
	if f.refuse {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"message":"A JSON web token could not be decoded","documentation_url":"https://docs.github.com/rest"}`)
		return
	}
	f.issued++
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{
		"token":       fmt.Sprintf("ghs_token_%d", f.issued),
		"expires_at":  time.Now().Add(f.lifetime).UTC().Format(time.RFC3339),
		"permissions": map[string]string{"contents": "read"},
	})
}

func (f *fakeGitHub) check(r *http.Request) error {
	wantPath := fmt.Sprintf("/api/v3/app/installations/%d/access_tokens", f.installationID)
	if r.Method != http.MethodPost || r.URL.Path != wantPath {
		return fmt.Errorf("request %s %s, want POST %s", r.Method, r.URL.Path, wantPath)
	}
	if got := r.Header.Get("Accept"); got != "application/vnd.github+json" {
		return fmt.Errorf("Accept = %q", got)
	}
	jwt, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return errors.New("no Bearer authorization")
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return errors.New("JWT has not 3 parts")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("JWT signature encoding: %v", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(f.pub, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("JWT signature: %v", err)
	}
	var header map[string]any
	if err := decodeJWTPart(parts[0], &header); err != nil {
		return err
	}
	if !reflect.DeepEqual(header, map[string]any{"alg": "RS256", "typ": "JWT"}) {
		return fmt.Errorf("JWT header = %v", header)
	}
	var claims struct {
		Iat, Exp float64
		Iss      any
	}
	if err := decodeJWTPart(parts[1], &claims); err != nil {
		return err
	}
	now := float64(time.Now().Unix())
	switch {
	case claims.Iat > now || claims.Iat < now-120:
		return fmt.Errorf("iat %v is not in the last 2 minutes", claims.Iat)
	case claims.Exp <= now || claims.Exp > now+600:
		return fmt.Errorf("exp %v is not within 10 minutes", claims.Exp)
	case claims.Iss != f.issuer:
		return fmt.Errorf("iss = %#v, want %#v", claims.Iss, f.issuer)
	}
	return nil
}

func decodeJWTPart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("JWT part encoding: %v", err)
	}
	return json.Unmarshal(b, v)
}

func (f *fakeGitHub) state() (issued int, problems []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued, append([]string(nil), f.problems...)
}

func (f *fakeGitHub) set(lifetime time.Duration, refuse bool) {
	f.mu.Lock()
	f.lifetime, f.refuse = lifetime, refuse
	f.mu.Unlock()
}

func newRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemPKCS1(k *rsa.PrivateKey) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
}

func pemPKCS8(t *testing.T, k any) string {
	t.Helper()
	b, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b}))
}

func TestGitHubApp(t *testing.T) {
	key := newRSAKey(t)
	tests := []struct {
		name   string
		setKey func(*GitHubApp)
		issuer any
	}{
		{"PKCS#1 file, application id", func(c *GitHubApp) {
			c.PrivateKeyFile = filepath.Join(t.TempDir(), "app.pem")
			writeFile(t, c.PrivateKeyFile, pemPKCS1(key))
			c.ApplicationID = 123456
		}, float64(123456)},
		{"PKCS#8 from environment, client id", func(c *GitHubApp) {
			c.PrivateKey = secret.New(pemPKCS8(t, key))
			c.ClientID = "Iv1.0123abcd"
		}, "Iv1.0123abcd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh := &fakeGitHub{pub: &key.PublicKey, issuer: tt.issuer, installationID: 987, lifetime: 20 * time.Second}
			hs := httptest.NewServer(gh)
			defer hs.Close()
			cfg := baseConfig("https://github.example.com/org/repo.git")
			cfg.GitHubApp.BaseURL = hs.URL + "/api/v3/"
			cfg.GitHubApp.InstallationID = 987
			tt.setKey(&cfg.GitHubApp)
			m := newMetricsRecorder()
			a := newTestAuth(t, cfg, Options{Metrics: m})
			env := childEnv(t, a)
			ctx := context.Background()

			if err := a.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			wantCredential(t, env, "https://github.example.com/org/repo.git", GitHubAppUsername, "ghs_token_1")

			// The token expires within 30 s: renewed.
			gh.set(time.Hour, false)
			if err := a.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			wantCredential(t, env, "https://github.example.com/org/repo.git", GitHubAppUsername, "ghs_token_2")
			// Valid for an hour: kept.
			if err := a.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			issued, problems := gh.state()
			if issued != 2 || len(problems) != 0 {
				t.Fatalf("server issued %d tokens (want 2), problems: %q", issued, problems)
			}
			if _, _, ok, bad := m.counts(); ok != 2 || bad != 0 {
				t.Fatalf("app metrics success=%d error=%d", ok, bad)
			}
		})
	}
}

func TestGitHubAppErrors(t *testing.T) {
	key := newRSAKey(t)
	other := newRSAKey(t)
	gh := &fakeGitHub{pub: &key.PublicKey, issuer: float64(7), installationID: 8, lifetime: time.Hour}
	hs := httptest.NewServer(gh)
	defer hs.Close()
	cfg := baseConfig("https://github.example.com/org/repo.git")
	cfg.GitHubApp = GitHubApp{
		PrivateKey:     secret.New(pemPKCS1(other)), // not the app's key
		ApplicationID:  7,
		InstallationID: 8,
		BaseURL:        hs.URL + "/api/v3/",
	}
	m := newMetricsRecorder()
	a := newTestAuth(t, cfg, Options{Metrics: m})
	err := a.Refresh(context.Background())
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "JWT signature") {
		t.Fatalf("Refresh with the wrong key = %v", err)
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("error reveals the key: %v", err)
	}
	if _, _, ok, bad := m.counts(); ok != 0 || bad != 1 {
		t.Fatalf("app metrics success=%d error=%d", ok, bad)
	}
	wantNoCredential(t, childEnv(t, a), "https://github.example.com/org/repo.git")

	// A refusal from GitHub shows its message.
	cfg.GitHubApp.PrivateKey = secret.New(pemPKCS1(key))
	gh.set(time.Hour, true)
	a2 := newTestAuth(t, cfg, Options{})
	if err := a2.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "could not be decoded") {
		t.Fatalf("Refresh when GitHub refuses = %v", err)
	}
}

func TestParseRSAPrivateKey(t *testing.T) {
	key := newRSAKey(t)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, good := range []string{pemPKCS1(key), pemPKCS8(t, key), "leading text\n" + pemPKCS1(key)} {
		k, err := parseRSAPrivateKey([]byte(good))
		if err != nil || !k.Equal(key) {
			t.Errorf("parseRSAPrivateKey: %v", err)
		}
	}
	bad := map[string]string{
		"":              "no PEM block",
		"garbage":       "no PEM block",
		pemPKCS8(t, ec): "want an RSA key",
		string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("junk")})): "neither",
	}
	for in, want := range bad {
		if _, err := parseRSAPrivateKey([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseRSAPrivateKey(%.20q) = %v, want %q", in, err, want)
		}
	}
}

func TestSignJWT(t *testing.T) {
	key := newRSAKey(t)
	now := time.Unix(1_700_000_000, 0)
	jwt, err := signJWT(key, int64(42), now)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT %q", jwt)
	}
	var claims map[string]any
	if err := decodeJWTPart(parts[1], &claims); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"iat": float64(1_700_000_000 - 60), "exp": float64(1_700_000_000 + 540), "iss": float64(42)}
	if !reflect.DeepEqual(claims, want) {
		t.Fatalf("claims = %v, want %v", claims, want)
	}
}
