package e2e

// A triggered sync fetches at once: whoever sent the trigger expects a
// change, so asking the remote first would only add a round trip (and,
// over HTTP, a request) before the fetch.

import (
	"path/filepath"
	"syscall"
	"testing"
)

func TestTriggeredSyncFetchesWithoutAsking(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 1)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	addr := freeAddr(t)
	w := gitWrapper(t, wrapperOpts{})
	p := start(t, concat(syncArgs(up, root), metricsArgs(addr),
		[]string{"--period=1h", "--sync-on-signal=HUP", "--git=" + w.Path})...)
	waitForLink(t, p, link, hs[0])
	waitForMetric(t, addr, func(v float64) bool { return v == 1 }, "the first sync", "git_sync_count_total")

	next := up.Commit(map[string]string{"file.txt": "next\n"}, "next")
	p.sendSignal(syscall.SIGHUP)
	waitForLink(t, p, link, next)
	if n := w.CountCalls("ls-remote"); n != 0 {
		t.Errorf("the triggered sync ran git ls-remote %d times before fetching: %q", n, w.Calls())
	}
	if n := w.CountCalls("fetch"); n != 2 {
		t.Errorf("%d fetches, want 2 (the first sync and the triggered one)", n)
	}

	// Triggered with nothing new: the fetch finds the published commit,
	// and that counts as an idle poll, not as a sync.
	p.sendSignal(syscall.SIGHUP)
	waitForMetric(t, addr, func(v float64) bool { return v == 1 }, "an idle triggered sync", "git_sync_count_total", "status", "noop")
	if n := metric(t, addr, "git_fetch_count_total"); n != 2 {
		t.Errorf("git_fetch_count_total = %v after a triggered sync that found nothing new, want 2", n)
	}
}
