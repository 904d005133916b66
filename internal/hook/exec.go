package hook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"strings"

	"gitsync/internal/config"
	"gitsync/internal/procgroup"
)

// maxErrStderr bounds how much of a failed hook's stderr goes into the
// returned error (and so into logs and the error file); the end is kept,
// where the reason for a failure usually is.
const maxErrStderr = 4096

// execHook runs a user's program; see NewExec.
type execHook struct {
	name string
	cfg  config.HookConfig
	dir  func(hash string) string
	env  []string
	log  *slog.Logger
}

// NewExec returns a Hook that runs cfg.Command, the path of an executable,
// with no arguments and no shell. It runs in dir(hash) with the environment
// env (the caller's complete list: git-sync's own environment plus its git
// settings) plus GITSYNC_HASH=<hash>. The program gets its own process group,
// which is killed, grandchildren included, when cfg.Timeout passes (0 = no
// timeout of its own) or the attempt's context ends, and again when the
// program exits, so background children cannot outlive an attempt. Its
// stdout and stderr are read to the end but only their last MaxOutput bytes
// each are kept: logged at verbosity 6 (slog level -6), and the end of
// stderr in a failure's error. name labels logs and metrics, e.g. "exechook".
func NewExec(name string, cfg config.HookConfig, dir func(hash string) string, env []string, log *slog.Logger) Hook {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &execHook{name: name, cfg: cfg, dir: dir, env: slices.Clip(env), log: log}
}

// Name implements Hook.
func (h *execHook) Name() string { return h.name }

// Do implements Hook.
func (h *execHook) Do(ctx context.Context, hash string) error {
	if h.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.cfg.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.cfg.Command)
	cmd.Dir = h.dir(hash)
	cmd.Env = Env(h.env, hash)
	stdout, stderr := NewTailWriter(MaxOutput), NewTailWriter(MaxOutput)
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	procgroup.Prepare(cmd)

	h.log.Log(ctx, slog.Level(-5), "running hook", "hook", h.name, "command", h.cfg.Command, "dir", cmd.Dir, "hash", hash)
	err := cmd.Run()
	procgroup.KillGroup(cmd)
	h.log.Log(context.WithoutCancel(ctx), slog.Level(-6), "hook output", "hook", h.name, "hash", hash,
		"stdout", stdout.String(), "stderr", stderr.String())
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			ctxErr = fmt.Errorf("timed out after %s: %w", h.cfg.Timeout, ctxErr)
		}
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	err = fmt.Errorf("%s %s: %w", h.name, h.cfg.Command, err)
	if s := strings.TrimSpace(stderr.String()); s != "" {
		if len(s) > maxErrStderr {
			s = "..." + s[len(s)-maxErrStderr:]
		}
		err = fmt.Errorf("%w; stderr: %s", err, s)
	}
	return err
}

// Env is the environment of an exec hook, and of the publish gate, for the
// commit hash: base (git-sync's children's environment) plus GITSYNC_HASH.
func Env(base []string, hash string) []string {
	return append(slices.Clip(base), "GITSYNC_HASH="+hash)
}
