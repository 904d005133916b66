package gitconfig

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	got := Render([]Entry{
		{Key: "safe.directory", Value: "/a b"},
		{Key: "url.https://host/x.y/.insteadOf", Value: `git@host:"q"`},
		{Key: "nodot", Value: "skipped"},
	})
	want := "[safe]\n\tdirectory = \"/a b\"\n[url \"https://host/x.y/\"]\n\tinsteadOf = \"git@host:\\\"q\\\"\"\n"
	if got != want {
		t.Fatalf("Render =\n%s\nwant\n%s", got, want)
	}
}

// TestRenderReadByGit checks that git reads back exactly what was rendered,
// for values that need every kind of quoting.
func TestRenderReadByGit(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git not found: %v", err)
	}
	entries := []Entry{
		{Key: "a.b", Value: `back\slash "quoted" tab	and newline` + "\n" + `end`},
		{Key: "url.https://h/p.q/.insteadOf", Value: "x;y#z"},
	}
	file := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(file, []byte(Render(entries)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		cmd := exec.Command(git, "config", "--file", file, "--get", e.Key)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git config --get %s: %v", e.Key, err)
		}
		if got := strings.TrimSuffix(string(out), "\n"); got != e.Value {
			t.Errorf("git reads %s = %q, rendered %q", e.Key, got, e.Value)
		}
	}
}
