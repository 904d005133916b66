package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Reserved names directly under the root.
const (
	LockFileName = ".git-sync.lock"
	StateDirName = ".git-sync"
	WorktreesDir = ".worktrees"
)

// CanonicalRoot creates root (and its parents) if needed and returns its
// absolute path with every symlink and ".." resolved, so that every later
// path comparison (link targets, safe.directory) is exact.
func CanonicalRoot(root string) (string, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("resolve --root %q: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o777); err != nil {
		return "", fmt.Errorf("create --root %q: %w", root, err)
	}
	canon, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("resolve --root %q: %w", root, err)
	}
	return canon, nil
}

// Lock is the exclusive per-root lock that keeps a second git-sync off a
// root in use. The kernel drops it when the holder dies.
type Lock struct{ f *os.File }

// AcquireLock takes the lock of root without waiting.
func AcquireLock(root string) (*Lock, error) {
	path := filepath.Join(root, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o666)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another git-sync process is already using --root %s (lock %s is held)", root, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// healthyRepo reports whether root holds a git repository that git-sync can
// reuse: .git is a directory with the files every repository has. It is a
// cheap structural check; git itself reports deeper damage on first use.
func healthyRepo(root string) bool {
	gitDir := filepath.Join(root, ".git")
	for _, name := range []string{"HEAD", "config", "objects", "refs"} {
		if _, err := os.Lstat(filepath.Join(gitDir, name)); err != nil {
			return false
		}
	}
	fi, err := os.Lstat(gitDir)
	return err == nil && fi.IsDir()
}

// emptyDir removes everything in dir except the names in keep. The directory
// itself stays: it is often a mounted volume.
func emptyDir(dir string, keep ...string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	var errs []error
outer:
	for _, e := range entries {
		for _, k := range keep {
			if e.Name() == k {
				continue outer
			}
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("empty --root %s: %w", dir, errors.Join(errs...))
	}
	return nil
}

// removeStaleLocks deletes lock files a killed git left behind. Only called
// while holding the root lock, so no live git of ours can own them.
func removeStaleLocks(gitDir string) {
	patterns := []string{
		"*.lock", "refs/heads/*.lock", "objects/info/*.lock",
		"worktrees/*/*.lock",
	}
	for _, p := range patterns {
		matches, _ := filepath.Glob(filepath.Join(gitDir, p))
		for _, m := range matches {
			_ = os.Remove(m)
		}
	}
}

// repairHEAD makes the root repository's own HEAD a symbolic ref. The root
// has no checkout; a HEAD that names a missing ref is normal (unborn), but a
// detached HEAD at a missing object or garbage breaks git commands.
func repairHEAD(gitDir string) error {
	path := filepath.Join(gitDir, "HEAD")
	b, err := os.ReadFile(path)
	if err == nil && strings.HasPrefix(string(b), "ref: refs/") {
		return nil
	}
	if err := os.WriteFile(path, []byte("ref: refs/heads/master\n"), 0o666); err != nil {
		return fmt.Errorf("repair %s: %w", path, err)
	}
	return nil
}
