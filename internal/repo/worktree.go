package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gitsync/internal/config"
)

// completeMarker is written into a worktree's administrative directory
// (ROOT/.git/worktrees/HASH) as the very last step of building or adopting
// it. A worktree without it was half-built by a killed run, or is not
// known to be whole, and is checked before it is trusted. Its content records
// whether the checkout had any files, for the cheap "not empty" health check.
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
// the volume can be mounted elsewhere. git-sync v4 writes the same bytes.
func gitFileContent(hash string) string {
	return "gitdir: ../../.git/worktrees/" + hash + "\n"
}

// worktreeHealthy checks, with file reads only, that the worktree of hash is
// complete, still names hash, and is not empty. It runs on every attempt,
// idle polls included.
func (r *Repo) worktreeHealthy(hash string) bool {
	if hash == "" {
		return false
	}
	dir, admin := r.worktreeDir(hash), r.adminDir(hash)
	marker, err := os.ReadFile(filepath.Join(admin, completeMarker))
	if err != nil {
		return false
	}
	if !r.pointsHome(dir, hash) {
		return false
	}
	if string(marker) == markerEmpty {
		return true
	}
	return hasEntryBesidesGit(dir)
}

// pointsHome reports whether the tree in dir is the worktree of hash as git
// sees it: its .git file names the administrative directory of hash, whose
// HEAD names hash. Someone who committed or checked out there changed HEAD.
func (r *Repo) pointsHome(dir, hash string) bool {
	if b, err := os.ReadFile(filepath.Join(dir, ".git")); err != nil || string(b) != gitFileContent(hash) {
		return false
	}
	b, err := os.ReadFile(filepath.Join(r.adminDir(hash), "HEAD"))
	return err == nil && strings.TrimSpace(string(b)) == hash
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

// adopt takes over the worktree of hash when git-sync did not build it in
// this root's current location: a root written by git-sync v4 (same layout,
// no completion marker), a volume mounted at another path, or a tree whose
// administrative directory was lost with .git. It is trusted only after
// one check: the .git file points home, git finished writing the index (a
// checkout killed half way leaves index.lock and no index), and every file
// the index lists is in the tree with its content (`git diff-files`, after
// refreshing the index's file metadata, which a move or a lost index make
// stale). When the administrative directory is gone, it is written again
// and the index rebuilt from the commit first. The tree itself is never
// modified, so a published tree stays readable throughout, and a tree that
// fails the check is left for Prepare to replace. It reports whether hash
// now has a healthy worktree.
func (r *Repo) adopt(ctx context.Context, hash string) bool {
	dir, admin := r.worktreeDir(hash), r.adminDir(hash)
	if b, err := os.ReadFile(filepath.Join(dir, ".git")); err != nil || string(b) != gitFileContent(hash) {
		return false
	}
	if !hasEntryBesidesGit(dir) {
		return false
	}
	if _, err := os.Lstat(admin); errors.Is(err, os.ErrNotExist) {
		if err := r.writeAdminFiles(dir, admin, hash); err != nil {
			return false
		}
		if _, err := r.git.Run(ctx, dir, "read-tree", hash); err != nil {
			r.log.Info("cannot adopt worktree: rebuilding its index failed", "hash", hash, "error", err.Error())
			return false
		}
	} else {
		if !r.pointsHome(dir, hash) {
			return false
		}
		if _, err := os.Stat(filepath.Join(admin, "index")); err != nil {
			return false
		}
		if _, err := os.Lstat(filepath.Join(admin, "index.lock")); err == nil {
			return false
		}
		// The absolute back-pointer is stale after a move; reflogs of an
		// earlier tool would pin old commits against gc.
		_ = os.WriteFile(filepath.Join(admin, "gitdir"), []byte(filepath.Join(dir, ".git")+"\n"), r.fileMode)
		_ = os.RemoveAll(filepath.Join(admin, "logs"))
		_ = os.Remove(filepath.Join(admin, "ORIG_HEAD"))
	}
	if _, err := r.git.Run(ctx, dir, "update-index", "-q", "--refresh"); err != nil {
		return false
	}
	if _, err := r.git.Run(ctx, dir, "diff-files", "--quiet", "--ignore-submodules"); err != nil {
		r.log.Info("existing worktree differs from its commit; not adopting it", "hash", hash)
		return false
	}
	if err := r.markComplete(dir, admin); err != nil {
		return false
	}
	r.log.Info("adopted existing worktree", "hash", hash)
	return true
}

// writeAdminFiles writes git's administrative files for a worktree at dir
// (what `git worktree add --no-checkout` would write: gitrepository-layout's
// worktrees/<id>/gitdir, commondir and a detached HEAD), written here
// because `worktree add` spends two git processes on them.
func (r *Repo) writeAdminFiles(dir, admin, hash string) error {
	if err := os.MkdirAll(admin, r.dirMode); err != nil {
		return fmt.Errorf("create %s: %w", admin, err)
	}
	files := []struct{ path, content string }{
		{filepath.Join(admin, "commondir"), "../..\n"},
		{filepath.Join(admin, "gitdir"), filepath.Join(r.worktreeDir(hash), ".git") + "\n"},
		{filepath.Join(admin, "HEAD"), hash + "\n"},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, []byte(f.content), r.fileMode); err != nil {
			return fmt.Errorf("add worktree for %s: %w", hash, err)
		}
	}
	return nil
}

// markComplete records that the tree in dir is whole.
func (r *Repo) markComplete(dir, admin string) error {
	marker := "complete\n"
	if !hasEntryBesidesGit(dir) {
		marker = markerEmpty
	}
	if err := os.WriteFile(filepath.Join(admin, completeMarker), []byte(marker), r.fileMode); err != nil {
		return fmt.Errorf("mark worktree %s complete: %w", filepath.Base(admin), err)
	}
	return nil
}

// buildWorktree checks out hash into dir from scratch: git's administrative
// files, the relative .git pointer, the sparse-checkout file if configured,
// one checkout, submodules, then the completion marker. dir is the
// worktree's own place, or a place beside it when the worktree of hash is
// published and must be replaced without being touched (see Prepare); the
// .git pointer is relative and the same from both, and the administrative
// directory is the one of hash either way.
//
// A failed build removes what it made, so no half-built tree is left for a
// later attempt or reader to find.
func (r *Repo) buildWorktree(ctx context.Context, dir, hash string) (err error) {
	admin := r.adminDir(hash)
	if dir == r.worktreeDir(hash) {
		// Not published (Prepare builds aside otherwise): start from
		// nothing, administrative files and submodule repositories too.
		if err := r.removeWorktree(ctx, hash); err != nil {
			return err
		}
	} else if err := r.removeTree(ctx, dir); err != nil {
		return err
	}
	// The marker goes first: from here until the end, the administrative
	// directory describes a tree being built.
	_ = os.Remove(filepath.Join(admin, completeMarker))
	defer func() {
		if err != nil {
			if rmErr := r.removeTree(ctx, dir); rmErr != nil {
				r.log.Error("remove half-built worktree", "path", dir, "error", rmErr.Error())
			}
		}
	}()
	if err := os.MkdirAll(dir, r.dirMode); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := r.writeAdminFiles(dir, admin, hash); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ".git"), []byte(gitFileContent(hash)), r.fileMode); err != nil {
		return fmt.Errorf("add worktree for %s: %w", hash, err)
	}
	if r.opts.SparseCheckoutFile != "" {
		if err := r.writeSparseFile(admin); err != nil {
			return err
		}
	} else {
		_ = os.Remove(filepath.Join(admin, "info", "sparse-checkout"))
	}
	if _, err := r.git.Run(ctx, dir, "reset", "--hard", "--quiet", hash); err != nil {
		return fmt.Errorf("check out %s: %w", hash, err)
	}
	if err := r.updateSubmodules(ctx, dir); err != nil {
		return err
	}
	return r.markComplete(dir, admin)
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

// trashPrefix names directories on their way out under .worktrees. Not
// being named like a hash, a leftover of a killed run is swept by the next
// cleanup.
const trashPrefix = ".trash-"

// asidePrefix names a replacement tree built beside a published one.
const asidePrefix = ".aside-"

// uniqueName returns prefix followed by a random suffix.
func uniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// removeTree deletes the directory tree at path crash-safely: it is first
// renamed to a trash name, in one atomic step, and only then deleted. A kill
// in the middle leaves a trash directory, never a partial tree at a
// worktree's name that could pass for whole. When ctx ends during the
// deletion (git-sync is stopping) the rest of the trash is left for the
// next cleanup: path is already gone, and a tree of tens of thousands of
// files must not hold up a shutdown.
func (r *Repo) removeTree(ctx context.Context, path string) error {
	trash := filepath.Join(r.root, WorktreesDir, uniqueName(trashPrefix))
	if err := os.Rename(path, trash); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove %s: %w", path, err)
	}
	if err := removeAll(ctx, trash); err != nil && ctx.Err() == nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// removeAll is os.RemoveAll that gives up between two entries once ctx has
// ended, returning ctx's error. Callers only use it on trees nobody trusts
// any more (trash), so stopping half-way is safe.
func removeAll(ctx context.Context, path string) error {
	entries, err := os.ReadDir(path)
	if err != nil {
		// Not a directory, gone, or unreadable: os.RemoveAll knows each.
		return os.RemoveAll(path)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := filepath.Join(path, e.Name())
		if e.IsDir() {
			err = removeAll(ctx, p)
		} else {
			err = os.Remove(p)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// removeWorktree deletes the worktree of hash and then its administrative
// directory, which is what `git worktree remove` would do, without a
// process. The tree goes first (atomically, see removeTree), so a kill in
// between leaves an administrative directory without a tree, which pruning
// removes, and never a tree that is trusted but partial.
func (r *Repo) removeWorktree(ctx context.Context, hash string) error {
	if err := r.removeTree(ctx, r.worktreeDir(hash)); err != nil {
		return fmt.Errorf("remove worktree %s: %w", hash, err)
	}
	if err := os.RemoveAll(r.adminDir(hash)); err != nil {
		return fmt.Errorf("remove worktree %s: %w", hash, err)
	}
	return nil
}

// cleanup removes expired stale worktrees and anything else found directly
// under .worktrees, keeping current. A tree is expired when it is past
// --stale-worktree-timeout and not among the --keep-worktrees most recently
// published (a tree's modification time is when it stopped being current).
// It costs one directory listing plus a stat per non-current entry. It
// reports how many entries were removed. When ctx ends it stops between
// two entries: what is left goes at the next cleanup.
func (r *Repo) cleanup(ctx context.Context, current string, now time.Time) (int, error) {
	entries, err := os.ReadDir(filepath.Join(r.root, WorktreesDir))
	if errors.Is(err, os.ErrNotExist) {
		r.reportKept(0)
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list worktrees: %w", err)
	}
	removed := 0
	var errs []error
	type tree struct {
		name    string
		retired time.Time
	}
	var trees []tree
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
			trees = append(trees, tree{name, info.ModTime()})
			continue
		}
		if err := removeAll(ctx, filepath.Join(r.root, WorktreesDir, name)); err != nil {
			if ctx.Err() != nil {
				return removed, nil
			}
			errs = append(errs, err)
			continue
		}
		r.log.Info("removed stale worktree", "name", name)
		removed++
	}
	// Newest first: the first --keep-worktrees are kept whatever their age.
	slices.SortFunc(trees, func(a, b tree) int { return b.retired.Compare(a.retired) })
	var kept []string
	for i, t := range trees {
		if ctx.Err() != nil {
			return removed, nil
		}
		if i < r.opts.KeepWorktrees || now.Sub(t.retired) < r.opts.StaleWorktreeTimeout {
			kept = append(kept, t.name)
			continue
		}
		if err := r.removeWorktree(ctx, t.name); err != nil {
			errs = append(errs, err)
			kept = append(kept, t.name)
			continue
		}
		r.log.Info("removed stale worktree", "name", t.name)
		removed++
	}
	r.onDisk = kept
	r.reportKept(len(kept))
	return removed, errors.Join(errs...)
}

// reportKept tells Options.OnKept how many trees besides the current one
// are on disk.
func (r *Repo) reportKept(n int) {
	if r.opts.OnKept != nil {
		r.opts.OnKept(n)
	}
}

// pruneAdminDirs removes git's administrative directories of worktrees that
// no longer exist (what `git worktree prune` does), so git never trips over
// a worktree a killed run half-created or an earlier version left behind.
//
// A worktree exists when .worktrees/<id> does; its absolute back-pointer
// (the gitdir file) is rewritten when the volume was mounted elsewhere,
// never taken as a reason to prune. Worktrees of git-sync v3 sit directly
// under the root and are recognised by their back-pointer.
func (r *Repo) pruneAdminDirs() {
	base := filepath.Join(r.gitDir, "worktrees")
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		admin := filepath.Join(base, e.Name())
		want := filepath.Join(r.worktreeDir(e.Name()), ".git")
		if _, err := os.Stat(filepath.Dir(want)); err == nil {
			if b, err := os.ReadFile(filepath.Join(admin, "gitdir")); err != nil || strings.TrimSpace(string(b)) != want {
				_ = os.WriteFile(filepath.Join(admin, "gitdir"), []byte(want+"\n"), r.fileMode)
			}
			continue
		}
		if b, err := os.ReadFile(filepath.Join(admin, "gitdir")); err == nil {
			if _, err := os.Stat(strings.TrimSpace(string(b))); err == nil {
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
