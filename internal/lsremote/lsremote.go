// Package lsremote answers the question every poll asks, "which object does
// --ref name on the remote now?", as cheaply as the transport allows.
//
// Over smart HTTP(S) it keeps one git remote helper (git remote-https)
// running in stateless-connect mode and sends it a protocol v2 ls-refs
// request per poll: one HTTP request and no new process, where `git
// ls-remote` costs three processes, two requests and the helper's start-up
// (libcurl and its libraries) every time. Each such request is served by a
// fresh upload-pack on the server, so the answer is as current as ls-remote's.
//
// Over SSH (ssh://, git+ssh://, ssh+git:// and scp-like URLs, as configured:
// a URL that url.*.insteadOf rewrites keeps using ls-remote) each poll is
// one new session on git-sync's kept OpenSSH connection (package auth),
// opened from Go over the master's control socket: the server runs the
// command git's ssh would run (git-upload-pack and the path, by git's
// parsing and quoting rules) with GIT_PROTOCOL=version=2, and the poll
// speaks protocol v2 ls-refs, or reads the v0 ref advertisement when the
// server's sshd does not accept GIT_PROTOCOL. No git, shell or ssh process
// runs on this side; the upload-pack is new for every poll (a kept one
// reads the refs once and would report the same commit forever).
//
// Every other transport (file://, git://) gets `git ls-remote`.
//
// Whatever goes wrong with a kept session (credentials that changed, a
// dropped connection, a server that does not speak protocol v2, a helper
// that died, no SSH master up, a session the SSH server refuses, an
// upload-pack that fails), the poll falls back to `git ls-remote` at once,
// so the answer and the error a user sees are those of git's own
// ls-remote. A kind of session that fails three polls in a row where
// ls-remote works is given up for the run.
package lsremote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"gitsync/internal/auth"
	"gitsync/internal/config"
	"gitsync/internal/gitcmd"
	"gitsync/internal/redact"
)

// maxSessionAge bounds how long one helper process is kept. A fresh helper
// re-reads git's configuration and cookie file and asks for credentials
// again; starting one every few minutes costs nothing measurable.
const maxSessionAge = 10 * time.Minute

// maxSessionFailures is how many sessions in a row may fail while `git
// ls-remote` succeeds before sessions are given up for the rest of the run:
// something between this server and the helper's stateless mode does not
// work, and trying again every poll would double the cost of each.
const maxSessionFailures = 3

// maxSessionWait bounds one exchange with a kept session, so that a
// session that stalls (a --git wrapper that holds output back, a proxy
// that buffers) still leaves time for the ls-remote fallback. A session
// gets at most half of what is left of the sync's time, and never more
// than this.
const maxSessionWait = 10 * time.Second

// levelSession is the verbosity at which session events are logged.
const levelSession = slog.Level(-3)

// Remote looks up refs on one remote repository. It is not safe for
// concurrent use: one sync loop owns it, and closes it when done.
type Remote struct {
	git *gitcmd.Runner
	dir string // where git runs (the repository, for its configuration)
	url string // as configured (--repo)
	log *slog.Logger

	sess        *session
	failures    int           // consecutive sessions that failed where ls-remote then worked
	disabled    bool          // no HTTP session will work in this run: use ls-remote
	sessionWait time.Duration // maxSessionWait (tests shorten it)

	// Polls over the kept SSH connection (ssh.go).
	ssh         SSHSessions
	sshCommand  string    // the remote command; "" when the URL is not SSH
	sshChecked  time.Time // when url.*.insteadOf was last seen to leave the URL alone
	sshOff      bool      // not in this run: use ls-remote
	sshNoMaster bool      // "no kept connection" was logged
}

// New returns a Remote for url, running git in dir. keepSessions allows a
// kept HTTP session; the caller refuses it when a kept helper could do
// harm (see Unsafe). ssh, when not nil, is git-sync's kept SSH connection,
// over which an SSH url is polled without running git.
func New(git *gitcmd.Runner, dir, url string, keepSessions bool, ssh SSHSessions, log *slog.Logger) *Remote {
	r := &Remote{git: git, dir: dir, url: url, log: log, disabled: !keepSessions, sessionWait: maxSessionWait, ssh: ssh}
	if ssh != nil {
		r.sshCommand = auth.UploadPackCommand(url)
	}
	return r
}

// Unsafe reports whether the user's git configuration (--git-config)
// rules out a kept session. A kept helper holds the credentials it was
// given first; when they are rotated, its next request gets a 401 and git
// then tells every credential helper to erase what it gave, which would
// delete the new password from a user's own helper (store, cache, a
// keyring). git-sync's own helper ignores erase, so only user-configured
// helpers, or config files included from elsewhere that may configure one,
// are a reason to refuse.
func Unsafe(user []config.GitConfigEntry) bool {
	for _, e := range user {
		k := strings.ToLower(e.Key)
		if strings.HasPrefix(k, "credential.") && strings.HasSuffix(k, ".helper") ||
			strings.HasPrefix(k, "include.") || strings.HasPrefix(k, "includeif.") {
			return true
		}
	}
	return false
}

// Lookup returns the object name that a fetch of ref would take from the
// remote (for an annotated tag, the tag object). found is false when the
// remote has no such ref.
func (r *Remote) Lookup(ctx context.Context, ref string) (hash string, found bool, err error) {
	refs, sessErr := r.viaSession(ctx, ref)
	if sessErr == nil && refs != nil {
		r.failures = 0
		hash, found = Pick(refs, ref)
		return hash, found, nil
	}
	if err := ctx.Err(); err != nil {
		// The sync's own time is up (a session only ever gets half of it).
		return "", false, fmt.Errorf("check %s on %s: %w", ref, redact.Text(r.url), err)
	}
	out, err := r.git.Run(ctx, r.dir, "ls-remote", "--", r.url, ref)
	if err != nil {
		return "", false, fmt.Errorf("check %s on %s: %w", ref, redact.Text(r.url), err)
	}
	if sessErr != nil {
		r.failures++
		if r.failures >= maxSessionFailures {
			what := "kept HTTP session"
			if r.sshCommand != "" {
				r.sshOff = true
				what = "poll over the kept SSH connection"
			} else {
				r.disabled = true
			}
			r.log.Info(what+" keeps failing where git ls-remote works; using git ls-remote from now on",
				"error", sessErr.Error())
		}
	}
	hash, found = Pick(parseLsRemote(out), ref)
	return hash, found, nil
}

// viaSession asks the kept session, starting one if needed. It returns nil
// refs and a nil error when no session applies (not HTTP, or given up), and
// an error when a session failed; either way the caller uses ls-remote.
func (r *Remote) viaSession(ctx context.Context, ref string) (map[string]string, error) {
	if r.sshCommand == "" && r.disabled || r.sshCommand != "" && r.sshOff {
		return nil, nil
	}
	wait := r.sessionWait
	if deadline, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(deadline)/2)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if r.sshCommand != "" {
		refs, err := r.viaSSH(ctx, ref)
		if err != nil {
			level := levelSession
			if r.failures == 0 {
				level = slog.Level(-2) // the first of a series: -v 2 shows it
			}
			r.log.Log(ctx, level, "poll over the kept SSH connection failed; falling back to git ls-remote", "error", err.Error())
		}
		return refs, err
	}
	if r.sess != nil && time.Since(r.sess.started) > maxSessionAge {
		r.closeSession("renewing")
	}
	if r.sess == nil {
		s, err := r.startSession(ctx)
		if errors.Is(err, errNoSession) {
			r.disabled = true
			r.log.Log(ctx, levelSession, "no kept HTTP session for this remote; using git ls-remote", "error", err)
			return nil, nil
		}
		if err != nil {
			r.log.Log(ctx, levelSession, "could not start a kept HTTP session; falling back to git ls-remote", "error", err.Error())
			return nil, err
		}
		r.sess = s
	}
	refs, err := r.sess.lsRefs(ctx, Candidates(ref))
	if err != nil {
		r.log.Log(ctx, levelSession, "kept HTTP session failed; falling back to git ls-remote", "error", err.Error())
		r.closeSession("failed")
		return nil, err
	}
	return refs, nil
}

// startSession starts a helper and opens a protocol v2 connection when the
// URL is HTTP(S), also once git has applied url.*.insteadOf to it. (A URL
// that insteadOf turns into HTTP(S) from something else keeps using
// ls-remote: checking costs a process, which only HTTP(S) URLs pay.)
func (r *Remote) startSession(ctx context.Context) (*session, error) {
	if !isHTTP(r.url) {
		return nil, fmt.Errorf("%w: not an HTTP(S) URL", errNoSession)
	}
	out, err := r.git.Run(ctx, r.dir, "ls-remote", "--get-url", "--", r.url)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", redact.Text(r.url), err)
	}
	resolved := strings.TrimSpace(out)
	if !isHTTP(resolved) {
		return nil, fmt.Errorf("%w: url.*.insteadOf makes it %s", errNoSession, redact.Text(resolved))
	}
	scheme, _, _ := strings.Cut(resolved, "://")
	// The helper's arguments are what git's transport gives it for a URL
	// used as a remote: the name as given, then the resolved URL.
	return openSession(ctx, r.git, r.dir, "remote-"+scheme, r.url, resolved)
}

// isHTTP reports whether url is one git hands to its HTTP(S) remote helper.
func isHTTP(url string) bool {
	return strings.HasPrefix(url, "http://") || strings.HasPrefix(url, "https://")
}

func (r *Remote) closeSession(why string) {
	if r.sess == nil {
		return
	}
	r.log.Log(context.Background(), levelSession, "closing kept HTTP session", "why", why)
	r.sess.close()
	r.sess = nil
}

// Close ends the kept session, if any.
func (r *Remote) Close() { r.closeSession("closing") }

// Candidates lists the remote ref names a fetch of ref tries, in git's
// order of preference.
func Candidates(ref string) []string {
	if ref == "HEAD" || strings.HasPrefix(ref, "refs/") {
		return []string{ref}
	}
	return []string{ref, "refs/" + ref, "refs/tags/" + ref, "refs/heads/" + ref,
		"refs/remotes/" + ref, "refs/remotes/" + ref + "/HEAD"}
}

// Pick returns the object name of the ref that a fetch of ref would take,
// given the remote's refs by full name.
func Pick(refs map[string]string, ref string) (hash string, found bool) {
	for _, c := range Candidates(ref) {
		if h, ok := refs[c]; ok {
			return h, true
		}
	}
	return "", false
}

// parseLsRemote reads `git ls-remote` output ("<hash>\t<name>" lines).
func parseLsRemote(out string) map[string]string {
	refs := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		h, name, ok := strings.Cut(line, "\t")
		if ok {
			refs[name] = h
		}
	}
	return refs
}
