package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gitsync/internal/config"
)

// completeMarker is written into a worktree's administrative directory
// (ROOT/.git/worktrees/HASH) as the very last step of building it. A
// worktree without it was half-built by a killed run, or is not ours, and is
// rebuilt rather than trusted. Its content records whether the checkout had
// any files, for the cheap "not empty" health check.
const completeMarker = "gitsync-complete"

const markerEmpty = "empty\n"

// worktreeDir is where the worktree of hash lives.
func (r *Repo) worktreeDir(hash string) string {
	return filepath.Join(r.root, WorktreesDir, hash)
}

// adminDir is git's administrative directory for the worktree of hash.
func (r *Repo) adminDir(hash string) string {
	return filepath.Join(r.gitDir, "worktrees", hash)
}

// gitFileContent is the .git file of a worktree: a relative pointer, so
// the volume can be mounted elsewhere.
func gitFileContent(hash string) string {
	return "gitdir: ../../.git/worktrees/" + hash + "\n"
}

// worktreeHealthy checks, with file reads only, that the worktree of hash is
// complete, still names hash, and is not empty. It runs on every attempt,
// idle polls included.
func (r *Repo) worktreeHealthy(hash string) bool {
	dir, admin := r.worktreeDir(hash), r.adminDir(hash)
	marker, err := os.ReadFile(filepath.Join(admin, completeMarker))
	if err != nil {
		return false
	}
	if b, err := os.ReadFile(filepath.Join(dir, ".git")); err != nil || string(b) != gitFileContent(hash) {
		return false
	}
	if b, err := os.ReadFile(filepath.Join(admin, "HEAD")); err != nil || strings.TrimSpace(string(b)) != hash {
		return false
	}
	if string(marker) == markerEmpty {
		return true
	}
	return hasEntryBesidesGit(dir)
}

// hasEntryBesidesGit reports whether dir holds anything but ".git", reading
// at most two directory entries.
func hasEntryBesidesGit(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(2)
	for _, n := range names {
		if n != ".git" {
			return true
		}
	}
	return false
}

// buildWorktree creates the worktree of hash from scratch: git's
// administrative files, the relative .git pointer, the sparse-checkout file
// if configured, one checkout, submodules, then the completion marker.
//
// The administrative files are what `git worktree add --no-checkout` would
// write (gitrepository-layout: worktrees/<id>/gitdir, commondir and a
// detached HEAD), written here because `worktree add` spends two git
// processes on them (about 2.6 ms of CPU, some 6% of a small update).
func (r *Repo) buildWorktree(ctx context.Context, hash string) error {
	dir, admin := r.worktreeDir(hash), r.adminDir(hash)
	if err := r.removeWorktree(hash); err != nil {
		return err
	}
	for _, d := range []string{dir, admin} {
		if err := os.MkdirAll(d, r.dirMode); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	files := []struct{ path, content string }{
		{filepath.Join(admin, "commondir"), "../..\n"},
		{filepath.Join(admin, "gitdir"), filepath.Join(dir, ".git") + "\n"},
		{filepath.Join(admin, "HEAD"), hash + "\n"},
		{filepath.Join(dir, ".git"), gitFileContent(hash)},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, []byte(f.content), r.fileMode); err != nil {
			return fmt.Errorf("add worktree for %s: %w", hash, err)
		}
	}
	if r.opts.SparseCheckoutFile != "" {
		if err := r.writeSparseFile(admin); err != nil {
			return err
		}
	}
	if _, err := r.git.Run(ctx, dir, "reset", "--hard", "--quiet", hash); err != nil {
		return fmt.Errorf("check out %s: %w", hash, err)
	}
	if err := r.updateSubmodules(ctx, dir); err != nil {
		return err
	}
	marker := "complete\n"
	if !hasEntryBesidesGit(dir) {
		marker = markerEmpty
	}
	if err := os.WriteFile(filepath.Join(admin, completeMarker), []byte(marker), r.fileMode); err != nil {
		return fmt.Errorf("mark worktree %s complete: %w", hash, err)
	}
	return nil
}

// writeSparseFile copies --sparse-checkout-file verbatim into the
// worktree's own sparse-checkout file (non-cone mode).
func (r *Repo) writeSparseFile(admin string) error {
	content, err := os.ReadFile(r.opts.SparseCheckoutFile)
	if err != nil {
		return fmt.Errorf("read --sparse-checkout-file: %w", err)
	}
	info := filepath.Join(admin, "info")
	if err := os.MkdirAll(info, r.dirMode); err != nil {
		return fmt.Errorf("create %s: %w", info, err)
	}
	if err := os.WriteFile(filepath.Join(info, "sparse-checkout"), content, r.fileMode); err != nil {
		return fmt.Errorf("write sparse-checkout: %w", err)
	}
	return nil
}

// updateSubmodules checks out the submodules of the worktree in dir, only
// when the commit has any. With sparse checkout only the submodules inside
// the selection are checked out (git would otherwise populate every one).
func (r *Repo) updateSubmodules(ctx context.Context, dir string) error {
	if r.opts.Submodules == config.SubmodulesOff {
		return nil
	}
	var paths []string
	if r.opts.SparseCheckoutFile != "" {
		out, err := r.git.Run(ctx, dir, "ls-files", "-z", "--stage", "-t")
		if err != nil {
			return fmt.Errorf("list submodules: %w", err)
		}
		if paths = selectedGitlinks(out); len(paths) == 0 {
			return nil
		}
	} else if _, err := os.Lstat(filepath.Join(dir, ".gitmodules")); err != nil {
		return nil
	}
	// The URLs in .gitmodules may have changed since an earlier commit wrote
	// them into the shared repository config.
	if _, err := r.git.Run(ctx, dir, "submodule", "sync", "--quiet", "--recursive"); err != nil {
		return fmt.Errorf("sync submodule URLs: %w", err)
	}
	if _, err := r.git.Run(ctx, dir, submoduleArgs(r.opts.Submodules, r.opts.Depth, paths)...); err != nil {
		return fmt.Errorf("update submodules: %w", err)
	}
	return nil
}

// submoduleArgs builds the argv that checks out submodules.
func submoduleArgs(mode string, depth int, paths []string) []string {
	args := []string{"submodule", "update", "--init", "--force"}
	if mode == config.SubmodulesRecursive {
		args = append(args, "--recursive")
	}
	if depth > 0 {
		args = append(args, fmt.Sprintf("--depth=%d", depth))
	}
	if len(paths) > 0 {
		args = append(append(args, "--"), paths...)
	}
	return args
}

// selectedGitlinks returns the submodule paths in `git ls-files -z --stage
// -t` output that are inside the sparse selection (not tagged S).
func selectedGitlinks(lsFiles string) []string {
	var paths []string
	for _, ent := range strings.Split(lsFiles, "\x00") {
		meta, path, ok := strings.Cut(ent, "\t")
		f := strings.Fields(meta)
		if ok && len(f) == 4 && f[1] == "160000" && f[0] != "S" {
			paths = append(paths, path)
		}
	}
	return paths
}

// removeWorktree deletes the worktree of hash and its administrative
// directory, which is what `git worktree remove` would do, without a process.
func (r *Repo) removeWorktree(hash string) error {
	var errs []error
	for _, p := range []string{r.worktreeDir(hash), r.adminDir(hash)} {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove worktree %s: %w", hash, err)
	}
	return nil
}

// cleanup removes expired stale worktrees and anything else found directly
// under .worktrees, keeping current. It costs one directory listing plus a
// stat per non-current entry. It reports how many entries were removed.
func (r *Repo) cleanup(current string, now time.Time) (int, error) {
	entries, err := os.ReadDir(filepath.Join(r.root, WorktreesDir))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list worktrees: %w", err)
	}
	removed := 0
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if name == current {
			continue
		}
		if e.IsDir() && config.IsCommitHash(name) {
			info, err := e.Info()
			if err != nil {
				continue // vanished meanwhile
			}
			if now.Sub(info.ModTime()) < r.opts.StaleWorktreeTimeout {
				continue
			}
			if err := r.removeWorktree(name); err != nil {
				errs = append(errs, err)
				continue
			}
		} else if err := os.RemoveAll(filepath.Join(r.root, WorktreesDir, name)); err != nil {
			errs = append(errs, err)
			continue
		}
		r.log.Info("removed stale worktree", "name", name)
		removed++
	}
	return removed, errors.Join(errs...)
}

// pruneAdminDirs removes git's administrative directories of worktrees that
// no longer exist (what `git worktree prune` does), so git never trips over
// a worktree a killed run half-created or an earlier version left behind.
func (r *Repo) pruneAdminDirs() {
	base := filepath.Join(r.gitDir, "worktrees")
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		admin := filepath.Join(base, e.Name())
		gitdir, err := os.ReadFile(filepath.Join(admin, "gitdir"))
		if err == nil {
			if _, err := os.Stat(strings.TrimSpace(string(gitdir))); err == nil {
				continue
			}
		}
		_ = os.RemoveAll(admin)
	}
}

// touch sets the modification time of path to now: the stale clock of a
// worktree starts when it stops being current.
func touch(path string, now time.Time) {
	_ = os.Chtimes(path, now, now)
}
