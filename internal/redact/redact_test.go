package redact

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"no URL", "fatal: couldn't find remote ref main", "fatal: couldn't find remote ref main"},
		{"plain URL", "https://host/org/repo.git", "https://host/org/repo.git"},
		{"file URL", "file:///srv/repo", "file:///srv/repo"},
		{"user and password", "https://u:pw@host/r", "https://REDACTED@host/r"},
		{"token as user", "https://ghp_abc@github.com/o/r", "https://REDACTED@github.com/o/r"},
		{"at sign in password", "https://u:p@ss@host/r", "https://REDACTED@host/r"},
		{"user without path", "http://u:pw@host:8080", "http://REDACTED@host:8080"},
		{"query", "http://127.0.0.1:80/hook?token=t&x=1", "http://127.0.0.1:80/hook?REDACTED"},
		{"query without path", "http://host?token=t", "http://host?REDACTED"},
		{"empty query", "http://host/p?", "http://host/p?"},
		{"query and fragment", "http://host/p?token=t#frag", "http://host/p?REDACTED#frag"},
		{"at sign in query", "http://host/p?mail=a@b", "http://host/p?REDACTED"},
		{"at sign in path", "https://host/users/a@b/r", "https://host/users/a@b/r"},
		{"both", "https://u:pw@host/r?token=t", "https://REDACTED@host/r?REDACTED"},
		{"ssh user", "ssh://git@host:22/r", "ssh://REDACTED@host:22/r"},
		{"scp-like", "git@host:org/r.git", "git@host:org/r.git"},
		{"in git's message",
			"fatal: unable to access 'https://u:pw@host/r/?t=1': The requested URL returned error: 403",
			"fatal: unable to access 'https://REDACTED@host/r/?REDACTED': The requested URL returned error: 403"},
		{"in Go's message", `Post "http://h/x?token=t": dial tcp 127.0.0.1:1: connect: connection refused`,
			`Post "http://h/x?REDACTED": dial tcp 127.0.0.1:1: connect: connection refused`},
		{"several", "a http://u:p@h/ b https://h2/?q c", "a http://REDACTED@h/ b https://h2/?REDACTED c"},
		{"multi-line", "line one https://u:p@h/r\nline two", "line one https://REDACTED@h/r\nline two"},
		{"scheme only", "http://", "http://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.in); got != tt.want {
				t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := HasSecret(tt.in); got != (tt.in != tt.want) {
				t.Errorf("HasSecret(%q) = %v", tt.in, got)
			}
			if again := Text(tt.want); again != tt.want {
				t.Errorf("Text is not idempotent: Text(%q) = %q", tt.want, again)
			}
		})
	}
}

func TestError(t *testing.T) {
	if Error(nil) != nil {
		t.Fatal("Error(nil) != nil")
	}
	plain := errors.New("no secrets here")
	if Error(plain) != plain {
		t.Fatal("an error without secrets was wrapped")
	}

	// What net/http returns for a refused connection: a *url.Error whose
	// message quotes the request URL, query included.
	_, err := http.Get("http://127.0.0.1:1/hook?token=tok-secret")
	if err == nil {
		t.Fatal("GET on port 1 succeeded")
	}
	red := Error(fmt.Errorf("webhook: %w", err))
	if got := red.Error(); got == err.Error() || strings.Contains(got, "tok-secret") {
		t.Fatalf("Error(...) = %q", got)
	}
	var ue *url.Error
	if !errors.As(red, &ue) {
		t.Fatal("errors.As no longer finds the *url.Error")
	}
	wrapped := Error(fmt.Errorf("open https://u:pw@h/x: %w", fs.ErrNotExist))
	if !errors.Is(wrapped, fs.ErrNotExist) || wrapped.Error() != "open https://REDACTED@h/x: file does not exist" {
		t.Fatalf("Error = %q, Is(ErrNotExist) = %v", wrapped, errors.Is(wrapped, fs.ErrNotExist))
	}
}
