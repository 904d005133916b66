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
	lockName         = "lock"
)

// socketPathMax is the longest path a unix socket may have: sun_path holds
// 108 bytes on Linux, the final NUL included. maxTempDirLen is then the
// longest temp dir that can hold the private directory with the credential
// socket (68 on Linux), maxTempDirLenSSH the longest that can also hold the
// kept SSH connection's socket (22).
const (
	socketPathMax    = len(syscall.RawSockaddrUnix{}.Path) - 1
	maxTempDirLen    = socketPathMax - len("/"+privateDirPrefix) - randomLen - len("/"+socketName)
	maxTempDirLenSSH = socketPathMax - len("/"+privateDirPrefix) - randomLen - len("/") - controlNameMaxLen
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

// makeDir creates the owner-only private directory, locks it as in use
// (see removeStaleDirs) and, when listen is set, listens on the credential
// socket in it. The directory must hold a socket whose name has nameLen
// bytes. It tries tempDir ($TMPDIR) first, then fallbackParents, and fails
// only when none of them can.
func (a *Auth) makeDir(tempDir string, nameLen int, listen bool) error {
	if tempDir == "" {
		tempDir = os.TempDir()
	}
	var problems []string
	tried := map[string]bool{}
	for _, parent := range append([]string{tempDir}, fallbackParents()...) {
		// git runs the helper in other directories, and ssh in others
		// still: the path must be absolute.
		parent, err := filepath.Abs(parent)
		if err != nil || tried[parent] {
			continue
		}
		tried[parent] = true
		dir, lock, sock, ln, err := makeDirIn(parent, nameLen, listen)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if len(problems) > 0 {
			a.log.Log(context.Background(), slog.Level(-1), "the temp dir cannot hold git-sync's sockets; using another directory",
				"problems", strings.Join(problems, "; "), "dir", dir)
		}
		a.dir, a.lock, a.sock, a.ln = dir, lock, sock, ln
		return nil
	}
	return fmt.Errorf("auth: no directory for git-sync's sockets (set TMPDIR to a writable directory whose path has at most %d bytes): %s",
		maxParentLen(nameLen), strings.Join(problems, "; "))
}

// maxParentLen is the longest parent directory that can hold a private
// directory with a socket whose name has nameLen bytes.
func maxParentLen(nameLen int) int {
	return socketPathMax - len("/"+privateDirPrefix) - randomLen - len("/") - nameLen
}

// makeDirIn makes a fresh owner-only directory in parent, locks it, and
// listens on the credential socket in it (owner-only too) when listen is
// set. On error nothing is left behind.
func makeDirIn(parent string, nameLen int, listen bool) (dir string, lock *os.File, sock string, ln net.Listener, err error) {
	if n := len(parent) + len("/"+privateDirPrefix) + randomLen + len("/") + nameLen; n > socketPathMax {
		return "", nil, "", nil, fmt.Errorf("%s: a socket path there would have %d bytes, more than the %d a unix socket allows", parent, n, socketPathMax)
	}
	removeStaleDirs(parent, time.Now())
	dir, err = mkPrivateDir(parent)
	if err != nil {
		return "", nil, "", nil, err
	}
	lock, err = lockDir(dir)
	if err == nil && listen {
		sock = filepath.Join(dir, socketName)
		ln, err = net.Listen("unix", sock)
		if err == nil {
			err = os.Chmod(sock, 0o600)
			if err != nil {
				ln.Close()
			}
		}
		if err != nil {
			lock.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, "", nil, fmt.Errorf("%s: %w", parent, err)
	}
	return dir, lock, sock, ln, nil
}

// lockDir creates dir's lock file and holds an exclusive flock on it until
// the file is closed, or the process ends however it ends: the mark of a
// directory in use, whether or not it holds a credential socket.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return f, nil
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
// processes of this user left when they were killed: those whose lock
// nobody holds any more (or, made by a git-sync without locks, whose
// credential socket nobody listens on). It skips recent ones (a concurrent
// New may not have locked yet) and ignores every error: this is
// housekeeping only.
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
		if inUse, known := dirLocked(dir); known {
			if !inUse {
				os.RemoveAll(dir)
			}
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

// dirLocked reports whether a live git-sync holds dir's lock; known is
// false when dir has no lock file.
func dirLocked(dir string) (inUse, known bool) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false, false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return false, true // released by Close of f
	}
	// Held by another (EWOULDBLOCK), or not known to be free.
	return true, true
}
