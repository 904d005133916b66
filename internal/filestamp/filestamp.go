// Package filestamp tells, with one stat, whether a file is still the
// version that was last read. Secrets and keys mounted from Kubernetes are
// replaced while git-sync runs (the kubelet swaps a symlink to a new
// directory); re-reading them only when their stamp changes keeps the cost
// of each request or poll to a stat.
package filestamp

import (
	"os"
	"syscall"
	"time"
)

// Stamp identifies a version of a file: its identity (inode), size and
// modification time. The zero Stamp is a file that does not exist (or
// could not be stat'ed); comparable with ==.
type Stamp struct {
	exists bool
	ino    uint64
	size   int64
	mtime  time.Time
}

// Of returns the stamp of the file at path, following symlinks.
func Of(path string) Stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return Stamp{}
	}
	s := Stamp{exists: true, size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}

// Exists reports whether the file existed when the stamp was taken.
func (s Stamp) Exists() bool { return s.exists }
