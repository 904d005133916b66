package serve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxV2Request bounds the part of a protocol v2 request read before
// upload-pack starts (command, capabilities and arguments: wants and up to
// a few hundred haves per round, a few KiB in practice).
const maxV2Request = 1 << 20

// errRequestTooLarge is a v2 request whose arguments exceed maxV2Request.
var errRequestTooLarge = errors.New("protocol v2 request too large")

// v2Wants reads a protocol v2 request up to its first flush packet and
// returns it, whether it is a fetch, and the objects it wants.
//
// git's v2 upload-pack sends any object the repository holds to a client
// that names it, whatever uploadpack.allow*SHA1InWant say (those apply to
// v0 and v1). The relay's repository also holds commits it fetched but did
// not publish (refused by the publish gate or a signature check), so the
// wants of a v2 fetch are checked here (see notServed) before upload-pack
// sees them.
func v2Wants(body io.Reader) (head []byte, fetch bool, wants []string, rest io.Reader, err error) {
	br := bufio.NewReader(body)
	var buf bytes.Buffer
	for {
		if buf.Len() > maxV2Request {
			return nil, false, nil, nil, errRequestTooLarge
		}
		var size [4]byte
		if _, err := io.ReadFull(br, size[:]); err != nil {
			return nil, false, nil, nil, fmt.Errorf("read request: %w", err)
		}
		buf.Write(size[:])
		n, err := strconv.ParseUint(string(size[:]), 16, 16)
		if err != nil {
			return nil, false, nil, nil, fmt.Errorf("read request: bad packet length %q", size[:])
		}
		if n == 0 { // flush: the end of the request
			return buf.Bytes(), fetch, wants, br, nil
		}
		if n < 4 { // delimiter or response-end: no payload
			continue
		}
		line := make([]byte, n-4)
		if _, err := io.ReadFull(br, line); err != nil {
			return nil, false, nil, nil, fmt.Errorf("read request: %w", err)
		}
		buf.Write(line)
		s := strings.TrimSuffix(string(line), "\n")
		if s == "command=fetch" {
			fetch = true
		}
		if oid, ok := strings.CutPrefix(s, "want "); ok {
			wants = append(wants, oid)
		}
	}
}

// notServed returns a commit among wants that no served ref reaches, or ""
// when every one is served: a published commit, a kept one, or history
// below them. Trees and blobs pass (git rev-list without --objects walks
// commits only): a partial clone asks for blobs one by one, and checking
// them would mean walking every tree; naming one needs its hash, which
// only the commits that are checked reveal. An object the repository does
// not have fails the check too.
func (h *handler) notServed(ctx context.Context, wants []string) (string, error) {
	args := append([]string{"rev-list", "-n1"}, wants...)
	args = append(args, "--not", "--glob=refs/namespaces/"+h.opts.Namespace)
	out, err := h.opts.Git.Run(ctx, h.opts.GitDir, args...)
	if err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		return strings.Join(wants, " "), nil
	}
	return strings.TrimSpace(out), nil
}

// errorPacket is a protocol error as upload-pack itself reports it; the
// client prints "remote error: <msg>".
func errorPacket(msg string) []byte {
	line := "ERR " + msg + "\n"
	return []byte(fmt.Sprintf("%04x%s", len(line)+4, line))
}
