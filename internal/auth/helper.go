package auth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"gitsync/internal/redact"
)

// HelperArg is the first argument with which git runs the git-sync binary
// as its credential helper; main dispatches it to HelperMain.
const HelperArg = "__gitsync-credential-helper"

// helperTimeout bounds one exchange between the helper and git-sync.
const helperTimeout = 10 * time.Second

// HelperMain is git-sync's entry point when git runs it as a credential
// helper: args are the socket path and git's operation (get, store, erase).
// For "get" it passes git's request on stdin to the running git-sync over
// the socket and prints the answer (username= and password= lines, or
// nothing) on stdout. Other operations are accepted and ignored: git-sync
// owns the credentials, git cannot store or erase them. The exit status is
// 0 unless the running git-sync cannot be reached or the call is malformed.
// It never prints a secret on stderr.
func HelperMain(args []string, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
	_ = env // the socket comes in args; nothing else is needed
	if len(args) != 2 {
		fmt.Fprintf(stderr, "git-sync credential helper: want arguments SOCKET OPERATION, got %d arguments\n", len(args))
		return 2
	}
	sock, op := args[0], args[1]
	req, err := readCredentialLines(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "git-sync credential helper: read request: %v\n", err)
		return 1
	}
	if op != "get" {
		return 0
	}
	resp, err := askServer(sock, req)
	if err != nil {
		fmt.Fprintf(stderr, "git-sync credential helper: cannot reach git-sync (is it still running?): %v\n", err)
		return 1
	}
	if _, err := stdout.Write(resp); err != nil {
		fmt.Fprintf(stderr, "git-sync credential helper: write answer: %v\n", err)
		return 1
	}
	return 0
}

// askServer sends req (key=value lines) over the socket and returns the
// server's answer lines.
func askServer(sock string, req []string) ([]byte, error) {
	conn, err := net.DialTimeout("unix", sock, helperTimeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(helperTimeout)); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(conn, strings.Join(req, "\n")+"\n\n"); err != nil {
		return nil, err
	}
	lines, err := readCredentialLines(conn)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, l := range lines {
		out.WriteString(l)
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}

// readCredentialLines reads git credential protocol lines (key=value) up to
// a blank line or end of input, skipping lines without "=". Input beyond
// maxResponse bytes is an error.
func readCredentialLines(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(io.LimitReader(r, maxResponse))
	sc.Buffer(nil, maxResponse)
	var lines []string
	n := 0
	for sc.Scan() {
		n += len(sc.Bytes()) + 1
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			return lines, nil
		}
		if strings.Contains(line, "=") {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if n >= maxResponse {
		return nil, errors.New("message too long")
	}
	return lines, nil
}

// serve accepts helper connections until Close.
func (a *Auth) serve() {
	defer close(a.serveDone)
	for {
		conn, err := a.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// E.g. out of file descriptors: wait a little, then go on.
			a.log.Warn("credential helper socket: accept failed", "error", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		a.connWG.Add(1)
		go a.handle(conn)
	}
}

// handle answers one helper request. No answer (an empty reply) makes git
// fail without prompting.
func (a *Auth) handle(conn net.Conn) {
	defer a.connWG.Done()
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(helperTimeout)); err != nil {
		return
	}
	lines, err := readCredentialLines(conn)
	if err != nil {
		a.log.Warn("credential helper socket: bad request", "error", err)
		return
	}
	attrs := map[string]string{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "=")
		attrs[k] = v
	}
	key := newURLKey(attrs["protocol"], attrs["host"], attrs["path"])
	user, pass, ok := a.lookup(key)
	if ok && attrs["username"] != "" && attrs["username"] != user {
		// The URL names another user: these credentials are not theirs.
		ok = false
	}
	if a.logRequests {
		a.log.Log(context.Background(), slog.Level(-5), "credential request", "url", redact.Text(key.String()), "answered", ok)
	}
	if !ok {
		return
	}
	_, _ = io.WriteString(conn, "username="+user+"\npassword="+pass.Reveal()+"\n")
}
