package hook

import (
	"strconv"
	"sync"
)

// MaxOutput bounds how much of each of a hook's output streams git-sync
// keeps (for the verbose log and, for stderr, the error). A hook may write
// without pause (a build log, `yes`, a loop gone wrong) and one did drive
// git-sync to 1.4 GB in 4 seconds when all of it was kept; the rest is
// read and dropped, so the hook never blocks on a full pipe.
const MaxOutput = 64 << 10

// TailWriter keeps the last max bytes written to it and counts the rest: the
// bounded output capture of exec hooks and the publish gate.
// It is safe for concurrent use (exec copies stdout and stderr from two
// goroutines, and each stream has its own writer, but the log may read
// while a killed hook's escaped child still writes).
type TailWriter struct {
	mu      sync.Mutex
	max     int
	buf     []byte // at most 2*max bytes; the tail is the last max of them
	dropped int64  // bytes written but no longer kept
}

// NewTailWriter returns a TailWriter that keeps max bytes.
func NewTailWriter(max int) *TailWriter { return &TailWriter{max: max} }

// Write implements io.Writer; it never fails.
func (w *TailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if len(p) > w.max {
		w.dropped += int64(len(p) - w.max)
		p = p[len(p)-w.max:]
	}
	if len(w.buf)+len(p) > 2*w.max {
		// Keep room to append without reallocating: slide the tail
		// that stays to the front.
		keep := w.max - len(p)
		cut := len(w.buf) - keep
		w.dropped += int64(cut)
		w.buf = append(w.buf[:0], w.buf[cut:]...)
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

// String returns what is kept, at most max bytes, preceded by a note of how
// much came before it when some was dropped.
func (w *TailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	tail := w.buf
	dropped := w.dropped
	if len(tail) > w.max {
		dropped += int64(len(tail) - w.max)
		tail = tail[len(tail)-w.max:]
	}
	if dropped == 0 {
		return string(tail)
	}
	return "[" + strconv.FormatInt(dropped, 10) + " earlier bytes not kept]..." + string(tail)
}
