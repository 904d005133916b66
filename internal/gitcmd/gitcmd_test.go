package gitcmd

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gitsync/internal/procgroup"
	"gitsync/internal/proctest"
)

// realGit is the git on PATH.
func realGit(t *testing.T) string {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git not found on PATH (install it: apt-get install -y git): %v", err)
	}
	return git
}

// testEnv is a complete environment for git that reads no configuration
// from the machine and speaks English.
func testEnv(t *testing.T) []string {
	home := t.TempDir()
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"GIT_CONFIG_GLOBAL=" + filepath.Join(home, "gitconfig"),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
	}
}

// runner is a Runner for program with env and a logger that discards.
func runner(program string, env []string) *Runner {
	return &Runner{Git: program, Env: env, Log: slog.New(slog.DiscardHandler)}
}

// script writes an executable shell script with body to a new temporary
// directory and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "git-wrapper")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// recorder is a --git wrapper that writes the arguments and the initial
// environment of each run to files, then execs the real git.
type recorder struct {
	path string // the wrapper
	dir  string // where it records
}

// newRecorder writes a recording wrapper around the real git.
func newRecorder(t *testing.T) *recorder {
	dir := t.TempDir()
	body := fmt.Sprintf(`printf '%%s\0' "$@" > %[1]s/argv
/bin/cat /proc/$$/environ > %[1]s/environ
exec %[2]s "$@"
`, dir, realGit(t))
	return &recorder{path: script(t, body), dir: dir}
}

// list reads a NUL-terminated list the wrapper recorded.
func (r *recorder) list(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		t.Fatalf("the wrapper did not run: %v", err)
	}
	list := strings.Split(string(b), "\x00")
	return list[:len(list)-1]
}

func TestRunRunsTheConfiguredGitWithTheSubcommandFirst(t *testing.T) {
	rec := newRecorder(t)
	r := runner(rec.path, testEnv(t))
	ctx := context.Background()
	dir := t.TempDir()

	if _, err := r.Run(ctx, dir, "init", "--quiet", "my repo"); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.list(t, "argv"), []string{"init", "--quiet", "my repo"}; !slices.Equal(got, want) {
		t.Errorf("wrapper's arguments = %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "my repo", ".git")); err != nil {
		t.Fatalf("git init did not run in dir: %v", err)
	}

	repo := filepath.Join(dir, "my repo")
	out, err := r.Run(ctx, repo, "rev-parse", "--show-toplevel")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rec.list(t, "argv"), []string{"rev-parse", "--show-toplevel"}; !slices.Equal(got, want) {
		t.Errorf("wrapper's arguments = %q, want %q", got, want)
	}
	if want, _ := filepath.EvalSymlinks(repo); out != want+"\n" {
		t.Errorf("stdout = %q, want %q", out, want+"\n")
	}
}

func TestGitGetsExactlyTheRunnersEnvironment(t *testing.T) {
	// Variables of the test process that must not reach git; GIT_DIR
	// would also make git operate on the wrong repository.
	t.Setenv("GITSYNC_TEST_PARENT_ONLY", "leaked")
	t.Setenv("GIT_DIR", filepath.Join(t.TempDir(), "elsewhere.git"))

	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"set", append(testEnv(t), "GITSYNC_TEST_CHILD=1")},
		{"empty", []string{}},
		{"nil", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t)
			r := runner(rec.path, tc.env)
			dir := t.TempDir()
			if _, err := r.Run(context.Background(), dir, "init", "--quiet"); err != nil {
				t.Fatal(err)
			}
			checkEnviron(t, rec, "Run", tc.env)
			if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
				t.Fatalf("git init did not create dir/.git: %v", err)
			}

			s, err := r.Start(dir, "cat-file", "--batch")
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			checkEnviron(t, rec, "Start", tc.env)
		})
	}
}

// checkEnviron compares the environment the wrapper recorded with want,
// ignoring order.
func checkEnviron(t *testing.T, rec *recorder, call string, want []string) {
	t.Helper()
	got := rec.list(t, "environ")
	want = slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("environment of git from %s:\n got %q\nwant %q", call, got, want)
	}
}

func TestRunFailureIsATypedError(t *testing.T) {
	r := runner(realGit(t), testEnv(t))
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := r.Run(ctx, dir, "init", "--quiet"); err != nil {
		t.Fatal(err)
	}

	args := []string{"rev-parse", "--verify", "refs/heads/nope"}
	_, err := r.Run(ctx, dir, args...)
	var gerr *Error
	if !errors.As(err, &gerr) {
		t.Fatalf("Run = %T %v, want *gitcmd.Error", err, err)
	}
	if !slices.Equal(gerr.Args, args) {
		t.Errorf("Args = %q, want %q", gerr.Args, args)
	}
	if gerr.Dir != dir {
		t.Errorf("Dir = %q, want %q", gerr.Dir, dir)
	}
	if gerr.ExitCode != 128 {
		t.Errorf("ExitCode = %d, want 128", gerr.ExitCode)
	}
	const stderr = "fatal: Needed a single revision"
	if !strings.Contains(gerr.Stderr, stderr) {
		t.Errorf("Stderr = %q, want it to contain %q", gerr.Stderr, stderr)
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Errorf("%v does not wrap *exec.ExitError", err)
	}
	msg := err.Error()
	for _, want := range []string{"rev-parse --verify refs/heads/nope", stderr} {
		if !strings.Contains(msg, want) {
			t.Errorf("Error() = %q, want it to contain %q", msg, want)
		}
	}
}

func TestErrorRedactsCredentialsInURLs(t *testing.T) {
	ctx := context.Background()
	env := testEnv(t)

	t.Run("in the arguments", func(t *testing.T) {
		r := runner(realGit(t), env)
		dir := t.TempDir()
		if _, err := r.Run(ctx, dir, "init", "--quiet"); err != nil {
			t.Fatal(err)
		}
		args := []string{"remote", "add", "origin", "https://alice:s3cret@example.com/r.git"}
		if _, err := r.Run(ctx, dir, args...); err != nil {
			t.Fatal(err)
		}
		_, err := r.Run(ctx, dir, args...) // the remote exists now
		if err == nil {
			t.Fatal("adding the remote twice succeeded")
		}
		checkRedacted(t, err.Error(), "s3cret", "example.com/r.git")
	})

	t.Run("in stderr", func(t *testing.T) {
		git := script(t, `echo "fatal: unable to access 'https://bob:hunter2@example.com/x.git/'" >&2; exit 128`)
		r := runner(git, env)
		_, err := r.Run(ctx, t.TempDir(), "fetch")
		var gerr *Error
		if !errors.As(err, &gerr) || gerr.ExitCode != 128 {
			t.Fatalf("Run = %v, want a *gitcmd.Error with exit code 128", err)
		}
		checkRedacted(t, err.Error(), "hunter2", "example.com/x.git")
	})
}

// checkRedacted fails the test if msg contains secret, or lost the rest of
// the URL it was in.
func checkRedacted(t *testing.T, msg, secret, rest string) {
	t.Helper()
	if strings.Contains(msg, secret) {
		t.Errorf("message leaks the password: %q", msg)
	}
	if !strings.Contains(msg, rest) {
		t.Errorf("message %q lost the URL's %q", msg, rest)
	}
}

func TestRunLogsWithoutCredentials(t *testing.T) {
	var logs bytes.Buffer
	r := runner(realGit(t), testEnv(t))
	r.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: LevelOutput}))
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := r.Run(ctx, dir, "init", "--quiet"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(ctx, dir, "remote", "add", "origin", "https://alice:s3cret@example.com/r.git"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(ctx, dir, "remote", "get-url", "origin"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "remote get-url origin") {
		t.Fatalf("commands were not logged at LevelOutput:\n%s", logs.String())
	}
	checkRedacted(t, logs.String(), "s3cret", "example.com/r.git")
}

// A deadline stops git and whatever it started: the wrapper leaves a
// long-running child, and git itself hangs on a server that never answers.
func TestRunDeadlineKillsTheWholeProcessGroup(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // never accepts: connections wait in the backlog

	dir := t.TempDir()
	git := script(t, fmt.Sprintf(`sh -c 'echo $$ > %s/child.pid; exec sleep 600' &
exec %s "$@"
`, dir, realGit(t)))
	r := runner(git, testEnv(t))
	const timeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	url := "git://" + ln.Addr().String() + "/repo.git"
	done := make(chan error, 1)
	go func() {
		_, err := r.Run(ctx, t.TempDir(), "ls-remote", url)
		done <- err
	}()
	child := proctest.ReadPID(t, filepath.Join(dir, "child.pid"))
	bound := timeout + procgroup.Grace + 5*time.Second
	select {
	case err = <-done:
	case <-time.After(bound):
		t.Fatalf("Run still running %v after it started", bound)
	}

	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want an error wrapping context.DeadlineExceeded", err)
	}
	var gerr *Error
	if !errors.As(err, &gerr) {
		t.Fatalf("Run = %T, want *gitcmd.Error", err)
	}
	if gerr.ExitCode != -1 || !slices.Equal(gerr.Args, []string{"ls-remote", url}) {
		t.Errorf("Error{Args: %q, ExitCode: %d}, want the ls-remote and -1", gerr.Args, gerr.ExitCode)
	}
	proctest.Poll(t, "the wrapper's child to be killed", func() bool { return proctest.Gone(child) })
}

// A missing working directory is reported as such: the kernel's own error
// would name the git binary and send users looking for a broken install.
func TestMissingDirectoryIsNamed(t *testing.T) {
	git := realGit(t)
	present := t.TempDir()
	missing := filepath.Join(present, "deleted-root")
	start := func(r *Runner, dir string) error {
		s, err := r.Start(dir, "cat-file", "--batch")
		if err == nil {
			s.Close()
		}
		return err
	}
	run := func(r *Runner, dir string) error {
		_, err := r.Run(context.Background(), dir, "cat-file", "--batch")
		return err
	}
	for _, tc := range []struct {
		name    string
		call    func(*Runner, string) error
		git     string
		dir     string
		want    string
		notWant string
	}{
		{"Run, missing directory", run, git, missing, missing, git},
		{"Start, missing directory", start, git, missing, missing, git},
		{"Run, missing git", run, "/nonexistent/git", present, "/nonexistent/git", present},
		{"Start, missing git", start, "/nonexistent/git", present, "/nonexistent/git", present},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(runner(tc.git, testEnv(t)), tc.dir)
			var gerr *Error
			if !errors.As(err, &gerr) {
				t.Fatalf("error = %T %v, want *gitcmd.Error", err, err)
			}
			if gerr.ExitCode != -1 || gerr.Dir != tc.dir {
				t.Errorf("Error{Dir: %q, ExitCode: %d}, want %q and -1", gerr.Dir, gerr.ExitCode, tc.dir)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%v does not wrap fs.ErrNotExist", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, tc.notWant) {
				t.Errorf("Error() = %q, want it to name %q and not %q", msg, tc.want, tc.notWant)
			}
		})
	}
}

func TestRunWithInputFeedsStdin(t *testing.T) {
	r := runner(realGit(t), testEnv(t))
	ctx := context.Background()
	blobID := func(content string) string {
		sum := sha1.Sum([]byte(fmt.Sprintf("blob %d\x00%s", len(content), content)))
		return hex.EncodeToString(sum[:]) + "\n"
	}

	out, err := r.RunWithInput(ctx, t.TempDir(), strings.NewReader("hello\n"), "hash-object", "--stdin")
	if err != nil {
		t.Fatal(err)
	}
	if want := blobID("hello\n"); out != want {
		t.Errorf("hash-object of the input = %q, want %q", out, want)
	}

	// Run gives git an empty stdin rather than the test's own.
	out, err = r.Run(ctx, t.TempDir(), "hash-object", "--stdin")
	if err != nil {
		t.Fatal(err)
	}
	if want := blobID(""); out != want {
		t.Errorf("hash-object with no input = %q, want %q", out, want)
	}
}

// locationNames are the variables BuildEnv promises to drop because they
// point git at another repository or configuration.
var locationNames = []string{
	"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR",
	"GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE",
	"GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM",
	"GIT_CONFIG", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_NOSYSTEM",
	"GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT",
	"GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0", "GIT_CONFIG_KEY_17", "GIT_CONFIG_VALUE_17",
}

func TestBuildEnv(t *testing.T) {
	var located []string
	for _, name := range locationNames {
		located = append(located, name+"=/somewhere")
	}
	for _, tc := range []struct {
		name string
		base []string
		set  []string
		want []string
	}{
		{
			name: "drops location variables, keeps the rest in order",
			base: append(append([]string{"PATH=/bin", "GIT_TERMINAL_PROMPT=0"}, located...), "GIT_SSH_COMMAND=ssh", "GIT_CONFIGURED=1"),
			want: []string{"PATH=/bin", "GIT_TERMINAL_PROMPT=0", "GIT_SSH_COMMAND=ssh", "GIT_CONFIGURED=1"},
		},
		{
			name: "set replaces the same key in base",
			base: []string{"HOME=/root", "PATH=/bin", "LANG=fr_FR.UTF-8"},
			set:  []string{"HOME=/tmp/home", "LANG="},
			want: []string{"PATH=/bin", "HOME=/tmp/home", "LANG="},
		},
		{
			name: "set may choose location variables",
			base: []string{"GIT_CONFIG_GLOBAL=/home/user/.gitconfig", "GIT_CONFIG_COUNT=2"},
			set:  []string{"GIT_CONFIG_GLOBAL=/etc/git-sync/config", "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=a.b", "GIT_CONFIG_VALUE_0=c"},
			want: []string{"GIT_CONFIG_GLOBAL=/etc/git-sync/config", "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=a.b", "GIT_CONFIG_VALUE_0=c"},
		},
		{
			name: "later entries of set stay after earlier ones",
			set:  []string{"A=1", "B=2", "A=3"},
			want: []string{"A=1", "B=2", "A=3"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := slices.Clone(tc.base)
			got := BuildEnv(base, tc.set...)
			if !slices.Equal(got, tc.want) {
				t.Errorf("BuildEnv:\n got %q\nwant %q", got, tc.want)
			}
			if !slices.Equal(base, tc.base) {
				t.Errorf("BuildEnv modified base: %q", base)
			}
		})
	}
}

// The same promise, seen by a real git: an inherited GIT_DIR, global
// config and -c style variables do not reach it, and where a key is set
// twice the later value is the one git sees. A control run with the
// inherited environment as is shows that each of them would have mattered.
func TestBuildEnvAsGitSeesIt(t *testing.T) {
	ctx := context.Background()
	git := realGit(t)
	work := t.TempDir()
	elsewhere := t.TempDir()
	for _, dir := range []string{work, elsewhere} {
		if _, err := runner(git, testEnv(t)).Run(ctx, dir, "init", "--quiet"); err != nil {
			t.Fatal(err)
		}
	}
	leakedConfig := filepath.Join(t.TempDir(), "leaked")
	chosenConfig := filepath.Join(t.TempDir(), "chosen")
	if err := os.WriteFile(leakedConfig, []byte("[user]\n\tname = Leaked Global\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(chosenConfig, []byte("[user]\n\tname = Chosen\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	home := "HOME=" + t.TempDir()
	inherited := []string{
		"PATH=" + os.Getenv("PATH"),
		"GIT_DIR=" + filepath.Join(elsewhere, ".git"),
		"GIT_CONFIG_GLOBAL=" + leakedConfig,
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=user.email", "GIT_CONFIG_VALUE_0=leaked@example.com",
		"GIT_CONFIG_PARAMETERS='user.signingkey'='leaked'",
		"GIT_COMMITTER_NAME=Inherited",
		"GIT_COMMITTER_EMAIL=c@example.com",
	}
	built := BuildEnv(inherited,
		home,
		"GIT_CONFIG_GLOBAL="+chosenConfig,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_COMMITTER_NAME=First",
		"GIT_COMMITTER_NAME=Second",
	)

	// query runs git in work with env; the empty string stands for a
	// failure, which is how git config reports an unset key.
	query := func(env []string, args ...string) string {
		out, _ := runner(git, env).Run(ctx, work, args...)
		return strings.TrimSpace(out)
	}
	for _, tc := range []struct {
		args             []string
		inherited, built string
	}{
		{[]string{"rev-parse", "--absolute-git-dir"}, filepath.Join(elsewhere, ".git"), filepath.Join(work, ".git")},
		{[]string{"config", "user.name"}, "Leaked Global", "Chosen"},
		{[]string{"config", "user.email"}, "leaked@example.com", ""},
		{[]string{"config", "user.signingkey"}, "leaked", ""},
	} {
		if got := query(append(slices.Clone(inherited), home), tc.args...); got != tc.inherited {
			t.Errorf("control: git %s = %q with the inherited environment, want %q", strings.Join(tc.args, " "), got, tc.inherited)
		}
		if got := query(built, tc.args...); got != tc.built {
			t.Errorf("git %s = %q with BuildEnv's environment, want %q", strings.Join(tc.args, " "), got, tc.built)
		}
	}
	if got := query(built, "var", "GIT_COMMITTER_IDENT"); !strings.HasPrefix(got, "Second <c@example.com>") {
		t.Errorf("committer = %q, want the later GIT_COMMITTER_NAME", got)
	}
}

// TestStreamConnectsInputOutputAndEnv: Stream hands git the reader as
// stdin, writes its stdout to the writer, adds env for this process only,
// and reports a failure with git's stderr.
func TestStreamConnectsInputOutputAndEnv(t *testing.T) {
	r := runner(realGit(t), testEnv(t))
	dir := t.TempDir()
	var out bytes.Buffer
	if err := r.Stream(context.Background(), dir, nil, strings.NewReader("hello\n"), &out, "hash-object", "--stdin"); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "ce013625030ba8dba906f756967f9e9ca394464a" {
		t.Errorf("hash-object through Stream printed %q", got)
	}
	out.Reset()
	env := []string{"GIT_AUTHOR_NAME=Streamed", "GIT_AUTHOR_EMAIL=s@example.com"}
	if err := r.Stream(context.Background(), dir, env, nil, &out, "var", "GIT_AUTHOR_IDENT"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "Streamed <s@example.com>") {
		t.Errorf("env did not reach git: %q", out.String())
	}
	if slices.ContainsFunc(r.Env, func(kv string) bool { return strings.HasPrefix(kv, "GIT_AUTHOR_NAME=") }) {
		t.Errorf("Stream changed the runner's environment: %q", r.Env)
	}
	err := r.Stream(context.Background(), dir, nil, nil, &out, "cat-file", "-p", "0000000000000000000000000000000000000001")
	var gitErr *Error
	if !errors.As(err, &gitErr) || gitErr.ExitCode <= 0 || gitErr.Stderr == "" {
		t.Errorf("failed command: %#v, want an *Error with the exit code and stderr", err)
	}
}
