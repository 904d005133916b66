package repo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gitsync/internal/atomicfile"
	"gitsync/internal/config"
	"gitsync/internal/gitconfig"
)

// RefusedError means --root or --link holds something git-sync did not
// create and will not destroy. Retrying cannot help, so it ends the run.
type RefusedError struct {
	Path   string
	Reason string
}

func (e *RefusedError) Error() string { return "refusing to use " + e.Path + ": " + e.Reason }

// repair brings the root into a state a sync can run in, with the same
// rules at startup and after any failed attempt: nothing of git-sync's runs
// between attempts, so every lock file found is stale, and whatever a
// killed git, a full disk or a person left broken is fixed here, keeping
// the published tree and re-creating only what is lost.
//
// It costs a directory listing, a walk of the repository's small
// directories (not of the objects), and one git process to check the
// repository's config; it never runs on an idle poll.
func (r *Repo) repair(ctx context.Context) error {
	if err := os.MkdirAll(r.root, 0o777); err != nil {
		return fmt.Errorf("create --root %s: %w", r.root, err)
	}
	if !r.lock.Held() {
		r.lock.Release()
		lock, err := AcquireLock(r.root)
		if err != nil {
			return err
		}
		r.lock = lock
	}
	switch kind, why := classifyRoot(r.root, r.source); kind {
	case rootForeign:
		return &RefusedError{Path: r.root, Reason: why}
	case rootOther:
		r.log.Info("--root holds something that is not a git-sync repository; emptying it", "root", r.root)
		if err := emptyDir(r.root, LockFileName); err != nil {
			return err
		}
	}
	if err := r.checkLink(); err != nil {
		return err
	}
	if err := os.MkdirAll(r.stateDir, 0o700|r.dirMode); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	if err := r.writeManagedConfig(); err != nil {
		return err
	}
	if err := writePrivateConfig(ctx, r.git, r.stateDir, r.opts.UserConfig, r.fileMode); err != nil {
		return err
	}
	if err := r.repairGitDir(ctx); err != nil {
		return err
	}
	r.dropForeignRefs()
	r.pruneAdminDirs()
	if err := os.MkdirAll(filepath.Dir(r.link), 0o777); err != nil {
		return fmt.Errorf("create directory for --link: %w", err)
	}
	r.removeTempLinks()
	r.readPublished()
	if r.failures >= 2 {
		r.checkOwnRef(ctx)
	}
	return nil
}

// repairGitDir makes ROOT/.git a usable repository: created when missing or
// when its object store or refs are gone (worktrees and the link stay; they
// are adopted again once the commit is fetched), otherwise cleared of stale
// locks, given a HEAD, and given a config git can parse.
func (r *Repo) repairGitDir(ctx context.Context) error {
	if !gitDirIntact(r.gitDir) {
		if _, err := os.Lstat(r.gitDir); err == nil {
			r.log.Info("the repository in --root is damaged beyond repair; creating it again", "path", r.gitDir)
			if err := r.moveToTrash(r.gitDir); err != nil {
				return err
			}
		}
		return r.initRepo(ctx)
	}
	removeStaleLocks(r.gitDir)
	if err := repairHEAD(r.gitDir); err != nil {
		return err
	}
	cfg := filepath.Join(r.gitDir, "config")
	if _, err := r.git.Run(ctx, r.root, "config", "--file", cfg, "--list"); err != nil {
		r.log.Info("the repository's config is unreadable; writing it again", "path", cfg, "error", err.Error())
		if err := os.Remove(cfg); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove damaged %s: %w", cfg, err)
		}
		return r.initRepo(ctx)
	}
	return r.reconcileLocalConfig(ctx)
}

// moveToTrash moves path into the state directory and deletes it there, so
// that a kill in between leaves nothing under a name git would use.
func (r *Repo) moveToTrash(path string) error {
	trash := filepath.Join(r.stateDir, uniqueName("trash-"))
	if err := os.Rename(path, trash); err != nil {
		return fmt.Errorf("move %s aside: %w", path, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		r.log.Error("remove damaged repository", "path", trash, "error", err.Error())
	}
	return nil
}

// initRepo runs git init in the root (creating the repository, or
// re-creating a missing config in an existing one) and appends the
// repository's own settings.
func (r *Repo) initRepo(ctx context.Context) error {
	args := []string{"init", "--quiet", "--initial-branch=git-sync"}
	if r.opts.GroupWrite {
		args = append(args, "--shared=group")
	}
	if _, err := r.git.Run(ctx, r.root, args...); err != nil {
		return fmt.Errorf("initialise repository in %s: %w", r.root, err)
	}
	// A fresh config is known, so append ours directly rather than
	// spending a git process per key.
	f, err := os.OpenFile(filepath.Join(r.gitDir, "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("configure repository: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(gitconfig.Render(r.localConfig())); err != nil {
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
func (r *Repo) localConfig() []gitconfig.Entry {
	return []gitconfig.Entry{
		{Key: "remote.origin.url", Value: r.opts.Repo},
		{Key: "core.sparseCheckout", Value: fmt.Sprint(r.opts.SparseCheckoutFile != "")},
	}
}

// writeManagedConfig writes the part of the private global config git-sync
// owns: the safe.directory entries for exactly the root, the worktrees that
// exist and a --repo on this machine (so volumes and sources owned by
// another UID work without safe.directory=*), and the extra settings
// (credentials).
//
// fetch.unpackLimit=1 keeps what each fetch brings as one pack instead of
// loose objects: a few kilobytes per update instead of a 4 KiB file per
// object, and what the cheap store bound in gc counts.
func (r *Repo) writeManagedConfig() error {
	entries := []gitconfig.Entry{
		{Key: "safe.directory", Value: r.root},
		{Key: "gc.autoDetach", Value: "false"},
		{Key: "core.logAllRefUpdates", Value: "false"},
		{Key: "advice.detachedHead", Value: "false"},
		{Key: "fetch.unpackLimit", Value: "1"},
	}
	for _, p := range r.sourceSafeDirs() {
		entries = append(entries, gitconfig.Entry{Key: "safe.directory", Value: p})
	}
	if names, err := os.ReadDir(filepath.Join(r.root, WorktreesDir)); err == nil {
		for _, e := range names {
			if config.IsCommitHash(e.Name()) {
				entries = append(entries, gitconfig.Entry{Key: "safe.directory", Value: r.worktreeDir(e.Name())})
			}
		}
	}
	entries = append(entries, r.serveConfig()...)
	entries = append(entries, r.opts.ExtraConfig...)
	return atomicfile.Write(filepath.Join(r.stateDir, managedFile), []byte(gitconfig.Render(entries)), r.fileMode)
}

// sourceSafeDirs are the directories git checks the ownership of when it
// reads a --repo on this machine: the repository itself (bare) or its .git
// (with a checkout), under the name given and the resolved one.
func (r *Repo) sourceSafeDirs() []string {
	if r.source == "" {
		return nil
	}
	var dirs []string
	seen := map[string]bool{}
	for _, base := range []string{r.sourceGiven, r.source} {
		for _, d := range []string{base, filepath.Join(base, ".git")} {
			if base != "" && !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

// dropForeignRefs deletes every ref but git-sync's own branch, and every
// reflog. Refs left by git-sync v3 (branches, remote-tracking refs, tags
// fetched with --tags) or by hand would pin superseded commits against gc
// forever; roots that hold someone else's repository never get here (see
// classifyRoot). git-sync v4's branch may sit in packed-refs after its gc;
// it is kept, as a loose ref.
func (r *Repo) dropForeignRefs() {
	packed := filepath.Join(r.gitDir, "packed-refs")
	if own := packedRef(packed, OwnRef); own != "" && r.ownRef() == "" {
		_ = r.writeOwnRef(own)
	}
	_ = os.Remove(packed)
	r.served = nil // packed served refs went too: read them again
	r.dropServed()
	// Reflogs pin every commit they ever named; git-sync writes none itself
	// (core.logAllRefUpdates=false), so drop those an earlier tool left.
	_ = os.RemoveAll(filepath.Join(r.gitDir, "logs"))
	for _, d := range []string{"heads", "tags", "remotes"} {
		dir := filepath.Join(r.gitDir, "refs", d)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if d == "heads" && e.Name() == filepath.Base(OwnRef) && !e.IsDir() {
				continue
			}
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// packedRef returns the object name of ref in a packed-refs file, or "".
func packedRef(path, ref string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		hash, name, ok := strings.Cut(sc.Text(), " ")
		if ok && name == ref && config.IsCommitHash(hash) {
			return hash
		}
	}
	return ""
}

// ownRef returns the commit git-sync's branch names, or "".
func (r *Repo) ownRef() string {
	b, err := os.ReadFile(filepath.Join(r.gitDir, OwnRef))
	if err != nil {
		return ""
	}
	if h := strings.TrimSpace(string(b)); config.IsCommitHash(h) {
		return h
	}
	return ""
}

// writeOwnRef points git-sync's branch at hash the way git does: the new
// value goes to "<ref>.lock" (created exclusively) and is renamed over the
// ref, so git never reads half a ref and a killed write leaves only a lock
// file, which repair removes. No reflog is written.
func (r *Repo) writeOwnRef(hash string) error {
	path := filepath.Join(r.gitDir, OwnRef)
	if err := os.MkdirAll(filepath.Dir(path), r.dirMode); err != nil {
		return fmt.Errorf("update %s: %w", OwnRef, err)
	}
	lock := path + ".lock"
	f, err := os.OpenFile(lock, os.O_WRONLY|os.O_CREATE|os.O_EXCL, r.fileMode)
	if err != nil {
		return fmt.Errorf("update %s: %w", OwnRef, err)
	}
	_, werr := f.WriteString(hash + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(lock, path)
	}
	if werr != nil {
		os.Remove(lock)
		return fmt.Errorf("update %s: %w", OwnRef, werr)
	}
	return nil
}

// checkOwnRef deletes git-sync's branch when objects it reaches are
// missing (a damaged object store). Every fetch offers that commit as one
// the repository has, so the remote would never send the missing objects
// again and every attempt would fail the same way. Without the branch the
// next fetch brings the whole tree. It runs only after repeated failures:
// it reads every tree of the commit.
func (r *Repo) checkOwnRef(ctx context.Context) {
	if r.ownRef() == "" {
		return
	}
	args := []string{"rev-list", "--objects", "--quiet"}
	if r.opts.Filter != "" {
		args = append(args, "--missing=allow-promisor")
	}
	if _, err := r.git.Run(ctx, r.root, append(args, OwnRef)...); err != nil {
		r.log.Info("objects of the published commit are missing; the next fetch brings them all again", "error", err.Error())
		_ = os.Remove(filepath.Join(r.gitDir, OwnRef))
	}
}
