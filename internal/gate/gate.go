// Package gate runs the publish gate (--publish-gate-command): a user's
// program that decides, in a new and complete tree, whether git-sync may
// publish it. Exit status 0 publishes; anything else, or running past the
// timeout, refuses the commit.
//
// Unlike the pre-publish hook, whose failure upstream never lets stop a
// publish, the gate blocks: the caller (the sync loop) keeps the current
// tree and discards the refused one. Verdicts are remembered per commit, so
// a refused commit costs one run of the gate, not one per poll.
package gate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"time"

	"gitsync/internal/hook"
	"gitsync/internal/procgroup"
)

// tailLines and tailBytes bound the end of the gate's output quoted in a
// rejection (and so in the log and the error file): where a failing check
// usually says why.
const (
	tailLines = 20
	tailBytes = 4096
)

// maxVerdicts bounds the verdict cache; the oldest verdict is forgotten
// first. A forgotten commit is only gated again if --ref names it again.
const maxVerdicts = 256

// Options configures a Gate.
type Options struct {
	Command string        // the program, run with no arguments and no shell
	Timeout time.Duration // its process group is killed after this long
	// Dir gives the tree to run in: the candidate's complete worktree.
	Dir func(hash string) string
	// Env is git-sync's children's environment; the gate gets it plus
	// GITSYNC_HASH, exactly as the exec hooks do (hook.Env).
	Env []string
	Log *slog.Logger
	// OnReject, if set, is called for every commit the gate refuses
	// (git_sync_gate_rejections_total), remembered verdicts included.
	OnReject func()
}

// Gate runs the publish gate and remembers its verdicts. Safe for
// concurrent use, though the sync loop calls it from one goroutine.
type Gate struct {
	opts Options

	mu       sync.Mutex
	verdicts map[string]error // hash -> nil (accepted) or its *RejectedError
	order    []string         // hashes in verdicts, oldest first
	runs     int
}

// New returns a Gate.
func New(opts Options) *Gate {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Gate{opts: opts, verdicts: map[string]error{}}
}

// RejectedError is the gate refusing a commit.
type RejectedError struct {
	Hash   string
	Reason string // "exited with status 1", "timed out after 1m0s ...", ...
	Output string // the last lines of its output (stdout and stderr together)
}

func (e *RejectedError) Error() string {
	msg := fmt.Sprintf("publish gate refused %s: %s", e.Hash, e.Reason)
	if e.Output != "" {
		msg += "; last output:\n" + e.Output
	}
	return msg
}

// Runs reports how many times the gate program was started.
func (g *Gate) Runs() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.runs
}

// Check decides whether the commit hash, whose complete worktree is at
// Options.Dir(hash), may be published: nil, or a *RejectedError. A verdict
// already reached for hash is returned without running the program again.
// When ctx ends while the program runs (the sync attempt timed out, or
// git-sync is stopping), the error wraps ctx's error, is no verdict and is
// not remembered.
func (g *Gate) Check(ctx context.Context, hash, _ string) error {
	g.mu.Lock()
	verdict, known := g.verdicts[hash]
	g.mu.Unlock()
	if !known {
		var err error
		verdict, err = g.run(ctx, hash)
		if err != nil {
			return err
		}
		g.remember(hash, verdict)
	} else {
		g.opts.Log.Log(ctx, slog.Level(-1), "publish gate verdict remembered", "hash", hash, "accepted", verdict == nil)
	}
	if verdict != nil && g.opts.OnReject != nil {
		g.opts.OnReject()
	}
	return verdict
}

// run runs the program once for hash. It returns the verdict, or an error
// when ctx ended first.
func (g *Gate) run(ctx context.Context, hash string) (verdict, err error) {
	g.mu.Lock()
	g.runs++
	g.mu.Unlock()
	runCtx, cancel := context.WithTimeout(ctx, g.opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, g.opts.Command)
	cmd.Dir = g.opts.Dir(hash)
	cmd.Env = hook.Env(g.opts.Env, hash)
	out := hook.NewTailWriter(hook.MaxOutput)
	cmd.Stdout, cmd.Stderr = out, out
	procgroup.Prepare(cmd)

	g.opts.Log.Log(ctx, slog.Level(-5), "running publish gate", "command", g.opts.Command, "dir", cmd.Dir, "hash", hash)
	start := time.Now()
	runErr := cmd.Run()
	procgroup.KillGroup(cmd) // background children do not outlive the verdict
	g.opts.Log.Log(context.WithoutCancel(ctx), slog.Level(-6), "publish gate output", "hash", hash, "output", out.String())
	if runErr == nil {
		g.opts.Log.Info("publish gate accepted commit", "hash", hash, "took", time.Since(start).Round(time.Millisecond).String())
		return nil, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("publish gate for %s interrupted: %w", hash, ctx.Err())
	}
	rej := &RejectedError{Hash: hash, Output: lastLines(out.String())}
	var exitErr *exec.ExitError
	switch {
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		rej.Reason = fmt.Sprintf("timed out after %s (its process group was killed)", g.opts.Timeout)
	case errors.As(runErr, &exitErr):
		rej.Reason = exitErr.ProcessState.String() // "exit status 3", "signal: killed"
	default:
		rej.Reason = fmt.Sprintf("could not run %s: %v", g.opts.Command, runErr)
	}
	return rej, nil
}

// remember records the verdict for hash, forgetting the oldest beyond
// maxVerdicts.
func (g *Gate) remember(hash string, verdict error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.verdicts[hash]; !ok {
		g.order = append(g.order, hash)
	}
	g.verdicts[hash] = verdict
	for len(g.order) > maxVerdicts {
		delete(g.verdicts, g.order[0])
		g.order = g.order[1:]
	}
}

// lastLines returns the last tailLines lines of s, at most tailBytes,
// without surrounding blank space.
func lastLines(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > tailBytes {
		s = s[len(s)-tailBytes:]
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	lines := strings.Split(s, "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return strings.Join(lines, "\n")
}
