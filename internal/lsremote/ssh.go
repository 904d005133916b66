package lsremote

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"gitsync/internal/auth"
	"gitsync/internal/config"
	"gitsync/internal/redact"
)

// SSHSessions opens sessions on git-sync's kept SSH connection to the
// --repo host (auth.Auth). It returns auth.ErrNoKeptSSH when no connection
// is up.
type SSHSessions interface {
	OpenSSHSession(ctx context.Context, command string, env []string) (*auth.MuxSession, error)
}

// sshEnv is what git gives its ssh for protocol v2 (git sets GIT_PROTOCOL
// and asks ssh to send it).
var sshEnv = []string{"GIT_PROTOCOL=version=2"}

// viaSSH asks the server over a new session on the kept SSH connection:
// the remote command git's ssh would run (git-upload-pack and the quoted
// path), then ls-refs (protocol v2) or the ref advertisement (v0, when the
// server's sshd does not accept GIT_PROTOCOL). Each poll is a fresh
// upload-pack, so the answer is current. It returns nil refs and a nil
// error when this path does not apply (no connection up, or given up), and
// an error when it failed; either way the caller uses ls-remote.
func (r *Remote) viaSSH(ctx context.Context, ref string) (map[string]string, error) {
	if r.sshOff {
		return nil, nil
	}
	if time.Since(r.sshChecked) > maxSessionAge {
		// url.*.insteadOf could send git elsewhere (another host, or a
		// path this command would not name): only a URL that git uses as
		// configured is polled this way. --git-config is fixed for the
		// run; this is checked again now and then like the HTTP helper.
		out, err := r.git.Run(ctx, r.dir, "ls-remote", "--get-url", "--", r.url)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", redact.Text(r.url), err)
		}
		if resolved := strings.TrimSpace(out); resolved != r.url {
			r.sshOff = true
			r.log.Log(ctx, levelSession, "url.*.insteadOf rewrites the SSH --repo; polls use git ls-remote",
				"url", redact.Text(resolved))
			return nil, nil
		}
		r.sshChecked = time.Now()
	}
	sess, err := r.ssh.OpenSSHSession(ctx, r.sshCommand, sshEnv)
	if errors.Is(err, auth.ErrNoKeptSSH) {
		if !r.sshNoMaster {
			r.sshNoMaster = true
			r.log.Log(ctx, levelSession, "no kept SSH connection up; this poll uses git ls-remote")
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	r.sshNoMaster = false
	refs, err := sshLsRefs(bufio.NewReader(sess.Stdout), sess.Stdin, Candidates(ref))
	if err == nil {
		var status int
		status, err = sess.Wait()
		if err == nil && status != 0 {
			err = fmt.Errorf("git-upload-pack exited with status %d", status)
		}
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		sess.Close()
		if msg := strings.TrimSpace(sess.Stderr()); msg != "" {
			err = fmt.Errorf("%w: %s", err, redact.Text(msg))
		}
		return nil, err
	}
	return refs, nil
}

// sshLsRefs speaks to a git-upload-pack started with GIT_PROTOCOL=version=2
// on r and w and returns the refs named in candidates (others may be
// included). It always ends the conversation with a flush packet, on which
// upload-pack exits.
func sshLsRefs(r *bufio.Reader, w io.Writer, candidates []string) (map[string]string, error) {
	line, kind, err := readPacket(r)
	if err != nil {
		return nil, err
	}
	if kind != packetData {
		return nil, errors.New("unexpected packet at the start of upload-pack's answer")
	}
	var refs map[string]string
	switch strings.TrimSuffix(line, "\n") {
	case "version 2":
		objectFormat, err := readCapabilityList(r)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, lsRefsRequest(objectFormat, candidates)); err != nil {
			return nil, err
		}
		if refs, err = readLsRefs(r); err != nil {
			return nil, err
		}
	case "version 1":
		// A v0 advertisement follows.
		if line, kind, err = readPacket(r); err != nil {
			return nil, err
		}
		fallthrough
	default:
		if refs, err = readAdvertisement(r, line, kind, candidates); err != nil {
			return nil, err
		}
	}
	if _, err := io.WriteString(w, "0000"); err != nil {
		return nil, err
	}
	return refs, nil
}

// readAdvertisement reads a protocol v0 ref advertisement whose first
// packet (line, of kind) was already read, up to its flush packet, and
// keeps the refs named in candidates: the server lists all of its refs
// (hundreds of thousands on some forges), and only these matter.
func readAdvertisement(r io.Reader, line string, kind int, candidates []string) (map[string]string, error) {
	want := make(map[string]bool, len(candidates))
	for _, c := range candidates {
		want[c] = true
	}
	refs := map[string]string{}
	for first := true; ; first = false {
		switch kind {
		case packetFlush:
			return refs, nil
		case packetData:
		default:
			return nil, errors.New("unexpected packet in the ref advertisement")
		}
		if msg, ok := strings.CutPrefix(line, "ERR "); ok {
			return nil, fmt.Errorf("server error: %s", strings.TrimSpace(msg))
		}
		entry := strings.TrimSuffix(line, "\n")
		if first {
			entry, _, _ = strings.Cut(entry, "\x00") // capabilities
		}
		// "<oid> SP <refname>"; as in readLsRefs, only an ASCII space
		// separates.
		oid, name, ok := strings.Cut(entry, " ")
		if !ok || name == "" || !config.IsCommitHash(oid) {
			return nil, fmt.Errorf("malformed ref advertisement line %q", line)
		}
		if want[name] {
			refs[name] = oid
		}
		var err error
		if line, kind, err = readPacket(r); err != nil {
			return nil, err
		}
	}
}

// uploadPackCommand is the remote command git's ssh runs to fetch from
// url, or "" when url is not one git reaches over ssh: git-upload-pack and
// the repository path, single-quoted for the server's shell. (git-sync has
// no --upload-pack option, and remote.<name>.uploadpack does not apply to
// a URL.)
func uploadPackCommand(url string) string {
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
		if !isSCPLike(repo) {
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

// isSCPLike reports whether git reads repo as the scp-like SSH form
// (git's url_is_local_not_ssh): a ":" before any "/".
func isSCPLike(repo string) bool {
	colon := strings.IndexByte(repo, ':')
	slash := strings.IndexByte(repo, '/')
	return colon >= 0 && (slash < 0 || colon < slash)
}

// sqQuote quotes s for the server's shell as git does (quote.c's
// sq_quote_buf): inside single quotes, ' becomes '\” and ! becomes '\!'.
func sqQuote(s string) string {
	r := strings.NewReplacer(`'`, `'\''`, `!`, `'\!'`)
	return "'" + r.Replace(s) + "'"
}
