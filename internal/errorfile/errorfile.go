// Package errorfile implements --error-file: a file that always describes
// the most recent error git-sync logged, for tools that cannot read logs
// (a sidecar's status check, a Kubernetes termination message).
//
// The mechanism is a slog.Handler: every record at slog.LevelError that
// passes through Handler replaces the file, atomically, with upstream
// git-sync's JSON shape
//
//	{"Msg": "<message>", "Err": "<the error attribute>", "Args": {<the other attributes>}}
//
// so every error that is logged is reported, whichever package logged it,
// and nothing is reported that was not logged. The "error" attribute becomes
// Err; the others, including those added with Logger.With, go into Args
// (keys inside groups are joined with dots). Text is written as it is, with
// no HTML escaping, so git's stderr can be searched for verbatim. The file
// stays when git-sync exits; Remove deletes it (the sync loop calls it after
// a successful sync).
package errorfile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"gitsync/internal/atomicfile"
)

// File is the --error-file. A nil *File, or one with an empty path, does
// nothing: callers need no checks when --error-file is unset.
type File struct {
	mu    sync.Mutex // orders writes and removals; held while the file changes
	path  string
	mode  os.FileMode
	dirty bool // the file may exist: written since the last Remove, or left by an earlier run
}

// New returns the error file at path (absolute; "" for none), written with
// permissions mode.
func New(path string, mode os.FileMode) *File {
	return &File{path: path, mode: mode, dirty: true}
}

// SetPath moves the file to path for later writes and removals; the file at
// the old path, if any, is left alone. git-sync knows the canonical --root
// only after it has created it, but may have to report errors before that.
func (f *File) SetPath(path string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.path = path
	f.dirty = true
	f.mu.Unlock()
}

// Path returns where the file is written ("" for nowhere).
func (f *File) Path() string {
	if f == nil {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.path
}

// Report is the content of the file, in upstream's field names.
type Report struct {
	Msg  string         `json:"Msg"`
	Err  string         `json:"Err"`
	Args map[string]any `json:"Args"`
}

// Write replaces the file with r, creating missing parent directories.
func (f *File) Write(r Report) error {
	if f == nil {
		return nil
	}
	if r.Args == nil {
		r.Args = map[string]any{}
	}
	data, err := encode(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o777); err != nil {
		return fmt.Errorf("write --error-file: %w", err)
	}
	f.dirty = true
	if err := atomicfile.Write(f.path, data, f.mode); err != nil {
		return fmt.Errorf("write --error-file: %w", err)
	}
	return nil
}

// encode renders r as one line of JSON without HTML escaping. A value that
// cannot be encoded is replaced by its fmt rendering, so a report is never
// lost to an odd attribute.
func encode(r Report) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err == nil {
		return b.Bytes(), nil
	}
	for k, v := range r.Args {
		if _, err := json.Marshal(v); err != nil {
			r.Args[k] = fmt.Sprint(v)
		}
	}
	b.Reset()
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode --error-file: %w", err)
	}
	return b.Bytes(), nil
}

// Remove deletes the file; a file that does not exist is not an error.
// It touches the filesystem only when the file may exist (written since the
// last Remove, or possibly left by an earlier run), so the sync loop can
// call it after every idle poll for free.
func (f *File) Remove() error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.path == "" || !f.dirty {
		return nil
	}
	f.dirty = false
	if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove --error-file: %w", err)
	}
	return nil
}

// Handler returns a handler that passes every record to next and, for
// records at slog.LevelError or above, also replaces the file. A failure to
// write the file is logged through next (never through this handler, so it
// cannot recurse).
func (f *File) Handler(next slog.Handler) slog.Handler {
	return &handler{next: next, file: f}
}

// Tap returns a handler that passes every record to next and hands each
// record at slog.LevelError or above to fn as the Report the file would
// hold, so that other reporters (the /status endpoint) show exactly what
// the error file shows.
func Tap(next slog.Handler, fn func(Report)) slog.Handler {
	return &handler{next: next, tap: fn}
}

// handler is the slog.Handler of File.Handler.
type handler struct {
	next   slog.Handler
	file   *File        // nil for a Tap
	tap    func(Report) // nil for a File's handler
	attrs  []withAttr   // from WithAttrs
	prefix string       // the open groups, "a.b.", for keys of later attributes
}

// withAttr is an attribute from WithAttrs with the groups open at the time.
type withAttr struct {
	prefix string
	attr   slog.Attr
}

// Enabled implements slog.Handler.
func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// WithAttrs implements slog.Handler.
func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	c.attrs = h.attrs[:len(h.attrs):len(h.attrs)]
	for _, a := range as {
		c.attrs = append(c.attrs, withAttr{h.prefix, a})
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.next = h.next.WithGroup(name)
	c.prefix = h.prefix + name + "."
	return &c
}

// Handle implements slog.Handler.
func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	err := h.next.Handle(ctx, r)
	if r.Level < slog.LevelError || (h.file.Path() == "" && h.tap == nil) {
		return err
	}
	rep := Report{Msg: r.Message, Args: map[string]any{}}
	// The attribute called "error" is Err wherever groups put it (callers
	// pass it with the message, not inside a group of their own).
	add := func(prefix string, a slog.Attr) {
		if a.Key == "error" {
			rep.Err = errorText(a.Value)
			return
		}
		flatten(rep.Args, prefix, a)
	}
	for _, w := range h.attrs {
		add(w.prefix, w.attr)
	}
	r.Attrs(func(a slog.Attr) bool {
		add(h.prefix, a)
		return true
	})
	if h.tap != nil {
		h.tap(rep)
		return err
	}
	if werr := h.file.Write(rep); werr != nil {
		fail := slog.NewRecord(r.Time, slog.LevelError, "could not write --error-file", r.PC)
		fail.AddAttrs(slog.String("path", h.file.Path()), slog.Any("error", werr))
		_ = h.next.Handle(ctx, fail)
	}
	return err
}

// flatten stores a in args, groups as dotted keys.
func flatten(args map[string]any, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p = prefix + a.Key + "."
		}
		for _, m := range v.Group() {
			flatten(args, p, m)
		}
		return
	}
	if a.Key == "" {
		return
	}
	args[prefix+a.Key] = plain(v)
}

// plain converts a resolved slog value into what encoding/json renders the
// way the JSON log line does: errors as their text unless they marshal
// themselves (secret types print REDACTED), durations as nanoseconds.
func plain(v slog.Value) any {
	if v.Kind() != slog.KindAny {
		return v.Any()
	}
	x := v.Any()
	if _, ok := x.(json.Marshaler); ok {
		return x
	}
	if err, ok := x.(error); ok {
		return err.Error()
	}
	return x
}

// errorText is the text of the "error" attribute.
func errorText(v slog.Value) string {
	v = v.Resolve()
	if v.Kind() == slog.KindAny {
		if err, ok := v.Any().(error); ok && err != nil {
			return err.Error()
		}
	}
	return v.String()
}
