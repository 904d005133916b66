package repo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gitsync/internal/config"
)

// gcCommands maps --git-gc to the git commands that collect garbage.
//
// For "always", a full `git gc` would also pack refs, expire reflogs, prune
// worktrees, run rerere gc and write a commit-graph: a root that git-sync
// owns has none of those to do, and the extra processes doubled the cost of
// an update's gc on small repositories (17 ms vs 8.5 ms measured). Repacking
// everything reachable and pruning the rest reclaims exactly the same
// objects, and prune also trims .git/shallow.
func gcCommands(mode string) [][]string {
	switch mode {
	case config.GCAuto:
		return [][]string{{"gc", "--auto", "--quiet"}}
	case config.GCAlways:
		return [][]string{{"repack", "-a", "-d", "-q"}, {"prune", "--expire=now"}}
	case config.GCAggressive:
		return [][]string{{"gc", "--aggressive", "--prune=now", "--quiet"}}
	}
	return nil
}

// gc collects garbage per --git-gc. It runs only after a worktree was
// removed, never on an idle poll.
func (r *Repo) gc(ctx context.Context) error {
	cmds := gcCommands(r.opts.GitGC)
	if cmds == nil {
		return nil
	}
	if r.opts.Filter != "" && r.opts.GitGC != config.GCAuto {
		return r.compactPromisor(ctx)
	}
	for _, args := range cmds {
		if _, err := r.git.Run(ctx, r.root, args...); err != nil {
			return fmt.Errorf("collect garbage: %w", err)
		}
	}
	return nil
}

// compactPromisor is gc for a partial clone. git's repack keeps every
// object of a promisor pack, reachable or not, so a filtered root would grow
// with every update. Instead, pack exactly the objects reachable from the
// worktrees (missing promisor objects stay missing), mark the pack as a
// promisor pack, and delete every other pack and unreachable loose object.
func (r *Repo) compactPromisor(ctx context.Context) error {
	entries, err := os.ReadDir(filepath.Join(r.root, WorktreesDir))
	if err != nil {
		return fmt.Errorf("collect garbage: %w", err)
	}
	args := []string{"rev-list", "--objects", "--no-object-names", "--missing=allow-promisor"}
	heads := 0
	for _, e := range entries {
		if config.IsCommitHash(e.Name()) && r.worktreeHealthy(e.Name()) {
			args = append(args, e.Name())
			heads++
		}
	}
	if heads == 0 {
		return nil
	}
	objects, err := r.git.Run(ctx, r.root, args...)
	if err != nil {
		return fmt.Errorf("collect garbage: list reachable objects: %w", err)
	}
	packDir := filepath.Join(r.gitDir, "objects", "pack")
	out, err := r.git.RunWithInput(ctx, r.root, strings.NewReader(objects), "pack-objects", "-q", filepath.Join(packDir, "pack"))
	if err != nil {
		return fmt.Errorf("collect garbage: pack reachable objects: %w", err)
	}
	keep := "pack-" + strings.TrimSpace(out)
	if err := os.WriteFile(filepath.Join(packDir, keep+".promisor"), nil, r.fileMode); err != nil {
		return fmt.Errorf("collect garbage: %w", err)
	}
	packs, _ := os.ReadDir(packDir)
	for _, p := range packs {
		name := p.Name()
		if strings.HasPrefix(name, "pack-") && !strings.HasPrefix(name, keep+".") {
			_ = os.Remove(filepath.Join(packDir, name))
		}
	}
	if _, err := r.git.Run(ctx, r.root, "prune", "--expire=now"); err != nil {
		return fmt.Errorf("collect garbage: %w", err)
	}
	return nil
}
