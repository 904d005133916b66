package filestamp

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStamp: a stamp changes when the file is rewritten, replaced by a
// rename (as a Secret mount's symlink swap replaces it) or removed, and
// not when nothing happened.
func TestStamp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "secret")
	if Of(p).Exists() {
		t.Fatal("a missing file exists")
	}
	if err := os.WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	first := Of(p)
	if !first.Exists() || Of(p) != first {
		t.Fatalf("stamp of an untouched file changed: %+v", first)
	}

	// Same size, same modification time: only the inode tells.
	next := filepath.Join(dir, "next")
	if err := os.WriteFile(next, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(1_700_000_000, 0)
	for _, f := range []string{p, next} {
		if err := os.Chtimes(f, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	before := Of(p)
	if err := os.Rename(next, p); err != nil {
		t.Fatal(err)
	}
	if Of(p) == before {
		t.Error("stamp unchanged after the file was replaced by a rename")
	}

	before = Of(p)
	if err := os.WriteFile(p, []byte("three!"), 0o600); err != nil {
		t.Fatal(err)
	}
	if Of(p) == before {
		t.Error("stamp unchanged after the file was rewritten")
	}

	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if Of(p) != (Stamp{}) {
		t.Error("stamp of a removed file is not the zero stamp")
	}
}
