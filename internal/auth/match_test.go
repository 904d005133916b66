package auth

import (
	"strings"
	"testing"
)

func TestParseURLKey(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"https://host/org/repo.git", "https://host/org/repo.git"},
		{"HTTPS://Host.Example.COM/Org/Repo", "https://host.example.com/Org/Repo"},
		{"https://host:443/a/", "https://host/a"},
		{"https://host:8443/a", "https://host:8443/a"},
		{"http://host:80/a", "http://host/a"},
		{"http://host:443/a", "http://host:443/a"},
		{"https://host", "https://host"},
		{"https://host/", "https://host"},
		{"https://user:pw@host/a%20b", "https://host/a b"},
		{"https://[::1]:8080/x", "https://[::1]:8080/x"},
		{"file:///srv/git/repo", "file:///srv/git/repo"},
		{"FILE:///srv/git/a%20b/", "file:///srv/git/a b"},
		{"file://localhost/srv/repo", "file://localhost/srv/repo"},
		{"git://host:9418/repo", "git://host:9418/repo"},
		{"ssh://git@host:22/repo", "ssh://host:22/repo"},
	}
	for _, tt := range tests {
		k, err := parseURLKey(tt.in)
		if err != nil {
			t.Errorf("parseURLKey(%q): %v", tt.in, err)
			continue
		}
		if got := k.String(); got != tt.want {
			t.Errorf("parseURLKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "host/path", "git@host:org/repo", "/abs/path", "https://host:x/", "https:///path"} {
		if k, err := parseURLKey(bad); err == nil {
			t.Errorf("parseURLKey(%q) = %v, want error", bad, k)
		}
	}
	// The error does not repeat a password given in the URL.
	if _, err := parseURLKey("https://u:hunter2@host:bad/"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error = %v", err)
	}
}

func TestBestCredential(t *testing.T) {
	keys := []urlKey{
		newURLKey("https", "h", "org"),         // 0
		newURLKey("https", "h", "org/sub"),     // 1
		newURLKey("https", "h", ""),            // 2
		newURLKey("https", "h", "org/sub"),     // 3: same as 1, loses to it
		newURLKey("https", "other:8443", "/x"), // 4
		newURLKey("http", "plain", "a/b"),      // 5
	}
	tests := []struct {
		scheme, host, path string
		want               int
	}{
		{"https", "h", "org/repo.git", 0},
		{"https", "h", "org", 0},
		{"https", "h", "org/sub", 1},
		{"https", "h", "org/sub/deeper/repo", 1},
		{"https", "h", "org/subway", 0},
		{"https", "h", "orga/x", 2},
		{"https", "h", "", 2},
		{"https", "H:443", "/org/", 0},
		{"https", "other:8443", "x/y", 4},
		{"https", "other", "x/y", -1},
		{"https", "other:8444", "x", -1},
		{"http", "h", "org", -1},
		{"http", "plain:80", "a/b/c.git", 5},
		{"http", "plain", "a/bc", -1},
		{"https", "plain", "a/b", -1},
	}
	for _, tt := range tests {
		r := newURLKey(tt.scheme, tt.host, tt.path)
		if got := bestCredential(keys, r); got != tt.want {
			t.Errorf("bestCredential(%v) = %d, want %d", r, got, tt.want)
		}
	}
}

func TestIsSSHRepo(t *testing.T) {
	tests := map[string]bool{
		"ssh://git@host/org/repo":     true,
		"SSH://host:2222/repo":        true,
		"git+ssh://host/repo":         true,
		"ssh+git://host/repo":         true,
		"git@github.com:org/repo.git": true,
		"host:repo":                   true,
		"https://host/repo":           false,
		"http://host:80/repo":         false,
		"git://host/repo":             false,
		"file:///tmp/repo":            false,
		"/tmp/repo":                   false,
		"./dir:with/colon":            false,
		"relative/path":               false,
		":nohost":                     false,
	}
	for in, want := range tests {
		if got := isSSHRepo(in); got != want {
			t.Errorf("isSSHRepo(%q) = %v, want %v", in, got, want)
		}
	}
}
