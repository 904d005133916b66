package errorfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gitsync/internal/secret"
)

// logger returns a logger that writes JSON lines into buf and reports
// errors into f.
func logger(f *File, buf *bytes.Buffer) *slog.Logger {
	return slog.New(f.Handler(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.Level(-10)})))
}

// read decodes the error file, failing the test if it is absent or not a
// JSON object of upstream's shape.
func read(t *testing.T, path string) (Report, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("error file: %v", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("error file is not a JSON object: %v\n%s", err, b)
	}
	for _, k := range []string{"Msg", "Err", "Args"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("error file lacks %q: %s", k, b)
		}
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r, string(b)
}

func TestErrorRecordsReplaceTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "error.json")
	f := New(path, 0o644)
	var logs bytes.Buffer
	log := logger(f, &logs)

	log.Info("published", "hash", "abc")
	log.Warn("careful")
	log.Log(t.Context(), slog.Level(-6), "git output")
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("records below ERROR wrote the error file (stat: %v)", err)
	}

	gitErr := errors.New("fatal: couldn't find remote ref refs/heads/missing <&>")
	log.With("hook", "exechook").WithGroup("sync").Error("sync failed", "error", gitErr, "failures", 3,
		"backoff", 3*time.Second, "password", secret.New("hunter2"), slog.Group("g", "k", "v"))
	r, text := read(t, path)
	if r.Msg != "sync failed" || r.Err != gitErr.Error() {
		t.Errorf("Msg %q, Err %q", r.Msg, r.Err)
	}
	if !strings.Contains(text, "couldn't find remote ref") || !strings.Contains(text, "<&>") {
		t.Errorf("git's text is not in the file verbatim: %s", text)
	}
	want := map[string]any{
		"hook":          "exechook",
		"sync.failures": float64(3),
		"sync.backoff":  float64(3 * time.Second),
		"sync.password": "REDACTED",
		"sync.g.k":      "v",
	}
	if len(r.Args) != len(want) {
		t.Errorf("Args = %v, want %v", r.Args, want)
	}
	for k, v := range want {
		if r.Args[k] != v {
			t.Errorf("Args[%q] = %#v, want %#v", k, r.Args[k], v)
		}
	}
	if strings.Contains(text, "hunter2") || strings.Contains(logs.String(), "hunter2") {
		t.Errorf("a secret leaked:\n%s\n%s", text, logs.String())
	}
	// The log line is written as before.
	if !strings.Contains(logs.String(), `"msg":"sync failed"`) {
		t.Errorf("the record did not reach the log:\n%s", logs.String())
	}

	// The next error replaces the file; an error given as a string works.
	log.Error("hook failed", "error", "exit status 1", "hash", "abc")
	r, _ = read(t, path)
	if r.Msg != "hook failed" || r.Err != "exit status 1" || r.Args["hash"] != "abc" || len(r.Args) != 1 {
		t.Errorf("second report = %+v", r)
	}
	// Nothing but the file is left in its directory (no temporary files).
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the error file", len(ents))
	}

	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Remove left the file (stat: %v)", err)
	}
	if err := f.Remove(); err != nil {
		t.Errorf("Remove of an absent file: %v", err)
	}
}

func TestNoFileConfigured(t *testing.T) {
	var logs bytes.Buffer
	for _, f := range []*File{nil, New("", 0o644)} {
		logger(f, &logs).Error("boom", "error", errors.New("x"))
		if err := f.Remove(); err != nil {
			t.Error(err)
		}
		if err := f.Write(Report{Msg: "m"}); err != nil {
			t.Error(err)
		}
		f.SetPath("")
	}
	if strings.Count(logs.String(), `"msg":"boom"`) != 2 {
		t.Errorf("records were not logged:\n%s", logs.String())
	}
}

// TestWriteFailureIsLoggedOnce checks that a file that cannot be written is
// reported in the log, once per error, without recursing.
func TestWriteFailureIsLoggedOnce(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger(New(filepath.Join(blocker, "error.json"), 0o644), &logs).Error("boom", "error", errors.New("x"))
	if n := strings.Count(logs.String(), "could not write --error-file"); n != 1 {
		t.Errorf("%d reports of the failed write, want 1:\n%s", n, logs.String())
	}
}

// TestSetPath checks that the file follows the path set last.
func TestSetPath(t *testing.T) {
	dir := t.TempDir()
	f := New(filepath.Join(dir, "first"), 0o600)
	var logs bytes.Buffer
	log := logger(f, &logs)
	f.SetPath(filepath.Join(dir, "second"))
	log.Error("boom", "error", errors.New("x"))
	if _, err := os.Stat(filepath.Join(dir, "first")); err == nil {
		t.Error("wrote the old path")
	}
	fi, err := os.Stat(filepath.Join(dir, "second"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestConcurrentErrorsAndRemovals checks that a reader never sees a partial
// file while errors are logged and the file removed from many goroutines.
func TestConcurrentErrorsAndRemovals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "error.json")
	f := New(path, 0o644)
	var mu sync.Mutex
	var logs bytes.Buffer
	log := slog.New(f.Handler(slog.NewJSONHandler(&lockedWriter{mu: &mu, w: &logs}, nil)))
	stop := make(chan struct{})
	readerDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				readerDone <- nil
				return
			default:
			}
			b, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			var r Report
			if err == nil {
				err = json.Unmarshal(b, &r)
			}
			if err != nil {
				readerDone <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				if i == 0 && j%5 == 0 {
					_ = f.Remove()
					continue
				}
				log.Error("boom", "error", errors.New(strings.Repeat("x", 2000)), "n", j)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-readerDone; err != nil {
		t.Errorf("a reader saw a broken file: %v", err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
