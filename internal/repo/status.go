package repo

import (
	"context"
	"fmt"
	"strings"
)

// Subject returns the subject line of commit hash, for the status page. It
// runs one git process and is safe to call while a sync runs: it only
// reads the object store.
func (r *Repo) Subject(ctx context.Context, hash string) (string, error) {
	out, err := r.git.Run(ctx, r.root, "log", "-1", "--no-show-signature", "--format=%s", hash, "--")
	if err != nil {
		return "", fmt.Errorf("read subject of %s: %w", hash, err)
	}
	return strings.TrimSpace(out), nil
}
