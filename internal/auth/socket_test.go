package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gitsync/internal/secret"
)

// pathOfLength returns a new directory under t.TempDir() whose path has
// exactly n bytes.
func pathOfLength(t *testing.T, n int) string {
	t.Helper()
	base := t.TempDir()
	pad := n - len(base) - 1
	if pad < 1 {
		t.Fatalf("t.TempDir() %s is too long for a %d-byte path", base, n)
	}
	dir := filepath.Join(base, strings.Repeat("d", pad))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSocketDirectory: the private directory goes in the temp dir when the
// socket path fits there and into a short directory otherwise; either way
// it is owner-only, git gets the credentials, and Close removes it.
func TestSocketDirectory(t *testing.T) {
	longest := maxTempDirLen
	if longest != 68 {
		t.Errorf("maxTempDirLen = %d, want 68 (Linux; the manual says so)", longest)
	}
	tests := []struct {
		name    string
		tempDir func(t *testing.T) string
		inTemp  bool
	}{
		{"longest temp dir that fits", func(t *testing.T) string { return pathOfLength(t, longest) }, true},
		{"one byte longer", func(t *testing.T) string { return pathOfLength(t, longest+1) }, false},
		{"far too long", func(t *testing.T) string { return pathOfLength(t, 250) }, false},
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing") }, false},
		{"not a directory", func(t *testing.T) string {
			f := filepath.Join(t.TempDir(), "file")
			writeFile(t, f, "")
			return f
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := tt.tempDir(t)
			c := baseConfig("https://h/r")
			c.Username, c.Password = "u", secret.New("p")
			a, err := New(c, Options{Self: testSelf, TempDir: tmp})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			dir := a.Dir()
			if got := filepath.Dir(dir) == tmp; got != tt.inTemp {
				t.Errorf("directory %s in the temp dir: %v, want %v", dir, got, tt.inTemp)
			}
			if n := len(filepath.Join(dir, socketName)); n > socketPathMax {
				t.Errorf("socket path has %d bytes, more than %d", n, socketPathMax)
			}
			fi, err := os.Lstat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() || fi.Mode().Perm() != 0o700 || int(fi.Sys().(*syscall.Stat_t).Uid) != os.Geteuid() {
				t.Errorf("%s: mode %v, want an owner-only directory of ours", dir, fi.Mode())
			}
			if err := a.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			env := childEnv(t, a)
			wantCredential(t, env, "https://h/r", "u", "p")
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s still there after Close: %v", dir, err)
			}
		})
	}
}

// TestSocketDirectoryRelativeTempDir: git runs the helper in other working
// directories, so the socket path it is given must be absolute.
func TestSocketDirectoryRelativeTempDir(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.Mkdir("tmp", 0o700); err != nil {
		t.Fatal(err)
	}
	c := baseConfig("https://h/r")
	c.Username, c.Password = "u", secret.New("p")
	a := newTestAuth(t, c, Options{TempDir: "tmp"})
	if !filepath.IsAbs(a.Dir()) {
		t.Fatalf("Dir() = %q, want an absolute path", a.Dir())
	}
	wd, _ := os.Getwd()
	if filepath.Dir(a.Dir()) != filepath.Join(wd, "tmp") {
		t.Errorf("Dir() = %q, want it in %s", a.Dir(), filepath.Join(wd, "tmp"))
	}
}
