package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestLogLines checks the shape of git-sync's log lines: one JSON object
// per line with time, level, a numeric verbosity "v", msg and the record's
// key/value pairs; verbosity filtering by -v; errors recognisable by level.
func TestLogLines(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(&buf, 3, nil)
	log.Info("published new commit", "hash", "abc")
	log.Log(t.Context(), slog.Level(-1), "details")
	log.Log(t.Context(), slog.Level(-3), "loop detail")
	log.Log(t.Context(), slog.Level(-4), "too verbose for -v 3")
	log.Warn("deprecated flag")
	log.With("hook", "exechook").Error("hook failed", "error", errors.New("exit status 1"))

	type want struct {
		msg, level string
		v          float64
	}
	wants := []want{
		{"published new commit", "INFO", 0},
		{"details", "INFO", 1},
		{"loop detail", "INFO", 3},
		{"deprecated flag", "WARN", 0},
		{"hook failed", "ERROR", 0},
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != len(wants) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(wants), buf.String())
	}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", line, err)
		}
		w := wants[i]
		if _, ok := rec["time"].(string); !ok {
			t.Errorf("line %q has no time", line)
		}
		if rec["msg"] != w.msg || rec["level"] != w.level || rec["v"] != w.v {
			t.Errorf("line %q: want msg %q, level %q, v %v", line, w.msg, w.level, w.v)
		}
		if strings.Contains(line, "DEBUG") {
			t.Errorf("line %q shows slog's DEBUG level names", line)
		}
	}
	if !strings.Contains(lines[0], `"hash":"abc"`) {
		t.Errorf("key/value pairs missing: %s", lines[0])
	}
	if !strings.Contains(lines[4], `"hook":"exechook"`) || !strings.Contains(lines[4], `"error":"exit status 1"`) {
		t.Errorf("error record lacks its attributes: %s", lines[4])
	}
}
