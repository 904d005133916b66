package app

import (
	"io"
	"log/slog"

	"gitsync/internal/errorfile"
)

// newLogger returns git-sync's logger: one JSON object per line on w, with
// "time", "level", "v", "msg" and the record's key/value pairs, showing
// records up to verbosity (-v). Errors are also reported into ef (see
// package errorfile; nil for none).
//
// Code logs verbosity N at slog.Level(-N). slog would print such a level as
// "DEBUG+3"; git-sync's users think in -v numbers, as upstream's logs
// (logr) show them, so the level is split in two: "v" is the verbosity as a
// number (0 for ordinary, warning and error records) and "level" stays
// "INFO", "WARN" or "ERROR", so errors remain recognisable by level.
func newLogger(w io.Writer, verbosity int, ef *errorfile.File) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level:       slog.Level(-verbosity),
		ReplaceAttr: splitLevel,
	})
	return slog.New(ef.Handler(h))
}

// splitLevel replaces the built-in level attribute with "level" and "v"
// (see newLogger). An attribute with an empty key and a group value is
// inlined by the JSON handler, which is how one attribute becomes two.
func splitLevel(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 || a.Key != slog.LevelKey {
		return a
	}
	l, ok := a.Value.Any().(slog.Level)
	if !ok {
		return a
	}
	name, v := "INFO", 0
	switch {
	case l >= slog.LevelError:
		name = "ERROR"
	case l >= slog.LevelWarn:
		name = "WARN"
	case l < slog.LevelInfo:
		v = int(slog.LevelInfo - l)
	}
	return slog.Attr{Value: slog.GroupValue(slog.String(slog.LevelKey, name), slog.Int("v", v))}
}
