package auth

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// OpenSSH's connection-sharing protocol (PROTOCOL.mux in OpenSSH's
// sources), the little of it git-sync speaks to its own master: a check
// that it is up (and which process it is), a request to stop listening
// for new sessions, and a new session for a remote command (the idle poll's
// git-upload-pack, see OpenMuxSession). Messages are a uint32 length and a
// body of uint32 and string fields.
const (
	muxHello         = 0x00000001
	muxAliveCheck    = 0x10000004
	muxStopListening = 0x10000009
	muxOK            = 0x80000001
	muxAlive         = 0x80000005
	muxVersion       = 4
)

// muxTimeout bounds one exchange with a local master.
const muxTimeout = 2 * time.Second

// muxAliveCheck asks the master listening on sock for its process id.
func muxAlivePID(sock string) (int, error) {
	body, err := muxRequest(sock, muxAliveCheck)
	if err != nil {
		return 0, err
	}
	if len(body) < 12 || binary.BigEndian.Uint32(body) != muxAlive {
		return 0, fmt.Errorf("mux %s: unexpected answer to an alive check", sock)
	}
	return int(binary.BigEndian.Uint32(body[8:])), nil
}

// muxStop asks the master listening on sock to stop accepting sessions: it
// removes its socket at once and, started with -N, exits when the sessions
// in flight are done.
func muxStop(sock string) error {
	body, err := muxRequest(sock, muxStopListening)
	if err != nil {
		return err
	}
	if len(body) < 4 || binary.BigEndian.Uint32(body) != muxOK {
		return fmt.Errorf("mux %s: the master refused to stop listening", sock)
	}
	return nil
}

// muxRequest exchanges hellos with the master on sock, sends one request
// of type typ (request id 1) and returns the body of the answer.
func muxRequest(sock string, typ uint32) ([]byte, error) {
	conn, err := net.DialTimeout("unix", sock, muxTimeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(muxTimeout))
	if err := muxWrite(conn, muxHello, muxVersion); err != nil {
		return nil, fmt.Errorf("mux %s: %w", sock, err)
	}
	hello, err := muxRead(conn)
	if err != nil {
		return nil, fmt.Errorf("mux %s: %w", sock, err)
	}
	if len(hello) < 8 || binary.BigEndian.Uint32(hello) != muxHello {
		return nil, fmt.Errorf("mux %s: no hello from the master", sock)
	}
	if err := muxWrite(conn, typ, 1); err != nil {
		return nil, fmt.Errorf("mux %s: %w", sock, err)
	}
	body, err := muxRead(conn)
	if err != nil {
		return nil, fmt.Errorf("mux %s: %w", sock, err)
	}
	return body, nil
}

// muxWrite sends one message made of uint32 fields.
func muxWrite(w io.Writer, fields ...uint32) error {
	b := make([]byte, 4+4*len(fields))
	binary.BigEndian.PutUint32(b, uint32(4*len(fields)))
	for i, f := range fields {
		binary.BigEndian.PutUint32(b[4+4*i:], f)
	}
	_, err := w.Write(b)
	return err
}

// muxRead reads one message body (at most 64 KiB).
func muxRead(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > 64<<10 {
		return nil, errors.New("message too long")
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// Messages of a passenger session (PROTOCOL.mux section 2; the layouts
// are those of OpenSSH's mux.c, whose "bool" fields are uint32).
const (
	muxNewSession     = 0x10000002
	muxPermDenied     = 0x80000002
	muxFailure        = 0x80000003
	muxExitMessage    = 0x80000004
	muxSessionOpened  = 0x80000006
	muxTTYAllocFail   = 0x80000008
	muxNoEscapeChar   = 0xffffffff
	muxSessionRequest = 1 // request id of the new-session request
)

// ErrNoKeptSSH means no kept SSH connection is up for the --repo host: the
// caller runs git (and git's ssh) instead.
var ErrNoKeptSSH = errors.New("no kept SSH connection")

// MuxRefusedError is the master's refusal of a session (MUX_S_FAILURE or
// MUX_S_PERMISSION_DENIED) with its reason, e.g. "Session open refused by
// peer" when the server's MaxSessions is reached.
type MuxRefusedError struct{ Reason string }

func (e *MuxRefusedError) Error() string {
	return "the kept SSH connection refused a session: " + e.Reason
}

// MuxSession is one remote command run as a new session on an OpenSSH
// master, with no ssh process of its own: git-sync hands the master the
// ends of three pipes as the command's stdin, stdout and stderr, and the
// master relays them over its connection. Close it when done (Wait does
// too); a cancelled context closes it, after which the master ends the
// remote command's channel.
type MuxSession struct {
	// Stdin is the remote command's standard input; closing it sends EOF.
	Stdin io.WriteCloser
	// Stdout is the remote command's standard output.
	Stdout io.Reader

	ctl     *net.UnixConn
	stdout  *os.File
	stderr  *os.File
	errTail *lineTail
	errDone chan struct{}
	id      uint32
	stop    func() bool
	once    sync.Once
}

// OpenMuxSession asks the master listening on sock to run command on its
// server as a new session, with env as "NAME=value" strings (the master
// passes on only those its SendEnv allows, and the server only those its
// AcceptEnv allows). It returns once the master has opened the session's
// channel and sent the command; a refusal is a *MuxRefusedError.
func OpenMuxSession(ctx context.Context, sock, command string, env []string) (*MuxSession, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, fmt.Errorf("mux %s: %w", sock, err)
	}
	s := &MuxSession{ctl: c.(*net.UnixConn), errTail: &lineTail{}, errDone: make(chan struct{})}
	s.stop = context.AfterFunc(ctx, s.Close)
	if err := s.open(sock, command, env); err != nil {
		s.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	return s, nil
}

// open exchanges hellos, sends the new-session request with the remote
// ends of three pipes and reads the master's answer.
func (s *MuxSession) open(sock, command string, env []string) error {
	var theirs [3]*os.File
	defer func() {
		for _, f := range theirs {
			if f != nil {
				f.Close()
			}
		}
	}()
	var mine [3]*os.File
	for i := range theirs {
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range mine[:i] {
				f.Close()
			}
			return fmt.Errorf("mux %s: %w", sock, err)
		}
		if i == 0 { // stdin: the master reads
			theirs[i], mine[i] = r, w
		} else {
			theirs[i], mine[i] = w, r
		}
	}
	s.Stdin, s.stdout, s.stderr = mine[0], mine[1], mine[2]
	s.Stdout = s.stdout
	go func() {
		defer close(s.errDone)
		_, _ = io.Copy(s.errTail, s.stderr)
	}()

	if err := writeMuxMsg(s.ctl, new(muxMsg).u32(muxHello).u32(muxVersion)); err != nil {
		return fmt.Errorf("mux %s: %w", sock, err)
	}
	hello, err := muxRead(s.ctl)
	if err != nil {
		return fmt.Errorf("mux %s: %w", sock, err)
	}
	if len(hello) < 8 || binary.BigEndian.Uint32(hello) != muxHello || binary.BigEndian.Uint32(hello[4:]) != muxVersion {
		return fmt.Errorf("mux %s: no hello for protocol version %d from the master", sock, muxVersion)
	}
	req := new(muxMsg).u32(muxNewSession).u32(muxSessionRequest).str("") // reserved
	req.u32(0).u32(0).u32(0).u32(0)                                      // tty, X11, agent, subsystem
	req.u32(muxNoEscapeChar).str("").str(command)                        // escape char, $TERM, command
	for _, e := range env {
		req.str(e)
	}
	if err := writeMuxMsg(s.ctl, req); err != nil {
		return fmt.Errorf("mux %s: %w", sock, err)
	}
	// The descriptors follow in order, one message each with one byte of
	// data, as OpenSSH's own client sends them.
	for _, f := range theirs {
		if err := sendFD(s.ctl, f); err != nil {
			return fmt.Errorf("mux %s: pass a descriptor: %w", sock, err)
		}
	}
	for i, f := range theirs {
		f.Close()
		theirs[i] = nil
	}
	body, err := muxRead(s.ctl)
	if err != nil {
		return fmt.Errorf("mux %s: no answer to the session request: %w", sock, err)
	}
	typ, rest, err := muxU32(body)
	if err != nil {
		return fmt.Errorf("mux %s: %w", sock, err)
	}
	rid, rest, err := muxU32(rest)
	if err != nil || rid != muxSessionRequest {
		return fmt.Errorf("mux %s: answer to another request", sock)
	}
	switch typ {
	case muxSessionOpened:
		s.id, _, err = muxU32(rest)
		if err != nil {
			return fmt.Errorf("mux %s: %w", sock, err)
		}
		return nil
	case muxPermDenied, muxFailure:
		reason, _, _ := muxString(rest)
		return &MuxRefusedError{Reason: reason}
	default:
		return fmt.Errorf("mux %s: unexpected answer %#x to the session request", sock, typ)
	}
}

// Wait closes the remote command's stdin, waits for its exit status and
// closes the session. An error means no status came (the connection or
// the master went away, or the context ended).
func (s *MuxSession) Wait() (int, error) {
	defer s.Close()
	s.Stdin.Close()
	for {
		body, err := muxRead(s.ctl)
		if err != nil {
			return 0, fmt.Errorf("the session ended without an exit status: %w", err)
		}
		typ, rest, err := muxU32(body)
		if err != nil {
			return 0, err
		}
		switch typ {
		case muxTTYAllocFail:
			continue
		case muxExitMessage:
			id, rest, err := muxU32(rest)
			if err != nil || id != s.id {
				return 0, fmt.Errorf("exit status of another session")
			}
			status, _, err := muxU32(rest)
			if err != nil {
				return 0, err
			}
			return int(int32(status)), nil
		default:
			reason, _, _ := muxString(rest)
			return 0, fmt.Errorf("unexpected message %#x from the master: %s", typ, reason)
		}
	}
}

// Stderr is the end of what the remote command wrote to its stderr, once
// it has closed it (or Close was called); for messages.
func (s *MuxSession) Stderr() string {
	select {
	case <-s.errDone:
	case <-time.After(muxTimeout):
	}
	return s.errTail.String()
}

// Close ends the session: the master then closes its channel, which ends
// the remote command. It may be called more than once.
func (s *MuxSession) Close() {
	s.once.Do(func() {
		if s.stop != nil {
			s.stop()
		}
		s.ctl.Close()
		for _, f := range []io.Closer{s.Stdin, s.stdout, s.stderr} {
			if f != nil {
				f.Close()
			}
		}
	})
}

// sendFD passes f's descriptor over c (SCM_RIGHTS) with one byte of data.
func sendFD(c *net.UnixConn, f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var sendErr error
	err = raw.Control(func(fd uintptr) {
		_, _, sendErr = c.WriteMsgUnix([]byte{0}, syscall.UnixRights(int(fd)), nil)
	})
	if err != nil {
		return err
	}
	return sendErr
}

// muxMsg builds a message body of uint32 and string fields (a string is a
// uint32 length and its bytes).
type muxMsg struct{ b []byte }

func (m *muxMsg) u32(v uint32) *muxMsg {
	m.b = binary.BigEndian.AppendUint32(m.b, v)
	return m
}

func (m *muxMsg) str(s string) *muxMsg {
	m.b = binary.BigEndian.AppendUint32(m.b, uint32(len(s)))
	m.b = append(m.b, s...)
	return m
}

// writeMuxMsg sends m with its length in front, in one write.
func writeMuxMsg(w io.Writer, m *muxMsg) error {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(m.b)), uint32(len(m.b)))
	_, err := w.Write(append(b, m.b...))
	return err
}

// muxU32 splits a uint32 off the front of b.
func muxU32(b []byte) (uint32, []byte, error) {
	if len(b) < 4 {
		return 0, nil, errors.New("short message from the master")
	}
	return binary.BigEndian.Uint32(b), b[4:], nil
}

// muxString splits a string off the front of b.
func muxString(b []byte) (string, []byte, error) {
	n, rest, err := muxU32(b)
	if err != nil || uint32(len(rest)) < n {
		return "", nil, errors.New("short message from the master")
	}
	return string(rest[:n]), rest[n:], nil
}
