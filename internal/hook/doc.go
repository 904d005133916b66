// Package hook runs git-sync's hooks: the exec hook and webhook fired after a
// commit is published, and the pre-publish exec hook run before the link
// flips (docs/CONTRACT.md, section 5).
//
// A Hook is one kind of notification and knows how to make a single attempt
// for a commit hash. A Runner wraps a Hook with the retry policy:
//
//   - Send is the post-publish path. It never blocks; it records the newest
//     hash in a single slot that the Run worker picks up. Hashes are not
//     queued: if several are sent while an attempt runs or backs off, only
//     the newest is attempted next (latest wins), because consumers care
//     about the commit that is published now, not the ones it replaced.
//   - A failed attempt is retried after exactly the backoff, measured from
//     the end of the failed attempt. The next attempt after a failure waits
//     for the backoff even when a newer hash arrived meanwhile (it is then
//     made for the newer hash): this keeps a broken receiver from being
//     hammered by a fast stream of commits.
//   - Once an attempt for a hash succeeds, sending that hash again does
//     nothing, so a hook fires once per new hash within a run (idle polls
//     and rebuilt worktrees re-send the current hash). Hooks can still fire
//     twice for a hash across restarts, so they must be idempotent.
//   - Once makes exactly one synchronous attempt and returns its error. It
//     serves --one-time and the pre-publish hook, whose caller waits for the
//     first attempt and then, on failure, calls Send with the same hash to
//     keep retrying in the background.
//
// At most one attempt of a given Runner runs at a time.
package hook
