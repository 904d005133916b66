package lsremote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"gitsync/internal/config"
	"gitsync/internal/gitcmd"
	"gitsync/internal/redact"
)

// errNoSession means a kept session cannot work for this remote in this
// run (not HTTP, or the server or configuration does not use protocol v2).
var errNoSession = errors.New("no kept session")

// maxRefs bounds one ls-refs answer; the prefixes asked for name a handful
// of refs, so a longer answer is a broken or hostile server.
const maxRefs = 10000

// session is a git remote helper in stateless-connect mode: every request
// written to it (pkt-lines up to a flush) becomes one POST to the server's
// git-upload-pack, and the answer comes back followed by a response-end
// packet (gitprotocol-v2, gitremote-helpers).
type session struct {
	proc         *gitcmd.Session
	objectFormat string // as advertised by the server, "" if not
	started      time.Time
}

// openSession starts `git <helper> <name> <url>` and connects it to the
// server's upload-pack with protocol v2. It returns an error wrapping
// errNoSession when the helper answers "fallback" (the server or git's
// protocol.version setting gives protocol v0 or v1).
func openSession(ctx context.Context, git *gitcmd.Runner, dir, helper, name, url string) (*session, error) {
	proc, err := git.Start(dir, helper, name, url)
	if err != nil {
		return nil, err
	}
	s := &session{proc: proc, started: time.Now()}
	err = s.exchange(ctx, func() error {
		if _, err := io.WriteString(proc.Stdin, "stateless-connect git-upload-pack\n"); err != nil {
			return err
		}
		reply, err := proc.Stdout.ReadString('\n')
		if err != nil {
			return err
		}
		switch reply {
		case "\n":
		case "fallback\n":
			return fmt.Errorf("%w: the server does not speak protocol v2 here", errNoSession)
		default:
			return fmt.Errorf("unexpected reply %q to stateless-connect", reply)
		}
		return s.readCapabilities()
	})
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// readCapabilities reads the server's v2 capability advertisement, which
// the helper relays first.
func (s *session) readCapabilities() error {
	line, kind, err := readPacket(s.proc.Stdout)
	if err != nil {
		return err
	}
	if kind != packetData {
		return fmt.Errorf("unexpected packet in the capability advertisement")
	}
	if line = strings.TrimSuffix(line, "\n"); line != "version 2" {
		return fmt.Errorf("%w: the server answered %q", errNoSession, line)
	}
	s.objectFormat, err = readCapabilityList(s.proc.Stdout)
	return err
}

// readCapabilityList reads the rest of a v2 capability advertisement,
// after its "version 2" line, and returns the object format it names ("" if
// none).
func readCapabilityList(r io.Reader) (objectFormat string, err error) {
	for {
		line, kind, err := readPacket(r)
		if err != nil {
			return "", err
		}
		if kind == packetFlush {
			return objectFormat, nil
		}
		if kind != packetData {
			return "", fmt.Errorf("unexpected packet in the capability advertisement")
		}
		if f, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "object-format="); ok {
			objectFormat = f
		}
	}
}

// lsRefs asks for the refs whose names start with one of prefixes and
// returns them by full name.
func (s *session) lsRefs(ctx context.Context, prefixes []string) (map[string]string, error) {
	var refs map[string]string
	err := s.exchange(ctx, func() error {
		if _, err := io.WriteString(s.proc.Stdin, lsRefsRequest(s.objectFormat, prefixes)); err != nil {
			return err
		}
		var err error
		if refs, err = readLsRefs(s.proc.Stdout); err != nil {
			return err
		}
		// The helper then marks the end of the HTTP response.
		_, kind, err := readPacket(s.proc.Stdout)
		if err != nil {
			return err
		}
		if kind != packetResponseEnd {
			return fmt.Errorf("no response-end packet after the ls-refs answer")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return refs, nil
}

// lsRefsRequest is a protocol v2 ls-refs command for the refs whose names
// start with one of prefixes.
func lsRefsRequest(objectFormat string, prefixes []string) string {
	var req strings.Builder
	writePacket(&req, "command=ls-refs\n")
	if objectFormat != "" {
		writePacket(&req, "object-format="+objectFormat+"\n")
	}
	req.WriteString("0001")
	for _, p := range prefixes {
		writePacket(&req, "ref-prefix "+p+"\n")
	}
	req.WriteString("0000")
	return req.String()
}

// readLsRefs reads an ls-refs answer up to its flush packet and returns
// the refs by full name.
func readLsRefs(r io.Reader) (map[string]string, error) {
	refs := map[string]string{}
	for {
		line, kind, err := readPacket(r)
		if err != nil {
			return nil, err
		}
		switch kind {
		case packetFlush:
			return refs, nil
		case packetData:
		default:
			return nil, fmt.Errorf("unexpected packet in the ls-refs answer")
		}
		if msg, ok := strings.CutPrefix(line, "ERR "); ok {
			return nil, fmt.Errorf("server error: %s", strings.TrimSpace(msg))
		}
		// "<oid> SP <refname> *(SP <attribute>) LF". Only an ASCII
		// space separates: ref names cannot hold one, but they can
		// hold other (Unicode) white space, and "main<NBSP>x" must
		// not be read as "main".
		oid, rest, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		name, _, _ := strings.Cut(rest, " ")
		if !ok || name == "" || !config.IsCommitHash(oid) {
			return nil, fmt.Errorf("malformed ls-refs line %q", line)
		}
		if len(refs) >= maxRefs {
			return nil, fmt.Errorf("more than %d refs in the ls-refs answer", maxRefs)
		}
		refs[name] = oid
	}
}

// exchange runs one request/answer with the helper, bounded by ctx: when
// ctx ends, the helper is killed, which unblocks any read or write. A
// failure carries what the helper wrote to stderr.
func (s *session) exchange(ctx context.Context, f func() error) error {
	stop := context.AfterFunc(ctx, s.proc.Kill)
	err := f()
	stop()
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if msg := strings.TrimSpace(s.proc.Stderr()); msg != "" {
		err = fmt.Errorf("%w: %s", err, redact.Text(msg))
	}
	return err
}

func (s *session) close() { s.proc.Close() }

// Packet kinds of git's pkt-line format (gitprotocol-common).
const (
	packetData = iota
	packetFlush
	packetDelim
	packetResponseEnd
)

// maxPacket is the largest pkt-line git sends (length prefix included).
const maxPacket = 65520

func writePacket(b *strings.Builder, payload string) {
	fmt.Fprintf(b, "%04x%s", len(payload)+4, payload)
}

// readPacket reads one pkt-line.
func readPacket(r io.Reader) (payload string, kind int, err error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return "", 0, fmt.Errorf("read pkt-line: %w", noEOF(err))
	}
	n, err := strconv.ParseUint(string(head[:]), 16, 16)
	if err != nil {
		return "", 0, fmt.Errorf("bad pkt-line length %q", head[:])
	}
	switch {
	case n == 0:
		return "", packetFlush, nil
	case n == 1:
		return "", packetDelim, nil
	case n == 2:
		return "", packetResponseEnd, nil
	case n < 4 || n > maxPacket:
		return "", 0, fmt.Errorf("bad pkt-line length %d", n)
	}
	buf := make([]byte, n-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", 0, fmt.Errorf("read pkt-line: %w", noEOF(err))
	}
	return string(buf), packetData, nil
}

// noEOF turns a bare EOF into a message that says the other end (the
// helper, or the server's upload-pack) went away.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the other end closed the connection")
	}
	return err
}
