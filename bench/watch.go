package main

import (
	"encoding/binary"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
)

// linkWatch counts how many times the link in a root is replaced, using
// inotify: every publish renames a new symlink over the link (or creates
// it), which the kernel reports as IN_MOVED_TO or IN_CREATE on the root
// directory. Counting there works the same for git-sync and the floor and
// costs the watched process nothing.
type linkWatch struct {
	f     *os.File
	flips atomic.Int64
	done  chan struct{}
}

func watchLink(root string) (*linkWatch, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	if _, err := syscall.InotifyAddWatch(fd, root, syscall.IN_MOVED_TO|syscall.IN_CREATE); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	// A non-blocking descriptor goes through the runtime poller, so Close
	// interrupts a pending Read.
	w := &linkWatch{f: os.NewFile(uintptr(fd), "inotify"), done: make(chan struct{})}
	go w.loop()
	return w, nil
}

func (w *linkWatch) loop() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		// struct inotify_event: wd, mask, cookie, len (4 bytes each), name.
		for off := 0; off+16 <= n; {
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			end := off + 16 + nameLen
			if end > n {
				break
			}
			name := strings.TrimRight(string(buf[off+16:end]), "\x00")
			if name == linkName {
				w.flips.Add(1)
			}
			off = end
		}
	}
}

// Close stops watching and returns the number of link replacements seen.
func (w *linkWatch) Close() int64 {
	w.f.Close()
	<-w.done
	return w.flips.Load()
}
