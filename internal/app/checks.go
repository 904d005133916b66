package app

import (
	"context"
	"log/slog"

	"gitsync/internal/config"
	"gitsync/internal/gate"
	"gitsync/internal/metrics"
	"gitsync/internal/repo"
	"gitsync/internal/syncloop"
)

// publishChecks builds what decides whether a new commit is published, in
// the order it runs: the publish gate runs the repository's own code, so
// only a commit whose signature was verified reaches it.
func publishChecks(ctx context.Context, cfg config.Config, r *repo.Repo, m *metrics.Metrics, log *slog.Logger) ([]syncloop.Check, error) {
	var checks []syncloop.Check
	if cfg.PublishGate.Command != "" {
		checks = append(checks, gate.New(gate.Options{
			Command: cfg.PublishGate.Command, Timeout: cfg.PublishGate.Timeout,
			Dir: r.WorktreeDir, Env: r.Env(), Log: log,
			OnReject: m.GateRejection,
		}))
	}
	return checks, nil
}
