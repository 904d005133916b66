package auth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"gitsync/internal/redact"
	"gitsync/internal/secret"
)

// maxResponse bounds what git-sync reads from the askpass URL, the GitHub
// API and the credential helper protocol.
const maxResponse = 64 << 10

// callAskpass GETs the askpass URL and parses its "username=..." and
// "password=..." lines (other lines are ignored). Anything but a 200 with a
// password is an error. Messages name the URL without user info or query
// (see package redact) and never quote the body.
func callAskpass(ctx context.Context, client *http.Client, rawURL string) (string, secret.Secret, error) {
	where := redact.Text(rawURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", secret.Secret{}, fmt.Errorf("--askpass-url: GET %s: %w", where, redact.Error(err))
	}
	req.Header.Set("User-Agent", "git-sync")
	resp, err := client.Do(req)
	if err != nil {
		// The client's error names the method and the URL.
		return "", secret.Secret{}, fmt.Errorf("--askpass-url: %w", redact.Error(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return "", secret.Secret{}, fmt.Errorf("--askpass-url: GET %s: read response: %w", where, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", secret.Secret{}, fmt.Errorf("--askpass-url: GET %s: %s", where, resp.Status)
	}
	var username, password string
	var havePassword bool
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, maxResponse)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSuffix(sc.Text(), "\r"), "=")
		if !ok {
			continue
		}
		switch k {
		case "username":
			username = v
		case "password":
			password, havePassword = v, true
		}
	}
	if err := sc.Err(); err != nil {
		return "", secret.Secret{}, fmt.Errorf("--askpass-url: GET %s: read response: %w", where, err)
	}
	if !havePassword || password == "" {
		return "", secret.Secret{}, fmt.Errorf("--askpass-url: GET %s: response has no password= line", where)
	}
	if err := checkCredentialValue(username + password); err != nil {
		return "", secret.Secret{}, fmt.Errorf("--askpass-url: GET %s: %w", where, err)
	}
	return username, secret.New(password), nil
}

// readPasswordFile reads a password file, dropping one trailing line break.
func readPasswordFile(path string) (secret.Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return secret.Secret{}, err
	}
	s := string(b)
	if strings.HasSuffix(s, "\n") {
		s = strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r")
	}
	if err := checkCredentialValue(s); err != nil {
		return secret.Secret{}, fmt.Errorf("%s: %w", path, err)
	}
	if s == "" {
		return secret.Secret{}, fmt.Errorf("%s: file is empty", path)
	}
	return secret.New(s), nil
}

// checkCredentialValue rejects what git's credential protocol cannot carry.
// The message never quotes the value.
func checkCredentialValue(s string) error {
	if strings.ContainsAny(s, "\n\x00") {
		return errors.New("value contains a line break or NUL, which git's credential protocol cannot carry")
	}
	return nil
}
