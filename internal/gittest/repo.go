// Package gittest provides real upstream git repositories (and, in sibling
// files, servers that publish them) for the project's tests.
//
// Nothing here mocks git: a Repo is an ordinary non-bare repository in a
// t.TempDir(), driven by the git binary on PATH. Every git command the
// fixtures run is isolated from the machine it runs on (no system or global
// config, a private HOME, fixed author and committer identities), so a
// developer's ~/.gitconfig or a CI image's /etc/gitconfig cannot change what
// a test sees.
//
// Methods whose names start with Try return errors instead of failing the
// test; use them from goroutines other than the test's own (t.Fatal must
// only be called from the goroutine running the test).
package gittest

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultBranch is the name of the branch NewRepo creates and checks out.
const DefaultBranch = "main"

// identity is the author and committer every fixture commit is made with.
var identity = []string{
	"GIT_AUTHOR_NAME=gittest",
	"GIT_AUTHOR_EMAIL=gittest@example.invalid",
	"GIT_COMMITTER_NAME=gittest",
	"GIT_COMMITTER_EMAIL=gittest@example.invalid",
}

// Env returns an environment for running git (or a program that runs git)
// in a test, isolated from the machine: the parent's variables minus every
// GIT_*, GITSYNC_* and SSH agent/askpass variable, with HOME set to a fresh
// directory under t.TempDir(), GIT_CONFIG_GLOBAL pointing at an empty file
// there, GIT_CONFIG_NOSYSTEM=1 and GIT_TERMINAL_PROMPT=0. Callers append
// their own "KEY=value" entries; later entries win in os/exec.
func Env(t testing.TB) []string {
	t.Helper()
	home := t.TempDir()
	return IsolatedEnv(home)
}

// IsolatedEnv is Env with a caller-chosen HOME directory, which must exist.
// The global git config file is HOME/.gitconfig-isolated (created empty if
// missing), so nothing outside HOME is read.
func IsolatedEnv(home string) []string {
	global := filepath.Join(home, ".gitconfig-isolated")
	if _, err := os.Stat(global); err != nil {
		// Best effort: git treats a missing GIT_CONFIG_GLOBAL file as empty.
		_ = os.WriteFile(global, nil, 0o644)
	}
	env := CleanEnviron(os.Environ())
	env = append(env,
		"HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"GIT_CONFIG_GLOBAL="+global,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
	)
	return env
}

// CleanEnviron returns environ without the variables that would let the
// machine influence git or git-sync: GIT_*, GITSYNC_*, HOME, XDG_CONFIG_HOME,
// SSH_AUTH_SOCK, SSH_ASKPASS and the locale overrides that change git's
// messages (LANGUAGE, LC_ALL, LC_MESSAGES are replaced by LC_ALL=C).
func CleanEnviron(environ []string) []string {
	out := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "GIT_"),
			strings.HasPrefix(name, "GITSYNC_"),
			name == "HOME", name == "XDG_CONFIG_HOME",
			name == "SSH_AUTH_SOCK", name == "SSH_ASKPASS",
			name == "LANGUAGE", name == "LC_ALL", name == "LC_MESSAGES":
			continue
		}
		out = append(out, kv)
	}
	return append(out, "LC_ALL=C")
}

// Repo is an upstream repository for tests: a non-bare repository whose
// current branch starts as DefaultBranch. Tests commit to it, move its refs,
// and point git-sync at URL().
//
// A Repo's methods may be called from several goroutines; git commands that
// modify it are serialised by an internal lock.
type Repo struct {
	t   testing.TB
	dir string
	env []string
	mu  sync.Mutex
}

// NewRepo creates an empty repository in a fresh t.TempDir() with
// DefaultBranch checked out (no commits yet). It fails the test if git is
// missing or init fails.
func NewRepo(t testing.TB) *Repo {
	t.Helper()
	base := t.TempDir()
	home := filepath.Join(base, "home")
	dir := filepath.Join(base, "repo")
	for _, d := range []string{home, dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("gittest: %v", err)
		}
	}
	env := append(IsolatedEnv(home), identity...)
	r := &Repo{t: t, dir: dir, env: env}
	r.Git("init", "--quiet", "--initial-branch="+DefaultBranch)
	// Keep the fixture fast and predictable: no background gc while tests
	// hammer it with commits, and no hooks from a template directory.
	r.Git("config", "gc.auto", "0")
	r.Git("config", "core.hooksPath", "/dev/null")
	return r
}

// NewRepoWithCommit is NewRepo plus one initial commit of a single file
// (README holding "initial"); it returns the repository and that commit's
// hash.
func NewRepoWithCommit(t testing.TB) (*Repo, string) {
	t.Helper()
	r := NewRepo(t)
	h := r.Commit(map[string]string{"README": "initial\n"}, "initial")
	return r, h
}

// Dir is the repository's working tree (its top directory).
func (r *Repo) Dir() string { return r.dir }

// URL is the repository's file:// URL.
func (r *Repo) URL() string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(r.dir)}).String()
}

// Environ returns the isolated environment the fixture runs git with
// (including the fixture's author/committer identity). The slice is a copy.
func (r *Repo) Environ() []string {
	return append([]string(nil), r.env...)
}

// Git runs git with args in the repository and returns its stdout with
// surrounding whitespace trimmed. It fails the test on any error, showing
// git's stderr.
func (r *Repo) Git(args ...string) string {
	r.t.Helper()
	out, err := r.TryGit(args...)
	if err != nil {
		r.t.Fatalf("gittest: %v", err)
	}
	return out
}

// TryGit is Git returning an error (which includes git's stderr) instead of
// failing the test.
func (r *Repo) TryGit(args ...string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gitLocked(args...)
}

func (r *Repo) gitLocked(args ...string) (string, error) {
	return runGit(r.dir, r.env, args...)
}

// RunGit runs git with args in dir using env and returns its trimmed stdout;
// the error, if any, includes the command and git's stderr. It is the
// non-fixture form of Repo.TryGit, for inspecting directories that tests did
// not create with NewRepo (e.g. a published git-sync worktree).
func RunGit(dir string, env []string, args ...string) (string, error) {
	return runGit(dir, env, args...)
}

func runGit(dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s (in %s): %w\nstderr: %s",
			strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Commit writes files (path relative to the repository -> content; parent
// directories are created) into the working tree, stages every change in
// the tree (so files deleted with Remove are committed as deletions), and
// commits with msg on the current branch. An empty files map makes an empty
// commit. It returns the new commit's full hash.
func (r *Repo) Commit(files map[string]string, msg string) string {
	r.t.Helper()
	h, err := r.TryCommit(files, msg)
	if err != nil {
		r.t.Fatalf("gittest: %v", err)
	}
	return h
}

// TryCommit is Commit returning an error instead of failing the test.
func (r *Repo) TryCommit(files map[string]string, msg string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Write in a stable order so failures are reproducible.
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p, err := r.path(name)
		if err != nil {
			return "", err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("commit: %w", err)
		}
		if err := os.WriteFile(p, []byte(files[name]), 0o644); err != nil {
			return "", fmt.Errorf("commit: %w", err)
		}
	}
	if _, err := r.gitLocked("add", "--all"); err != nil {
		return "", err
	}
	if _, err := r.gitLocked("commit", "--quiet", "--allow-empty", "--no-verify", "-m", msg); err != nil {
		return "", err
	}
	return r.gitLocked("rev-parse", "HEAD")
}

// TryCommitFast commits a snapshot without running git, for load tests
// that need tens of commits per second on a busy machine: it writes the
// blob, tree and commit objects as loose objects and moves the current
// branch with a lock-and-rename, as git does. The new commit's tree holds
// exactly files (nothing else from earlier commits), its parent is the
// branch's current tip, and the working tree and index are NOT updated, so
// do not mix it with Commit on the same branch afterwards. The branch must
// be stored as a loose ref (true for fixture repos, which never pack refs).
// It returns the new commit's hash, or an error (it never fails the test,
// so it may run in any goroutine).
func (r *Repo) TryCommitFast(files map[string]string, msg string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	gitDir := filepath.Join(r.dir, ".git")
	head, err := os.ReadFile(filepath.Join(gitDir, "HEAD"))
	if err != nil {
		return "", fmt.Errorf("commit: %w", err)
	}
	ref, ok := strings.CutPrefix(strings.TrimSpace(string(head)), "ref: ")
	if !ok || !strings.HasPrefix(ref, "refs/heads/") {
		return "", fmt.Errorf("commit: HEAD is not on a branch: %q", head)
	}
	refPath := filepath.Join(gitDir, filepath.FromSlash(ref))
	var parent string
	if b, err := os.ReadFile(refPath); err == nil {
		parent = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("commit: %w", err)
	}

	root := &treeNode{}
	for name, content := range files {
		if _, err := r.path(name); err != nil {
			return "", err
		}
		root.add(strings.Split(filepath.ToSlash(filepath.Clean(name)), "/"), content)
	}
	tree, err := root.write(gitDir)
	if err != nil {
		return "", err
	}
	var c strings.Builder
	fmt.Fprintf(&c, "tree %s\n", tree)
	if parent != "" {
		fmt.Fprintf(&c, "parent %s\n", parent)
	}
	stamp := fmt.Sprintf("%d +0000", time.Now().Unix())
	fmt.Fprintf(&c, "author gittest <gittest@example.invalid> %s\n", stamp)
	fmt.Fprintf(&c, "committer gittest <gittest@example.invalid> %s\n\n%s\n", stamp, msg)
	commit, err := writeObject(gitDir, "commit", []byte(c.String()))
	if err != nil {
		return "", err
	}

	// Move the branch the way git does: create ref.lock exclusively, write,
	// rename over the ref.
	lock := refPath + ".lock"
	f, err := os.OpenFile(lock, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("commit: lock %s: %w", ref, err)
	}
	_, werr := f.WriteString(commit + "\n")
	cerr := f.Close()
	if werr != nil || cerr != nil {
		os.Remove(lock)
		return "", fmt.Errorf("commit: write %s: %v %v", lock, werr, cerr)
	}
	if err := os.Rename(lock, refPath); err != nil {
		os.Remove(lock)
		return "", fmt.Errorf("commit: %w", err)
	}
	return commit, nil
}

// treeNode is a directory being assembled by TryCommitFast.
type treeNode struct {
	blobs map[string]string    // file name -> content
	dirs  map[string]*treeNode // subdirectory name -> node
}

func (n *treeNode) add(parts []string, content string) {
	if len(parts) == 1 {
		if n.blobs == nil {
			n.blobs = map[string]string{}
		}
		n.blobs[parts[0]] = content
		return
	}
	if n.dirs == nil {
		n.dirs = map[string]*treeNode{}
	}
	child := n.dirs[parts[0]]
	if child == nil {
		child = &treeNode{}
		n.dirs[parts[0]] = child
	}
	child.add(parts[1:], content)
}

// write stores the tree (and everything below it) and returns its hash.
func (n *treeNode) write(gitDir string) (string, error) {
	type entry struct{ mode, name, sortKey, id string }
	var ents []entry
	for name, content := range n.blobs {
		id, err := writeObject(gitDir, "blob", []byte(content))
		if err != nil {
			return "", err
		}
		ents = append(ents, entry{"100644", name, name, id})
	}
	for name, child := range n.dirs {
		id, err := child.write(gitDir)
		if err != nil {
			return "", err
		}
		// git orders a directory as if its name ended with "/".
		ents = append(ents, entry{"40000", name, name + "/", id})
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].sortKey < ents[j].sortKey })
	var buf bytes.Buffer
	for _, e := range ents {
		raw, err := hex.DecodeString(e.id)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&buf, "%s %s\x00", e.mode, e.name)
		buf.Write(raw)
	}
	return writeObject(gitDir, "tree", buf.Bytes())
}

// writeObject stores a loose object of type typ and returns its SHA-1
// hash. An object that already exists is left alone.
func writeObject(gitDir, typ string, content []byte) (string, error) {
	header := fmt.Sprintf("%s %d\x00", typ, len(content))
	h := sha1.New()
	h.Write([]byte(header))
	h.Write(content)
	id := hex.EncodeToString(h.Sum(nil))
	dir := filepath.Join(gitDir, "objects", id[:2])
	path := filepath.Join(dir, id[2:])
	if _, err := os.Stat(path); err == nil {
		return id, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("write object: %w", err)
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte(header))
	zw.Write(content)
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("write object: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "tmp_obj_")
	if err != nil {
		return "", fmt.Errorf("write object: %w", err)
	}
	_, werr := tmp.Write(z.Bytes())
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("write object %s: %v %v", id, werr, cerr)
	}
	os.Chmod(tmp.Name(), 0o444)
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("write object: %w", err)
	}
	return id, nil
}

// Remove deletes paths (relative to the repository) from the working tree;
// the next Commit records the deletions. Missing paths are ignored.
func (r *Repo) Remove(paths ...string) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, name := range paths {
		p, err := r.path(name)
		if err != nil {
			r.t.Fatalf("gittest: %v", err)
		}
		if err := os.RemoveAll(p); err != nil {
			r.t.Fatalf("gittest: remove: %v", err)
		}
	}
}

// path maps a repository-relative name to an absolute path, refusing names
// that escape the working tree or point into .git.
func (r *Repo) path(name string) (string, error) {
	clean := filepath.Clean(filepath.FromSlash(name))
	if clean == "." || filepath.IsAbs(clean) || clean == ".." ||
		strings.HasPrefix(clean, ".."+string(filepath.Separator)) ||
		clean == ".git" || strings.HasPrefix(clean, ".git"+string(filepath.Separator)) {
		return "", fmt.Errorf("gittest: bad file name %q", name)
	}
	return filepath.Join(r.dir, clean), nil
}

// Tag creates or moves (tag -f) the lightweight tag name to rev.
func (r *Repo) Tag(name, rev string) {
	r.t.Helper()
	r.Git("tag", "--force", "--no-sign", name, rev)
}

// AnnotatedTag creates or moves (tag -f) the annotated tag name to rev with
// message msg, and returns the hash of the tag object (not the commit).
func (r *Repo) AnnotatedTag(name, rev, msg string) string {
	r.t.Helper()
	r.Git("tag", "--force", "--annotate", "--no-sign", "-m", msg, name, rev)
	return r.Git("rev-parse", "refs/tags/"+name)
}

// DeleteTag deletes the tag name.
func (r *Repo) DeleteTag(name string) {
	r.t.Helper()
	r.Git("tag", "--delete", name)
}

// Branch creates or moves (branch -f) the branch name to rev without
// checking it out. Moving the currently checked-out branch is not allowed by
// git; use ResetHard for that.
func (r *Repo) Branch(name, rev string) {
	r.t.Helper()
	r.Git("branch", "--force", "--no-track", name, rev)
}

// DeleteBranch deletes the branch name (which must not be checked out).
func (r *Repo) DeleteBranch(name string) {
	r.t.Helper()
	r.Git("branch", "--delete", "--force", name)
}

// Checkout switches the working tree to branch name, creating it at the
// current HEAD first if it does not exist. Later Commits go to that branch,
// and it becomes what HEAD names for clients asking for the remote's HEAD.
func (r *Repo) Checkout(name string) {
	r.t.Helper()
	if _, err := r.TryGit("rev-parse", "--verify", "--quiet", "refs/heads/"+name); err == nil {
		r.Git("checkout", "--quiet", name)
		return
	}
	r.Git("checkout", "--quiet", "-b", name)
}

// ResetHard moves the current branch (and the working tree) to rev,
// forwards or backwards: the upstream side of a force-push.
func (r *Repo) ResetHard(rev string) {
	r.t.Helper()
	r.Git("reset", "--quiet", "--hard", rev)
}

// ForcePush makes branch name point at rev whatever it pointed at before,
// as `git push --force origin rev:name` would on the server. It works for
// the checked-out branch too (by resetting the working tree).
func (r *Repo) ForcePush(name, rev string) {
	r.t.Helper()
	if cur, err := r.TryGit("symbolic-ref", "--quiet", "--short", "HEAD"); err == nil && cur == name {
		r.ResetHard(rev)
		return
	}
	r.Branch(name, rev)
}

// Head returns the full commit hash that ref (a branch, tag, "HEAD" or any
// revision) resolves to, peeling annotated tags to their commit.
func (r *Repo) Head(ref string) string {
	r.t.Helper()
	return r.Git("rev-parse", "--verify", ref+"^{commit}")
}

// TryHead is Head returning an error instead of failing the test.
func (r *Repo) TryHead(ref string) (string, error) {
	return r.TryGit("rev-parse", "--verify", ref+"^{commit}")
}

// Files returns the blob paths of commit rev (as `git ls-tree -r`), sorted.
func (r *Repo) Files(rev string) []string {
	r.t.Helper()
	out := r.Git("ls-tree", "-r", "--name-only", "-z", rev)
	var names []string
	for _, n := range strings.Split(out, "\x00") {
		if n != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Show returns the content of path at commit rev (`git show rev:path`),
// without trimming.
func (r *Repo) Show(rev, path string) string {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	cmd := exec.Command("git", "show", rev+":"+path)
	cmd.Dir = r.dir
	cmd.Env = r.env
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.t.Fatalf("gittest: git show %s:%s: %v: %s", rev, path, err, ee.Stderr)
		}
		r.t.Fatalf("gittest: git show %s:%s: %v", rev, path, err)
	}
	return string(out)
}

// AddSubmodule adds sub (another fixture repository) as a submodule at path
// with URL sub.URL(), or url when url is not empty (e.g. a relative URL such
// as "../other"), and commits the change. It returns the new commit's hash.
func (r *Repo) AddSubmodule(sub *Repo, path, url string) string {
	r.t.Helper()
	if url == "" {
		url = sub.URL()
	}
	// file:// submodules are refused by default since git 2.38.1; the
	// fixture allows them for its own command only.
	r.Git("-c", "protocol.file.allow=always", "submodule", "--quiet", "add", "--", url, path)
	return r.Commit(nil, "add submodule "+path)
}
