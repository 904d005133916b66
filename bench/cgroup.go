package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A running daemon's CPU is best read from a cgroup of its own: the kernel
// charges every process in it (the daemon and every child it forks, running
// or finished) with nanosecond precision. /proc/PID/stat, the fallback,
// counts children only once reaped and only in clock ticks (10 ms), too
// coarse for a 40 ms update.

// cgroupKind says how CPU is read from a cgroup.
type cgroupKind int

const (
	cgroupNone cgroupKind = iota
	cgroupV2              // cpu.stat usage_usec
	cgroupV1              // cpuacct.usage (ns)
)

// cgroupMount is the hierarchy the runner creates its cgroups in.
type cgroupMount struct {
	kind cgroupKind
	dir  string
}

// findCgroupMount picks cgroup v2 if mounted, else a v1 cpuacct hierarchy,
// and checks that a child cgroup can be created there.
func findCgroupMount() (cgroupMount, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return cgroupMount{}, err
	}
	defer f.Close()
	var v1, v2 string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 {
			continue
		}
		switch {
		case fs[2] == "cgroup2" && v2 == "":
			v2 = fs[1]
		case fs[2] == "cgroup" && v1 == "":
			for _, o := range strings.Split(fs[3], ",") {
				if o == "cpuacct" {
					v1 = fs[1]
				}
			}
		}
	}
	var errs []string
	for _, m := range []cgroupMount{{cgroupV2, v2}, {cgroupV1, v1}} {
		if m.dir == "" {
			continue
		}
		probe, err := m.create("probe")
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		_, err = probe.usage()
		probe.remove()
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		return m, nil
	}
	if len(errs) == 0 {
		return cgroupMount{}, fmt.Errorf("no cgroup v2 or cpuacct hierarchy mounted")
	}
	return cgroupMount{}, fmt.Errorf("cannot use cgroups: %s", strings.Join(errs, "; "))
}

func (m cgroupMount) String() string {
	switch m.kind {
	case cgroupV2:
		return "cgroup v2 cpu.stat usage_usec in " + m.dir
	case cgroupV1:
		return "cgroup v1 cpuacct.usage in " + m.dir
	}
	return "none"
}

// cgroup is one cgroup the runner created.
type cgroup struct {
	kind cgroupKind
	dir  string
}

func (m cgroupMount) create(name string) (*cgroup, error) {
	dir := filepath.Join(m.dir, fmt.Sprintf("gitsync-bench-%d-%s", os.Getpid(), name))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	return &cgroup{kind: m.kind, dir: dir}, nil
}

// add moves pid (and so every process it forks from now on) into the cgroup.
func (c *cgroup) add(pid int) error {
	return os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// usage returns the CPU charged to the cgroup so far.
func (c *cgroup) usage() (time.Duration, error) {
	switch c.kind {
	case cgroupV2:
		b, err := os.ReadFile(filepath.Join(c.dir, "cpu.stat"))
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
				us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return time.Duration(us) * time.Microsecond, err
			}
		}
		return 0, fmt.Errorf("no usage_usec in %s/cpu.stat", c.dir)
	case cgroupV1:
		b, err := os.ReadFile(filepath.Join(c.dir, "cpuacct.usage"))
		if err != nil {
			return 0, err
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return time.Duration(ns), err
	}
	return 0, fmt.Errorf("no cgroup")
}

// pids lists the processes in the cgroup.
func (c *cgroup) pids() []int {
	b, err := os.ReadFile(filepath.Join(c.dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// remove deletes the cgroup, waiting briefly for exiting processes to leave.
func (c *cgroup) remove() {
	for i := 0; i < 100; i++ {
		if os.Remove(c.dir) == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// threadsCPU returns the CPU used by pid's own threads (not its children),
// in nanoseconds from /proc/PID/task/*/schedstat.
func threadsCPU(pid int) time.Duration {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

// meter reads the CPU of one running process tree: from its cgroup when
// there is one, else from /proc/PID/stat.
type meter struct {
	pid int
	cg  *cgroup
}

// cpuSample is a reading of a meter.
type cpuSample struct {
	Total time.Duration // the process and all its descendants
	Self  time.Duration // the process alone
}

func (s cpuSample) sub(o cpuSample) cpuSample {
	return cpuSample{s.Total - o.Total, s.Self - o.Self}
}

func (m *meter) sample() cpuSample {
	var s cpuSample
	if m.cg != nil {
		s.Total, _ = m.cg.usage()
	} else {
		st, _ := readProcStat(m.pid)
		s.Total = st.CPU
	}
	s.Self = threadsCPU(m.pid)
	if s.Self == 0 {
		st, _ := readProcStat(m.pid)
		s.Self = st.Self
	}
	return s
}

// busy reports whether the tree has running children.
func (m *meter) busy() bool {
	var pids []int
	if m.cg != nil {
		pids = m.cg.pids()
	} else {
		pids = childrenOf(m.pid)
	}
	for _, p := range pids {
		if p != m.pid && !isRemoteHelper(p) && !isSSHMaster(p) {
			return true
		}
	}
	return false
}

// isRemoteHelper reports whether pid is a git HTTP remote helper (`git
// remote-http(s)` or `git-remote-http(s)`). git-sync keeps one waiting
// between polls over HTTP, so its presence says nothing about work; a
// helper that belongs to a fetch has the fetch itself as a busy process.
func isRemoteHelper(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	base := filepath.Base(args[0])
	return strings.HasPrefix(base, "git-remote-http") ||
		base == "git" && len(args) > 1 && strings.HasPrefix(args[1], "remote-http")
}

// isSSHMaster reports whether pid is git-sync's kept SSH connection (an
// ssh master waiting between sessions; see bench/ssh.go).
func isSSHMaster(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), "ControlMaster=yes")
}

// newMeter starts metering pid, in a fresh cgroup when the runner can make
// one.
func (b *bench) newMeter(pid int) *meter {
	m := &meter{pid: pid}
	if b.cgroups.kind == cgroupNone {
		return m
	}
	b.seq++
	cg, err := b.cgroups.create(strconv.Itoa(b.seq))
	if err != nil {
		return m
	}
	if err := cg.add(pid); err != nil {
		cg.remove()
		return m
	}
	m.cg = cg
	return m
}

// close removes the meter's cgroup (once its processes have exited).
func (m *meter) close() {
	if m.cg != nil {
		m.cg.remove()
	}
}

// waitQuiet waits until the tree has had no children and (nearly) no CPU
// use for the quiet interval, and returns the last instant it was seen
// busy. It is how the runner decides that a daemon has finished an update
// (cleanup and gc included) without asking the daemon anything that would
// cost it CPU.
func (m *meter) waitQuiet(ctx context.Context, quiet, limit time.Duration) (time.Time, error) {
	const step = 2 * time.Millisecond
	deadline := time.Now().Add(limit)
	lastBusy := time.Now()
	prev := m.sample().Total
	for {
		select {
		case <-ctx.Done():
			return lastBusy, ctx.Err()
		case <-time.After(step):
		}
		now := time.Now()
		cur := m.sample().Total
		// More than a quarter of a CPU over the step is work, not the
		// runtime's background ticking.
		if cur-prev > step/4 || m.busy() {
			lastBusy = now
		} else if now.Sub(lastBusy) >= quiet {
			return lastBusy, nil
		}
		prev = cur
		if now.After(deadline) {
			return lastBusy, fmt.Errorf("process %d still busy after %v", m.pid, limit)
		}
	}
}

// waitIdleMoment waits (briefly) for an instant when the tree has no
// children, so that a sample taken then splits no poll in two.
func (m *meter) waitIdleMoment(ctx context.Context) {
	deadline := time.Now().Add(2 * time.Second)
	for m.busy() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
}

// measure runs argv (in the scratch directory, with the benchmark's
// environment) to completion and measures its whole process tree. With
// cgroup v2 the command starts inside a fresh cgroup (CLONE_INTO_CGROUP),
// so everything it starts is charged, including anything it leaves running
// in the background (the measurement then lasts until that has exited too);
// otherwise the command's rusage is used, which covers every descendant
// that was waited for.
func (b *bench) measure(ctx context.Context, argv ...string) (measurement, error) {
	var cg *cgroup
	var dirFD *os.File
	if b.cgroups.kind == cgroupV2 {
		b.seq++
		if c, err := b.cgroups.create("cmd-" + strconv.Itoa(b.seq)); err == nil {
			if f, err := os.Open(c.dir); err == nil {
				cg, dirFD = c, f
			} else {
				c.remove()
			}
		}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = b.env, b.work
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	if cg != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dirFD.Fd())}
	}
	start := time.Now()
	err := cmd.Run()
	end := time.Now()
	var m measurement
	if cmd.ProcessState != nil {
		m.CPU = rusageCPU(cmd.ProcessState)
	}
	if cg != nil {
		dirFD.Close()
		for deadline := end.Add(time.Minute); len(cg.pids()) > 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
			end = time.Now()
		}
		if u, uerr := cg.usage(); uerr == nil {
			m.CPU = u
		}
		cg.remove()
	}
	m.Wall = end.Sub(start)
	if err != nil {
		return m, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, lastLines(errBuf.String(), 5))
	}
	return m, nil
}
