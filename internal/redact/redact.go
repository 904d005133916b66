// Package redact takes secrets out of text before it reaches a log line, an
// error message, the --error-file or a metric label.
//
// Secrets that git-sync holds itself travel as secret.Secret values and
// print as REDACTED on their own. What remains are URLs, which arrive as
// plain strings from flags (--repo, --askpass-url, --webhook-url,
// --credential, --github-base-url) and inside messages from git, ssh and
// Go's HTTP client. Their secrets sit in two places: the user information
// (https://user:password@host/, or https://TOKEN@host/) and the query
// (https://host/hook?token=...). Text replaces both, in every URL found
// anywhere in a string, and leaves everything else byte for byte, so that
// git's own messages stay readable. It is the one redaction used across
// git-sync: one rule, so that no message path can apply a weaker one.
package redact

import (
	"regexp"
	"strings"

	"gitsync/internal/secret"
)

// Mark is what replaces a secret.
const Mark = secret.Redacted

// urlPattern finds URLs in free text: a scheme, "://", then everything up
// to a blank or a quote (git quotes URLs with ', Go's errors with ").
var urlPattern = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"<>]*`)

// Text returns s with the user information and the query of every URL in
// it replaced by Mark: "https://u:pw@host/r?token=t" becomes
// "https://REDACTED@host/r?REDACTED". A URL on its own is the simplest
// text. Paths, hosts and everything outside URLs are kept. Forms without
// "://" (scp-like user@host:path) carry no password and are kept too.
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s // the common case (git output without URLs): no regexp work
	}
	return urlPattern.ReplaceAllStringFunc(s, oneURL)
}

// oneURL redacts one URL found by urlPattern.
func oneURL(u string) string {
	i := strings.Index(u, "://") + len("://")
	scheme, rest := u[:i], u[i:]
	authEnd := strings.IndexAny(rest, "/?#")
	if authEnd < 0 {
		authEnd = len(rest)
	}
	// The user information ends at the last '@' of the authority: an
	// unescaped '@' in a password must not leave its tail behind.
	if at := strings.LastIndexByte(rest[:authEnd], '@'); at >= 0 {
		rest = Mark + rest[at:]
		authEnd += len(Mark) - at
	}
	if q := strings.IndexByte(rest[authEnd:], '?'); q >= 0 {
		q += authEnd + 1
		end := len(rest)
		if f := strings.IndexByte(rest[q:], '#'); f >= 0 {
			end = q + f
		}
		if end > q {
			rest = rest[:q] + Mark + rest[end:]
		}
	}
	return scheme + rest
}

// HasSecret reports whether s holds a URL with user information or a
// query, that is, whether Text would change it.
func HasSecret(s string) bool { return Text(s) != s }

// Error returns err with its message passed through Text; errors.Is and
// errors.As still see err itself. nil stays nil, and an error whose message
// holds no secret is returned unchanged.
func Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := Text(msg); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

// redactedError is an error shown with a redacted message.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
