package config

import (
	"fmt"
	"io"
	"strings"
)

// manSection is one titled part of the manual. Bodies are written flush
// left and pre-wrapped; WriteMan indents them.
type manSection struct {
	title string
	body  string
}

// manIndent is the indentation of section bodies in --man output.
const manIndent = "    "

// WriteMan writes the complete manual (--man): what git-sync does, the
// layout it maintains on disk, every flag in detail grouped by topic (from
// the parser's own table), the environment rules, the --git-config syntax,
// hooks, authentication, the HTTP endpoint and its metrics, exit codes and
// examples. Like WriteHelp it shows only built-in defaults, never values.
func WriteMan(w io.Writer) {
	var b strings.Builder
	for _, s := range manBefore {
		writeManSection(&b, s)
	}

	b.WriteString("OPTIONS\n")
	wrap(&b, "Each option is listed with its default and the environment variables that can set it, newest name first. "+
		"Durations are written like 500ms, 10s, 1m30s or 2h.", manIndent)
	opts := newParser(nil).opts
	for _, topic := range topicOrder {
		fmt.Fprintf(&b, "\n  %s\n", topic)
		if topic == topicOldFlags {
			wrap(&b, "These spellings from git-sync v3 are still accepted, with a warning in the log, and mean what is "+
				"described. When a deprecated spelling and its replacement are both given at the same level (both on the "+
				"command line, or both in the environment), the deprecated one wins, as it always has; a flag on the "+
				"command line still beats any variable.", manIndent)
		}
		for _, o := range opts {
			if o.topic != topic || o.hidden {
				continue
			}
			b.WriteString("\n" + manIndent + optionHeading(o) + "\n")
			wrap(&b, o.usage, manIndent+"    ")
			if o.more != "" {
				wrap(&b, o.more, manIndent+"    ")
			}
			if facts := optionFacts(o, true); facts != "" {
				wrap(&b, facts, manIndent+"    ")
			}
		}
	}
	b.WriteString("\n")

	for _, s := range manAfter {
		writeManSection(&b, s)
	}
	io.WriteString(w, b.String()) // nothing useful to do if stdout is gone
}

// writeManSection writes a title and its indented body.
func writeManSection(b *strings.Builder, s manSection) {
	b.WriteString(s.title + "\n")
	for _, line := range strings.Split(strings.Trim(s.body, "\n"), "\n") {
		if line == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString(manIndent + line + "\n")
	}
	b.WriteString("\n")
}

// manBefore are the sections printed before OPTIONS.
var manBefore = []manSection{
	{"NAME", `
git-sync - keep a local directory in step with a remote git ref
`},
	{"SYNOPSIS", `
git-sync --repo=URL --root=DIR [--ref=REF] [--link=NAME] [flags]
git-sync --help | --man | --version
`},
	{"DESCRIPTION", `
git-sync runs beside a program that needs the contents of a git repository
(Apache Airflow DAGs, web content, alerting rules, ...). It fetches one ref of
one repository, checks every new commit out into a tree of its own, and then
switches a symlink to that tree in a single atomic step. The program reads
the files through the symlink and never sees a half-written checkout.

By default git-sync keeps polling: it syncs at start, then every --period.
With --one-time it syncs once and exits. It is a drop-in replacement for
kubernetes/git-sync v4: the same flags, environment variables, metric names
and files on disk.

Git itself does the work: every repository operation runs the git program
(--git), so protocols, proxies, credential helpers and http.* settings
behave as they do for git on the command line.
`},
	{"THE ROOT DIRECTORY", `
--root belongs to git-sync. It is a repository without a checkout of its
own; the published trees are git worktrees of it:

  ROOT/.git               the object store, shared by all trees
  ROOT/.worktrees/HASH    one complete checkout per published commit
  ROOT/LINK -> .worktrees/HASH
                          the symlink consumers read (--link)

The link's target is relative, so the volume may be mounted at another path
in another container, and its last element is the full commit hash:
basename "$(readlink LINK)" prints the published hash. Each tree is a real
worktree: "git -C LINK rev-parse HEAD" and "git -C LINK log" work there.

Publishing builds the new tree completely, creates a temporary symlink next
to the link and renames it over the link (rename(2) is atomic). A reader
that resolves the link at any moment sees exactly one complete commit, and,
once the first sync has finished, never a missing link.

A tree that stops being published is removed after --stale-worktree-timeout
(at the next cleanup by default); --keep-worktrees=N keeps the N most
recently published trees besides the current one in any case, so a reader
that holds a tree for a while keeps it through a burst of commits. Objects no longer needed are reclaimed
according to --git-gc, only after a tree was removed, never on an idle poll.

The published commit is also kept on the branch refs/heads/git-sync (as
git-sync v4 does), so that each fetch tells the remote what is already
here and downloads only what changed. Other branches, tags and reflogs in
the root are removed: they would keep old commits on disk forever.

Anything else git-sync keeps (a lock file, private git configuration) lives
under hidden names (.git, .worktrees, .git-sync, .git-sync.lock) that --link,
--touch-file and --error-file may not use. One git-sync process owns a root:
a second one started on the same root (for example two pods sharing a
volume) fails at startup instead of corrupting the first one's state.

What git-sync finds in the root when it starts:

- Nothing, or only things that are not a git repository: the contents are
  deleted (never the directory itself) and the repository is created.
- A root written by git-sync v4 or by an earlier run of this git-sync,
  also when the volume is now mounted at another path: it is taken over as
  it is. A published tree git-sync did not build itself is checked once
  (every file against its commit) and then used without being touched, so
  readers never notice the swap of the image.
- A root written by git-sync v3: upgraded in place by the first sync.
- Someone else's repository (a clone with a checkout of its own, a bare
  repository, a .git file, or the --repo source itself) is refused with
  an error, never emptied: its branches, tags and files stay. Likewise a
  --link path that holds a file or a directory is refused, not replaced.

The published tree is never removed or modified while the link points at
it. If it is damaged (files deleted, someone committed in it), a
replacement is built beside it and swapped in with one atomic rename.
`},
	{"HOW ONE SYNC WORKS", `
1. Credentials are refreshed (password files re-read, the askpass URL
   called, a GitHub App token renewed when it is about to expire).
2. After a failed attempt, and at startup, the root is checked and
   repaired before anything else: lock files left by a killed git, a
   half-built tree, a dangling link, a deleted .git, HEAD or root, an
   unreadable .git/config and a deleted link directory are all fixed
   without help, keeping the published tree and re-creating only what is
   lost. Nothing of git-sync's runs between attempts, so every lock found
   then is stale. A git stopped by --sync-timeout gets SIGTERM first, so
   it can remove its own locks, and SIGKILL a second later.
3. The remote is asked whether the ref still names what the last fetch
   brought. If it does and the published tree is intact, nothing more
   happens (an idle poll). Over HTTP(S) the question is one request to a
   git remote helper that git-sync keeps running between polls (no process
   is started and only this ref is listed). Over SSH it is one session on
   the kept SSH connection (see SSH below) that git-sync opens itself: the
   server runs a fresh git-upload-pack, and no git, shell or ssh process is
   started here (so a --git wrapper does not see these polls). Otherwise,
   and whenever one of these fails, it is one "git ls-remote", with git's
   own errors. The first attempt of every run skips the question.
4. The ref is fetched by name (or by hash) at the configured --depth and
   --filter, and the commit published is the one that fetch returned. A
   branch that moves during the sync cannot make it fail. Force-pushed
   branches and moved tags are followed. If that commit is already
   published and its tree is intact, nothing changes; a damaged or missing
   tree is rebuilt in the same attempt.
5. Otherwise a new tree is checked out (sparse checkout and submodules
   applied), its signature is verified (--verify-signatures) and the
   publish gate runs (--publish-gate-command); if either refuses it, the
   tree is removed and the published one stays (see PUBLISH GATE AND
   SIGNATURES). Then the pre-publish hook runs, the link is switched, the
   post-publish hooks are started, old trees are removed, and finally
   --touch-file is touched.

Each attempt is limited by --sync-timeout. Failed attempts are retried after
--init-period (before the first success) or --period; too many in a row
(--init-max-failures, --max-failures) make git-sync exit with status 1.
--sync-on-signal names a signal that starts a sync at once. SIGTERM and
SIGINT stop git-sync promptly, leaving the published link in place; a
second one while it stops makes it exit at once, without finishing the
cleanup.

The first attempt of each run always fetches and counts as a sync, even when
the root already holds the right commit: it confirms that commit, runs the
post-publish hooks and touches --touch-file.
`},
}

// manAfter are the sections printed after OPTIONS.
var manAfter = []manSection{
	{"ENVIRONMENT", `
Every flag --some-name can be set with $GITSYNC_SOME_NAME instead. The older
$GIT_SYNC_SOME_NAME spellings, and the v3 names listed with each option, are
still read, with a deprecation warning in the log. The rules:

- A flag on the command line beats every environment variable.
- When several variables set the same option, the older spelling wins (this
  is what deployments that set old and new names side by side rely on).
- An empty variable counts as unset.
- Values are parsed strictly: a boolean must be one of 1, t, T, TRUE, true,
  True, 0, f, F, FALSE, false, False. A value that cannot be parsed
  (GITSYNC_ONE_TIME=maybe) stops git-sync with an error naming the
  variable.
- $GITSYNC_SSH_KEY_FILE takes a :-separated list of files.
- $GITSYNC_PASSWORD and $GITSYNC_GITHUB_APP_PRIVATE_KEY exist only as
  variables, so that secrets stay out of the process list.
`},
	{"GIT CONFIGURATION SYNTAX", `
--git-config takes key:value pairs separated by commas, for example

  --git-config='core.sshCommand:ssh -o ConnectTimeout=5,http.lowSpeedTime:30'

A key ends at the first ':'; a value ends at the next ',' and may contain
':' freely. To put a ',' in an unquoted value write \,. Keys and values may
be enclosed in double quotes, inside which ':' and ',' are plain
characters; a key containing ':' must be quoted. A URL in a subsection can
be written either way:

  --git-config='"url.https://host/.insteadOf":git@host:'
  --git-config='url."https://host/".insteadOf:git@host:'

Backslash escapes work everywhere: \n (newline), \t (tab), \" (quote),
\, (comma) and \\ (backslash); any other escape is an error, reported with
its position. Keys must have the form section.name.

--git-config sets each key, replacing any earlier value. --git-config-add
adds one more value to a multi-valued key (one key:value per use, same
syntax) and is applied after --git-config. The configuration lives in a private
file that every git process git-sync starts reads, including submodule
clones and git commands run by hooks.
`},
	{"HOOKS", `
Hooks tell other programs that a new commit was published.

--exechook-command runs a program, without arguments, in the new tree
(ROOT/.worktrees/HASH), with git-sync's environment plus its git settings
and GITSYNC_HASH set to the commit. --webhook-url sends one HTTP request
(--webhook-method) with the header Gitsync-Hash: HASH; it succeeds when the
response has status --webhook-success-status, or with any response when
that is 0 or -1.

Both run in the background after the link is switched, once for each new
commit. A failed hook is retried after its backoff until it succeeds. If a
newer commit is published meanwhile, the next attempt is for the newest one:
hooks never work through a queue of outdated commits.

Hooks must be idempotent. A hook may run more than once for the same commit:
every start of git-sync confirms the commit already on disk and runs the
post-publish hooks for it again.

--pre-publish-exechook-command runs in the new, fully checked-out tree
before the link is switched, and git-sync waits for its first attempt, so
whatever it writes is there when consumers see the tree. A failure does not
stop the commit from being published; the hook is retried in the
background. It does not run for a commit that is already published.

With --one-time each hook the sync fired gets exactly one attempt, and
git-sync waits for it: the exit status is 1 if any of them failed.
`},
	{"PUBLISH GATE AND SIGNATURES", `
Two checks can stop a new commit from being published. Both run on the
new, complete tree before the link is switched, signatures first, so that
the gate (which runs the repository's code) only sees verified commits.
If either refuses the commit, nothing a reader sees changes: the published
tree stays, the refused tree is removed, the refusal is logged as an error
(and written to --error-file, which stays until a commit is published),
and polls stay idle until --ref moves. A refusal is not a failed sync: it
does not count towards --max-failures. With --one-time it makes the exit
status 1.

--publish-gate-command runs a program, without arguments, in the new tree,
with the same environment as the exec hooks (GITSYNC_HASH included). Exit
status 0 publishes. Any other status, or running longer than
--publish-gate-timeout (the program's whole process group is then killed),
refuses the commit; the error quotes the last 20 lines of what it wrote to
stdout and stderr, and git_sync_gate_rejections_total counts it. The
verdict is remembered per commit: a refused commit is not gated again on
every poll, only when --ref names it again after moving. The pre-publish
hook keeps its meaning (it never stops a publish) and runs after the gate.

An Airflow gate that refuses DAG folders with import errors:

  #!/bin/sh
  # publish-gate.sh: runs in the new tree; exit 0 publishes it.
  exec python3 - <<'PY'
  import sys
  from airflow.models import DagBag
  bag = DagBag(dag_folder="dags", include_examples=False)
  for path, err in bag.import_errors.items():
      print(f"{path}: {err}", file=sys.stderr)
  sys.exit(1 if bag.import_errors else 0)
  PY

  git-sync ... --publish-gate-command=/scripts/publish-gate.sh \
      --publish-gate-timeout=2m

--verify-signatures=commit publishes only a commit with a good signature
from a trusted key; --verify-signatures=tag requires --ref to be an
annotated tag with a good signature (a lightweight tag or a branch is
refused). Trusted keys come from --allowed-signers-file (SSH signatures,
one "PRINCIPAL [OPTIONS] KEYTYPE KEY" line per key, as git's
gpg.ssh.allowedSignersFile and ssh-keygen(1) describe) and/or
--gpg-keyring-file (armored OpenPGP public keys, as "gpg --armor --export"
writes them; git-sync imports them into a private keyring it creates at
startup and removes at exit). Both files are re-read when they change, so
keys can be rotated without a restart; a commit refused for its key is
checked again when they do. Verification fails closed: an unsigned commit
or tag, a bad signature, an unknown key, an expired key (or one outside
its valid-after/valid-before), or a missing key file refuses the commit
with an error that says which, counted by
git_sync_signature_failures_total{reason}.

Only the commit (or tag) to be published is verified, never its history.
With --depth=1, the default, git-sync has only that commit; with a deeper
history the ancestors are still not checked. A signed tip vouches for its
tree, not for how earlier commits were made.
`},
	{"AUTHENTICATION", `
git-sync hands credentials to git through git's credential protocol, keyed on
the exact --repo URL; they never appear in URLs, arguments or logs, and git
never prompts (it fails instead). The methods:

- Username and password: --username with $GITSYNC_PASSWORD or
  --password-file (exactly one). The file is read again before every sync,
  so tokens can be rotated. Credentials written into an http(s) --repo URL
  are taken out of it and used the same way.
- --credential: JSON objects with "url", "username" and one of "password"
  and "password-file", for other URLs (submodules on other hosts), for
  example
    --credential='{"url":"https://host/org","username":"bot","password-file":"/secret/token"}'
- --askpass-url: a URL fetched before every sync, whose answer gives
  username=... and password=... lines.
- GitHub App: a private key (--github-app-private-key-file or
  $GITSYNC_GITHUB_APP_PRIVATE_KEY), the app's --github-app-application-id
  or --github-app-client-id, and --github-app-installation-id. git-sync
  exchanges a signed request for an installation token at --github-base-url
  and renews it before it expires.
- SSH: used for ssh:// and scp-like URLs, with the keys in --ssh-key-file and
  host keys checked against --ssh-known-hosts-file (unless
  --ssh-known-hosts=false). --add-user helps when the container runs as a
  user that has no /etc/passwd entry.
  git-sync keeps one SSH connection to the --repo host: it starts an
  OpenSSH master (ControlMaster) as its own child, with the same ssh
  command, and every poll and fetch opens a session on it instead of
  logging in again. Fetches run git, whose ssh uses the master; idle polls
  of an SSH --repo open their session on the master from git-sync itself
  (OpenSSH's multiplexing protocol) and speak git's protocol directly, as
  long as url.*.insteadOf leaves the --repo URL as it is. The master sends
  GIT_PROTOCOL (SendEnv), as git's own ssh does, so servers whose sshd
  accepts it (AcceptEnv GIT_PROTOCOL) answer with protocol v2. The master
  ends with git-sync (on SIGTERM, and on a SIGKILL of git-sync alone
  through the kernel's parent-death signal; no ControlPersist, which would
  leave it in the background). It is replaced
  when the contents of a key file or the known-hosts file change (a rotated
  secret mount) and after 10 minutes. Submodules on other hosts, or as
  other users, connect on their own each time; those on the same host, port
  and user share it. When the master cannot be set up, or the server
  refuses a session on it (sshd's MaxSessions), ssh connects on its own
  with its own error messages, and git-sync says so once in the log. A
  GIT_SSH_COMMAND that sets any Control* option (or -M, -S, -O) leaves
  connection sharing to the user. Metrics: git_sync_ssh_kept_connection (1
  while a master is up) and git_sync_ssh_kept_connection_renewals_total
  {reason=key_file|known_hosts|repo|age|lost}.
- Cookies: --cookie-file makes git use /etc/git-secret/cookie_file.

Every method answers git's credential request for the --repo URL whatever
its scheme (file:// included), so a --git wrapper that runs
"git credential fill" for url=<--repo> gets them too. Credentials are held
in git-sync's memory and served by git-sync itself, as git's only credential
helper, over a unix socket in an owner-only directory (see FILES GIT-SYNC
WRITES); no helper or cache outlives git-sync.

Password files, --ssh-key-file and --ssh-known-hosts-file may appear after
git-sync starts (a secret mounted or written late): until they are there,
each sync fails, is logged and counts against --max-failures like any other
failed sync; with --max-failures=-1 git-sync keeps trying and syncs as soon
as they appear.
`},
	{"FILES GIT-SYNC WRITES", `
git-sync writes only:

- --root, which it owns, and --link, --touch-file and --error-file when
  they point outside it (missing parent directories are created).
- With credentials to serve (--username, --askpass-url, --credential or a
  GitHub App) or an SSH --repo: one owner-only directory,
  git-sync-auth-XXXXXXXX, holding the credential helper's socket and the
  kept SSH connection's control socket (no secret), removed on exit (one
  left by a killed git-sync is removed by the next one). It goes in
  $TMPDIR (default /tmp) when the socket paths fit there (a unix socket
  path has at most 107 bytes, so $TMPDIR may have at most 68 bytes, or 22
  with an SSH --repo), else in /tmp, else in /dev/shm; a long, missing or
  read-only $TMPDIR is never an error. Otherwise nothing is created.
- /etc/passwd, with --add-user only.

Nothing is written under $HOME (git reads git-sync's private configuration
in --root instead of ~/.gitconfig, and ssh is told where its keys and known
hosts are): HOME may be unset, missing or read-only.

In Kubernetes with readOnlyRootFilesystem: true, mount the --root volume
and, when git-sync has credentials, an emptyDir at /tmp (hooks usually want
one too). --add-user cannot work on a read-only root filesystem: run as a
user that the image's /etc/passwd already has.
`},
	{"HTTP ENDPOINT", `
With --http-bind=ADDRESS git-sync serves HTTP, already while the first sync
is running:

  GET /                 503 until the first sync succeeded, then 200; use it
                        for readiness. With --max-staleness=D also 503 while
                        the last success is older than D
  GET /livez            200 unless a sync attempt has run more than 30s past
                        --sync-timeout (the loop is stuck); use it for
                        liveness
  GET /status           the state as JSON (below); a browser (Accept:
                        text/html) gets a page that refreshes itself
  POST /sync            sync now; needs Authorization: Bearer <the content
                        of --sync-token-file>; 202, 401, or 404 when no
                        token file is set
  POST /webhook         a forge's push notification, checked against
                        --webhook-secret-file (below)
  GET /metrics          Prometheus metrics (with --http-metrics)
  /debug/pprof/         Go profiling data (with --http-pprof)

With --webhook-bind=ADDRESS, /sync and /webhook are served there instead, on
a listener of their own, so that an Ingress can expose them without exposing
metrics or profiling. Both listeners limit how long a client may take to
send a request (10s for the headers, 30s in all), the size of headers
(64 KiB) and the connections open at once (128).

GET /status answers, times in RFC 3339 UTC and null while there is no value:

  {"repo": "https://github.com/org/dags.git", "ref": "main",
   "link": "/git/dags", "hash": "<published commit>",
   "published_at": "...", "last_attempt": "...", "last_success": "...",
   "consecutive_failures": 0, "last_error": null,
   "worktrees": ["<hash>", ...], "next_attempt": "...", "version": "..."}

repo has its credentials and query removed; last_error is the last error
logged, as --error-file holds it (message: error), until a success clears
it; hash, published_at and worktrees are read from disk when asked.

POST /webhook recognises the forge by its headers and verifies it its own
way, comparing in constant time:

  GitHub          X-GitHub-Event push or ping; X-Hub-Signature-256 is
                  sha256=<hex HMAC-SHA256 of the body>
  GitLab          X-Gitlab-Event "Push Hook" or "Tag Push Hook";
                  X-Gitlab-Token is the secret itself
  Gitea, Forgejo  X-Gitea-Event / X-Forgejo-Event push;
                  X-Gitea-Signature / X-Forgejo-Signature is the hex HMAC
  Bitbucket       X-Event-Key repo:refs_changed (Data Center) or repo:push
                  (Cloud); X-Hub-Signature is sha256=<hex HMAC>

A push that changes --ref (a branch or tag of that name, or the full ref
name) triggers a sync: 202 "accepted". With --ref=HEAD a push to the
default branch the payload names does (Bitbucket payloads do not name it:
any branch push does). A push to another ref, or another event, is 202
"ignored"; a ping is 200; a bad or missing signature 401; an unreadable
payload 400; a body over 1 MiB 413; any method but POST 405. Triggers
coalesce: any number of them during a sync cause exactly one more sync.
The secret and token files are read again whenever they change, so a
rotated Kubernetes Secret takes effect without a restart. With webhooks
in place --period can be long (5m, 1h): it only catches missed
notifications.

Retries: --period-jitter spreads every wait; --failure-backoff-max doubles
the wait after each failure in a row up to that maximum; a remote that
answers HTTP 429 or 503 makes git-sync wait at least the period, doubling on
repeats, whatever the flags say, and log "the remote asks git-sync to slow
down".

Metrics:

  git_sync_duration_seconds{status}       summary of sync durations
  git_sync_count_total{status}            syncs by status: success, error,
                                          noop (idle poll)
  git_fetch_count_total                   syncs that fetched and published
  git_sync_askpass_calls{status}          calls of --askpass-url
  git_sync_refresh_github_app_token_count{status}
                                          GitHub App token renewals
  git_sync_hook_run_count_total{name,status}
                                          hook runs by hook and outcome
  git_sync_gate_rejections_total          commits the publish gate refused
  git_sync_signature_failures_total{reason}
                                          commits refused by signature
                                          verification: unsigned,
                                          bad-signature, unknown-key,
                                          expired-key, not-annotated-tag,
                                          no-keys, verify-failed
  git_sync_worktrees_kept                 trees on disk besides the
                                          published one (--keep-worktrees)
  git_sync_last_attempt_timestamp_seconds when the last attempt ended
  git_sync_last_success_timestamp_seconds when the last success ended
  git_sync_consecutive_failures           failed attempts in a row
  git_sync_triggers_total{source}         reasons to sync: period, signal,
                                          http (POST /sync), webhook
  git_sync_webhook_requests_total{forge,result}
                                          webhook requests; result is
                                          accepted, ignored, unauthorized,
                                          malformed or too_large
  git_sync_ssh_kept_connection            1 while a kept SSH connection
                                          to the --repo host is up
  git_sync_ssh_kept_connection_renewals_total{reason}
                                          kept SSH connections replaced:
                                          key_file, known_hosts, repo,
                                          age or lost
  git_sync_serve_requests_total{result}   git requests on --serve-bind:
                                          ok, error, busy, unauthorized,
                                          forbidden, not_found, bad_request
  git_sync_serve_bytes_sent_total         bytes sent on --serve-bind
  git_sync_serve_active_requests          git requests being served

and the standard go_* and process_* series of Prometheus' Go client
(process_open_fds, process_max_fds, process_resident_memory_bytes,
go_goroutines, go_memstats_*, go_gc_duration_seconds, ...).
`},
	{"SERVING (RELAY)", `
With --serve-bind=ADDRESS git-sync also serves what it published,
read-only, over git's smart HTTP protocol (v2, and v0/v1 for old clients),
with git's own upload-pack. One git-sync (the relay) fetches from the git
host; the others (followers), plain git and Airflow's GitDagBundle fetch
from it:

  git clone http://git-sync-relay:8080/repo.git
  git-sync --repo=http://git-sync-relay:8080/repo.git --period=2s ...

Any path works (one repository per relay). What is served:

- HEAD and the --ref name (refs/heads/NAME for a branch, refs/tags/NAME
  for a tag, at the tag object) point at the published commit, and only
  after the link has flipped to it. With --ref=HEAD or a hash, HEAD alone.
  Followers can use --ref=HEAD or the relay's --ref. A commit that was
  fetched but is not published (being checked, or refused by the publish
  gate or signature verification) is never advertised, nor sent to a
  client that names it by hash (git's protocol v2 upload-pack does not
  check that; the relay checks the commits a v2 fetch asks for itself).
- Every commit whose tree is still on disk (--stale-worktree-timeout,
  --keep-worktrees) and the three commits published before the current one
  can be fetched by hash, as clients that pin a version do (Airflow's versioned
  DAG bundles), together with the history below them that the relay has.
- The relay's own --depth bounds the history it can serve: at the default
  (1) followers get one commit whatever --depth they ask for. git-sync
  followers are fine with that. Clients that keep a clone and run plain
  "git fetch" in it (Airflow's GitDagBundle, people) are not: each new
  commit of a depth-1 relay arrives as a new shallow root, which git
  refuses without --update-shallow, silently (exit 0). Run a relay for
  them with --depth=0. Followers' --filter=blob:none and
  --sparse-checkout-file work as against any server.
- Pushes get 403; other paths 404.

Garbage collection (--git-gc) never runs while a request is being served,
so it cannot remove objects a running upload-pack is about to send: while
requests are in flight it is put off and tried again at every poll; after
10 minutes of that it waits for the running requests, and new requests
wait for it (a relay that always has a clone in flight still collects).

Limits: --serve-max-requests requests at once (503 with Retry-After: 1
beyond); 10s for a request's headers and 60s for its body; a response that
makes no progress for 60s is ended (a client that stopped reading cannot
hold an upload-pack). With --serve-token-file, every request needs the
token, as an HTTP Basic password (any user name; followers use
--password-file and any --username) or an Authorization: Bearer header.
On SIGTERM, running requests get 1s to finish.

Followers learn of a new commit by polling the relay: an idle poll is one
protocol v2 ls-refs request (one upload-pack on the relay), cheap enough
for --period=1s or 2s. docs/deploy.md has a relay Deployment and Service,
and Airflow examples.
`},
	{"LOGGING", `
git-sync logs JSON objects, one per line, on standard error, each with
"time", "level" (INFO, WARN or ERROR), "v" (the verbosity of the record, a
number), "msg" and key/value pairs; an error is under the key "error". -v
sets how much: 0 logs updates and errors, 1 details of updates, 2 the sync
loop, 3 and 4 more of it, 5 every git command, 6 their output too, 9
everything.
Passwords, tokens, keys and credentials in URLs are never logged, at any
level. With --error-file the last error logged is also kept in a file, as a
JSON object.
`},
	{"EXIT STATUS", `
0   --help, --man or --version; --one-time when the sync and the hooks it
    fired succeeded; a clean stop after SIGTERM or SIGINT.
1   an invalid configuration (the reason is printed), too many failed syncs
    in a row, or a failed --one-time sync or hook, or a --one-time commit
    refused by signature verification or the publish gate.
128+N
    a second stop signal N while stopping: 143 after SIGTERM, 130 after
    SIGINT.
`},
	{"EXAMPLES", `
Sync a branch every 30 seconds into /git/dags (readers use /git/dags/repo):

  git-sync --repo=https://github.com/example/repo --ref=main \
      --root=/git/dags --period=30s

Clone once, as a Kubernetes init container, and exit:

  git-sync --repo=git@github.com:example/repo.git --root=/git --one-time \
      --ssh-key-file=/etc/git-secret/ssh

Apache Airflow: a sidecar next to the scheduler keeps DAGs up to date in a
shared emptyDir volume; Airflow's dags_folder points at the link:

  containers:
  - name: git-sync
    image: git-sync
    env:
    - {name: GITSYNC_REPO, value: "https://github.com/example/dags.git"}
    - {name: GITSYNC_REF, value: "main"}
    - {name: GITSYNC_ROOT, value: "/git"}
    - {name: GITSYNC_LINK, value: "repo"}
    - {name: GITSYNC_PERIOD, value: "60s"}
    - {name: GITSYNC_DEPTH, value: "1"}
    - {name: GITSYNC_MAX_FAILURES, value: "-1"}
    - {name: GITSYNC_USERNAME, value: "airflow-bot"}
    - name: GITSYNC_PASSWORD
      valueFrom: {secretKeyRef: {name: git-credentials, key: token}}
    - {name: GITSYNC_HTTP_BIND, value: ":8000"}
    - {name: GITSYNC_HTTP_METRICS, value: "true"}
    volumeMounts:
    - {name: dags, mountPath: /git}
  # Airflow: AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags/repo, with the
  # same volume mounted at /opt/airflow/dags. The relative link still
  # resolves there.

Run a command after each update, in the new tree:

  git-sync --repo=https://host/org/site.git --root=/srv/git --link=site \
      --exechook-command=/usr/local/bin/reload-site

Rewrite URLs of submodules hosted elsewhere:

  git-sync --repo=https://host/org/app.git --root=/git \
      --git-config='"url.https://mirror.example/.insteadOf":https://github.com/'
`},
}
