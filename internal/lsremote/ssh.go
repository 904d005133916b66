package lsremote

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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
