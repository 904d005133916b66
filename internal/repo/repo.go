package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gitsync/internal/atomicfile"
	"gitsync/internal/config"
	"gitsync/internal/gitcmd"
	"gitsync/internal/lsremote"
)

// Options is what the repo package needs from the configuration.
type Options struct {
	Root string // canonical absolute root (see CanonicalRoot)
	Link string // as configured: absolute, or relative to Root

	Repo, Ref            string
	Depth                int
	Filter               string
	Submodules           string
	SparseCheckoutFile   string
	GitGC                string
	StaleWorktreeTimeout time.Duration
	GroupWrite           bool

	Git         string
	BaseEnv     []string                // inherited environment plus credential/ssh settings
	ExtraConfig []config.GitConfigEntry // settings for the private global config (credentials, ...)
	UserConfig  []config.GitConfigEntry // --git-config and --git-config-add

	Log *slog.Logger
}

// Repo is an opened, locked root.
type Repo struct {
	opts     Options
	root     string
	gitDir   string
	stateDir string
	link     string
	lock     *Lock
	git      *gitcmd.Runner
	remote   *lsremote.Remote // the change detector in front of the fetch
	log      *slog.Logger
	fileMode os.FileMode
	dirMode  os.FileMode

	published  string // hash the link points at (a worktree under .worktrees), "" if none
	legacyPath string // an old-layout tree the link pointed at when we started, to remove after republishing
	lastRemote string // object name the last fetch brought (FETCH_HEAD, unpeeled)
	synced     bool   // a fetch succeeded in this run
	refIsHash  bool   // --ref is a commit hash: once synced, nothing more to fetch
}

// Result describes one sync attempt.
type Result struct {
	Hash      string // the commit --ref names, as fetched (or as last fetched on a no-op)
	Fetched   bool   // this attempt fetched (an update sync; counts in git_fetch_count_total)
	Published bool   // the link was flipped (new hash or rebuilt worktree)
	NewHash   bool   // the published hash changed
	// PrePublishErr is the pre-publish hook's error; publishing went ahead.
	PrePublishErr error
}

// Open locks the root, empties it when it does not hold a healthy git-sync
// repository, recovers from whatever a killed run left behind, writes the
// private git configuration, and initialises the repository if needed.
func Open(ctx context.Context, opts Options) (*Repo, error) {
	r := &Repo{
		opts:      opts,
		root:      opts.Root,
		gitDir:    filepath.Join(opts.Root, ".git"),
		stateDir:  filepath.Join(opts.Root, StateDirName),
		link:      opts.Link,
		log:       opts.Log,
		fileMode:  0o644,
		dirMode:   0o755,
		refIsHash: config.IsCommitHash(opts.Ref),
	}
	if opts.GroupWrite {
		r.fileMode, r.dirMode = 0o664, 0o775
	}
	if !filepath.IsAbs(r.link) {
		r.link = filepath.Join(r.root, r.link)
	}
	lock, err := AcquireLock(r.root)
	if err != nil {
		return nil, err
	}
	r.lock = lock
	if err := r.open(ctx); err != nil {
		lock.Release()
		return nil, err
	}
	return r, nil
}

func (r *Repo) open(ctx context.Context) error {
	fresh := !healthyRepo(r.root)
	if fresh {
		entries, _ := os.ReadDir(r.root)
		if len(entries) > 1 {
			r.log.Info("--root does not hold a healthy repository; emptying it", "root", r.root)
		}
		if err := emptyDir(r.root, LockFileName); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(r.stateDir, 0o700|r.dirMode); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	r.git = &gitcmd.Runner{
		Git: r.opts.Git,
		Log: r.log,
		Env: gitcmd.BuildEnv(r.opts.BaseEnv,
			"GIT_CONFIG_GLOBAL="+filepath.Join(r.stateDir, globalFile),
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CEILING_DIRECTORIES="+filepath.Dir(r.root),
			"GIT_TERMINAL_PROMPT=0",
			"GIT_OPTIONAL_LOCKS=0",
		),
	}
	keep := !lsremote.Unsafe(r.opts.UserConfig)
	if !keep {
		r.log.Log(ctx, slog.Level(-1), "--git-config sets a credential helper or includes other config; polls use git ls-remote, not a kept HTTP session")
	}
	r.remote = lsremote.New(r.git, r.root, r.opts.Repo, keep, r.log)
	if err := r.writeManagedConfig(); err != nil {
		return err
	}
	if err := writePrivateConfig(ctx, r.git, r.stateDir, r.opts.UserConfig, r.fileMode); err != nil {
		return err
	}
	if fresh {
		if err := r.initRepo(ctx); err != nil {
			return err
		}
	} else {
		removeStaleLocks(r.gitDir)
		r.dropRefs()
		_ = os.Remove(filepath.Join(r.gitDir, "gc.pid"))
		if err := repairHEAD(r.gitDir); err != nil {
			return err
		}
		if err := r.reconcileLocalConfig(ctx); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(r.link), 0o777); err != nil {
		return fmt.Errorf("create directory for --link: %w", err)
	}
	r.removeTempLinks()
	r.pruneAdminDirs()
	r.readPublished()
	return nil
}

// Env is the environment git-sync gives its children (git and exec hooks),
// so that git commands run by hooks see the same configuration.
func (r *Repo) Env() []string { return r.git.Env }

// WorktreeDir is where the worktree of hash lives (an exec hook's working
// directory).
func (r *Repo) WorktreeDir(hash string) string { return r.worktreeDir(hash) }

// FileMode is the mode of files git-sync writes (group-writable with
// --group-write).
func (r *Repo) FileMode() os.FileMode { return r.fileMode }

// HashDone reports that --ref is a commit hash that is published: there is
// nothing more to poll.
func (r *Repo) HashDone() bool { return r.synced && r.refIsHash }

// Close releases the root lock.
func (r *Repo) Close() {
	r.remote.Close()
	r.lock.Release()
}

func (r *Repo) initRepo(ctx context.Context) error {
	args := []string{"init", "--quiet"}
	if r.opts.GroupWrite {
		args = append(args, "--shared=group")
	}
	if _, err := r.git.Run(ctx, r.root, args...); err != nil {
		return fmt.Errorf("initialise repository in %s: %w", r.root, err)
	}
	// A fresh repository's config is known, so append ours directly rather
	// than spending a git process per key.
	f, err := os.OpenFile(filepath.Join(r.gitDir, "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("configure repository: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(renderConfig(r.localConfig())); err != nil {
		return fmt.Errorf("configure repository: %w", err)
	}
	return f.Close()
}

// reconcileLocalConfig brings an existing repository's own settings in line
// with this run's flags (--repo may have changed between runs, sparse
// checkout may have been switched on or off).
func (r *Repo) reconcileLocalConfig(ctx context.Context) error {
	out, _ := r.git.Run(ctx, r.root, "config", "--local", "--get-regexp", `^(remote\.origin\.url|core\.sparsecheckout)$`)
	have := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, " ")
		have[k] = v
	}
	for _, e := range r.localConfig() {
		if have[strings.ToLower(e.Key)] == e.Value {
			continue
		}
		if _, err := r.git.Run(ctx, r.root, "config", "--local", "--replace-all", e.Key, e.Value); err != nil {
			return fmt.Errorf("configure repository: %w", err)
		}
	}
	return nil
}

// localConfig is what the repository's own config must say for this run:
// origin is --repo (relative submodule URLs resolve against it) and sparse
// checkout is on exactly when a sparse file is given.
func (r *Repo) localConfig() []config.GitConfigEntry {
	return []config.GitConfigEntry{
		{Key: "remote.origin.url", Value: r.opts.Repo},
		{Key: "core.sparseCheckout", Value: fmt.Sprint(r.opts.SparseCheckoutFile != "")},
	}
}

// writeManagedConfig writes the part of the private global config git-sync
// owns: the safe.directory entries for exactly the root and the worktrees
// that exist (so volumes owned by another UID work without
// safe.directory=*), and the extra settings (credentials).
func (r *Repo) writeManagedConfig() error {
	entries := []config.GitConfigEntry{
		{Key: "safe.directory", Value: r.root},
		{Key: "gc.autoDetach", Value: "false"},
		{Key: "core.logAllRefUpdates", Value: "false"},
		{Key: "advice.detachedHead", Value: "false"},
	}
	if names, err := os.ReadDir(filepath.Join(r.root, WorktreesDir)); err == nil {
		for _, e := range names {
			if config.IsCommitHash(e.Name()) {
				entries = append(entries, config.GitConfigEntry{Key: "safe.directory", Value: r.worktreeDir(e.Name())})
			}
		}
	}
	entries = append(entries, r.opts.ExtraConfig...)
	return atomicfile.Write(filepath.Join(r.stateDir, managedFile), []byte(renderConfig(entries)), r.fileMode)
}

// readPublished learns what the link currently points at. A target outside
// .worktrees (the layout of git-sync v3) is remembered so that it can be
// removed once the commit is republished in the current layout.
func (r *Repo) readPublished() {
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

// tempLinkPrefix names temporary links beside the link; a unique suffix
// follows, and leftovers of a killed run are removed at startup.
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
// named temporary symlink renamed over the link.
func (r *Repo) publish(hash string) error {
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	tmp := r.tempLinkPrefix() + hex.EncodeToString(suffix[:])
	if err := os.Symlink(r.linkTarget(hash), tmp); err != nil {
		return fmt.Errorf("publish %s: %w", hash, err)
	}
	if err := os.Rename(tmp, r.link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("publish %s: %w", hash, err)
	}
	return nil
}

// fetch fetches --ref and returns the commit that this fetch brought.
func (r *Repo) fetch(ctx context.Context) (commit, fetched string, err error) {
	_, statErr := os.Stat(filepath.Join(r.gitDir, "shallow"))
	args := fetchArgs(r.opts.Repo, r.opts.Ref, r.opts.Depth, statErr == nil, r.opts.Filter)
	if _, err := r.git.Run(ctx, r.root, args...); err != nil {
		return "", "", fmt.Errorf("fetch %s from %s: %w", r.opts.Ref, r.opts.Repo, err)
	}
	content, err := os.ReadFile(filepath.Join(r.gitDir, "FETCH_HEAD"))
	if err != nil {
		return "", "", fmt.Errorf("read FETCH_HEAD: %w", err)
	}
	fetched, desc, err := parseFetchHead(string(content))
	if err != nil {
		return "", "", err
	}
	commit = fetched
	if mayNeedPeel(desc) {
		out, err := r.git.Run(ctx, r.root, "rev-parse", "--verify", "--quiet", fetched+"^{commit}")
		if err != nil {
			return "", "", fmt.Errorf("resolve %s to a commit: %w", r.opts.Ref, err)
		}
		commit = strings.TrimSpace(out)
	}
	return commit, fetched, nil
}

// remoteUnchanged asks the remote whether --ref still names what the last
// fetch brought. It only decides whether to fetch; what is published always
// comes from a fetch.
func (r *Repo) remoteUnchanged(ctx context.Context) (bool, error) {
	hash, found, err := r.remote.Lookup(ctx, r.opts.Ref)
	if err != nil {
		return false, err
	}
	return found && hash == r.lastRemote, nil
}

// Sync runs one attempt (SPEC section 2). prePublish, if not nil, runs in
// the new worktree before the link flips to a new hash; its error is
// reported in the Result and does not stop publishing.
func (r *Repo) Sync(ctx context.Context, prePublish func(ctx context.Context, hash string) error) (Result, error) {
	now := time.Now()
	healthy := r.linkHealthy() && r.worktreeHealthy(r.published)
	if r.synced && healthy {
		if r.refIsHash {
			return r.idle(ctx, now)
		}
		unchanged, err := r.remoteUnchanged(ctx)
		if err != nil {
			return Result{}, err
		}
		if unchanged {
			return r.idle(ctx, now)
		}
	}

	commit, fetched, err := r.fetch(ctx)
	if err != nil {
		return Result{}, err
	}
	res := Result{Hash: commit, Fetched: true}
	if commit == r.published && healthy {
		r.synced, r.lastRemote = true, fetched
		return res, r.finish(ctx, now)
	}

	if !r.worktreeHealthy(commit) {
		r.log.Log(ctx, slog.Level(-1), "building worktree", "hash", commit)
		if err := r.buildWorktree(ctx, commit); err != nil {
			return Result{}, err
		}
	}
	if err := r.writeManagedConfig(); err != nil {
		return Result{}, err
	}
	res.NewHash = commit != r.published
	if res.NewHash && prePublish != nil {
		res.PrePublishErr = prePublish(ctx, commit)
	}
	if err := r.publish(commit); err != nil {
		return Result{}, err
	}
	res.Published = true
	prev := r.published
	r.published, r.synced, r.lastRemote = commit, true, fetched
	if prev != "" && prev != commit {
		touch(r.worktreeDir(prev), time.Now())
	}
	return res, r.finish(ctx, time.Now())
}

// idle is the end of an attempt that found nothing to do.
func (r *Repo) idle(ctx context.Context, now time.Time) (Result, error) {
	return Result{Hash: r.published}, r.finish(ctx, now)
}

// finish removes expired worktrees (and an old-layout tree once the commit
// is republished) and, if anything was removed, collects garbage. The
// safe.directory entries of removed worktrees stay until the
// next config write (after the next build): an entry naming a missing path
// is harmless, and rewriting the file here doubled the config writes of
// every update.
func (r *Repo) finish(ctx context.Context, now time.Time) error {
	removed, err := r.cleanup(r.published, now)
	if err != nil {
		return err
	}
	if r.removeLegacy() {
		removed++
	}
	if removed > 0 {
		return r.gc(ctx)
	}
	return nil
}

// removeLegacy removes the git-sync v3 worktree the link pointed at when
// this run started. It is only called after a sync, and a sync with an
// old-layout link always republishes (the link is not healthy), so the
// commit is in the current layout by then.
func (r *Repo) removeLegacy() bool {
	if r.legacyPath == "" || r.published == "" {
		return false
	}
	if err := os.RemoveAll(r.legacyPath); err != nil {
		r.log.Error("remove old-layout worktree", "path", r.legacyPath, "error", err.Error())
		return false
	}
	// Its administrative directory may share its name with the new
	// worktree's (v3 named worktrees by bare hash too): let prune find the
	// one whose worktree is gone instead of guessing by name.
	r.pruneAdminDirs()
	r.log.Info("removed old-layout worktree", "path", r.legacyPath)
	r.legacyPath = ""
	return true
}

// dropRefs deletes every branch, tag and remote-tracking ref and every
// reflog. git-sync itself keeps none (FETCH_HEAD and the worktrees' HEADs are all it needs);
// refs left by git-sync v3 or by hand would pin superseded commits against
// gc forever.
func (r *Repo) dropRefs() {
	_ = os.Remove(filepath.Join(r.gitDir, "packed-refs"))
	// Reflogs pin every commit they ever named; git-sync writes none itself
	// (core.logAllRefUpdates=false), so drop those an earlier tool left.
	_ = os.RemoveAll(filepath.Join(r.gitDir, "logs"))
	for _, d := range []string{"heads", "tags", "remotes"} {
		dir := filepath.Join(r.gitDir, "refs", d)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}
