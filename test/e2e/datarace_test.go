package e2e

// A run of the git-sync binary built with the race detector: the parts
// that only meet in a running process (the HTTP handlers, the sync loop,
// the hook runners, signal handling) are exercised together, and any data
// race the detector sees fails the test.

import (
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"gitsync/internal/gittest"
)

// buildRaceBinary builds ./cmd/git-sync with -race into a temp dir.
func buildRaceBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "git-sync-race")
	build := exec.Command(goTool(), "build", "-race", "-o", bin, "./cmd/git-sync")
	build.Dir = moduleRoot()
	build.Env = append(childEnv(t), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building with -race (needs cgo and a C compiler; Debian: apt-get install -y gcc): %v\n%s", err, out)
	}
	return bin
}

func TestNoDataRaces(t *testing.T) {
	t.Parallel()
	bin := buildRaceBinary(t)
	up, h := gittest.NewRepoWithCommit(t)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	addr := freeAddr(t)
	hook, _ := hookScript(t, "exit 0\n")
	p := startWith(t, runOpts{Bin: bin, Env: []string{"GORACE=halt_on_error=0 exitcode=66"}},
		concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=100ms", "--sync-on-signal=SIGHUP",
			"--exechook-command=" + hook, "--exechook-backoff=1s", "--error-file=error.json"})...)

	// Probe readiness and scrape metrics without pause from the moment the
	// process starts, so that the handlers run while the process sets up
	// and while it syncs.
	stop := make(chan struct{})
	var probes sync.WaitGroup
	var mu sync.Mutex
	answered := map[string]int{}
	for _, path := range []string{"/", "/metrics"} {
		probes.Add(1)
		go func() {
			defer probes.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if code, _, err := httpGet(addr, path); err == nil && code != 0 {
					mu.Lock()
					answered[path]++
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond) // pacing, not synchronisation
			}
		}()
	}

	waitForLink(t, p, link, h)
	last := h
	for i := range 3 {
		last = up.Commit(map[string]string{"file.txt": strings.Repeat("x", i+1)}, "c")
		if i == 1 {
			p.sendSignal(syscall.SIGHUP)
		}
		waitForLink(t, p, link, last)
	}
	waitForMetric(t, addr, func(v float64) bool { return v >= 4 }, "four successful syncs", "git_sync_count_total", "status", "success")
	waitForMetric(t, addr, func(v float64) bool { return v >= 4 }, "four hook runs", "git_sync_hook_run_count_total", "status", "success")

	// The exposition of the running binary parses with Prometheus' own
	// parser.
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(metricsText(t, addr)))
	if err != nil {
		t.Errorf("/metrics does not parse: %v", err)
	}
	for _, name := range []string{"git_sync_count_total", "process_open_fds", "go_goroutines"} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	close(stop)
	probes.Wait()
	if code := p.Stop(); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0 (66 means the race detector reported)", code)
	}
	if logs := p.Logs(); strings.Contains(logs, "DATA RACE") {
		t.Errorf("the race detector reported:\n%s", logs)
	}
	mu.Lock()
	defer mu.Unlock()
	if answered["/"] == 0 || answered["/metrics"] == 0 {
		t.Errorf("probes answered: %v", answered)
	}
	if code, _, err := httpGet(addr, "/"); err == nil {
		t.Errorf("GET / answered %d after exit", code)
	}
}
