package auth

import (
	"net/url"
	"strings"
)

// UploadPackCommand is the remote command git's ssh runs to fetch from
// url, or "" when url is not one git reaches over ssh: git-upload-pack and
// the repository path, single-quoted for the server's shell. (git-sync has
// no --upload-pack option, and remote.<name>.uploadpack does not apply to
// a URL.)
func UploadPackCommand(url string) string {
	path, ok := sshPath(url)
	if !ok {
		return ""
	}
	return "git-upload-pack " + sqQuote(path)
}

// sshPath is the repository path git sends to the server for an SSH URL,
// by git's rules (connect.c): ssh://, git+ssh:// and ssh+git:// URLs are
// percent-decoded and the path starts at the "/" after the host
// (ssh://host/~user/x gives "~user/x"); the scp-like [user@]host:path gives
// what follows the first ":" (after a bracketed host, the first ":" after
// "]"), where a "~" as its second character is also where the path starts.
// ok is false for anything else.
func sshPath(repo string) (path string, ok bool) {
	if scheme, rest, found := strings.Cut(repo, "://"); found {
		switch strings.ToLower(scheme) {
		case "ssh", "git+ssh", "ssh+git":
		default:
			return "", false
		}
		decoded, err := url.PathUnescape(rest)
		if err != nil {
			return "", false
		}
		slash := strings.IndexByte(decoded[hostEnd(decoded):], '/')
		if slash < 0 {
			return "", false
		}
		path = decoded[hostEnd(decoded)+slash:]
	} else {
		if !isSSHRepo(repo) {
			return "", false
		}
		colon := strings.IndexByte(repo[hostEnd(repo):], ':')
		if colon < 0 {
			return "", false
		}
		path = repo[hostEnd(repo)+colon+1:]
	}
	if len(path) > 1 && path[1] == '~' {
		path = path[1:]
	}
	if path == "" {
		return "", false
	}
	return path, true
}

// hostEnd is where the search for the path separator starts in s (git's
// host_end): after the "]" of a bracketed host ("[...]" or "user@[...]"),
// else at the start.
func hostEnd(s string) int {
	start := 0
	if i := strings.Index(s, "@["); i >= 0 {
		start = i + 1
	}
	if !strings.HasPrefix(s[start:], "[") {
		return 0
	}
	end := strings.IndexByte(s[start+1:], ']')
	if end < 0 {
		return 0
	}
	return start + 1 + end
}

// sqQuote quotes s for the server's shell as git does (quote.c's
// sq_quote_buf): inside single quotes, ' becomes '\” and ! becomes '\!'.
// Not shellQuote: the server sees exactly the command git would send, which
// forges match against (always quoted, ! escaped).
func sqQuote(s string) string {
	r := strings.NewReplacer(`'`, `'\''`, `!`, `'\!'`)
	return "'" + r.Replace(s) + "'"
}
