package auth

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// OpenSSH's connection-sharing protocol (PROTOCOL.mux in OpenSSH's
// sources), the little of it git-sync speaks to its own master: a check
// that it is up (and which process it is), and a request to stop listening
// for new sessions. Messages are a uint32 length and a body of uint32
// fields.
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
