package repo

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
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

// OwnRef is the branch that names the published commit. Keeping it lets
// every fetch offer the published commit as a "have", so the remote sends
// only what changed instead of the whole tree; git-sync v4 keeps the same
// branch, so a root it wrote needs no conversion.
const OwnRef = "refs/heads/git-sync"

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

// ErrLocked means another live process holds the root's lock.
var ErrLocked = errors.New("another git-sync process is already using this --root")

// Lock is the exclusive per-root lock that keeps a second git-sync off a
// root in use. The kernel drops it when the holder dies.
type Lock struct {
	path string
	f    *os.File
}

// AcquireLock takes the lock of root without waiting. A lock held by
// another process is reported as ErrLocked.
func AcquireLock(root string) (*Lock, error) {
	path := filepath.Join(root, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o666)
	if err != nil {
		return nil, fmt.Errorf("take the lock of --root: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (lock %s is held)", ErrLocked, root, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{path: path, f: f}, nil
}

// Held reports whether the lock file on disk is still the one this lock
// holds. It is not when the root was deleted or emptied by someone else: a
// second git-sync could then lock the new file, so the lock must be taken
// again.
func (l *Lock) Held() bool {
	if l == nil || l.f == nil {
		return false
	}
	held, err1 := l.f.Stat()
	onDisk, err2 := os.Stat(l.path)
	return err1 == nil && err2 == nil && os.SameFile(held, onDisk)
}

// Release drops the lock.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// rootKind is what startup and repair found in --root.
type rootKind int

const (
	rootEmpty   rootKind = iota // nothing but the lock file
	rootGitSync                 // a repository git-sync (this one, v4 or v3) made; maybe damaged
	rootOther                   // content that is not a repository: emptied, per the contract
	rootForeign                 // someone else's repository: never touched
)

// classifyRoot decides what --root holds, from file metadata only.
//
// A git-sync root's repository has no checkout of its own (git-sync only
// checks out into linked worktrees), so a .git/index there means a user's
// clone; a .git file means a submodule or linked worktree of another
// repository; HEAD, objects and refs at the top mean a bare repository. Those
// hold branches, tags and reflogs that git-sync did not create, and
// emptying the root would destroy them, so they are refused. A root whose
// .git is missing or broken but that holds git-sync's own state or worktrees
// is a damaged git-sync root: only what is lost is rebuilt, and the published
// tree stays.
func classifyRoot(root, source string) (rootKind, string) {
	if source != "" && within(source, root) {
		return rootForeign, fmt.Sprintf("the source repository %s (from --repo) is inside --root, and git-sync owns everything in --root", source)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return rootEmpty, "" // missing or unreadable: repair reports it when it creates the root
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	delete(names, LockFileName)
	if len(names) == 0 {
		return rootEmpty, ""
	}
	gitDir := filepath.Join(root, ".git")
	if fi, err := os.Lstat(gitDir); err == nil {
		if !fi.IsDir() {
			return rootForeign, "--root holds a .git file: it is a submodule or a linked worktree of another repository"
		}
		if _, err := os.Lstat(filepath.Join(gitDir, "index")); err == nil {
			return rootForeign, "--root holds a git repository with a checkout of its own (.git/index), such as a clone; git-sync only ever checks out into worktrees"
		}
		return rootGitSync, ""
	}
	if names["HEAD"] && names["objects"] && names["refs"] {
		return rootForeign, "--root is a bare git repository"
	}
	if names[StateDirName] || names[WorktreesDir] {
		return rootGitSync, ""
	}
	return rootOther, ""
}

// within reports whether path is dir or below it (both absolute and clean).
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// localSource returns the directory --repo names when it is on this machine
// (a file:// URL or a plain path), with symlinks resolved; "" otherwise.
func localSource(repo string) string {
	p := ""
	switch {
	case strings.HasPrefix(repo, "file://"):
		u, err := url.Parse(repo)
		if err != nil {
			return ""
		}
		p = u.Path
	case strings.Contains(repo, "://"):
		return ""
	case filepath.IsAbs(repo) || strings.HasPrefix(repo, "."):
		p = repo
	default:
		// host:path is scp-like ssh, unless a slash comes before the colon.
		colon, slash := strings.IndexByte(repo, ':'), strings.IndexByte(repo, '/')
		if colon >= 0 && (slash < 0 || colon < slash) {
			return ""
		}
		p = repo
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return ""
	}
	if canon, err := filepath.EvalSymlinks(abs); err == nil {
		return canon
	}
	return abs
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

// removeStaleLocks deletes what a killed git leaves under a git directory:
// lock files (shallow.lock, index.lock, HEAD.lock, config.lock, ref locks,
// in submodule repositories too), gc.pid, and the temporary and .keep files
// of a pack that was being received. It is only called while git-sync holds
// the root lock and runs no git, so nothing found can belong to a live git
// of ours. Loose object directories are not walked: git never locks there.
func removeStaleLocks(gitDir string) {
	_ = filepath.WalkDir(gitDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		name := d.Name()
		if d.IsDir() {
			if filepath.Base(filepath.Dir(p)) == "objects" && name != "pack" && name != "info" {
				return fs.SkipDir
			}
			return nil
		}
		inPack := filepath.Base(filepath.Dir(p)) == "pack"
		if strings.HasSuffix(name, ".lock") || name == "gc.pid" ||
			inPack && (strings.HasPrefix(name, "tmp_") || strings.HasSuffix(name, ".keep")) {
			_ = os.Remove(p)
		}
		return nil
	})
}

// repairHEAD makes the root repository's own HEAD name git-sync's branch
// when it is missing or not a symbolic ref. The root has no checkout; a
// HEAD at a missing ref is normal (unborn), but a missing HEAD makes git
// refuse the directory, and a detached HEAD at a missing object or garbage
// breaks git commands.
func repairHEAD(gitDir string) error {
	path := filepath.Join(gitDir, "HEAD")
	b, err := os.ReadFile(path)
	if err == nil && strings.HasPrefix(string(b), "ref: refs/") {
		return nil
	}
	if err := os.WriteFile(path, []byte("ref: "+OwnRef+"\n"), 0o666); err != nil {
		return fmt.Errorf("repair %s: %w", path, err)
	}
	return nil
}

// gitDirIntact reports whether gitDir has the directories and files every
// repository has. Missing HEAD or config are repaired in place; missing
// objects or refs mean the repository is lost and is created again.
func gitDirIntact(gitDir string) bool {
	fi, err := os.Lstat(gitDir)
	if err != nil || !fi.IsDir() {
		return false
	}
	for _, name := range []string{"objects", "refs"} {
		if fi, err := os.Stat(filepath.Join(gitDir, name)); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}
