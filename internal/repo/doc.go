// Package repo owns git-sync's on-disk contract.
//
// The root is one git repository (ROOT/.git, no checkout of its own). Each
// published commit is a linked worktree at ROOT/.worktrees/HASH, built
// completely and marked complete before a uniquely named temporary symlink is
// renamed over the link, so a reader resolving the link always sees exactly
// one whole commit. What gets published is always the commit that the fetch
// of this attempt brought (FETCH_HEAD, peeled), never a hash learned by a
// separate command: that is the property that makes the shallow-fetch race of
// git-sync v3 impossible here. The published commit is also kept on the
// branch refs/heads/git-sync, as git-sync v4 does, so that each fetch offers
// it to the remote and downloads only what changed.
//
// An attempt has two halves. Prepare repairs the root if the previous
// attempt failed, fetches, and makes sure a complete worktree exists for
// the fetched commit; nothing a reader sees changes. Publish moves the link
// (or swaps in a replacement tree), updates the branch and cleans up.
// Between the two the caller runs the pre-publish hook.
//
// Invariants that make a kill at any instant safe:
//   - the tree the link points at is never removed or modified; a damaged
//     one is replaced by a tree built beside it and swapped in atomically;
//   - a worktree is trusted only with its completion marker, written last,
//     or after a check that every file matches its commit (trees written by
//     git-sync v4, or in a root mounted at another path, are adopted so);
//   - removal renames a tree to a trash name before deleting anything;
//   - the previous tree's stale clock starts before the link moves;
//   - after any failed attempt, stale locks and half-built trees are
//     cleared and a lost or damaged repository is re-created, keeping the
//     published tree.
//
// Roots that hold someone else's repository (a clone, a bare repository,
// the source of --repo) and a --link that is not a symlink are refused, not
// emptied: see RefusedError.
//
// Everything else under the root lives in reserved hidden names: the lock
// file .git-sync.lock (survives when the root is emptied) and the state
// directory .git-sync/ (private git configuration).
package repo
