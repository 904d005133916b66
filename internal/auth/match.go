package auth

import (
	"fmt"
	"net/url"
	"strings"

	"gitsync/internal/redact"
)

// urlKey is the part of a URL that credentials are matched on, normalised
// the way git presents it to a credential helper.
type urlKey struct {
	scheme string
	host   string // host[:port], lower-case, default port removed
	path   string // percent-decoded, no leading or trailing slash
}

func (k urlKey) String() string {
	s := k.scheme + "://" + k.host
	if k.path != "" {
		s += "/" + k.path
	}
	return s
}

// parseURLKey normalises a configured URL (--repo, a --credential url).
// Any scheme will do: git asks a credential helper about whatever URL it
// is given, and users' --git wrappers ask `git credential fill` about
// file:// URLs (upstream git-sync's own tests do), whose host is empty.
func parseURLKey(raw string) (urlKey, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return urlKey{}, fmt.Errorf("invalid URL: %w", redact.Error(err))
	}
	if u.Scheme == "" || u.Host == "" && !strings.EqualFold(u.Scheme, "file") {
		return urlKey{}, fmt.Errorf("invalid URL %q: need scheme://host[/path] or file:///path", redact.Text(raw))
	}
	return newURLKey(u.Scheme, u.Host, u.Path), nil
}

// newURLKey builds a key from the protocol, host and (decoded) path parts,
// as found in a parsed URL or in git's credential request.
func newURLKey(scheme, host, path string) urlKey {
	scheme = strings.ToLower(scheme)
	host = strings.ToLower(host)
	switch {
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	}
	return urlKey{scheme: scheme, host: host, path: strings.Trim(path, "/")}
}

// covers reports whether credentials for k apply to a request for r: same
// scheme and host, and r's path equals k's or continues it after a slash.
func (k urlKey) covers(r urlKey) bool {
	if k.scheme != r.scheme || k.host != r.host {
		return false
	}
	return k.path == "" || r.path == k.path || strings.HasPrefix(r.path, k.path+"/")
}

// bestCredential returns the index of the entry in keys that covers r with
// the longest path (the first of equals), or -1.
func bestCredential(keys []urlKey, r urlKey) int {
	best := -1
	for i, k := range keys {
		if k.covers(r) && (best < 0 || len(k.path) > len(keys[best].path)) {
			best = i
		}
	}
	return best
}

// isSSHRepo reports whether git would reach repo over ssh: an ssh URL or
// git's scp-like form ([user@]host:path, with no slash before the colon).
func isSSHRepo(repo string) bool {
	if scheme, _, ok := strings.Cut(repo, "://"); ok {
		switch strings.ToLower(scheme) {
		case "ssh", "git+ssh", "ssh+git":
			return true
		}
		return false
	}
	colon := strings.IndexByte(repo, ':')
	if colon <= 0 {
		return false
	}
	return !strings.Contains(repo[:colon], "/")
}
