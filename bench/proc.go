package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the unit of the times in /proc/PID/stat (USER_HZ). It is
// 100 on every Linux architecture Go supports except alpha; main checks it
// with getconf when available.
var clockTicks int64 = 100

// measurement is what one run of a command cost: wall time and the CPU of
// its whole process tree (the command plus every descendant it waited for).
type measurement struct {
	Wall time.Duration
	CPU  time.Duration
	Self time.Duration // for a daemon: the daemon process alone
	// Bytes is what the benchmark's HTTP server sent during the run (0
	// over file://).
	Bytes int64
}

// rusageCPU returns user+system time from a finished command's rusage,
// which for wait4/waitid covers the child and all the descendants it
// reaped: git waits for its helpers, so this is the whole tree.
func rusageCPU(ps *os.ProcessState) time.Duration {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runMeasured runs a command to completion and returns its wall time and
// rusage. The benchmark uses it for untimed runs (setup, strace); timed
// commands go through bench.measure, which also catches processes left
// running in the background.
func runMeasured(ctx context.Context, env []string, dir string, stdout, stderr io.Writer, name string, args ...string) (measurement, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout = stdout
	var errBuf bytes.Buffer
	if stderr != nil {
		cmd.Stderr = io.MultiWriter(stderr, &errBuf)
	} else {
		cmd.Stderr = &errBuf
	}
	start := time.Now()
	err := cmd.Run()
	m := measurement{Wall: time.Since(start)}
	if cmd.ProcessState != nil {
		m.CPU = rusageCPU(cmd.ProcessState)
	}
	if err != nil {
		return m, fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, lastLines(errBuf.String(), 5))
	}
	return m, nil
}

// lastLines returns the last n lines of s, trimmed.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// procStat is the parsed part of /proc/PID/stat the benchmark needs.
type procStat struct {
	PPid int
	// CPU is utime+stime+cutime+cstime: the process and the children it
	// has reaped (which include their own reaped descendants). Self is the
	// utime+stime part: the process alone.
	CPU, Self time.Duration
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name is in parentheses and may contain anything, so
	// fields are counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime..cstime are fields 14..17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("short /proc/%d/stat", pid)
	}
	var st procStat
	st.PPid, _ = strconv.Atoi(f[1])
	var ticks [4]int64
	for i, s := range f[11:15] {
		ticks[i], _ = strconv.ParseInt(s, 10, 64)
	}
	toDur := func(t int64) time.Duration { return time.Duration(t) * time.Second / time.Duration(clockTicks) }
	st.Self = toDur(ticks[0] + ticks[1])
	st.CPU = toDur(ticks[0] + ticks[1] + ticks[2] + ticks[3])
	return st, nil
}

// procMem is the memory of one process (not its children), in KiB, from
// /proc/PID/status.
type procMem struct {
	RSS, HWM, Anon, File, Shmem int64
}

func (m procMem) String() string {
	mib := func(kb int64) float64 { return float64(kb) / 1024 }
	return fmt.Sprintf("VmRSS %.2f MiB = RssAnon %.2f + RssFile %.2f + RssShmem %.2f; VmHWM %.2f MiB",
		mib(m.RSS), mib(m.Anon), mib(m.File), mib(m.Shmem), mib(m.HWM))
}

func readProcMem(pid int) procMem {
	var m procMem
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	defer f.Close()
	fields := map[string]*int64{"VmRSS:": &m.RSS, "VmHWM:": &m.HWM, "RssAnon:": &m.Anon, "RssFile:": &m.File, "RssShmem:": &m.Shmem}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 {
			if dst, ok := fields[fs[0]]; ok {
				*dst, _ = strconv.ParseInt(fs[1], 10, 64)
			}
		}
	}
	return m
}

// helperMem sums the memory of the HTTP remote helpers (isRemoteHelper)
// among pid's descendants.
func helperMem(pid int) procMem {
	var sum procMem
	for _, kid := range childrenOf(pid) {
		sum = sum.plus(helperMem(kid))
		if isRemoteHelper(kid) {
			sum = sum.plus(readProcMem(kid))
		}
	}
	return sum
}

func (m procMem) plus(o procMem) procMem {
	return procMem{RSS: m.RSS + o.RSS, HWM: m.HWM + o.HWM, Anon: m.Anon + o.Anon, File: m.File + o.File, Shmem: m.Shmem + o.Shmem}
}

// childrenOf lists the live children of pid by scanning /proc (the
// kernel's per-task children file is not available everywhere).
func childrenOf(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == pid {
			continue
		}
		if st, err := readProcStat(p); err == nil && st.PPid == pid {
			kids = append(kids, p)
		}
	}
	return kids
}

// promMetrics is a scrape of a Prometheus text endpoint: series (name plus
// label set exactly as printed) to value.
type promMetrics map[string]float64

func scrapeMetrics(ctx context.Context, url string) (promMetrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	m := promMetrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[strings.ReplaceAll(line[:i], " ", "")] = v
	}
	return m, sc.Err()
}

// Metric names and series the runner reads from git-sync's /metrics.
const (
	mNoop      = `git_sync_count_total{status="noop"}`
	mSuccess   = `git_sync_count_total{status="success"}`
	mError     = `git_sync_count_total{status="error"}`
	mFetch     = `git_fetch_count_total`
	mNoopSum   = `git_sync_duration_seconds_sum{status="noop"}`
	mNoopCount = `git_sync_duration_seconds_count{status="noop"}`
	tmpfsMagic = 0x01021994
)

// isTmpfs reports whether dir is on a tmpfs.
func isTmpfs(dir string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == tmpfsMagic
}
