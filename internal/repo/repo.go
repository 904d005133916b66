package repo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gitsync/internal/config"
	"gitsync/internal/gitcmd"
	"gitsync/internal/gitconfig"
	"gitsync/internal/lsremote"
	"gitsync/internal/redact"
)

// Options is what the repo package needs from the configuration.
type Options struct {
	Root string // absolute root; canonical (see CanonicalRoot) when it could be created
	Link string // as configured: absolute, or relative to Root

	Repo, Ref            string
	Depth                int
	Filter               string
	Submodules           string
	SparseCheckoutFile   string
	GitGC                string
	StaleWorktreeTimeout time.Duration
	KeepWorktrees        int // previously published trees kept besides the current one (--keep-worktrees)
	GroupWrite           bool

	Git         string
	BaseEnv     []string          // inherited environment plus credential/ssh settings
	ExtraConfig []gitconfig.Entry // settings for the private global config (credentials, ...)
	UserConfig  []gitconfig.Entry // --git-config and --git-config-add
	// SSH, when set, is the kept SSH connection (auth.Auth): idle polls of
	// an SSH --repo go over it without running git (see lsremote).
	SSH lsremote.SSHSessions

	Log *slog.Logger
	// OnKept, if set, learns after each cleanup how many trees besides the
	// current one are on disk (the git_sync_worktrees_kept gauge).
	OnKept func(n int)
	// Serve keeps the refs the relay advertises (see ServeNamespace).
	Serve bool
	// GCGuard, if set, is held while garbage is collected, so that no
	// request of the relay is being served meanwhile (see serve.Guard and
	// gc).
	GCGuard interface {
		TryLock() bool
		Lock(context.Context) error
		Unlock()
	}
}

// Repo is an opened root. It is used by one goroutine at a time.
type Repo struct {
	opts        Options
	root        string
	gitDir      string
	stateDir    string
	link        string
	source      string // --repo's directory when it is on this machine, symlinks resolved
	sourceGiven string // the same, as given
	lock        *Lock
	git         *gitcmd.Runner
	remote      *lsremote.Remote // the change detector in front of the fetch
	log         *slog.Logger
	fileMode    os.FileMode
	dirMode     os.FileMode

	published  string // hash the link points at (a worktree under .worktrees), "" if none
	legacyPath string // an old-layout tree the link pointed at when we started, to remove after republishing
	lastRemote string // object name the last fetch brought (FETCH_HEAD, unpeeled)
	held       string // a commit --ref names that was refused (see Reject); "" once --ref moves
	synced     bool   // a fetch succeeded in this run
	refIsHash  bool   // --ref is a commit hash: once synced, nothing more to fetch
	needRepair bool   // the last attempt failed (or startup could not finish): repair first
	failures   int    // consecutive failed attempts
	gcBase     int64  // object store size after the last full gc in this run; 0 = none yet

	// For the relay (Options.Serve).
	recent      []string     // the commits published before the current one in this run, newest first (at most servedRecent)
	onDisk      []string     // trees kept on disk besides the current one, as of the last cleanup
	fetchedName string       // the full name FETCH_HEAD gave --ref ("" if it gave none)
	served      *servedState // what the served refs hold, once read or written
	gcPending   time.Time    // since when a collection has been put off for the relay's requests; zero if none
}

// Candidate is what Prepare found: the commit --ref names and, when the link
// has to move, a complete worktree for it. Publish takes it.
type Candidate struct {
	Hash    string // the commit to publish; on an idle poll, the published one
	Fetched bool   // this attempt fetched (an update sync; counts in git_fetch_count_total)
	NewHash bool   // Hash is not the published commit: checks and the pre-publish hook run for it
	// Held is, on an idle poll, a commit --ref still names that was
	// refused (see Reject): the refusal stands.
	Held string

	publish bool   // the link must point at Hash's worktree (new hash or rebuilt tree)
	aside   string // a replacement for the published tree, built beside it, to swap in
	remote  string // the object FETCH_HEAD named (unpeeled), for the change detector
}

// Object is the object the fetch of --ref named: an annotated tag's own
// object when --ref is one, else the commit (Hash). "" when nothing was
// fetched.
func (c Candidate) Object() string { return c.remote }

// Result describes one completed attempt.
type Result struct {
	Hash      string // the commit --ref names, as fetched (or as last fetched on a no-op)
	Fetched   bool   // this attempt fetched (an update sync)
	Published bool   // the link was flipped, or its tree replaced (new hash or rebuilt worktree)
	NewHash   bool   // the published hash changed
}

// Open locks the root and repairs whatever a killed or older run left in
// it. Only what retrying cannot fix is an error here: another live git-sync
// holding the root, or a root or link holding something git-sync will not
// destroy (see RefusedError). Anything else (a root that cannot be created
// or written, a repository that cannot be repaired yet) is left for the
// first attempt to report, so it follows --max-failures like any sync error.
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
	if src := localSource(opts.Repo); src != "" {
		r.source = src
		r.sourceGiven, _ = filepath.Abs(strings.TrimPrefix(opts.Repo, "file://"))
	}
	r.git = &gitcmd.Runner{
		Git: opts.Git,
		Log: r.log,
		Env: gitcmd.BuildEnv(opts.BaseEnv,
			"GIT_CONFIG_GLOBAL="+filepath.Join(r.stateDir, globalFile),
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CEILING_DIRECTORIES="+filepath.Dir(r.root),
			"GIT_TERMINAL_PROMPT=0",
			"GIT_OPTIONAL_LOCKS=0",
		),
	}
	keep := !lsremote.Unsafe(opts.UserConfig)
	if !keep {
		r.log.Log(ctx, slog.Level(-1), "--git-config sets a credential helper or includes other config; polls use git ls-remote, not a kept HTTP session")
	}
	r.remote = lsremote.New(r.git, r.root, opts.Repo, keep, opts.SSH, r.log)

	if kind, why := classifyRoot(r.root, r.source); kind == rootForeign {
		return nil, &RefusedError{Path: r.root, Reason: why}
	}
	if err := r.checkLink(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(r.root); err == nil {
		lock, err := AcquireLock(r.root)
		if errors.Is(err, ErrLocked) {
			return nil, err
		}
		r.lock = lock // nil on other errors: repair takes it
	}
	if err := r.repair(ctx); err != nil {
		var refused *RefusedError
		if errors.As(err, &refused) || errors.Is(err, ErrLocked) {
			r.Close()
			return nil, err
		}
		r.log.Log(ctx, slog.Level(-1), "the root could not be prepared yet; the first attempt tries again", "error", err.Error())
		r.needRepair = true
	}
	return r, nil
}

// Env is the environment git-sync gives its children (git and exec hooks),
// so that git commands run by hooks see the same configuration.
func (r *Repo) Env() []string { return r.git.Env }

// GitDir is the repository's git directory (what the relay serves).
func (r *Repo) GitDir() string { return r.gitDir }

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

// Prepare does the first half of an attempt: it repairs the root if the last
// attempt failed, checks the published tree (file reads only), asks the
// remote whether --ref moved, fetches it when it did (or when this is the
// run's first attempt, or the tree needs rebuilding), and makes sure a
// complete worktree exists for the fetched commit. Nothing a reader sees
// changes: the link moves in Publish.
//
// The published tree is never removed or modified while the link points at
// it. An intact tree that git-sync did not build here (git-sync v4's, or the
// volume mounted at another path) is adopted; a broken one is replaced by a
// tree built beside it and swapped in by Publish.
//
// With fetch set (a triggered sync), Prepare fetches without asking first;
// a fetch that finds the published commit, healthy, is then an idle poll.
func (r *Repo) Prepare(ctx context.Context, fetch bool) (c Candidate, err error) {
	defer func() {
		if err != nil {
			r.failed()
		}
	}()
	if r.needRepair {
		if err := r.repair(ctx); err != nil {
			return Candidate{}, err
		}
		r.needRepair = false
	}
	healthy := r.linkHealthy() && r.worktreeHealthy(r.published)
	if (r.synced || r.held != "") && healthy && !fetch {
		if r.refIsHash {
			return Candidate{Hash: r.published, Held: r.held}, nil
		}
		unchanged, err := r.remoteUnchanged(ctx)
		if err != nil {
			return Candidate{}, err
		}
		if unchanged {
			return Candidate{Hash: r.published, Held: r.held}, nil
		}
	}

	commit, fetched, err := r.fetch(ctx)
	if err != nil {
		return Candidate{}, err
	}
	r.held = "" // --ref moved (or is asked again): a new decision follows
	c = Candidate{Hash: commit, Fetched: true, remote: fetched}
	if commit == r.published && healthy {
		if r.synced {
			r.lastRemote = fetched
			return Candidate{Hash: commit}, nil
		}
		return c, nil
	}
	c.publish = true
	c.NewHash = commit != r.published
	switch {
	case r.worktreeHealthy(commit), r.adopt(ctx, commit):
	case r.isLive(commit):
		c.aside = filepath.Join(r.root, WorktreesDir, uniqueName(asidePrefix))
		r.log.Info("published worktree is damaged; building a replacement beside it", "hash", commit)
		if err := r.buildWorktree(ctx, c.aside, commit); err != nil {
			return Candidate{}, err
		}
	default:
		r.log.Log(ctx, slog.Level(-1), "building worktree", "hash", commit)
		if err := r.buildWorktree(ctx, r.worktreeDir(commit), commit); err != nil {
			return Candidate{}, err
		}
	}
	if err := r.writeManagedConfig(); err != nil {
		return Candidate{}, err
	}
	return c, nil
}

// isLive reports whether the link currently resolves to the worktree of
// hash, so that its directory must not be touched.
func (r *Repo) isLive(hash string) bool {
	target, err := os.Readlink(r.link)
	return err == nil && target == r.linkTarget(hash)
}

// Publish does the second half of an attempt: it points the link at the
// candidate's worktree (or swaps in a replacement tree), records the
// published commit in git-sync's branch, starts the stale clock of the
// previous tree, removes expired worktrees and collects garbage.
func (r *Repo) Publish(ctx context.Context, c Candidate) (res Result, err error) {
	defer func() {
		if err != nil {
			r.failed()
		} else {
			r.failures = 0
		}
	}()
	now := time.Now()
	if !c.Fetched {
		return Result{Hash: c.Hash}, r.finish(ctx, now)
	}
	res = Result{Hash: c.Hash, Fetched: true}
	if c.publish {
		if c.aside != "" {
			if err := r.swapIn(ctx, c.aside, c.Hash); err != nil {
				return Result{}, err
			}
		}
		prev := r.published
		if prev != "" && prev != c.Hash {
			// The clock starts before the flip: a kill right after it
			// must not leave the old tree looking stale since long ago.
			touch(r.worktreeDir(prev), now)
			r.recent = append([]string{prev}, r.recent[:min(len(r.recent), servedRecent-1)]...)
		}
		if err := r.publish(c.Hash); err != nil {
			return Result{}, err
		}
		r.published = c.Hash
		res.Published, res.NewHash = true, c.NewHash
	}
	r.synced, r.lastRemote = true, c.remote
	// The relay advertises the new commit right after the flip, before
	// the cleanup that may take a while on a large tree.
	if err := r.updateServed(ctx); err != nil {
		return Result{}, err
	}
	if r.ownRef() != c.Hash {
		if err := r.writeOwnRef(c.Hash); err != nil {
			return Result{}, err
		}
	}
	return res, r.finish(ctx, time.Now())
}

// Reject discards a candidate that must not be published (refused by a
// signature check or the publish gate): its worktree is removed, crash-safely,
// unless the link points at it, and the commit is remembered as held, so
// that polls stay idle until --ref moves instead of fetching and building it
// again. What is published does not change.
func (r *Repo) Reject(ctx context.Context, c Candidate) error {
	if !c.Fetched {
		return nil
	}
	r.held, r.lastRemote = c.Hash, c.remote
	if c.aside != "" {
		if err := r.removeTree(ctx, c.aside); err != nil {
			return fmt.Errorf("discard refused commit %s: %w", c.Hash, err)
		}
	}
	if !c.publish || r.isLive(c.Hash) {
		return nil
	}
	if err := r.removeWorktree(ctx, c.Hash); err != nil {
		r.failed()
		return fmt.Errorf("discard refused commit %s: %w", c.Hash, err)
	}
	r.log.Log(ctx, slog.Level(-1), "removed refused worktree", "hash", c.Hash)
	return nil
}

// failed records a failed attempt: the next one repairs first.
func (r *Repo) failed() {
	r.needRepair = true
	r.failures++
}

// fetch fetches --ref and returns the commit that this fetch brought.
func (r *Repo) fetch(ctx context.Context) (commit, fetched string, err error) {
	_, statErr := os.Stat(filepath.Join(r.gitDir, "shallow"))
	args := fetchArgs(r.opts.Repo, r.opts.Ref, r.opts.Depth, statErr == nil, r.opts.Filter)
	if _, err := r.git.Run(ctx, r.root, args...); err != nil {
		return "", "", fmt.Errorf("fetch %s from %s: %w", r.opts.Ref, redact.Text(r.opts.Repo), err)
	}
	content, err := os.ReadFile(filepath.Join(r.gitDir, "FETCH_HEAD"))
	if err != nil {
		return "", "", fmt.Errorf("read FETCH_HEAD: %w", err)
	}
	if len(content) == 0 {
		// git exits 0 when it refuses the ref it fetched (a warning on
		// stderr, such as "rejected ... shallow roots").
		return "", "", fmt.Errorf("fetch %s from %s: git fetched nothing (empty FETCH_HEAD); see -v=6 for its warnings", r.opts.Ref, redact.Text(r.opts.Repo))
	}
	fetched, desc, err := parseFetchHead(string(content))
	if err != nil {
		return "", "", err
	}
	if name := nameFromFetchHead(desc); name != "" {
		r.fetchedName = name
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

// finish removes expired worktrees (and an old-layout tree once the commit
// is republished), brings the relay's refs up to date, and, if anything
// was removed or a collection was put off (see gc), collects garbage. The
// safe.directory entries of removed worktrees stay until the
// next config write (after the next build): an entry naming a missing path
// is harmless, and rewriting the file here doubled the config writes of
// every update.
func (r *Repo) finish(ctx context.Context, now time.Time) error {
	removed, err := r.cleanup(ctx, r.published, now)
	if err != nil {
		return err
	}
	if err := r.updateServed(ctx); err != nil {
		return err
	}
	if r.removeLegacy(ctx) {
		removed++
	}
	if (removed > 0 || !r.gcPending.IsZero()) && ctx.Err() == nil {
		// Not when stopping: the next run collects what is unreachable.
		return r.gc(ctx)
	}
	return nil
}

// removeLegacy removes the git-sync v3 worktree the link pointed at when
// this run started. It is only called after a sync, and a sync with an
// old-layout link always republishes (the link is not healthy), so the
// commit is in the current layout by then.
func (r *Repo) removeLegacy(ctx context.Context) bool {
	if r.legacyPath == "" || r.published == "" {
		return false
	}
	if err := r.removeTree(ctx, r.legacyPath); err != nil {
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
