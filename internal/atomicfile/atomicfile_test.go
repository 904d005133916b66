package atomicfile_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/atomicfile"
)

// names lists dir, sorted, failing the test if it cannot.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var list []string
	for _, e := range entries {
		list = append(list, e.Name())
	}
	return list
}

// content reads path, failing the test if it cannot.
func content(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteReplacesTheContentWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "error.json")
	for _, data := range []string{
		"a first, rather long content\nwith two lines\n",
		"short\n", // nothing of the longer content may remain
		"",
		"last\n",
	} {
		if err := atomicfile.Write(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := content(t, path); got != data {
			t.Fatalf("after writing %q the file holds %q", data, got)
		}
		if got := names(t, dir); !slices.Equal(got, []string{"error.json"}) {
			t.Fatalf("directory holds %q, want only the target: a temporary file was left", got)
		}
	}
}

// The mode is applied exactly, whatever the umask, both to a new file and
// to a file that had another mode.
func TestWriteAppliesTheMode(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o644, 0o664, 0o600, 0o755, 0o640, 0o444} {
		for _, existing := range []bool{false, true} {
			path := filepath.Join(dir, mode.String())
			if existing {
				// Start from a file whose every permission bit is wrong.
				if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, ^mode&0o777); err != nil {
					t.Fatal(err)
				}
			}
			if err := atomicfile.Write(path, []byte("data"), mode); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != mode {
				t.Errorf("Write(mode %v, existing %v): file mode %v", mode, existing, got)
			}
			os.Remove(path)
		}
	}
}

// A write that fails leaves what was at the path as it was, and no
// temporary file. (As root a read-only directory does not stop a write, so
// the failures here come from the shape of the tree.)
func TestFailedWriteLeavesThePreviousState(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup prepares dir and returns the path to write.
		setup func(t *testing.T, dir string) string
	}{
		{"target is a directory", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "target")
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(path, "inside"), []byte("kept\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"target is an empty directory", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "target")
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"parent does not exist", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "missing", "target")
		}},
		{"parent is a file", func(t *testing.T, dir string) string {
			parent := filepath.Join(dir, "file")
			if err := os.WriteFile(parent, []byte("kept\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(parent, "target")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.setup(t, dir)
			before := snapshot(t, dir)

			err := atomicfile.Write(path, []byte("new content\n"), 0o644)
			if err == nil {
				t.Fatal("Write succeeded")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("the tree changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// snapshot describes every file and directory under root, with the
// content of files, one per line.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			b.WriteString(rel + "/\n")
			return nil
		}
		data, err := os.ReadFile(path)
		b.WriteString(rel + ": " + string(data) + "\n")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A write that fails half-way through the data (the file size limit stands
// in for a full disk) leaves the previous content of a regular file intact.
func TestWriteThatRunsOutOfSpaceKeepsThePreviousContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config")
	const previous = "[include]\n\tpath = managed\n"
	if err := os.WriteFile(path, []byte(previous), 0o644); err != nil {
		t.Fatal(err)
	}

	// RLIMIT_FSIZE makes a write past the limit fail with EFBIG (Go
	// ignores the SIGXFSZ that comes with it). It is process-wide, so keep
	// it only around the one call; no other test in this package runs in
	// parallel.
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	limited := old
	limited.Cur = 64 << 10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limited); err != nil {
		t.Fatal(err)
	}
	err := atomicfile.Write(path, bytes.Repeat([]byte("x"), 1<<20), 0o644)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}

	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("Write = %v, want the EFBIG of the size limit", err)
	}
	if got := content(t, path); got != previous {
		t.Errorf("file holds %d bytes starting %.20q, want the previous content", len(got), got)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"config"}) {
		t.Errorf("directory holds %q, want only the target: a temporary file was left", got)
	}
}

// Readers running against repeated writes of two distinct large contents
// only ever see one content or the other, never a mix, a prefix or an
// empty or missing file.
func TestConcurrentReadersSeeWholeFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big")
	a := bytes.Repeat([]byte("A"), 512<<10)
	b := bytes.Repeat([]byte("bb"), 384<<10) // a different length too
	if err := atomicfile.Write(path, a, 0o644); err != nil {
		t.Fatal(err)
	}

	const minWrites = 200
	var (
		done           atomic.Bool
		readsA, readsB atomic.Int64
		wg             sync.WaitGroup
		mu             sync.Mutex
		bad            []string
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				got, err := os.ReadFile(path)
				switch {
				case err != nil:
					mu.Lock()
					bad = append(bad, err.Error())
					mu.Unlock()
				case bytes.Equal(got, a):
					readsA.Add(1)
				case bytes.Equal(got, b):
					readsB.Add(1)
				default:
					mu.Lock()
					bad = append(bad, describe(got))
					mu.Unlock()
				}
			}
		}()
	}
	// Write at least minWrites times, and on until the readers have seen
	// both contents (so they did overlap the writes), within a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < minWrites || (readsA.Load() == 0 || readsB.Load() == 0) && time.Now().Before(deadline); i++ {
		data := a
		if i%2 == 0 {
			data = b
		}
		if err := atomicfile.Write(path, data, 0o644); err != nil {
			t.Error(err)
			break
		}
	}
	done.Store(true)
	wg.Wait()

	t.Logf("%d reads of A, %d of B, %d bad", readsA.Load(), readsB.Load(), len(bad))
	if len(bad) > 0 {
		t.Errorf("readers saw %d partial or missing files, first: %s", len(bad), bad[0])
	}
	if readsA.Load() == 0 || readsB.Load() == 0 {
		t.Errorf("readers never saw one of the contents (A %d, B %d) in 10s: they did not overlap the writes", readsA.Load(), readsB.Load())
	}
	if got := names(t, dir); !slices.Equal(got, []string{"big"}) {
		t.Errorf("directory holds %q, want only the target", got)
	}
}

// describe summarizes a content that is neither of the two written.
func describe(got []byte) string {
	if len(got) == 0 {
		return "an empty file"
	}
	return fmt.Sprintf("%d bytes starting %q and ending %q", len(got), got[0], got[len(got)-1])
}
