// Package auth gives git the credentials git-sync was configured with,
// without ever writing a secret where another process could read it.
//
// # How credentials reach git
//
// git-sync's private global git config names the git-sync binary itself as
// git's only credential helper (see GitConfig). When git needs a password it
// runs that helper, a short-lived child of git; the helper (HelperMain)
// forwards git's request over a unix socket to the running git-sync, whose
// Auth answers from memory, and prints the answer back to git. The socket
// lives in a directory only git-sync's user can enter (mode 0700), created by
// New and removed by Close. Secrets therefore never appear in argv, in the
// environment, in URLs, in HTTP headers chosen by git-sync, or in files; and
// nothing keeps running once git-sync has exited (there is no daemon to
// outlive it, unlike git's credential-cache). A git-sync killed with
// SIGKILL leaves its empty directory behind; the next New of the same user
// removes such directories once nobody listens on their socket.
//
// The helper, its socket and its directory exist only when there are
// credentials to serve (--username, --askpass-url, --credential or a GitHub
// App); otherwise git is given no helper at all. The directory
// (git-sync-auth-XXXXXXXX) goes in $TMPDIR when the socket path fits there
// (a unix socket path has at most 107 bytes, so $TMPDIR at most 68) and in
// /tmp, else /dev/shm, when it does not or when $TMPDIR is missing or
// read-only: a long $TMPDIR never stops git-sync (see fallbackParents).
//
// git never prompts: GIT_TERMINAL_PROMPT=0, an empty GIT_ASKPASS (which also
// stops git from falling back to core.askPass or SSH_ASKPASS) and
// SSH_ASKPASS_REQUIRE=never, and ssh runs with BatchMode=yes. With no
// matching credentials the helper answers nothing and git fails.
//
// # Which credentials answer a request
//
// credential.useHttpPath is on, so git asks with the full URL (scheme, host
// with port, path). URLs are compared after normalisation: scheme and host
// lower-cased, the default port of http (80) and https (443) dropped, and
// leading and trailing slashes of the path removed (git itself strips them
// and percent-decodes, as net/url does). Any scheme is keyed the same way,
// file:// (whose host is empty) included: git asks only about http(s) on
// its own, but users' --git wrappers run `git credential fill` for
// whatever --repo is, and must get the same answer.
//
//  1. Credentials for --repo (the GitHub App token with username "-", else
//     the last --askpass-url answer, else --username with $GITSYNC_PASSWORD
//     or --password-file) answer only requests for exactly the --repo URL.
//  2. Otherwise the --credential entry whose URL covers the request answers:
//     an entry covers a request with the same scheme and host whose path
//     equals the entry's path or continues it after a "/" (an entry without
//     a path covers the whole host). When several entries cover a request
//     the one with the longest path wins; among equal paths the first given.
//  3. Otherwise the helper answers nothing.
//
// Password files (--password-file and the password-file of --credential
// entries) are read by every Refresh, the first one included (New does not
// read them: a file that is not there yet fails a sync, not the start); one
// trailing line break (LF or CRLF) is removed, since secrets mounted from
// files usually end with one.
//
// # SSH
//
// Env sets GIT_SSH_COMMAND (built by the pure SSHCommand): a user-set
// GIT_SSH_COMMAND is kept and extended (ssh uses the first value given for
// an option, so the user's own -o settings win over ours), BatchMode=yes,
// one -i per key file with IdentitiesOnly=yes, and strict host key checking
// against the known-hosts file unless --ssh-known-hosts=false. The default
// key file (/etc/git-secret/ssh) is used only if it exists; other key files
// are used whether they exist yet or not. When --repo is an SSH URL
// (ssh://, git+ssh://, ssh+git:// or scp-like host:path), a missing
// non-default key file, or a missing known-hosts file with checking on,
// makes Refresh fail, so each sync attempt fails and counts against
// --max-failures until the file appears (secrets are often mounted late);
// for other repos it is only logged (ssh may still be reached through
// submodules, and would then fail with its own message), so that
// deployments that set these flags for every repo keep working. GIT_SSH_COMMAND takes precedence over a core.sshCommand given
// with --git-config (put ssh options in GIT_SSH_COMMAND instead, as with
// upstream git-sync). ssh writes nothing under HOME with these options, so an unset or
// read-only HOME is fine (ssh still needs a passwd entry for the UID: see
// --add-user).
//
// # Kept SSH connection
//
// For an SSH --repo, every git ssh command gets ControlMaster=no and
// ControlPath=<private dir>/%C, and Refresh keeps one OpenSSH master for
// the --repo destination (sshmaster.go): started by git-sync itself,
// through the shell with "exec" so that ssh is git-sync's own child, with
// the same command (user's GIT_SSH_COMMAND first, BatchMode, IdentityFile,
// strict host keys) plus ControlMaster=yes, ControlPersist=no, -N and
// keepalives. Sessions to the same host, port and user (the %C hash) share
// it; any other host (a submodule elsewhere) finds no socket and connects on
// its own, so a master can never carry another host's traffic. When the
// master is not up, or the server refuses a session on it (MaxSessions),
// ssh itself connects directly: git's errors are ssh's own, as before. The
// master also has SendEnv=GIT_PROTOCOL, as git gives its own ssh: a
// master forwards only the variables its own SendEnv names.
//
// Idle polls need no ssh client at all: OpenSSHSession (sshmux.go) speaks
// OpenSSH's multiplexing protocol to the master's socket and asks for a new
// session running a command, handing the master three pipe ends (SCM_RIGHTS)
// as the command's stdin, stdout and stderr; the master relays them and
// reports the exit status. Without a master up it returns ErrNoKeptSSH and
// the caller runs git.
//
// Lifetime: Close (SIGTERM) ends it; if git-sync alone is SIGKILLed, the
// kernel's parent-death signal (SIGTERM, set from a goroutine locked to its
// thread for the master's whole life, since the signal follows the thread)
// ends it, and ssh removes its socket. ControlPersist is never used: it
// forks the master into the background, beyond both. A master is replaced
// (OpenSSH's stop-listening request over the control socket: new sessions
// go to the new master, the old one exits when its sessions end, or after 2
// minutes) when the contents of a key file or the known-hosts file change,
// and after 10 minutes; a master that ended is started again. One that
// cannot be set up is logged once and retried after 30 s, doubling up to
// 10 minutes, or at once when a watched file changes. A GIT_SSH_COMMAND
// that configures sharing itself (Control*, -M, -S, -O), or whose ssh is
// not the shell's own process (the master must be git-sync's child), gets
// no master. The private directory then needs room for ssh's socket name
// (%C plus the 17 bytes of ssh's temporary name): $TMPDIR at most 22 bytes,
// else /tmp. The directory holds a lock file flocked for git-sync's
// lifetime, so the stale-directory sweep never removes a live one.
//
// # GitHub App
//
// An installation token is fetched with an RS256 JWT signed by the app's
// private key (PKCS#1 or PKCS#8 PEM) and renewed by Refresh when it expires
// within 30 seconds.
package auth
