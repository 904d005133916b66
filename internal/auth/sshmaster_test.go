package auth

import (
	"strings"
	"testing"
)

func TestParseSSHDest(t *testing.T) {
	tests := []struct {
		repo string
		want sshDest
		ok   bool
	}{
		{"ssh://git@example.com/org/repo.git", sshDest{User: "git", Host: "example.com"}, true},
		{"ssh://git@example.com:2222/org/repo", sshDest{User: "git", Host: "example.com", Port: "2222"}, true},
		{"git+ssh://example.com/r", sshDest{Host: "example.com"}, true},
		{"ssh+git://u@[::1]:22/r", sshDest{User: "u", Host: "::1", Port: "22"}, true},
		{"git@github.com:org/repo.git", sshDest{User: "git", Host: "github.com"}, true},
		{"[git@host:2200]:org/repo", sshDest{User: "git", Host: "host", Port: "2200"}, true},
		{"host:repo", sshDest{Host: "host"}, true},
		{"https://example.com/r", sshDest{}, false},
		{"/local/path", sshDest{}, false},
		{"ssh://-oProxyCommand=x/r", sshDest{}, false},
		{"ssh://h:port/r", sshDest{}, false},
	}
	for _, tt := range tests {
		got, ok := parseSSHDest(tt.repo)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseSSHDest(%q) = %+v, %v; want %+v, %v", tt.repo, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSSHSharingPossible(t *testing.T) {
	for base, want := range map[string]bool{
		"":                               true,
		"ssh -F /etc/cfg":                true,
		"ssh -o ConnectTimeout=5 -v":     true,
		"ssh -o ControlPath=none":        false,
		"ssh -oControlMaster=auto":       false,
		"ssh -S /tmp/sock":               false,
		"ssh -M":                         false,
		"ssh -vM":                        false,
		"/usr/local/bin/wrapper -p 2222": true,
	} {
		if got := sshSharingPossible(base); got != want {
			t.Errorf("sshSharingPossible(%q) = %v, want %v", base, got, want)
		}
	}
}

// TestSSHCommandSharing: git's ssh only ever uses a master (never becomes
// one, never persists); the master command is git's plus master options,
// execed so that ssh is git-sync's child, and keeps the user's base first.
func TestSSHCommandSharing(t *testing.T) {
	o := SSHOptions{Base: "ssh -F '/my cfg'", KeyFiles: []string{"/k"}, KnownHosts: true, KnownHostsFile: "/kh", ControlDir: "/tmp/git-sync-auth-0123abcd"}
	client := SSHCommand(o)
	for _, want := range []string{"ssh -F '/my cfg' ", "-o BatchMode=yes", "-o IdentityFile=/k", "-o StrictHostKeyChecking=yes",
		"-o ControlMaster=no -o ControlPath=/tmp/git-sync-auth-0123abcd/%C"} {
		if !strings.Contains(client, want) {
			t.Errorf("client command %q lacks %q", client, want)
		}
	}
	if strings.Contains(client, "ControlPersist") {
		t.Errorf("client command %q sets ControlPersist", client)
	}
	master := sshMasterCommand(o, sshDest{User: "git", Host: "h", Port: "2222"})
	if !strings.HasPrefix(master, "exec ssh -F '/my cfg' ") {
		t.Errorf("master command %q does not exec the user's base first", master)
	}
	for _, want := range []string{"-o ControlMaster=yes", "-o ControlPersist=no", "-N", "-p 2222 git@h", "-o UserKnownHostsFile=/kh"} {
		if !strings.Contains(master, want) {
			t.Errorf("master command %q lacks %q", master, want)
		}
	}
	plain := SSHCommand(SSHOptions{})
	if strings.Contains(plain, "Control") {
		t.Errorf("without a control dir, %q mentions Control", plain)
	}
}
