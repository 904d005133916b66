package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// linkName is the --link every run publishes, relative to its root.
const linkName = "current"

// daemon is a running git-sync (optionally under strace).
type daemon struct {
	cmd     *exec.Cmd
	PID     int // the git-sync process (not strace)
	Root    string
	Base    string // http://127.0.0.1:PORT
	Trace   string // strace output file, when traced
	Meter   *meter
	logPath string
	done    chan struct{}
	err     error
}

// gcDefault, as a --git-gc value of the runner, means "do not pass the
// flag": git-sync runs with its own default, as users run it.
const gcDefault = "default"

// daemonConfig describes one git-sync daemon.
type daemonConfig struct {
	URL    string
	Root   string
	Depth  int
	Period time.Duration
	GC     string   // --git-gc value; "" or gcDefault: the flag is not passed
	Extra  []string // more flags
	Env    []string // more environment variables (untimed runs only)
	Traced bool
}

// gcLabel names a --git-gc value in the report.
func gcLabel(gc string) string {
	if gc == "" || gc == gcDefault {
		return "default flags"
	}
	return "--git-gc=" + gc
}

// gitSyncArgs returns the git-sync arguments shared by every run.
func gitSyncArgs(url, root string, depth int) []string {
	return []string{
		"--repo=" + url,
		"--root=" + root,
		"--link=" + linkName,
		"--ref=" + fixtureBranch,
		"--depth=" + strconv.Itoa(depth),
	}
}

// startDaemon starts git-sync with its HTTP endpoint and metrics on a free
// loopback port and waits until it reports its first sync done.
func (b *bench) startDaemon(ctx context.Context, c daemonConfig) (*daemon, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append(gitSyncArgs(c.URL, c.Root, c.Depth),
		"--period="+c.Period.String(),
		"--http-bind=127.0.0.1:"+strconv.Itoa(port),
		"--http-metrics",
		"--max-failures=-1",
	)
	if c.GC != "" && c.GC != gcDefault {
		args = append(args, "--git-gc="+c.GC)
	}
	args = append(args, c.Extra...)
	b.seq++
	d := &daemon{Root: c.Root, Base: "http://127.0.0.1:" + strconv.Itoa(port), done: make(chan struct{})}
	d.logPath = filepath.Join(b.work, fmt.Sprintf("git-sync-%d.log", b.seq))
	logf, err := os.Create(d.logPath)
	if err != nil {
		return nil, err
	}
	argv := append([]string{b.gitsync}, args...)
	if c.Traced {
		d.Trace = filepath.Join(b.work, fmt.Sprintf("git-sync-%d.strace", b.seq))
		argv = append([]string{"strace"}, straceArgs(d.Trace, argv...)...)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		logf.Close()
		return nil, err
	}
	env := append(append([]string(nil), b.env...), c.Env...)
	d.cmd = &exec.Cmd{Path: path, Args: argv, Env: env, Stdout: logf, Stderr: logf}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	b.daemons[d] = true
	go func() {
		d.err = d.cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	d.PID = d.cmd.Process.Pid
	if c.Traced {
		// git-sync is strace's child, once strace has execed it (strace
		// also forks short-lived children of its own to probe the kernel).
		deadline := time.Now().Add(10 * time.Second)
		for d.PID == d.cmd.Process.Pid {
			for _, kid := range childrenOf(d.cmd.Process.Pid) {
				if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", kid)); exe == b.gitsync {
					d.PID = kid
				}
			}
			if time.Now().After(deadline) {
				b.stopDaemon(d)
				return nil, fmt.Errorf("git-sync did not start under strace")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	d.Meter = b.newMeter(d.PID)
	if err := d.waitReady(ctx, 10*time.Minute); err != nil {
		b.stopDaemon(d)
		return nil, err
	}
	return d, nil
}

// exited reports whether the daemon has exited.
func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// logTail returns the end of the daemon's log.
func (d *daemon) logTail() string {
	bs, _ := os.ReadFile(d.logPath)
	return lastLines(string(bs), 8)
}

// waitReady waits until GET / answers 200: the first sync has succeeded.
func (d *daemon) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if d.exited() {
			return fmt.Errorf("git-sync exited before its first sync (%v):\n%s", d.err, d.logTail())
		}
		resp, err := client.Get(d.Base + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("git-sync not ready after %v:\n%s", limit, d.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// metrics scrapes the daemon's /metrics.
func (d *daemon) metrics(ctx context.Context) (promMetrics, error) {
	if d.exited() {
		return nil, fmt.Errorf("git-sync exited (%v):\n%s", d.err, d.logTail())
	}
	return scrapeMetrics(ctx, d.Base+"/metrics")
}

// waitPolls waits until the noop counter has reached n.
func (d *daemon) waitPolls(ctx context.Context, n float64, limit time.Duration) (promMetrics, error) {
	deadline := time.Now().Add(limit)
	for {
		m, err := d.metrics(ctx)
		if err != nil {
			return nil, err
		}
		if m[mNoop] >= n {
			return m, nil
		}
		if time.Now().After(deadline) {
			return m, fmt.Errorf("only %v idle polls after %v (wanted %v)", m[mNoop], limit, n)
		}
		wait := time.Duration(n-m[mNoop]) * 5 * time.Millisecond
		wait = min(max(wait, 20*time.Millisecond), time.Second)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// signal sends sig to the git-sync process.
func (d *daemon) signal(sig syscall.Signal) error {
	return syscall.Kill(d.PID, sig)
}

// stop ends the daemon: SIGCONT (it may be stopped), SIGTERM, and SIGKILL
// if it has not exited within 10 s.
func (d *daemon) stop() {
	if d.exited() {
		return
	}
	syscall.Kill(d.PID, syscall.SIGCONT)
	syscall.Kill(d.PID, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		syscall.Kill(d.PID, syscall.SIGKILL)
		<-d.done
	}
}

func (b *bench) stopDaemon(d *daemon) {
	d.stop()
	if d.Meter != nil {
		d.Meter.close()
	}
	delete(b.daemons, d)
}

// readLinkHash returns the hash the link under root publishes (the base
// name of its target), or "" if there is none.
func readLinkHash(root string) string {
	t, err := os.Readlink(filepath.Join(root, linkName))
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

// waitLink waits until the link under root publishes hash.
func waitLink(ctx context.Context, root, hash string, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		if readLinkHash(root) == hash {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Now(), fmt.Errorf("%s/%s does not publish %s after %v (publishes %q)", root, linkName, hash, limit, readLinkHash(root))
		}
		select {
		case <-ctx.Done():
			return time.Now(), ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}
