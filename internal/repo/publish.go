package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unsafe"

	"gitsync/internal/config"
)

// readPublished learns what the link currently points at. A target outside
// .worktrees (the layout of git-sync v3) is remembered so that it can be
// removed once the commit is republished in the current layout.
func (r *Repo) readPublished() {
	r.published = ""
	target, err := os.Readlink(r.link)
	if err != nil {
		return
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(r.link), target)
	}
	target = filepath.Clean(target)
	hash := filepath.Base(target)
	if target == r.worktreeDir(hash) && config.IsCommitHash(hash) {
		r.published = hash
		return
	}
	if filepath.Dir(target) == r.root {
		name := strings.TrimPrefix(hash, "rev-")
		if config.IsCommitHash(name) {
			r.legacyPath = target
		}
	}
}

// linkHealthy reports whether the link points at the worktree of the
// published hash (one readlink).
func (r *Repo) linkHealthy() bool {
	if r.published == "" {
		return false
	}
	target, err := os.Readlink(r.link)
	return err == nil && target == r.linkTarget(r.published)
}

// linkTarget is the relative symlink target for the worktree of hash.
func (r *Repo) linkTarget(hash string) string {
	rel, err := filepath.Rel(filepath.Dir(r.link), r.worktreeDir(hash))
	if err != nil {
		return r.worktreeDir(hash)
	}
	return rel
}

// checkLink refuses a --link path that holds something other than a
// symlink: a file or directory there is not git-sync's to replace.
func (r *Repo) checkLink() error {
	fi, err := os.Lstat(r.link)
	if err != nil || fi.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	kind := "a regular file"
	if fi.IsDir() {
		kind = "a directory"
	}
	return &RefusedError{Path: r.link, Reason: fmt.Sprintf("--link %s is %s, not a symlink; git-sync replaces only a symlink it can publish through, so move it away or choose another --link", r.link, kind)}
}

// tempLinkPrefix names temporary links beside the link; a unique suffix
// follows, and leftovers of a killed run are removed at repair.
func (r *Repo) tempLinkPrefix() string {
	return filepath.Join(filepath.Dir(r.link), "."+filepath.Base(r.link)+".tmp-")
}

func (r *Repo) removeTempLinks() {
	matches, _ := filepath.Glob(r.tempLinkPrefix() + "*")
	for _, m := range matches {
		_ = os.Remove(m)
	}
}

// publish atomically points the link at the worktree of hash: a uniquely
// named temporary symlink renamed over the link. The link's directory is
// created again if someone removed it.
func (r *Repo) publish(hash string) error {
	if err := r.checkLink(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(r.link), 0o777); err != nil {
		return fmt.Errorf("publish %s: create directory for --link: %w", hash, err)
	}
	tmp := uniqueName(r.tempLinkPrefix())
	if err := os.Symlink(r.linkTarget(hash), tmp); err != nil {
		return fmt.Errorf("publish %s: %w", hash, err)
	}
	if err := os.Rename(tmp, r.link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("publish %s: %w", hash, err)
	}
	return nil
}

// swapIn replaces the published worktree of hash with the complete tree
// built at aside, without a moment in which .worktrees/HASH is missing or
// partial: renameat2(RENAME_EXCHANGE) swaps the two directories in one step,
// then the old tree (now at aside) is removed. Filesystems without exchange
// (NFS, for one) get two renames instead, which leave the name missing for
// the instant between them.
func (r *Repo) swapIn(ctx context.Context, aside, hash string) error {
	dir := r.worktreeDir(hash)
	if err := exchange(aside, dir); err != nil {
		r.log.Info("cannot swap directories atomically here; replacing with two renames", "error", err.Error())
		if err := r.removeTree(ctx, dir); err != nil {
			return err
		}
		if err := os.Rename(aside, dir); err != nil {
			return fmt.Errorf("replace worktree %s: %w", hash, err)
		}
	} else if err := r.removeTree(ctx, aside); err != nil {
		r.log.Error("remove replaced worktree", "path", aside, "error", err.Error())
	}
	return r.moveSubmoduleWorktrees(ctx, hash, aside, dir)
}

// exchange swaps the directory entries at a and b atomically.
func exchange(a, b string) error {
	if sysRenameat2 < 0 {
		return syscall.ENOSYS
	}
	const renameExchange = 1 << 1
	pa, err := syscall.BytePtrFromString(a)
	if err != nil {
		return err
	}
	pb, err := syscall.BytePtrFromString(b)
	if err != nil {
		return err
	}
	atFDCWD := -100 // AT_FDCWD: paths relative to the working directory (ours are absolute)
	_, _, errno := syscall.Syscall6(sysRenameat2, uintptr(atFDCWD), uintptr(unsafe.Pointer(pa)),
		uintptr(atFDCWD), uintptr(unsafe.Pointer(pb)), renameExchange, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// moveSubmoduleWorktrees points the submodule repositories of the worktree
// of hash at the tree's final place. git records each submodule's working
// tree (core.worktree) relative to its repository under the worktree's
// administrative directory, so a tree built aside and swapped in still
// names the aside path until this is rewritten.
func (r *Repo) moveSubmoduleWorktrees(ctx context.Context, hash, from, to string) error {
	modules := filepath.Join(r.adminDir(hash), "modules")
	var errs []error
	_ = filepath.WalkDir(modules, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (d.Name() == "objects" || d.Name() == "refs" || d.Name() == "logs") {
			return fs.SkipDir
		}
		if d.IsDir() || d.Name() != "config" {
			return nil
		}
		gitDir := filepath.Dir(p)
		out, err := r.git.Run(ctx, gitDir, "config", "--file", p, "--get", "core.worktree")
		if err != nil {
			return nil // no working tree recorded
		}
		wt := strings.TrimSpace(out)
		if !filepath.IsAbs(wt) {
			wt = filepath.Join(gitDir, wt)
		}
		rel, err := filepath.Rel(from, wt)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return nil
		}
		moved, err := filepath.Rel(gitDir, filepath.Join(to, rel))
		if err != nil {
			return nil
		}
		if _, err := r.git.Run(ctx, gitDir, "config", "--file", p, "core.worktree", moved); err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("point submodules of %s at their new place: %w", hash, err)
	}
	return nil
}
