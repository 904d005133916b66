// Package gitcmd is the one place that runs git.
//
// Every git process git-sync starts goes through Runner.Run: the program is
// the configured --git binary, the subcommand is always the first argument
// (users' --git wrappers rely on that), the environment is built once and
// passed explicitly (never os.Setenv), the child runs in its own process group
// so a timeout kills git and everything it started, and a failure comes back
// as an *Error carrying the command and git's stderr.
package gitcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"gitsync/internal/procgroup"
	"gitsync/internal/redact"
)

// Verbosity levels at which commands and their output are logged: -v 5
// shows every git command, -v 6 its output too (docs/CONTRACT.md, section 7).
const (
	LevelCommand = slog.Level(-5)
	LevelOutput  = slog.Level(-6)
)

// Runner runs git with a fixed program and environment.
type Runner struct {
	Git string   // absolute path of the git program
	Env []string // complete environment of every child
	Log *slog.Logger
}

// env is the environment of every child: exactly r.Env. os/exec reads a
// nil Env as "inherit git-sync's own", which would hand git our secrets and
// any GIT_DIR we were started with.
func (r *Runner) env() []string {
	if r.Env == nil {
		return []string{}
	}
	return r.Env
}

// Error describes a git command that failed to start or exited non-zero.
type Error struct {
	Args     []string
	Dir      string
	ExitCode int // -1 when git did not start or was killed
	Stderr   string
	Err      error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("git %s: %v", strings.Join(e.Args, " "), e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return redact.Text(msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs git with args in dir and returns its stdout. The context bounds
// the whole process group.
func (r *Runner) Run(ctx context.Context, dir string, args ...string) (string, error) {
	return r.RunWithInput(ctx, dir, nil, args...)
}

// RunWithInput is Run with stdin connected to in.
func (r *Runner) RunWithInput(ctx context.Context, dir string, in io.Reader, args ...string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", &Error{Args: args, Dir: dir, ExitCode: -1, Err: err}
	}
	cmd := exec.CommandContext(ctx, r.Git, args...)
	cmd.Dir = dir
	cmd.Env = r.env()
	cmd.Stdin = in
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	procgroup.Prepare(cmd)

	start := time.Now()
	// Building the log attributes costs more than the idle poll's own Go
	// work, so do it only when they will be written.
	if r.Log.Enabled(ctx, LevelCommand) {
		r.Log.Log(ctx, LevelCommand, "running git", "args", redact.Text(strings.Join(args, " ")), "dir", dir)
	}
	err := cmd.Run()
	if r.Log.Enabled(ctx, LevelOutput) {
		r.Log.Log(ctx, LevelOutput, "git finished", "args", redact.Text(strings.Join(args, " ")),
			"duration", time.Since(start), "stdout", redact.Text(stdout.String()), "stderr", redact.Text(stderr.String()))
	}
	if err != nil {
		return stdout.String(), failure(ctx, cmd, args, stderr.String(), err)
	}
	return stdout.String(), nil
}

// failure describes cmd, which failed with err: killed by ctx, not
// started, or exited non-zero.
func failure(ctx context.Context, cmd *exec.Cmd, args []string, stderr string, err error) *Error {
	code := -1
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	} else if cmd.ProcessState == nil {
		err = startError(cmd.Dir, err)
	}
	return &Error{Args: args, Dir: cmd.Dir, ExitCode: code, Stderr: stderr, Err: err}
}

// Stream runs git with args in dir like Run, but connects stdin to in and
// stdout to out as the process runs, so that large output (a pack sent to a
// client) is never held in memory; env is appended to the runner's
// environment for this process alone. The returned error is an *Error
// carrying git's stderr.
func (r *Runner) Stream(ctx context.Context, dir string, env []string, in io.Reader, out io.Writer, args ...string) error {
	if err := ctx.Err(); err != nil {
		return &Error{Args: args, Dir: dir, ExitCode: -1, Err: err}
	}
	cmd := exec.CommandContext(ctx, r.Git, args...)
	cmd.Dir = dir
	cmd.Env = append(append([]string{}, r.env()...), env...)
	cmd.Stdin = in
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	procgroup.Prepare(cmd)
	if r.Log.Enabled(ctx, LevelCommand) {
		r.Log.Log(ctx, LevelCommand, "running git", "args", redact.Text(strings.Join(args, " ")), "dir", dir)
	}
	if err := cmd.Run(); err != nil {
		return failure(ctx, cmd, args, stderr.String(), err)
	}
	return nil
}

// locationVars are variables that would make git operate on a repository or
// configuration other than the one git-sync chose. They are dropped from the
// inherited environment.
var locationVars = map[string]bool{
	"GIT_DIR": true, "GIT_WORK_TREE": true, "GIT_INDEX_FILE": true, "GIT_COMMON_DIR": true,
	"GIT_OBJECT_DIRECTORY": true, "GIT_ALTERNATE_OBJECT_DIRECTORIES": true, "GIT_NAMESPACE": true,
	"GIT_CEILING_DIRECTORIES": true, "GIT_DISCOVERY_ACROSS_FILESYSTEM": true,
	"GIT_CONFIG": true, "GIT_CONFIG_GLOBAL": true, "GIT_CONFIG_SYSTEM": true, "GIT_CONFIG_NOSYSTEM": true,
	"GIT_CONFIG_PARAMETERS": true, "GIT_CONFIG_COUNT": true,
}

// BuildEnv returns base without variables that redirect git elsewhere
// (GIT_DIR, GIT_CONFIG_*, ...) and with set appended; a key in set replaces
// the same key in base.
func BuildEnv(base []string, set ...string) []string {
	override := make(map[string]bool, len(set))
	for _, kv := range set {
		k, _, _ := strings.Cut(kv, "=")
		override[k] = true
	}
	env := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if override[k] || locationVars[k] || strings.HasPrefix(k, "GIT_CONFIG_KEY_") || strings.HasPrefix(k, "GIT_CONFIG_VALUE_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, set...)
}

// startError explains a git that could not be started. The kernel reports a
// missing working directory exactly like a missing program ("fork/exec
// /usr/bin/git: no such file or directory"), which sends users hunting for
// a broken git installation when their root was deleted.
func startError(dir string, err error) error {
	fi, statErr := os.Stat(dir)
	if statErr != nil {
		return fmt.Errorf("cannot run git in %s: the directory is missing or unreadable: %w", dir, statErr)
	}
	if !fi.IsDir() {
		return fmt.Errorf("cannot run git in %s: it is not a directory", dir)
	}
	return err
}
