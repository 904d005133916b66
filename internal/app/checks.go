package app

import (
	"context"
	"log/slog"

	"gitsync/internal/config"
	"gitsync/internal/gate"
	"gitsync/internal/metrics"
	"gitsync/internal/repo"
	"gitsync/internal/syncloop"
	"gitsync/internal/verify"
)

// publishChecks builds what decides whether a new commit is published, in
// the order it runs: the publish gate runs the repository's own code, so
// only a commit whose signature was verified reaches it.
//
// The returned close function removes what the checks keep on disk (the
// private OpenPGP keyring).
func publishChecks(ctx context.Context, cfg config.Config, root string, r *repo.Repo, m *metrics.Metrics, log *slog.Logger) ([]syncloop.Check, func(), error) {
	var checks []syncloop.Check
	closeAll := func() {}
	if cfg.VerifySignatures != "" {
		v, err := verify.New(ctx, verify.Options{
			Mode: cfg.VerifySignatures, AllowedSignersFile: cfg.AllowedSignersFile, GPGKeyringFile: cfg.GPGKeyringFile,
			Git: cfg.Git, Env: r.Env(), Dir: root, Log: log,
			OnFail: m.SignatureFailure,
		})
		if err != nil {
			return nil, nil, err
		}
		checks = append(checks, v)
		closeAll = v.Close
	}
	if cfg.PublishGate.Command != "" {
		checks = append(checks, gate.New(gate.Options{
			Command: cfg.PublishGate.Command, Timeout: cfg.PublishGate.Timeout,
			Dir: r.WorktreeDir, Env: r.Env(), Log: log,
			OnReject: m.GateRejection,
		}))
	}
	return checks, closeAll, nil
}
