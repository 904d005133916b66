// Package app assembles git-sync from its parts: it turns the parsed
// configuration into a logger, metrics, HTTP endpoint, credentials, the
// opened root, hooks and the sync loop, runs them, and maps the outcome to an
// exit status (docs/CONTRACT.md, section 8). It is the only place that
// decides exit codes.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gitsync/internal/auth"
	"gitsync/internal/config"
	"gitsync/internal/errorfile"
	"gitsync/internal/hook"
	"gitsync/internal/metrics"
	"gitsync/internal/repo"
	"gitsync/internal/serve"
	"gitsync/internal/server"
	"gitsync/internal/status"
	"gitsync/internal/syncloop"
	"gitsync/internal/webhook"
)

// liveGrace is how long past --sync-timeout an attempt may run before
// /livez reports the loop stuck: the attempt's git is killed at the
// timeout and reaped within a few seconds (package procgroup), so an
// attempt still running after this never ends by itself.
const liveGrace = 30 * time.Second

// refuseDelay holds back every 401 of /sync and /webhook: a client sending
// bad signatures back to back gets about five answers a second instead of
// thousands, and the syncs keep the CPU (bench: the webhook flood).
const refuseDelay = 200 * time.Millisecond

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
)

// Main runs git-sync with argv and environment and returns the exit status.
func Main(argv, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(argv) > 1 && argv[1] == auth.HelperArg {
		return auth.HelperMain(argv[2:], env, stdin, stdout, stderr)
	}
	if os.Getpid() == 1 && !isReaperChild(env) {
		return runAsInit(argv, env)
	}
	res, err := config.Parse(argv[1:], env)
	if err != nil {
		fmt.Fprintf(stderr, "git-sync: error: %v\n", err)
		var usage *config.UsageError
		if errors.As(err, &usage) {
			fmt.Fprintln(stderr, "Run 'git-sync --help' for usage.")
		}
		if res != nil {
			// Flags parsed but their values are invalid: --error-file, if
			// it was given, reports the problem too.
			_ = errorFileFor(res.Config).Write(errorfile.Report{Msg: "invalid configuration", Err: err.Error()})
		}
		return exitFailure
	}
	switch res.Action {
	case config.ActionHelp:
		config.WriteHelp(stdout)
		return exitOK
	case config.ActionMan:
		config.WriteMan(stdout)
		return exitOK
	case config.ActionVersion:
		fmt.Fprintln(stdout, version())
		return exitOK
	}
	if !hasEnv(env, "GOGC") {
		// git-sync's live heap is tiny; the default pacing lets the heap
		// (and RSS) drift up by several MiB between collections. A lower
		// target keeps the steady state near 11 MiB at no measurable CPU
		// cost (issue 6: 0.67 vs 0.65 ms per idle poll).
		debug.SetGCPercent(25)
	}
	ef := errorFileFor(res.Config)
	// Every logged error also becomes /status's last_error, exactly as it
	// reaches the --error-file.
	tracker := status.New()
	log := slog.New(errorfile.Tap(newLogger(stderr, res.Config.Verbosity, ef).Handler(), tracker.ErrorLogged))
	for _, w := range res.Warnings {
		log.Warn(w)
	}
	stopping := watchStop(log)
	defer stopping.stop()
	done := make(chan error, 1)
	go func() { done <- run(stopping.ctx, res.Config, env, log, ef, tracker) }()
	select {
	case err = <-done:
	case sig := <-stopping.forced:
		// run is left where it is: the process ends when Main returns.
		log.Warn("second stop signal: exiting without finishing the cleanup", "signal", sig.String())
		return forcedExitStatus(sig)
	}
	if err != nil {
		var logged loggedError
		if !errors.As(err, &logged) {
			log.Error("git-sync failed", "error", err)
		}
		return exitFailure
	}
	return exitOK
}

// loggedError marks an error that was logged where it happened (the sync
// loop logs each failure, and "too many failures" last): Main maps it to the
// exit status without logging it again, so the last record, and the error
// file, keep the precise message.
type loggedError struct{ error }

func (e loggedError) Unwrap() error { return e.error }

// errorFileFor returns the --error-file of cfg, nil if unset. Its path is
// resolved against --root lexically; run moves it under the canonical root
// once that exists, so that errors before that point are reported too.
func errorFileFor(cfg config.Config) *errorfile.File {
	if cfg.ErrorFile == "" {
		return nil
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		root = cfg.Root
	}
	mode := os.FileMode(0o644)
	if cfg.GroupWrite {
		mode = 0o664
	}
	return errorfile.New(underRoot(root, cfg.ErrorFile), mode)
}

func hasEnv(env []string, name string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, name+"=") {
			return true
		}
	}
	return false
}

// run does the work of one process lifetime.
func run(ctx context.Context, cfg config.Config, env []string, log *slog.Logger, ef *errorfile.File, tracker *status.Tracker) error {
	env = childEnv(env)
	if cfg.AddUser {
		if err := addUser("/etc/passwd"); err != nil {
			return err
		}
	}
	if cfg.GroupWrite {
		syscall.Umask(0o002)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}

	m := metrics.New()
	m.SetSyncState(tracker.Gauges)
	var stops []func() // stops the HTTP servers, last started first
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	root, err := repo.CanonicalRoot(cfg.Root)
	if err != nil {
		// A root that cannot be created or resolved yet (a volume not
		// mounted, a read-only parent) fails attempts, which follow
		// --max-failures, instead of the start.
		log.Log(context.Background(), slog.Level(-1), "--root is not usable yet", "error", err.Error())
		if root, err = filepath.Abs(cfg.Root); err != nil {
			return fmt.Errorf("resolve --root %q: %w", cfg.Root, err)
		}
	}
	if cfg.ErrorFile != "" {
		ef.SetPath(underRoot(root, cfg.ErrorFile))
	}

	// /status describes the root from the start; the commit subject needs
	// the opened repository.
	var openRepo atomic.Pointer[repo.Repo]
	tracker.Configure(status.Options{
		Repo: cfg.Repo, Ref: cfg.Ref,
		Link: underRoot(root, cfg.Link), WorktreesDir: filepath.Join(root, repo.WorktreesDir),
		Version: version(), SyncTimeout: cfg.SyncTimeout, LiveGrace: liveGrace,
		MaxStaleness: cfg.MaxStaleness,
		Subject: func(ctx context.Context, hash string) (string, error) {
			if r := openRepo.Load(); r != nil {
				return r.Subject(ctx, hash)
			}
			return "", nil
		},
	})

	// The endpoints answer before the loop exists (503 until the first
	// sync), so they reach the loop through an atomic pointer, set once the
	// loop is built. A trigger before then is dropped: the first sync is
	// about to run anyway.
	var readyLoop atomic.Pointer[syncloop.Loop]
	trigger := func(source string) func() {
		return func() {
			if l := readyLoop.Load(); l != nil {
				l.Trigger(source)
			}
		}
	}
	var syncH, hookH http.Handler
	if cfg.SyncTokenFile != "" {
		tok := webhook.NewSecretFile(cfg.SyncTokenFile)
		if err := tok.Load(); err != nil {
			return fmt.Errorf("--sync-token-file: %w", err)
		}
		syncH = &webhook.SyncHandler{Token: tok, Trigger: trigger(syncloop.SourceHTTP), FailDelay: refuseDelay, Log: log}
	}
	if cfg.WebhookSecretFile != "" {
		sec := webhook.NewSecretFile(cfg.WebhookSecretFile)
		if err := sec.Load(); err != nil {
			return fmt.Errorf("--webhook-secret-file: %w", err)
		}
		hookH = &webhook.Handler{Secret: sec, Ref: cfg.Ref, Trigger: trigger(syncloop.SourceWebhook), Count: m.WebhookRequest,
			FailDelay: refuseDelay, Log: log}
	}
	if syncH == nil {
		syncH = http.NotFoundHandler()
	}
	if hookH == nil {
		hookH = http.NotFoundHandler()
	}
	listenHTTP := func(opts server.Options, flag string) error {
		srv, err := server.Listen(opts)
		if err != nil {
			return fmt.Errorf("listen on %s %s: %w", flag, opts.Bind, err)
		}
		go func() {
			if err := srv.Serve(); err != nil {
				log.Error("HTTP server stopped", "error", err)
			}
		}()
		stops = append(stops, func() {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		})
		return nil
	}
	if cfg.HTTPBind != "" {
		opts := server.Options{
			Bind: cfg.HTTPBind, Pprof: cfg.HTTPPprof, Log: log,
			Ready: func() bool {
				l := readyLoop.Load()
				return l != nil && l.Ready()
			},
			Fresh:  func() bool { return tracker.Fresh(time.Now()) },
			Status: tracker, Live: http.HandlerFunc(tracker.ServeLive),
		}
		// With --webhook-bind the triggers live there alone; here their
		// paths answer 404 rather than fall through to readiness.
		opts.Sync, opts.Webhook = syncH, hookH
		if cfg.WebhookBind != "" {
			opts.Sync, opts.Webhook = http.NotFoundHandler(), http.NotFoundHandler()
		}
		if cfg.HTTPMetrics {
			opts.Metrics = m
		}
		if err := listenHTTP(opts, "--http-bind"); err != nil {
			return err
		}
	}
	if cfg.WebhookBind != "" {
		if err := listenHTTP(server.Options{Bind: cfg.WebhookBind, Log: log, TriggersOnly: true, Sync: syncH, Webhook: hookH}, "--webhook-bind"); err != nil {
			return err
		}
	}

	creds, err := auth.New(authConfig(cfg), auth.Options{Log: log, Metrics: m, Self: self, Env: env})
	if err != nil {
		return err
	}
	defer creds.Close()

	// The relay's requests and the repository's garbage collection take
	// turns (see serve.Guard).
	var gcGuard *serve.Guard
	if cfg.ServeBind != "" {
		gcGuard = &serve.Guard{}
	}
	ropts := repo.Options{
		Root: root, Link: cfg.Link,
		Repo: cfg.Repo, Ref: cfg.Ref, Depth: cfg.Depth, Filter: cfg.Filter,
		Submodules: cfg.Submodules, SparseCheckoutFile: cfg.SparseCheckoutFile,
		GitGC: cfg.GitGC, StaleWorktreeTimeout: cfg.StaleWorktreeTimeout,
		KeepWorktrees: cfg.KeepWorktrees, OnKept: m.SetWorktreesKept,
		GroupWrite: cfg.GroupWrite, Git: cfg.Git,
		BaseEnv:     append(append([]string{}, env...), creds.Env()...),
		ExtraConfig: creds.GitConfig(),
		UserConfig:  cfg.GitConfig,
		SSH:         creds,
		Log:         log,
		Serve:       gcGuard != nil,
	}
	if gcGuard != nil {
		ropts.GCGuard = gcGuard // not a nil *Guard in a non-nil interface
	}
	r, err := repo.Open(ctx, ropts)
	if err != nil {
		return err
	}
	defer r.Close()
	openRepo.Store(r)
	if gcGuard != nil {
		stop, err := startRelay(cfg, r, gcGuard, m, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	// Hook runners stop with the run; waiting for them guarantees that a
	// hook killed at shutdown has been reaped before git-sync exits.
	hookCtx, stopHooks := context.WithCancel(ctx)
	var hooksDone sync.WaitGroup
	defer func() {
		stopHooks()
		hooksDone.Wait()
	}()
	startHook := func(h hook.Hook, backoff time.Duration) *hook.Runner {
		runner := hook.NewRunner(h, backoff, log, m.HookRun)
		hooksDone.Add(1)
		go func() {
			defer hooksDone.Done()
			runner.Run(hookCtx)
		}()
		return runner
	}
	var pre syncloop.Hook
	if cfg.PrePublishHook.Command != "" {
		pre = startHook(hook.NewExec("pre-publish-exechook", cfg.PrePublishHook, r.WorktreeDir, r.Env(), log), cfg.PrePublishHook.Backoff)
	}
	var post []syncloop.Hook
	if cfg.ExecHook.Command != "" {
		post = append(post, startHook(hook.NewExec("exechook", cfg.ExecHook, r.WorktreeDir, r.Env(), log), cfg.ExecHook.Backoff))
	}
	if cfg.Webhook.URL != "" {
		post = append(post, startHook(hook.NewWebhook(cfg.Webhook, log), cfg.Webhook.Backoff))
	}

	checks, closeChecks, err := publishChecks(ctx, cfg, root, r, m, log)
	if err != nil {
		return err
	}
	defer closeChecks()
	loop := syncloop.New(syncloop.Options{
		Checks: checks,
		Period: cfg.Period, InitPeriod: cfg.InitPeriod, SyncTimeout: cfg.SyncTimeout,
		MaxFailures: cfg.MaxFailures, InitMaxFailures: cfg.InitMaxFailures,
		// --error-file is written by the logger (package errorfile) and
		// removed by the loop after a success.
		TouchFile: underRoot(root, cfg.TouchFile), ErrorFile: ef,
		FileMode: r.FileMode(), Log: log,
		PeriodJitter: cfg.PeriodJitter, FailureBackoffMax: cfg.FailureBackoffMax,
		Status: tracker,
	}, r, creds, m, pre, post)
	readyLoop.Store(loop)

	if cfg.OneTime {
		if err := loop.RunOnce(ctx); err != nil {
			return loggedError{err}
		}
		return nil
	}
	if cfg.SyncOnSignal != 0 {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, cfg.SyncOnSignal)
		defer signal.Stop(sigs)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-sigs:
					loop.Trigger(syncloop.SourceSignal)
				}
			}
		}()
	}
	err = loop.Run(ctx)
	if ctx.Err() != nil {
		log.Info("shutting down on signal")
	}
	if err != nil {
		return loggedError{err}
	}
	return nil
}

// underRoot resolves a --touch-file or --error-file path: relative paths
// are under the root.
func underRoot(root, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}
