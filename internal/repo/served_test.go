package repo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitsync/internal/gittest"
	"gitsync/internal/serve"
)

// servedRefs lists the relay's namespace in root: ref name (without the
// namespace prefix) to object, HEAD's symbolic target as "-> name".
func servedRefs(t *testing.T, root string) map[string]string {
	t.Helper()
	cmd := exec.Command("git", "for-each-ref", "--format=%(refname) %(objectname) %(symref)", servePrefix)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("for-each-ref: %v", err)
	}
	refs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimPrefix(f[0], servePrefix)
		refs[name] = f[1]
		if len(f) == 3 {
			refs[name] = "-> " + strings.TrimPrefix(f[2], servePrefix)
		}
	}
	return refs
}

// TestServedRefsFollowWhatIsPublished: with Serve, the namespace holds HEAD
// (pointing at the branch) and the branch at the published commit, and the
// current and servedRecent previous commits as hidden tips; older ones go
// as their trees go. Without Serve, a later run removes the namespace, so nothing stays
// pinned against gc.
func TestServedRefsFollowWhatIsPublished(t *testing.T) {
	up, c1 := gittest.NewRepoWithCommit(t)
	root := t.TempDir()
	r := open(t, root, up.URL(), "main", func(o *Options) { o.Serve = true })
	mustSync(t, r)
	want := map[string]string{"HEAD": "-> refs/heads/main", "refs/heads/main": c1, keptPrefix + c1: c1}
	if got := servedRefs(t, root); !equalMaps(got, want) {
		t.Fatalf("after the first sync: %v, want %v", got, want)
	}
	c2 := up.Commit(map[string]string{"b": "1"}, "two")
	mustSync(t, r)
	want = map[string]string{"HEAD": "-> refs/heads/main", "refs/heads/main": c2, keptPrefix + c1: c1, keptPrefix + c2: c2}
	if got := servedRefs(t, root); !equalMaps(got, want) {
		t.Fatalf("after an update: %v, want %v", got, want)
	}
	var cs []string
	for i := range servedRecent {
		cs = append(cs, up.Commit(map[string]string{"b": fmt.Sprint(i + 2)}, "more"))
		mustSync(t, r)
	}
	// c1 is now the (servedRecent+1)-th commit before the current one.
	last := cs[len(cs)-1]
	want = map[string]string{"HEAD": "-> refs/heads/main", "refs/heads/main": last, keptPrefix + c2: c2}
	for _, c := range cs {
		want[keptPrefix+c] = c
	}
	if got := servedRefs(t, root); !equalMaps(got, want) {
		t.Fatalf("after %d more updates: %v, want %v", servedRecent, got, want)
	}
	r.Close()

	r = open(t, root, up.URL(), "main", nil)
	mustSync(t, r)
	if got := servedRefs(t, root); len(got) != 0 {
		t.Fatalf("served refs left after a run without the relay: %v", got)
	}
}

// TestServedRefsForHeadAndTags: --ref=HEAD is served as a detached HEAD
// alone; a tag as refs/tags/<name> at the tag object, HEAD at the commit.
func TestServedRefsForHeadAndTags(t *testing.T) {
	up, c1 := gittest.NewRepoWithCommit(t)
	root := t.TempDir()
	r := open(t, root, up.URL(), "HEAD", func(o *Options) { o.Serve = true })
	mustSync(t, r)
	want := map[string]string{"HEAD": c1, keptPrefix + c1: c1}
	if got := servedRefs(t, root); !equalMaps(got, want) {
		t.Fatalf("--ref=HEAD: %v, want %v", got, want)
	}
	r.Close()

	up.Git("tag", "-a", "-m", "release", "v1", c1)
	tagObj := strings.TrimSpace(up.Git("rev-parse", "refs/tags/v1"))
	root = t.TempDir()
	r = open(t, root, up.URL(), "v1", func(o *Options) { o.Serve = true })
	mustSync(t, r)
	want = map[string]string{"HEAD": c1, "refs/tags/v1": tagObj, keptPrefix + c1: c1}
	if got := servedRefs(t, root); !equalMaps(got, want) {
		t.Fatalf("--ref=v1 (annotated tag %s): %v, want %v", tagObj, got, want)
	}
	if _, err := os.Stat(filepath.Join(root, ".git", servePrefix, "refs", "heads")); !os.IsNotExist(err) {
		t.Errorf("a branch was served for a tag: %v", err)
	}
}

// TestRefusedCommitIsNotServed: a commit that was fetched and refused (by
// the gate or a signature check) never gets a served ref.
func TestRefusedCommitIsNotServed(t *testing.T) {
	up, c1 := gittest.NewRepoWithCommit(t)
	root := t.TempDir()
	r := open(t, root, up.URL(), "main", func(o *Options) { o.Serve = true })
	mustSync(t, r)
	bad := up.Commit(map[string]string{"b": "1"}, "refused")
	c, err := r.Prepare(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hash != bad {
		t.Fatalf("prepared %s, want %s", c.Hash, bad)
	}
	if err := r.Reject(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	mustSync(t, r) // an idle poll while the refusal stands
	for name, obj := range servedRefs(t, root) {
		if obj == bad || strings.Contains(name, bad) {
			t.Errorf("the refused commit is served as %s", name)
		}
	}
	if got := servedRefs(t, root)["refs/heads/main"]; got != c1 {
		t.Errorf("refs/heads/main served at %s, want the published %s", got, c1)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestGCPutOffWhileServing: while the relay serves a request, an update's
// collection is put off instead of waiting (the loop publishes on), and
// runs at the first attempt after the request ended, an idle poll too.
// Past gcMaxDefer it waits for the request.
func TestGCPutOffWhileServing(t *testing.T) {
	up, _ := gittest.NewRepoWithCommit(t)
	root := t.TempDir()
	var g serve.Guard
	r := open(t, root, up.URL(), "main", func(o *Options) { o.Serve, o.GCGuard = true, &g })
	mustSync(t, r)
	if err := g.Serve(context.Background()); err != nil { // a request in flight
		t.Fatal(err)
	}
	c2 := up.Commit(map[string]string{"b": "1"}, "two")
	if res := mustSync(t, r); res.Hash != c2 || published(t, root) != c2 {
		t.Fatalf("update while serving: %+v, want %s published", res, c2)
	}
	if r.gcPending.IsZero() || packCount(t, root) < 2 {
		t.Fatalf("gc ran or was not put off while a request was served (packs %d)", packCount(t, root))
	}
	g.Served()
	mustSync(t, r) // idle
	if !r.gcPending.IsZero() || packCount(t, root) != 1 {
		t.Fatalf("gc still put off after the request ended (packs %d, pending %v)", packCount(t, root), r.gcPending)
	}

	// Put off for too long: the collection waits for the request.
	defer func(d time.Duration) { gcMaxDefer = d }(gcMaxDefer)
	gcMaxDefer = 0
	if err := g.Serve(context.Background()); err != nil {
		t.Fatal(err)
	}
	up.Commit(map[string]string{"b": "2"}, "three")
	done := make(chan error, 1)
	go func() { _, err := sync(r); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("the overdue collection did not wait for the request (err %v)", err)
	case <-time.After(100 * time.Millisecond): // nothing to poll: it must not happen
	}
	g.Served()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the collection did not run after the request ended")
	}
}
