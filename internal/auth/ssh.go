package auth

import (
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
	// selectKeyFiles).
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

// selectKeyFiles decides which configured key files ssh gets. The default
// key file is used only when it exists. A missing non-default file is an
// error when the repo is reached over ssh (sshRepo) and a warning otherwise.
func selectKeyFiles(files []string, sshRepo bool, exists func(string) bool) (keys, warnings []string, err error) {
	for _, f := range files {
		switch {
		case f == "":
			continue
		case exists(f):
			keys = append(keys, f)
		case f == DefaultSSHKeyFile:
			// Not mounted: the usual case for https repos.
		case sshRepo:
			return nil, nil, fmt.Errorf("--ssh-key-file %s: file not found", f)
		default:
			warnings = append(warnings, fmt.Sprintf("--ssh-key-file %s: file not found (ignored: --repo does not use ssh)", f))
		}
	}
	return keys, warnings, nil
}

// checkKnownHosts applies the same rule to the known-hosts file.
func checkKnownHosts(enabled bool, file string, sshRepo bool, exists func(string) bool) (warning string, err error) {
	if !enabled || exists(file) {
		return "", nil
	}
	if file == "" {
		if sshRepo {
			return "", fmt.Errorf("--ssh-known-hosts is on but --ssh-known-hosts-file is empty")
		}
		return "--ssh-known-hosts is on but --ssh-known-hosts-file is empty: ssh host keys cannot be verified", nil
	}
	if sshRepo {
		return "", fmt.Errorf("--ssh-known-hosts-file %s: file not found (or use --ssh-known-hosts=false)", file)
	}
	return fmt.Sprintf("--ssh-known-hosts-file %s: file not found: ssh host keys cannot be verified", file), nil
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
