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
}

// SSHCommand returns the value of GIT_SSH_COMMAND for o. git runs it
// through the shell with the host and remote command appended, so every
// path is quoted for the shell.
func SSHCommand(o SSHOptions) string {
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
	return strings.Join(parts, " ")
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
