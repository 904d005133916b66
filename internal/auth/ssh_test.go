package auth

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestSSHCommand(t *testing.T) {
	tests := []struct {
		name string
		in   SSHOptions
		want string
	}{
		{
			name: "defaults without keys",
			in:   SSHOptions{KnownHosts: true, KnownHostsFile: "/etc/git-secret/known_hosts"},
			want: "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/etc/git-secret/known_hosts",
		},
		{
			name: "one key",
			in:   SSHOptions{KeyFiles: []string{"/etc/git-secret/ssh"}, KnownHosts: true, KnownHostsFile: "/kh"},
			want: "ssh -o BatchMode=yes -o IdentityFile=/etc/git-secret/ssh -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/kh",
		},
		{
			name: "two keys, known hosts off",
			in:   SSHOptions{KeyFiles: []string{"/k/a", "/k/b"}, KnownHostsFile: "/ignored"},
			want: "ssh -o BatchMode=yes -o IdentityFile=/k/a -o IdentityFile=/k/b -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
		},
		{
			name: "user's command extended",
			in:   SSHOptions{Base: "  ssh -F /my/config  ", KeyFiles: []string{"/k"}},
			want: "ssh -F /my/config -o BatchMode=yes -o IdentityFile=/k -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
		},
		{
			name: "paths quoted for the shell and for ssh",
			in:   SSHOptions{KeyFiles: []string{"/my keys/it's"}, KnownHosts: true, KnownHostsFile: "/a b/100%/k\"h"},
			want: `ssh -o BatchMode=yes -o 'IdentityFile="/my keys/it'\''s"' -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o 'UserKnownHostsFile="/a b/100%%/k\"h"'`,
		},
		{
			name: "verbose",
			in:   SSHOptions{Verbose: 5},
			want: "ssh -vvv -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SSHCommand(tt.in); got != tt.want {
				t.Errorf("SSHCommand() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestSSHCommandShellWords runs the command through the shell, as git does,
// with a base that prints its arguments.
func TestSSHCommandShellWords(t *testing.T) {
	cmd := SSHCommand(SSHOptions{
		Base:           `printf '%s\n'`,
		KeyFiles:       []string{"/my keys/it's $HOME `x`", "/plain"},
		KnownHosts:     true,
		KnownHostsFile: "/k h",
	})
	out, err := exec.Command("sh", "-c", cmd+` "$@"`, "ssh", "host", "git-upload-pack '/r'").Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	want := []string{
		"-o", "BatchMode=yes",
		"-o", "IdentityFile=\"/my keys/it's $HOME `x`\"",
		"-o", "IdentityFile=/plain",
		"-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", `UserKnownHostsFile="/k h"`,
		"host", "git-upload-pack '/r'",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("shell words:\n%q\nwant\n%q", got, want)
	}
}

func TestSelectKeyFiles(t *testing.T) {
	present := map[string]bool{"/present": true, "/also": true, DefaultSSHKeyFile + ".x": true}
	exists := func(p string) bool { return present[p] }
	tests := []struct {
		name     string
		files    []string
		sshRepo  bool
		keys     []string
		warnings int
		err      string
	}{
		{"default missing", []string{DefaultSSHKeyFile}, true, nil, 0, ""},
		{"default present", []string{"/present"}, true, []string{"/present"}, 0, ""},
		{"several, order kept", []string{"/also", DefaultSSHKeyFile, "/present", ""}, true, []string{"/also", "/present"}, 0, ""},
		{"explicit missing, ssh repo", []string{"/present", "/gone"}, true, nil, 0, "--ssh-key-file /gone: file not found"},
		{"explicit missing, https repo", []string{"/gone", "/present"}, false, []string{"/present"}, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, warnings, err := selectKeyFiles(tt.files, tt.sshRepo, exists)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(keys, tt.keys) || len(warnings) != tt.warnings {
				t.Errorf("keys = %q, warnings = %q; want %q and %d warnings", keys, warnings, tt.keys, tt.warnings)
			}
		})
	}
}

func TestCheckKnownHosts(t *testing.T) {
	exists := func(p string) bool { return p == "/kh" }
	tests := []struct {
		enabled bool
		file    string
		sshRepo bool
		warn    bool
		err     bool
	}{
		{true, "/kh", true, false, false},
		{true, "/missing", true, false, true},
		{true, "/missing", false, true, false},
		{true, "", true, false, true},
		{true, "", false, true, false},
		{false, "/missing", true, false, false},
	}
	for _, tt := range tests {
		w, err := checkKnownHosts(tt.enabled, tt.file, tt.sshRepo, exists)
		if (w != "") != tt.warn || (err != nil) != tt.err {
			t.Errorf("checkKnownHosts(%v, %q, %v) = %q, %v", tt.enabled, tt.file, tt.sshRepo, w, err)
		}
	}
}

func TestShellQuote(t *testing.T) {
	tests := map[string]string{
		"/usr/bin/git-sync": "/usr/bin/git-sync",
		"":                  "''",
		"a b":               "'a b'",
		"it's":              `'it'\''s'`,
		"$x":                "'$x'",
	}
	for in, want := range tests {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSSHVerbosity(t *testing.T) {
	for v, want := range map[int]int{0: 0, 4: 0, 5: 1, 6: 1, 7: 2, 8: 2, 9: 3, 12: 3} {
		if got := sshVerbosity(v); got != want {
			t.Errorf("sshVerbosity(%d) = %d, want %d", v, got, want)
		}
	}
}
