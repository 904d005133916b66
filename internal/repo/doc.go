// Package repo owns git-sync's on-disk contract (SPEC sections 1 and 2).
//
// The root is one git repository (ROOT/.git, no checkout of its own). Each
// published commit is a linked worktree at ROOT/.worktrees/HASH, built
// completely and marked complete before a uniquely named temporary symlink is
// renamed over the link, so a reader resolving the link always sees exactly
// one whole commit. What gets published is always the commit that the fetch
// of this attempt brought (FETCH_HEAD, peeled), never a hash learned by a
// separate command: that is the property that makes the shallow-fetch race of
// git-sync v3 impossible here.
//
// Everything else under the root lives in reserved hidden names: the lock
// file .git-sync.lock (survives when the root is emptied) and the state
// directory .git-sync/ (private git configuration).
package repo
