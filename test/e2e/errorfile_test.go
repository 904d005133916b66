package e2e

// End-to-end tests of --error-file for errors other than a failed sync
// (TestErrorFile covers those): every error git-sync logs replaces the file
// with upstream's {"Msg", "Err", "Args"} object, text verbatim.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// errorReport is the --error-file document.
type errorReport struct {
	Msg  string
	Err  string
	Args map[string]any
}

// readErrorFile reads and decodes the error file; ok is false while it
// does not exist or does not decode.
func readErrorFile(path string) (r errorReport, raw string, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return r, "", false
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, string(b), false
	}
	return r, string(b), true
}

func TestErrorFileForEveryError(t *testing.T) {
	t.Parallel()
	t.Run("hook failure in daemon mode", func(t *testing.T) {
		t.Parallel()
		up, h := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		hook := writeScript(t, "hook", `echo "the hook's input isn't there" >&2
exit 3
`)
		p := start(t, concat(syncArgs(up, root), []string{"--period=100ms", "--error-file=errors/err.json",
			"--exechook-command=" + hook, "--exechook-backoff=1s"})...)
		waitForLink(t, p, filepath.Join(root, "link"), h)
		path := filepath.Join(root, "errors", "err.json")
		var r errorReport
		var raw string
		waitFor(t, syncDeadline, func() bool {
			var ok bool
			r, raw, ok = readErrorFile(path)
			return ok && r.Msg == "hook failed"
		}, "the error file to report the failed hook (now %q)", raw)
		if !strings.Contains(raw, "the hook's input isn't there") {
			t.Errorf("the hook's stderr is not in the error file verbatim:\n%s", raw)
		}
		if !strings.Contains(r.Err, "exit status 3") || r.Args["hook"] != "exechook" || r.Args["hash"] != h {
			t.Errorf("error file = %+v", r)
		}
	})
	t.Run("startup failure", func(t *testing.T) {
		t.Parallel()
		up, h := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		p := start(t, concat(syncArgs(up, root), []string{"--period=100ms"})...)
		waitForLink(t, p, filepath.Join(root, "link"), h)
		// A second git-sync on the same root fails to take its lock.
		path := filepath.Join(t.TempDir(), "second", "err.json")
		res := runWith(t, runOpts{Timeout: 30 * time.Second}, concat(syncArgs(up, root), []string{"--one-time", "--error-file=" + path})...)
		if res.Code != 1 {
			t.Fatalf("want exit 1, got %s", res)
		}
		r, raw, ok := readErrorFile(path)
		if !ok {
			t.Fatalf("no error file after a failed startup (%q)\n%s", raw, res)
		}
		if r.Err == "" || !strings.Contains(res.Stderr, r.Err) {
			t.Errorf("error file %s does not hold the logged error:\n%s", raw, res.Stderr)
		}
	})
	t.Run("too many failures is the last report", func(t *testing.T) {
		t.Parallel()
		up, _ := gittest.NewRepoWithCommit(t)
		root := newRoot(t)
		p := start(t, concat(syncArgs(up, root), []string{"--ref=missing", "--period=50ms", "--max-failures=1", "--error-file=err.json"})...)
		if code := p.Wait(syncDeadline); code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		r, raw, ok := readErrorFile(filepath.Join(root, "err.json"))
		if !ok || !strings.Contains(r.Msg, "too many failures") {
			t.Fatalf("error file after giving up = %q, want the \"too many failures\" report", raw)
		}
		if !strings.Contains(r.Err, "couldn't find remote ref") {
			t.Errorf("the final report lacks git's message verbatim: %s", raw)
		}
		// The final error is logged once, not again as a generic failure.
		n := 0
		for _, rec := range errorRecords(p.Logs()) {
			if strings.Contains(rec, "too many") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d error records mention the final failure, want 1:\n%s", n, strings.Join(errorRecords(p.Logs()), "\n"))
		}
	})
}
