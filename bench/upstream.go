package main

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// upstream is a bare repository the benchmark serves and pushes commits to.
//
// Commits are written by this process directly as loose objects plus a
// loose ref, the on-disk format git itself reads, instead of by running git
// commands: a commit storm of 20 commits a second then costs the machine
// almost nothing, so the daemons being measured are not competing with the
// committer for the CPU.
type upstream struct {
	Dir string

	mu   sync.Mutex
	head string      // current hash of refs/heads/main
	tree []treeEntry // the root tree of head
	n    int         // commits written by this process
}

// treeEntry is one entry of a git tree object.
type treeEntry struct {
	mode string // "100644", "40000", ...
	name string
	hash []byte // 20-byte binary object id
}

// openUpstream reads the head commit and root tree of the bare repository
// at dir, using git once.
func openUpstream(ctx context.Context, env []string, dir string) (*upstream, error) {
	head, err := runGit(ctx, env, dir, "rev-parse", "refs/heads/"+fixtureBranch)
	if err != nil {
		return nil, err
	}
	raw, err := runGitRaw(ctx, env, dir, "cat-file", "tree", head+"^{tree}")
	if err != nil {
		return nil, err
	}
	tree, err := parseTree(raw)
	if err != nil {
		return nil, err
	}
	return &upstream{Dir: dir, head: head, tree: tree}, nil
}

// Head returns the current head of the upstream branch.
func (u *upstream) Head() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.head
}

// parseTree decodes a raw tree object.
func parseTree(raw []byte) ([]treeEntry, error) {
	var entries []treeEntry
	for len(raw) > 0 {
		sp := bytes.IndexByte(raw, ' ')
		nul := bytes.IndexByte(raw, 0)
		if sp < 0 || nul < sp || len(raw) < nul+21 {
			return nil, fmt.Errorf("malformed tree object")
		}
		entries = append(entries, treeEntry{
			mode: string(raw[:sp]),
			name: string(raw[sp+1 : nul]),
			hash: append([]byte(nil), raw[nul+1:nul+21]...),
		})
		raw = raw[nul+21:]
	}
	return entries, nil
}

// encodeTree encodes entries as a tree object body, in git's order (names
// compared bytewise, a directory's name as if it ended in "/").
func encodeTree(entries []treeEntry) []byte {
	key := func(e treeEntry) string {
		if e.mode == "40000" {
			return e.name + "/"
		}
		return e.name
	}
	sorted := append([]treeEntry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return key(sorted[i]) < key(sorted[j]) })
	var b bytes.Buffer
	for _, e := range sorted {
		b.WriteString(e.mode)
		b.WriteByte(' ')
		b.WriteString(e.name)
		b.WriteByte(0)
		b.Write(e.hash)
	}
	return b.Bytes()
}

// writeObject stores a loose object and returns its binary id.
func (u *upstream) writeObject(kind string, body []byte) ([]byte, error) {
	hdr := kind + " " + strconv.Itoa(len(body)) + "\x00"
	h := sha1.New()
	h.Write([]byte(hdr))
	h.Write(body)
	id := h.Sum(nil)
	hexID := hex.EncodeToString(id)
	dir := filepath.Join(u.Dir, "objects", hexID[:2])
	path := filepath.Join(dir, hexID[2:])
	if _, err := os.Stat(path); err == nil {
		return id, nil
	}
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestSpeed)
	zw.Write([]byte(hdr))
	zw.Write(body)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tmp := filepath.Join(u.Dir, "objects", fmt.Sprintf("tmp_obj_bench_%d", os.Getpid()))
	if err := os.WriteFile(tmp, z.Bytes(), 0o444); err != nil {
		return nil, err
	}
	return id, os.Rename(tmp, path)
}

// Commit adds a commit on top of the branch that sets file (a top-level
// path) to content, moves the branch to it (as a loose ref, atomically) and
// returns its hash.
func (u *upstream) Commit(file, content string) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	blob, err := u.writeObject("blob", []byte(content))
	if err != nil {
		return "", err
	}
	tree := make([]treeEntry, 0, len(u.tree)+1)
	for _, e := range u.tree {
		if e.name != file {
			tree = append(tree, e)
		}
	}
	tree = append(tree, treeEntry{mode: "100644", name: file, hash: blob})
	treeID, err := u.writeObject("tree", encodeTree(tree))
	if err != nil {
		return "", err
	}
	u.n++
	when := fixtureEpoch + 10_000_000 + int64(u.n)
	var c strings.Builder
	fmt.Fprintf(&c, "tree %x\nparent %s\n", treeID, u.head)
	fmt.Fprintf(&c, "author Bench Upstream <bench@example.invalid> %d +0000\n", when)
	fmt.Fprintf(&c, "committer Bench Upstream <bench@example.invalid> %d +0000\n", when)
	fmt.Fprintf(&c, "\nupstream commit %d\n", u.n)
	commitID, err := u.writeObject("commit", []byte(c.String()))
	if err != nil {
		return "", err
	}
	hash := hex.EncodeToString(commitID)
	ref := filepath.Join(u.Dir, "refs", "heads", fixtureBranch)
	if err := os.MkdirAll(filepath.Dir(ref), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(ref+".lock", []byte(hash+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(ref+".lock", ref); err != nil {
		return "", err
	}
	u.head = hash
	u.tree = tree
	return hash, nil
}
