package app

import (
	"fmt"
	"log/slog"

	"gitsync/internal/config"
	"gitsync/internal/gitcmd"
	"gitsync/internal/metrics"
	"gitsync/internal/repo"
	"gitsync/internal/serve"
	"gitsync/internal/webhook"
)

// startRelay serves the opened repository on --serve-bind (see package
// serve). guard is the one the repository's garbage collection holds. The
// returned stop ends the serving and reaps every upload-pack still running.
func startRelay(cfg config.Config, r *repo.Repo, guard *serve.Guard, m *metrics.Metrics, log *slog.Logger) (stop func(), err error) {
	opts := serve.Options{
		Bind:        cfg.ServeBind,
		Git:         &gitcmd.Runner{Git: cfg.Git, Env: r.Env(), Log: log},
		GitDir:      r.GitDir(),
		Namespace:   repo.ServeNamespace,
		MaxRequests: cfg.ServeMaxRequests,
		Guard:       guard,
		Metrics:     m,
		Log:         log,
	}
	if cfg.ServeTokenFile != "" {
		tok := webhook.NewSecretFile(cfg.ServeTokenFile)
		if err := tok.Load(); err != nil {
			return nil, fmt.Errorf("--serve-token-file: %w", err)
		}
		opts.Token = tok
	}
	srv, err := serve.Listen(opts)
	if err != nil {
		return nil, fmt.Errorf("listen on --serve-bind %s: %w", cfg.ServeBind, err)
	}
	m.EnableServe()
	log.Info("serving the repository", "address", srv.Addr())
	go func() {
		if err := srv.Serve(); err != nil {
			log.Error("git server stopped", "error", err)
		}
	}()
	return srv.Shutdown, nil
}
