package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// helpersFor lists the live (not zombie) processes whose command line
// mentions url: the kept HTTP remote helper and its git parent.
func helpersFor(url string) []string {
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), url) {
			continue
		}
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if _, state, ok := procStat(pid); ok && state != 'Z' {
				found = append(found, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
			}
		}
	}
	return found
}

// Over smart HTTP an idle poll is one request to a remote helper that
// git-sync keeps running: no git process per poll, one HTTP request instead
// of ls-remote's two, and every push still seen at the next poll.
func TestHTTPIdlePollsUseKeptHelper(t *testing.T) {
	up, first := gittest.NewRepoWithCommit(t)
	srv := gittest.HTTPServer(t, filepath.Dir(up.Dir()), gittest.HTTPOptions{})
	url := srv.URL(filepath.Base(up.Dir()))
	w := gitWrapper(t, wrapperOpts{})
	root := t.TempDir()
	addr := freeAddr(t)
	p := start(t, "--repo="+url, "--root="+root, "--link=current", "--period=50ms",
		"--git="+w.Path, "--http-bind="+addr, "--http-metrics")
	link := filepath.Join(root, "current")
	waitForLink(t, p, link, first)

	noop := func() float64 { return tryMetric(addr, "git_sync_count_total", "status", "noop") }
	waitFor(t, syncDeadline, func() bool { return noop() >= 3 }, "three idle polls")
	calls, requests, polls := len(w.Calls()), srv.Requests(), noop()
	waitFor(t, syncDeadline, func() bool { return noop() >= polls+20 }, "twenty more idle polls")
	newCalls := w.Calls()[calls:]
	gotRequests, gotPolls := srv.Requests()-requests, noop()-polls
	if len(newCalls) != 0 {
		t.Fatalf("idle polls over HTTP started git: %q", newCalls)
	}
	// One request per poll; a poll may be under way at either end.
	if gotRequests > int64(gotPolls)+1 {
		t.Fatalf("%.0f idle polls cost %d HTTP requests, want one each", gotPolls, gotRequests)
	}
	if helpers := helpersFor(url); len(helpers) == 0 {
		t.Fatal("no kept remote helper is running")
	}

	for i := 0; i < 3; i++ {
		head := up.Commit(map[string]string{"file": strings.Repeat("x", i+1)}, "next")
		waitForLink(t, p, link, head)
	}

	if code := p.Stop(); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if helpers := helpersFor(url); len(helpers) != 0 {
		t.Fatalf("the remote helper outlived git-sync: %q", helpers)
	}
}

// A git-sync killed outright leaves no remote helper behind: the helper
// exits when its input (a pipe from git-sync) closes.
func TestHTTPKeptHelperEndsWhenGitSyncIsKilled(t *testing.T) {
	up, first := gittest.NewRepoWithCommit(t)
	srv := gittest.HTTPServer(t, filepath.Dir(up.Dir()), gittest.HTTPOptions{})
	url := srv.URL(filepath.Base(up.Dir()))
	root := t.TempDir()
	addr := freeAddr(t)
	p := start(t, "--repo="+url, "--root="+root, "--link=current", "--period=50ms",
		"--http-bind="+addr, "--http-metrics")
	waitForLink(t, p, filepath.Join(root, "current"), first)
	waitFor(t, syncDeadline, func() bool {
		return tryMetric(addr, "git_sync_count_total", "status", "noop") >= 2 && len(helpersFor(url)) > 0
	}, "a kept remote helper")

	// Only git-sync itself: its helper is in a process group of its own.
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	waitFor(t, 10*time.Second, func() bool { return len(helpersFor(url)) == 0 },
		"the remote helper to exit after git-sync was killed")
}

// A user's own credential helper (here git's `store`) keeps working across
// a password rotation. A kept helper would hold the old password, get a
// 401, and make git erase the stored credential (store matches on host and
// user, not on the password), so with a user-configured helper polls go
// through git ls-remote, which reads the store afresh each time.
func TestHTTPUserCredentialStoreSurvivesRotation(t *testing.T) {
	up, first := gittest.NewRepoWithCommit(t)
	srv := gittest.HTTPServer(t, filepath.Dir(up.Dir()), gittest.HTTPOptions{Username: "u", Password: "old"})
	url := srv.URL(filepath.Base(up.Dir()))
	store := filepath.Join(t.TempDir(), "credentials")
	// git-sync sets credential.useHttpPath, so the entry names the path.
	hostURL := strings.Replace(url, "http://", "http://u:%s@", 1) + "\n"
	writeStore := func(password string) {
		if err := os.WriteFile(store, []byte(strings.Replace(hostURL, "%s", password, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeStore("old")
	root := t.TempDir()
	addr := freeAddr(t)
	// Polls only on SIGHUP, so that no poll runs while the server and the
	// store change (git's own erase-on-401 would race with the test).
	p := start(t, "--repo="+url, "--root="+root, "--link=current", "--period=1h", "--sync-on-signal=SIGHUP",
		"--git-config=credential.helper:store --file="+store, "--http-bind="+addr, "--http-metrics")
	link := filepath.Join(root, "current")
	waitForLink(t, p, link, first)
	noop := func() float64 { return tryMetric(addr, "git_sync_count_total", "status", "noop") }
	if err := syscall.Kill(p.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, syncDeadline, func() bool { return noop() >= 1 }, "an idle poll")

	srv.SetPassword("new")
	writeStore("new")
	head := up.Commit(map[string]string{"file": "rotated"}, "after rotation")
	if err := syscall.Kill(p.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForLink(t, p, link, head)
	if b, _ := os.ReadFile(store); !strings.Contains(string(b), "u:new@") {
		t.Fatalf("the stored credential was erased: store holds %q", b)
	}
}
