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

func TestPlanSSHFiles(t *testing.T) {
	present := map[string]bool{"/present": true, "/also": true, "/kh": true, DefaultSSHKeyFile + ".x": true}
	key := func(p string) sshFile { return sshFile{"--ssh-key-file", p} }
	kh := func(p string) sshFile { return sshFile{"--ssh-known-hosts-file", p} }
	tests := []struct {
		name       string
		files      []string
		knownHosts bool
		khFile     string
		sshRepo    bool
		keys       []string
		required   []sshFile
		notes      int
		err        string
	}{
		{"default key missing", []string{DefaultSSHKeyFile}, false, "", true, nil, nil, 0, ""},
		{"default key present", []string{DefaultSSHKeyFile}, false, "", true, []string{DefaultSSHKeyFile}, nil, 0, ""},
		{"given key present", []string{"/present"}, false, "", true, []string{"/present"}, []sshFile{key("/present")}, 0, ""},
		{"several, order kept", []string{"/also", DefaultSSHKeyFile, "/present", ""}, true, "/kh", true,
			[]string{"/also", "/present"}, []sshFile{key("/also"), key("/present"), kh("/kh")}, 0, ""},
		// Missing files are used and required all the same: Refresh
		// fails until they appear.
		{"given key missing, ssh repo", []string{"/present", "/gone"}, true, "/gone-kh", true,
			[]string{"/present", "/gone"}, []sshFile{key("/present"), key("/gone"), kh("/gone-kh")}, 0, ""},
		{"given key missing, https repo", []string{"/gone", "/present"}, true, "/gone-kh", false,
			[]string{"/gone", "/present"}, nil, 2, ""},
		{"known hosts off", nil, false, "/gone-kh", true, nil, nil, 0, ""},
		{"known hosts on, no file, ssh repo", nil, true, "", true, nil, nil, 0, "--ssh-known-hosts-file is empty"},
		{"known hosts on, no file, https repo", nil, true, "", false, nil, nil, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exists := func(p string) bool { return present[p] || p == DefaultSSHKeyFile && tt.name == "default key present" }
			keys, required, notes, err := planSSHFiles(tt.files, tt.knownHosts, tt.khFile, tt.sshRepo, exists)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(keys, tt.keys) || !reflect.DeepEqual(required, tt.required) || len(notes) != tt.notes {
				t.Errorf("keys = %q, required = %q, notes = %q\nwant %q, %q and %d notes", keys, required, notes, tt.keys, tt.required, tt.notes)
			}
		})
	}
}

func TestCheckSSHFiles(t *testing.T) {
	exists := func(p string) bool { return p == "/here" }
	if err := checkSSHFiles([]sshFile{{"--ssh-key-file", "/here"}}, exists); err != nil {
		t.Fatal(err)
	}
	err := checkSSHFiles([]sshFile{{"--ssh-key-file", "/here"}, {"--ssh-key-file", "/k"}, {"--ssh-known-hosts-file", "/kh"}}, exists)
	want := "--ssh-key-file /k: file not found\n--ssh-known-hosts-file /kh: file not found (or use --ssh-known-hosts=false)"
	if err == nil || err.Error() != want {
		t.Fatalf("checkSSHFiles = %v, want %q", err, want)
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
