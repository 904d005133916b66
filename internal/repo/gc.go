package repo

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

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

// Bounds of the object store under --git-gc=always. Rewriting the whole
// store after every update (what `git gc` does) cost more than the rest of
// an update of a 20,000-file repository (about 150 ms of 400). Since each
// fetch offers the published commit as a "have", an update adds only a
// small pack of what changed, and what it makes unreachable is small too;
// so a full repack runs only when the store has grown by a third since the
// last one, or holds too many packs for fast object lookups. The store
// then stays within about 4/3 of its size after a full gc, at a few
// percent of an update's cost.
const (
	gcGrowth   = 3  // full gc when the store grew by 1/gcGrowth of its size after the last one
	gcMaxPacks = 50 // or holds more packs than this (git's own gc.autoPackLimit)
)

// gcMaxDefer is how long a relay (Options.GCGuard) puts a collection off
// while requests are being served, retrying at every attempt, idle polls
// included. After that the collection waits for the running requests, and
// new ones wait for it: a relay that always has a clone in flight still
// collects, at the cost of one pause. A variable for tests.
var gcMaxDefer = 10 * time.Minute

// gc collects garbage per --git-gc. It runs only after a worktree was
// removed, never on an idle poll.
func (r *Repo) gc(ctx context.Context) error {
	cmds := gcCommands(r.opts.GitGC)
	if cmds == nil {
		return nil
	}
	if r.opts.GitGC == config.GCAlways {
		size, packs := storeSize(filepath.Join(r.gitDir, "objects"))
		if r.gcBase > 0 && size-r.gcBase < r.gcBase/gcGrowth && packs <= gcMaxPacks {
			return nil
		}
	}
	if g := r.opts.GCGuard; g != nil {
		if !g.TryLock() {
			if r.gcPending.IsZero() {
				r.gcPending = time.Now()
			}
			if time.Since(r.gcPending) < gcMaxDefer {
				r.log.Log(ctx, slog.Level(-1), "garbage collection put off: git requests are being served")
				return nil
			}
			if err := g.Lock(ctx); err != nil {
				return fmt.Errorf("collect garbage: wait for the served requests: %w", err)
			}
		}
		r.gcPending = time.Time{}
		defer g.Unlock()
	}
	if r.opts.GitGC == config.GCAlways {
		defer func() { r.gcBase, _ = storeSize(filepath.Join(r.gitDir, "objects")) }()
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

// storeSize returns the bytes of the object store's packs and loose objects
// and the number of packs: one listing of the pack directory and one of
// each loose-object directory present (after a full gc there are few: every
// fetch is kept as a pack, see writeManagedConfig).
func storeSize(objects string) (size int64, packs int) {
	entries, _ := os.ReadDir(objects)
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == "pack":
			files, _ := os.ReadDir(filepath.Join(objects, name))
			for _, f := range files {
				if strings.HasSuffix(f.Name(), ".pack") {
					packs++
				}
				if info, err := f.Info(); err == nil {
					size += info.Size()
				}
			}
		case len(name) == 2 && isHex(name):
			files, _ := os.ReadDir(filepath.Join(objects, name))
			for _, f := range files {
				if info, err := f.Info(); err == nil {
					size += info.Size()
				}
			}
		}
	}
	return size, packs
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
