package repo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gitsync/internal/gitconfig"
)

// ServeNamespace is the git namespace (refs/namespaces/<it>/) in which the
// refs served by the relay (--serve-bind) live. upload-pack run with
// GIT_NAMESPACE set to it advertises those refs alone, without the prefix,
// so git-sync's own branch and anything fetched are never shown.
const ServeNamespace = "serve"

const (
	servePrefix = "refs/namespaces/" + ServeNamespace + "/"
	// keptPrefix, inside the namespace, holds one hidden ref per commit a
	// client may still ask for by hash (see servedState). Hidden by
	// uploadpack.hideRefs; fetchable by uploadpack.allowTipSHA1InWant.
	keptPrefix = "refs/git-sync/kept/"
)

// serveConfig is the upload-pack configuration of a relay: kept commits are
// hidden from the advertisement but can be fetched by hash (Airflow's
// versioned bundles pin commits), history below an advertised commit can be
// asked for by hash too, and partial clones work.
func (r *Repo) serveConfig() []gitconfig.Entry {
	if !r.opts.Serve {
		return nil
	}
	return []gitconfig.Entry{
		{Key: "safe.directory", Value: r.gitDir},
		{Key: "uploadpack.hideRefs", Value: keptPrefix},
		{Key: "uploadpack.allowTipSHA1InWant", Value: "true"},
		{Key: "uploadpack.allowReachableSHA1InWant", Value: "true"},
		{Key: "uploadpack.allowFilter", Value: "true"},
	}
}

// servedState is what the namespace holds: HEAD, the --ref name (empty for
// HEAD and hashes) and the kept commits.
type servedState struct {
	head   string   // "ref: <name>" when HEAD points at the name, else a hash
	names  []string // full ref names inside the namespace, e.g. refs/heads/main: one, or none
	target string   // the object the name points at
	kept   []string
}

func (s servedState) equal(o servedState) bool {
	return s.head == o.head && slices.Equal(s.names, o.names) && s.target == o.target && slices.Equal(s.kept, o.kept)
}

// servedName is the full name under which --ref is served: refs/heads/X for
// a branch, refs/tags/X for a tag, "" for HEAD and hashes (served as a
// detached HEAD only). A short name is taken for a branch until a fetch
// says what it is.
func (r *Repo) servedName() string {
	ref := r.opts.Ref
	switch {
	case r.refIsHash || ref == "HEAD":
		return ""
	case strings.HasPrefix(ref, "refs/"):
		return ref
	case r.fetchedName != "":
		return r.fetchedName
	}
	return "refs/heads/" + ref
}

// nameFromFetchHead turns FETCH_HEAD's description of --ref ("branch 'main'
// of URL", "tag 'v1' of URL") into a full ref name, or "".
func nameFromFetchHead(desc string) string {
	for kind, prefix := range map[string]string{"branch '": "refs/heads/", "tag '": "refs/tags/"} {
		if rest, ok := strings.CutPrefix(desc, kind); ok {
			if name, _, ok := strings.Cut(rest, "' of "); ok {
				return prefix + name
			}
		}
	}
	return ""
}

// servedRecent is how many commits published before the current one stay
// fetchable whatever --stale-worktree-timeout says: a client that read the
// refs just before a flip asks for what it saw in its next request, which
// may come late (a slow or busy client, a fetch whose body is still
// arriving); with commits a second or two apart, three give it seconds.
const servedRecent = 3

// wantServed is the namespace as it should be: the published commit under
// HEAD and the --ref name, and as hidden tips every commit whose tree is
// still on disk plus the servedRecent published before it.
func (r *Repo) wantServed() servedState {
	s := servedState{head: r.published}
	if name := r.servedName(); name != "" {
		s.names, s.target = []string{name}, r.published
		if strings.HasPrefix(name, "refs/tags/") {
			if r.lastRemote != "" {
				s.target = r.lastRemote // the tag object itself, for followers verifying tags
			}
		} else {
			s.head = "ref: " + servePrefix + name
		}
	}
	kept := map[string]bool{r.published: true}
	for _, h := range r.recent {
		kept[h] = true
	}
	for _, h := range r.onDisk {
		kept[h] = true
	}
	for h := range kept {
		s.kept = append(s.kept, h)
	}
	slices.Sort(s.kept)
	return s
}

// updateServed brings the served refs in line with what is published, with
// one `git update-ref --stdin` transaction (plus `git symbolic-ref` when
// HEAD starts pointing at the name): a new commit shows up in HEAD and the
// name at once. Without --serve-bind, or before anything is published, it
// does nothing; when nothing changed it costs a comparison.
func (r *Repo) updateServed(ctx context.Context) error {
	if !r.opts.Serve || r.published == "" {
		return nil
	}
	want := r.wantServed()
	if r.served != nil && r.served.equal(want) {
		return nil
	}
	have, err := r.readServed(ctx)
	if err != nil {
		return err
	}
	var in strings.Builder
	for _, name := range want.names {
		fmt.Fprintf(&in, "update %s%s %s\n", servePrefix, name, want.target)
	}
	for _, name := range have.names {
		if !slices.Contains(want.names, name) {
			fmt.Fprintf(&in, "delete %s%s\n", servePrefix, name)
		}
	}
	if !strings.HasPrefix(want.head, "ref: ") && want.head != have.head {
		fmt.Fprintf(&in, "update %sHEAD %s\n", servePrefix, want.head)
	}
	for _, h := range want.kept {
		if !slices.Contains(have.kept, h) {
			fmt.Fprintf(&in, "update %s%s%s %s\n", servePrefix, keptPrefix, h, h)
		}
	}
	for _, h := range have.kept {
		if !slices.Contains(want.kept, h) {
			fmt.Fprintf(&in, "delete %s%s%s\n", servePrefix, keptPrefix, h)
		}
	}
	if in.Len() > 0 {
		if _, err := r.git.RunWithInput(ctx, r.root, strings.NewReader(in.String()), "update-ref", "--no-deref", "--stdin"); err != nil {
			return fmt.Errorf("update the served refs: %w", err)
		}
	}
	if strings.HasPrefix(want.head, "ref: ") && want.head != have.head {
		target := strings.TrimPrefix(want.head, "ref: ")
		if _, err := r.git.Run(ctx, r.root, "symbolic-ref", servePrefix+"HEAD", target); err != nil {
			return fmt.Errorf("update the served HEAD: %w", err)
		}
	}
	r.served = &want
	return nil
}

// readServed lists what the namespace holds, once per run (after that,
// r.served remembers what updateServed wrote).
func (r *Repo) readServed(ctx context.Context) (servedState, error) {
	if r.served != nil {
		return *r.served, nil
	}
	var s servedState
	out, err := r.git.Run(ctx, r.root, "for-each-ref", "--format=%(refname) %(objectname)", servePrefix)
	if err != nil {
		return s, fmt.Errorf("list the served refs: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		ref, obj, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		name := strings.TrimPrefix(ref, servePrefix)
		if h, ok := strings.CutPrefix(name, keptPrefix); ok {
			s.kept = append(s.kept, h)
		} else if name != "HEAD" {
			s.names = append(s.names, name)
			s.target = obj
		}
	}
	slices.Sort(s.kept)
	if b, err := os.ReadFile(filepath.Join(r.gitDir, servePrefix, "HEAD")); err == nil {
		s.head = strings.TrimSpace(string(b))
	}
	return s, nil
}

// dropServed removes the namespace's loose refs when the relay is off, so
// that the commits it kept do not stay pinned against gc forever (packed
// refs go with dropForeignRefs).
func (r *Repo) dropServed() {
	if !r.opts.Serve {
		_ = os.RemoveAll(filepath.Join(r.gitDir, "refs", "namespaces"))
	}
}
