package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Names of the private directory (privateDirPrefix plus randomLen random
// hex digits) and of the socket in it. The name's length is fixed, so
// whether a socket path fits depends on the parent directory alone, never
// on the luck of a random suffix.
const (
	privateDirPrefix = "git-sync-auth-"
	randomLen        = 8
	socketName       = "credential.sock"
)

// socketPathMax is the longest path a unix socket may have: sun_path holds
// 108 bytes on Linux, the final NUL included. maxTempDirLen is then the
// longest temp dir that can hold the private directory (68 on Linux).
const (
	socketPathMax = len(syscall.RawSockaddrUnix{}.Path) - 1
	maxTempDirLen = socketPathMax - len("/"+privateDirPrefix) - randomLen - len("/"+socketName)
)

// fallbackParents are where the private directory goes when the temp dir
// cannot hold it (a socket path too long, or the directory missing or
// read-only). /tmp is short on every system, and it is where Kubernetes
// users mount the emptyDir that a readOnlyRootFilesystem needs. /dev/shm
// is a tmpfs that container runtimes give every container (it stays
// writable with a read-only root filesystem) and that is private to the
// pod. Not --root: that volume is shared with other containers and pods,
// its path may be long too, and on network filesystems unix sockets do not
// work. Not an abstract socket: it has no file permissions, so every
// process in the pod's network namespace could ask it for the credentials.
func fallbackParents() []string { return []string{"/tmp", "/dev/shm"} }

// listen creates the owner-only private directory and listens on the
// socket in it. It tries tempDir ($TMPDIR) first, then fallbackParents,
// and fails only when none of them can hold the socket.
func (a *Auth) listen(tempDir string) error {
	if tempDir == "" {
		tempDir = os.TempDir()
	}
	var problems []string
	tried := map[string]bool{}
	for _, parent := range append([]string{tempDir}, fallbackParents()...) {
		// git runs the helper in other directories: the path must be
		// absolute.
		parent, err := filepath.Abs(parent)
		if err != nil || tried[parent] {
			continue
		}
		tried[parent] = true
		dir, sock, ln, err := listenIn(parent)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if len(problems) > 0 {
			a.log.Log(context.Background(), slog.Level(-1), "the temp dir cannot hold the credential socket; using another directory",
				"problems", strings.Join(problems, "; "), "dir", dir)
		}
		a.dir, a.sock, a.ln = dir, sock, ln
		return nil
	}
	return fmt.Errorf("auth: no directory for the credential helper's socket (set TMPDIR to a writable directory whose path has at most %d bytes): %s",
		maxTempDirLen, strings.Join(problems, "; "))
}

// listenIn makes a fresh owner-only directory in parent and listens on a
// socket in it (owner-only too). On error nothing is left behind.
func listenIn(parent string) (dir, sock string, ln net.Listener, err error) {
	if n := len(filepath.Join(parent, privateDirPrefix+strings.Repeat("x", randomLen), socketName)); n > socketPathMax {
		return "", "", nil, fmt.Errorf("%s: a socket path there would have %d bytes, more than the %d a unix socket allows", parent, n, socketPathMax)
	}
	removeStaleDirs(parent, time.Now())
	dir, err = mkPrivateDir(parent)
	if err != nil {
		return "", "", nil, err
	}
	sock = filepath.Join(dir, socketName)
	ln, err = net.Listen("unix", sock)
	if err == nil {
		err = os.Chmod(sock, 0o600)
		if err != nil {
			ln.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", "", nil, fmt.Errorf("%s: %w", parent, err)
	}
	return dir, sock, ln, nil
}

// mkPrivateDir creates a new directory with a random name of fixed length
// in parent, mode 0700 whatever the umask. Mkdir fails on any existing
// name (a symlink planted by another user included), so the directory is
// always our own.
func mkPrivateDir(parent string) (string, error) {
	b := make([]byte, randomLen/2)
	for range 100 {
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		dir := filepath.Join(parent, privateDirPrefix+hex.EncodeToString(b))
		err := os.Mkdir(dir, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			os.Remove(dir)
			return "", err
		}
		return dir, nil
	}
	return "", fmt.Errorf("%s: no free name for a private directory", parent)
}

// removeStaleDirs removes the private directories that earlier git-sync
// processes of this user left when they were killed: those whose socket
// nobody listens on any more. It skips recent ones (a concurrent New may not
// be listening yet) and ignores every error: this is housekeeping only.
func removeStaleDirs(parent string, now time.Time) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), privateDirPrefix) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		fi, err := os.Lstat(dir)
		if err != nil || now.Sub(fi.ModTime()) < time.Minute {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
			continue
		}
		conn, err := net.DialTimeout("unix", filepath.Join(dir, socketName), time.Second)
		if err == nil {
			conn.Close() // a live git-sync
			continue
		}
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			os.RemoveAll(dir)
		}
	}
}
