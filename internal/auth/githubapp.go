package auth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gitsync/internal/redact"
	"gitsync/internal/secret"
)

// GitHubAppUsername is the username git-sync gives git with a GitHub App
// installation token (GitHub accepts any username with such a token).
const GitHubAppUsername = "-"

// appTokenMargin: a token that expires within this is renewed.
const appTokenMargin = 30 * time.Second

// jwtLifetime is the JWT's validity after now (GitHub allows at most 10
// minutes); jwtBackdate allows for clock skew with GitHub.
const (
	jwtLifetime = 9 * time.Minute
	jwtBackdate = 60 * time.Second
)

// githubApp fetches installation tokens.
type githubApp struct {
	key    *rsa.PrivateKey
	issuer any    // int64 application id, or string client id
	url    string // the access_tokens endpoint
}

func newGitHubApp(cfg GitHubApp, readFile func(string) ([]byte, error)) (*githubApp, error) {
	var pemBytes []byte
	switch {
	case cfg.PrivateKeyFile != "":
		b, err := readFile(cfg.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--github-app-private-key-file: %w", err)
		}
		pemBytes = b
	default:
		pemBytes = []byte(cfg.PrivateKey.Reveal())
	}
	key, err := parseRSAPrivateKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("GitHub App private key: %w", err)
	}
	app := &githubApp{key: key}
	switch {
	case cfg.ApplicationID != 0:
		app.issuer = cfg.ApplicationID
	case cfg.ClientID != "":
		app.issuer = cfg.ClientID
	default:
		return nil, errors.New("GitHub App: --github-app-application-id or --github-app-client-id is required")
	}
	if cfg.InstallationID == 0 {
		return nil, errors.New("GitHub App: --github-app-installation-id is required")
	}
	base := cfg.BaseURL
	if base == "" {
		base = "https://api.github.com/"
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	app.url = base + "app/installations/" + strconv.FormatInt(cfg.InstallationID, 10) + "/access_tokens"
	return app, nil
}

// parseRSAPrivateKey reads the first PEM block of b as a PKCS#1 or PKCS#8
// RSA private key. Errors never quote the key.
func parseRSAPrivateKey(b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PEM block %q is neither a PKCS#1 nor a PKCS#8 private key", block.Type)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("PKCS#8 key is a %T, want an RSA key", k)
	}
	return rk, nil
}

// signJWT returns the RS256 JWT that authenticates the app at time now.
func signJWT(key *rsa.PrivateKey, issuer any, now time.Time) (string, error) {
	header := map[string]string{"alg": "RS256", "typ": "JWT"}
	claims := map[string]any{
		"iat": now.Add(-jwtBackdate).Unix(),
		"exp": now.Add(jwtLifetime).Unix(),
		"iss": issuer,
	}
	enc := base64.RawURLEncoding
	var parts [2]string
	for i, v := range []any{header, claims} {
		b, err := json.Marshal(v)
		if err != nil {
			return "", err
		}
		parts[i] = enc.EncodeToString(b)
	}
	signed := parts[0] + "." + parts[1]
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	return signed + "." + enc.EncodeToString(sig), nil
}

// token asks GitHub for a new installation token.
func (g *githubApp) token(ctx context.Context, client *http.Client, now time.Time) (secret.Secret, time.Time, error) {
	jwt, err := signJWT(g.key, g.issuer, now)
	if err != nil {
		return secret.Secret{}, time.Time{}, err
	}
	where := redact.Text(g.url)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, nil)
	if err != nil {
		return secret.Secret{}, time.Time{}, fmt.Errorf("GitHub App token: POST %s: %w", where, redact.Error(err))
	}
	req.Header.Set("Authorization", "Bearer "+jwt)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", "git-sync")
	resp, err := client.Do(req)
	if err != nil {
		// The client's error names the method and the URL.
		return secret.Secret{}, time.Time{}, fmt.Errorf("GitHub App token: %w", redact.Error(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return secret.Secret{}, time.Time{}, fmt.Errorf("GitHub App token: POST %s: read response: %w", where, err)
	}
	if resp.StatusCode/100 != 2 {
		// GitHub explains refusals in "message"; it holds no secret.
		var e struct {
			Message string `json:"message"`
		}
		msg := ""
		if json.Unmarshal(body, &e) == nil && e.Message != "" {
			msg = ": " + truncate(e.Message, 200)
		}
		return secret.Secret{}, time.Time{}, fmt.Errorf("GitHub App token: POST %s: %s%s", where, resp.Status, msg)
	}
	var out struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return secret.Secret{}, time.Time{}, fmt.Errorf("GitHub App token: POST %s: response is not the expected JSON", where)
	}
	if out.Token == "" || out.ExpiresAt.IsZero() {
		return secret.Secret{}, time.Time{}, fmt.Errorf("GitHub App token: POST %s: response lacks token or expires_at", where)
	}
	if err := checkCredentialValue(out.Token); err != nil {
		return secret.Secret{}, time.Time{}, fmt.Errorf("GitHub App token: %w", err)
	}
	return secret.New(out.Token), out.ExpiresAt, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
