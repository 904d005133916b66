package auth

import (
	"errors"
	"fmt"
	"strings"
)

// Default locations of git-sync's secrets (upstream's conventions).
const (
	DefaultSSHKeyFile = "/etc/git-secret/ssh"
	DefaultCookieFile = "/etc/git-secret/cookie_file"
)

// SSHOptions is everything SSHCommand needs.
type SSHOptions struct {
	// Base is the user's own GIT_SSH_COMMAND, extended rather than replaced;
	// empty means plain "ssh".
	Base string
	// KeyFiles are the identity files, in order (already filtered: see
	// planSSHFiles).
	KeyFiles []string
	// KnownHosts turns strict host key checking on, against KnownHostsFile.
	KnownHosts     bool
	KnownHostsFile string
	// Verbose is the number of -v flags for ssh (0 to 3).
	Verbose int
	// ControlDir, when set, is the owner-only directory of git-sync's kept
	// SSH connection: ssh then uses a master's socket there when one is up
	// for the host it connects to, and connects on its own otherwise. It
	// never becomes a master itself (see sshMasterCommand).
	ControlDir string
}

// SSHCommand returns the value of GIT_SSH_COMMAND for o. git runs it
// through the shell with the host and remote command appended, so every
// path is quoted for the shell.
func SSHCommand(o SSHOptions) string {
	parts := sshCommandParts(o)
	if o.ControlDir != "" {
		parts = append(parts, "-o", "ControlMaster=no", "-o", controlPathOption(o.ControlDir))
	}
	return strings.Join(parts, " ")
}

// sshMasterCommand returns the shell command that runs git-sync's kept
// connection to dest: the same ssh command as git's (the user's
// GIT_SSH_COMMAND, keys, batch mode, host key checking), as a master in
// the foreground (ControlMaster=yes, ControlPersist=no: never forked into
// the background), with no remote command (-N, which also makes a master
// told to stop listening exit once its sessions are done), and keepalives
// so that a connection that silently died is noticed and replaced instead
// of stalling every session. SendEnv=GIT_PROTOCOL is what git gives its
// own ssh: a master passes on only the variables its own SendEnv names,
// so without it every shared session would lose git's protocol version
// (git's fetches, and git-sync's idle polls, see OpenMuxSession). "exec" keeps ssh the shell's own process, so
// that it is git-sync's child.
func sshMasterCommand(o SSHOptions, dest sshDest) string {
	parts := append([]string{"exec"}, sshCommandParts(o)...)
	parts = append(parts,
		"-o", "ControlMaster=yes", "-o", controlPathOption(o.ControlDir), "-o", "ControlPersist=no",
		"-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3",
		"-o", "SendEnv=GIT_PROTOCOL",
		"-N", "-n")
	for _, a := range dest.args() {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

// controlPathOption is the ControlPath option for a socket in dir named by
// controlName.
func controlPathOption(dir string) string {
	return shellQuote("ControlPath=" + sshConfigWord(sshPercentEscape(dir)+"/"+controlName))
}

// sshCommandParts is the ssh command without connection sharing.
func sshCommandParts(o SSHOptions) []string {
	base := strings.TrimSpace(o.Base)
	if base == "" {
		base = "ssh"
	}
	parts := []string{base}
	if o.Verbose > 0 {
		parts = append(parts, "-"+strings.Repeat("v", min(o.Verbose, 3)))
	}
	parts = append(parts, "-o", "BatchMode=yes")
	for _, k := range o.KeyFiles {
		// Not -i: ssh checks a -i path literally before expanding its
		// %-tokens, so a path containing '%' cannot be given that way.
		parts = append(parts, "-o", shellQuote("IdentityFile="+sshConfigWord(sshPercentEscape(k))))
	}
	if len(o.KeyFiles) > 0 {
		// Without keys, leave ssh its defaults (~/.ssh/id_*, an agent).
		parts = append(parts, "-o", "IdentitiesOnly=yes")
	}
	if o.KnownHosts {
		parts = append(parts,
			"-o", "StrictHostKeyChecking=yes",
			"-o", shellQuote("UserKnownHostsFile="+sshConfigWord(sshPercentEscape(o.KnownHostsFile))))
	} else {
		parts = append(parts,
			"-o", "StrictHostKeyChecking=no",
			"-o", "UserKnownHostsFile=/dev/null")
	}
	return parts
}

// sshSharingPossible reports whether git-sync may add connection sharing
// to the user's GIT_SSH_COMMAND base: not when it already says something
// about it (a Control* option, -S, -M, -O), which is then the user's to
// manage.
func sshSharingPossible(base string) bool {
	if strings.Contains(strings.ToLower(base), "control") {
		return false
	}
	for _, f := range strings.Fields(base) {
		if len(f) < 2 || f[0] != '-' || f[1] == '-' || f[1] == 'o' {
			continue
		}
		if strings.ContainsAny(f[1:2], "SMO") || strings.Trim(f[1:], "46AaCfGgKkMNnqsTtVvXxYy") == "" && strings.Contains(f, "M") {
			return false
		}
	}
	return true
}

// sshDest is where git's ssh connects for an SSH --repo: ssh's -p port
// (when the URL names one) and [user@]host.
type sshDest struct{ User, Host, Port string }

// args are the arguments git gives ssh before the remote command.
func (d sshDest) args() []string {
	var a []string
	if d.Port != "" {
		a = append(a, "-p", d.Port)
	}
	host := d.Host
	if d.User != "" {
		host = d.User + "@" + host
	}
	return append(a, host)
}

// String is dest for logs, e.g. git@example.com:22.
func (d sshDest) String() string {
	s := d.Host
	if d.User != "" {
		s = d.User + "@" + s
	}
	if d.Port != "" {
		s += " port " + d.Port
	}
	return s
}

// parseSSHDest finds where git's ssh connects for repo: ssh://,
// git+ssh:// and ssh+git:// URLs ([user@]host[:port]/path, an IPv6 host in
// brackets) and the scp-like form ([user@]host:path, or [user@host:port]:path
// and [host:port]:path as git reads them). ok is false for anything else,
// and for a host git would refuse (one that starts with "-").
func parseSSHDest(repo string) (d sshDest, ok bool) {
	if scheme, rest, found := strings.Cut(repo, "://"); found {
		switch strings.ToLower(scheme) {
		case "ssh", "git+ssh", "ssh+git":
		default:
			return d, false
		}
		hostport, _, _ := strings.Cut(rest, "/")
		if at := strings.LastIndexByte(hostport, '@'); at >= 0 {
			d.User, hostport = hostport[:at], hostport[at+1:]
		}
		if strings.HasPrefix(hostport, "[") {
			end := strings.IndexByte(hostport, ']')
			if end < 0 {
				return d, false
			}
			d.Host, hostport = hostport[1:end], hostport[end+1:]
			if p, found := strings.CutPrefix(hostport, ":"); found {
				d.Port = p
			} else if hostport != "" {
				return d, false
			}
		} else if h, p, found := strings.Cut(hostport, ":"); found {
			d.Host, d.Port = h, p
		} else {
			d.Host = hostport
		}
	} else {
		if !isSSHRepo(repo) {
			return d, false
		}
		if strings.HasPrefix(repo, "[") {
			end := strings.Index(repo, "]:")
			if end < 0 {
				return d, false
			}
			inside := repo[1:end]
			if at := strings.LastIndexByte(inside, '@'); at >= 0 {
				d.User, inside = inside[:at], inside[at+1:]
			}
			if h, p, found := strings.Cut(inside, ":"); found && !strings.Contains(p, ":") {
				d.Host, d.Port = h, p
			} else {
				d.Host = inside
			}
		} else {
			hostpart, _, _ := strings.Cut(repo, ":")
			if at := strings.LastIndexByte(hostpart, '@'); at >= 0 {
				d.User, hostpart = hostpart[:at], hostpart[at+1:]
			}
			d.Host = hostpart
		}
	}
	if d.Port == "" && strings.HasSuffix(d.Host, ":") {
		d.Host = strings.TrimSuffix(d.Host, ":")
	}
	if d.Host == "" || strings.HasPrefix(d.Host, "-") || strings.HasPrefix(d.User, "-") ||
		strings.Trim(d.Port, "0123456789") != "" {
		return sshDest{}, false
	}
	return d, true
}

// sshVerbosity maps git-sync's -v level to ssh's -v count (5 -> -v,
// 7 -> -vv, 9 -> -vvv), so that ssh explains itself in the logged stderr of
// git commands at the levels that log them.
func sshVerbosity(v int) int {
	switch {
	case v >= 9:
		return 3
	case v >= 7:
		return 2
	case v >= 5:
		return 1
	}
	return 0
}

// sshFile is a file ssh needs before a sync can work: a key file or the
// known-hosts file, named by its flag for messages.
type sshFile struct{ flag, path string }

// planSSHFiles decides which key files ssh gets and which files must exist
// for a sync to be attempted:
//   - the default key file is used only when it exists (not mounted is the
//     usual case for https repos);
//   - every other key file is used whether it exists yet or not: secrets are
//     often mounted or written after git-sync starts;
//   - when the repo is reached over ssh (sshRepo), those key files and the
//     known-hosts file (with checking on) are required: Refresh fails each
//     attempt, counted like any sync error, until they are there;
//   - for other repos a missing one is only noted (ssh may still be reached
//     through a submodule, and would then fail with its own message).
//
// The only error is a configuration that can never work: checking on with
// no known-hosts file named, for an ssh repo.
func planSSHFiles(keyFiles []string, knownHosts bool, knownHostsFile string, sshRepo bool, exists func(string) bool) (keys []string, required []sshFile, notes []string, err error) {
	var files []sshFile
	for _, f := range keyFiles {
		switch {
		case f == "":
		case f == DefaultSSHKeyFile:
			if exists(f) {
				keys = append(keys, f)
			}
		default:
			keys = append(keys, f)
			files = append(files, sshFile{"--ssh-key-file", f})
		}
	}
	if knownHosts {
		if knownHostsFile == "" {
			if sshRepo {
				return nil, nil, nil, fmt.Errorf("--ssh-known-hosts is on but --ssh-known-hosts-file is empty")
			}
			notes = append(notes, "--ssh-known-hosts is on but --ssh-known-hosts-file is empty: ssh host keys cannot be verified")
		} else {
			files = append(files, sshFile{"--ssh-known-hosts-file", knownHostsFile})
		}
	}
	if sshRepo {
		return keys, files, notes, nil
	}
	for _, f := range files {
		if !exists(f.path) {
			notes = append(notes, fmt.Sprintf("%s %s: file not found (--repo does not use ssh; a submodule that does would fail)", f.flag, f.path))
		}
	}
	return keys, nil, notes, nil
}

// checkSSHFiles reports the required files that do not exist.
func checkSSHFiles(required []sshFile, exists func(string) bool) error {
	var errs []error
	for _, f := range required {
		if exists(f.path) {
			continue
		}
		hint := ""
		if f.flag == "--ssh-known-hosts-file" {
			hint = " (or use --ssh-known-hosts=false)"
		}
		errs = append(errs, fmt.Errorf("%s %s: file not found%s", f.flag, f.path, hint))
	}
	return errors.Join(errs...)
}

// sshPercentEscape protects a path from ssh's %-token expansion, which ssh
// applies to identity and known-hosts file names.
func sshPercentEscape(p string) string { return strings.ReplaceAll(p, "%", "%%") }

// sshConfigWord quotes an option value for ssh's own config-line parsing
// (-o KEY=VALUE splits VALUE at blanks; UserKnownHostsFile takes a list).
func sshConfigWord(s string) string {
	if !strings.ContainsAny(s, " \t\"'\\") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// shellQuote quotes s for a POSIX shell, leaving plain words as they are.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
