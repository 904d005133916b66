package auth

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSSHPath compares the remote command's path with git's own parse
// (git fetch-pack --diag-url) and the quoting with git's.
func TestSSHPath(t *testing.T) {
	for _, u := range []string{
		"ssh://git@example.com/org/repo.git",
		"ssh://example.com:2222/srv/r",
		"ssh://example.com/~user/repo",
		"ssh://example.com/~/repo",
		"git+ssh://[::1]:22/a%20b/c",
		"ssh+git://u@[::1]/x",
		"git@github.com:org/repo.git",
		"host:~user/repo",
		"host:/~user/repo",
		"host:a~b",
		"[git@host:2200]:org/repo",
		"host:/abs/it's!here",
	} {
		got, ok := sshPath(u)
		if !ok {
			t.Errorf("sshPath(%q) not ok", u)
			continue
		}
		out, err := exec.Command("git", "fetch-pack", "--diag-url", u).CombinedOutput()
		if err != nil {
			t.Fatalf("git fetch-pack --diag-url %s: %v\n%s", u, err, out)
		}
		want := ""
		for _, line := range strings.Split(string(out), "\n") {
			if p, ok := strings.CutPrefix(line, "Diag: path="); ok {
				want = p
			}
		}
		if got != want {
			t.Errorf("sshPath(%q) = %q, git says %q", u, got, want)
		}
	}
	for _, u := range []string{"https://h/r", "file:///r", "/local/path", "./a:b", "git://h/r"} {
		if p, ok := sshPath(u); ok {
			t.Errorf("sshPath(%q) = %q, want not SSH", u, p)
		}
	}
	if got, want := sqQuote("it's!"), `'it'\''s'\!''`; got != want {
		t.Errorf("sqQuote = %s, want %s", got, want)
	}
}
