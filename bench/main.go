// Command bench measures git-sync against the raw-git floor.
//
// It generates deterministic upstream repositories (a small and a medium
// one, cached between runs), serves them over file:// and smart HTTP, and
// runs git-sync and bench/floor.sh (the same jobs done by hand with plain
// git) alternately in each scenario: first sync, idle poll, update, commit
// storm, disk growth, memory, webhook, ssh and a relay with followers
// (relay.go). It prints every figure, the floor's figure and their ratio
// against the project's targets.
//
//	go run ./bench -quick   # a few minutes
//	go run ./bench          # the full run recorded in docs/PERFORMANCE.md
//
// CPU is the user+system time of a whole process tree: for a command run to
// completion, from its rusage (which includes every descendant it reaped);
// for a running daemon, from /proc/PID/stat utime+stime+cutime+cstime
// sampled around a window. Processes are counted in separate runs under
// strace. No timing figure is taken from a traced run.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

//go:embed floor.sh
var floorScript []byte

// options are the runner's settings.
type options struct {
	quick         bool
	gitsync       string
	sizes         []string
	transports    []string
	scenarios     []string
	depths        []int
	gcModes       []string
	reps          int
	idleWindow    time.Duration
	idlePeriod    time.Duration
	floorCalls    int
	stormRate     int
	stormDuration time.Duration
	stormSizes    []string
	stormTrans    string
	stormReps     int
	rssPolls      int
	diskUpdates   int
	rssPeriod     time.Duration
	traceWindow   time.Duration
	workdir       string
	fixtures      string
	noTrace       bool
	keep          bool
	jsonOut       string
	strict        bool
	relay         relayOptions
}

func main() {
	if root := os.Getenv(backendChildEnv); root != "" {
		// The relay scenario's floor server, run as a process of its own.
		os.Exit(runBackendChild(root))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var sizes, transports, scenarios, depths, gcModes, stormSizes string
	fs.BoolVar(&o.quick, "quick", false, "short run: fewer repetitions, shorter windows, 1,000 polls for the memory test")
	fs.StringVar(&o.gitsync, "gitsync", "", "git-sync binary to measure (default: build ./cmd/git-sync of this module)")
	fs.StringVar(&sizes, "sizes", "small,medium", "fixture sizes: small, medium")
	fs.StringVar(&transports, "transports", "file,http", "transports: file, http")
	fs.StringVar(&scenarios, "scenarios", "first,idle,update,storm,slowreader,disk,rss,webhook,ssh,relay", "scenarios to run")
	fs.StringVar(&depths, "depths", "1,0", "--depth values for the first-sync scenario")
	fs.StringVar(&gcModes, "gc", gcDefault+",off", "--git-gc values for the update scenario (\""+gcDefault+"\": the flag is not passed; targets apply to that run only)")
	fs.IntVar(&o.reps, "reps", 0, "alternating repetitions per figure (default 7, quick 3)")
	fs.DurationVar(&o.idleWindow, "idle-window", 0, "length of one idle-poll measurement window (default 10s, quick 3s)")
	fs.DurationVar(&o.idlePeriod, "idle-period", 100*time.Millisecond, "git-sync --period during the idle-poll scenario")
	fs.IntVar(&o.floorCalls, "floor-calls", 0, "git ls-remote runs per floor idle window (default 40, quick 15)")
	fs.IntVar(&o.stormRate, "storm-rate", 20, "upstream commits per second during the commit storm")
	fs.DurationVar(&o.stormDuration, "storm-duration", 0, "length of the commit storm (default 30s, quick 10s)")
	fs.StringVar(&stormSizes, "storm-sizes", "small", "fixture sizes for the commit storm")
	fs.StringVar(&o.stormTrans, "storm-transport", "file", "transport for the commit storm")
	fs.IntVar(&o.stormReps, "storm-reps", 0, "commit-storm repetitions (default 3, quick 1)")
	fs.IntVar(&o.rssPolls, "rss-polls", 0, "idle polls for the memory-growth test (default 10000, quick 1000)")
	fs.IntVar(&o.diskUpdates, "disk-updates", 0, "updates in the disk-growth scenario (default 200, quick 50)")
	fs.DurationVar(&o.rssPeriod, "rss-period", 10*time.Millisecond, "git-sync --period during the memory-growth test")
	fs.DurationVar(&o.traceWindow, "trace-window", 0, "length of the traced idle window used to count processes (default 10s, quick 5s)")
	fs.StringVar(&o.workdir, "workdir", "", "scratch directory for checkouts (default: a new directory on a tmpfs when one is available)")
	fs.StringVar(&o.fixtures, "fixtures", filepath.Join(os.TempDir(), "gitsync-bench-fixtures"), "fixture cache directory")
	fs.BoolVar(&o.noTrace, "no-trace", false, "skip the strace runs (no process counts)")
	fs.BoolVar(&o.keep, "keep", false, "keep the scratch directory")
	fs.StringVar(&o.jsonOut, "json", "", "also write every sample and figure as JSON to this file")
	fs.BoolVar(&o.strict, "strict", false, "exit 1 when a target is missed")
	addRelayFlags(fs, &o.relay)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	o.sizes, o.transports, o.scenarios = splitList(sizes), splitList(transports), splitList(scenarios)
	o.gcModes, o.stormSizes = splitList(gcModes), splitList(stormSizes)
	for _, d := range splitList(depths) {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return o, fmt.Errorf("bad depth %q", d)
		}
		o.depths = append(o.depths, n)
	}
	for _, s := range append(append([]string(nil), o.sizes...), o.stormSizes...) {
		if _, ok := fixtureSpecs[s]; !ok {
			return o, fmt.Errorf("unknown size %q (want small or medium)", s)
		}
	}
	for _, t := range append(append([]string(nil), o.transports...), o.stormTrans) {
		if t != "file" && t != "http" {
			return o, fmt.Errorf("unknown transport %q (want file or http)", t)
		}
	}
	for _, s := range o.scenarios {
		switch s {
		case "first", "idle", "update", "storm", "slowreader", "disk", "rss", "webhook", "ssh", "relay":
		default:
			return o, fmt.Errorf("unknown scenario %q", s)
		}
	}
	for _, g := range o.gcModes {
		switch g {
		case gcDefault, "off", "auto", "always", "aggressive":
		default:
			return o, fmt.Errorf("unknown --git-gc value %q (want %s, off, auto, always or aggressive)", g, gcDefault)
		}
	}
	if len(o.gcModes) == 0 {
		o.gcModes = []string{gcDefault}
	}
	def := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	defd := func(v *time.Duration, full, quick time.Duration) {
		if *v == 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	def(&o.reps, 7, 3)
	def(&o.floorCalls, 40, 15)
	def(&o.stormReps, 3, 1)
	def(&o.rssPolls, 10000, 1000)
	def(&o.diskUpdates, 200, 50)
	defd(&o.idleWindow, 10*time.Second, 3*time.Second)
	defd(&o.stormDuration, 30*time.Second, 10*time.Second)
	defd(&o.traceWindow, 10*time.Second, 5*time.Second)
	if err := o.relay.finish(o.quick); err != nil {
		return o, err
	}
	return o, nil
}

// bench is one benchmark run.
type bench struct {
	opt      options
	log      io.Writer
	work     string // scratch directory
	workNote string // where the scratch directory is and why
	unmount  bool   // work is a tmpfs this run mounted
	home     string
	env      []string // environment of every measured command
	gitsync  string
	floor    string
	strace   error // nil when strace works
	cgroups  cgroupMount
	fixtures map[string]*fixture
	serve    string // directory of served upstream copies
	server   *gitServer
	seq      int
	daemons  map[*daemon]bool
	results  []*row
	info     map[string]string
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opt, err := parseOptions(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	b := &bench{opt: opt, log: stderr, daemons: map[*daemon]bool{}, info: map[string]string{}}
	defer b.cleanup()
	if err := b.setup(ctx); err != nil {
		fmt.Fprintln(stderr, "bench: setup:", err)
		return 1
	}
	b.printHeader(stdout)
	failed := false
	for _, sc := range opt.scenarios {
		var err error
		switch sc {
		case "first":
			err = b.scenarioFirst(ctx)
		case "idle":
			err = b.scenarioIdle(ctx)
		case "update":
			err = b.scenarioUpdate(ctx)
		case "storm":
			err = b.scenarioStorm(ctx)
		case "slowreader":
			err = b.scenarioSlowReader(ctx)
		case "disk":
			err = b.scenarioDisk(ctx)
		case "rss":
			err = b.scenarioRSS(ctx)
		case "webhook":
			err = b.scenarioWebhook(ctx)
		case "ssh":
			err = b.scenarioSSH(ctx)
		case "relay":
			err = b.scenarioRelay(ctx)
		}
		if err != nil {
			b.logf("scenario %s failed: %v", sc, err)
			b.info["failed: "+sc] = err.Error()
			failed = true
		}
		if ctx.Err() != nil {
			break
		}
	}
	b.info["load average"] += " → " + loadAverage() + " (end)"
	fmt.Fprintf(stdout, "- load average: %s\n\n", b.info["load average"])
	missed := b.printTable(stdout)
	if opt.jsonOut != "" {
		if err := b.writeJSON(opt.jsonOut); err != nil {
			fmt.Fprintln(stderr, "bench: writing JSON:", err)
		}
	}
	switch {
	case failed || ctx.Err() != nil:
		return 1
	case missed > 0 && opt.strict:
		return 1
	}
	return 0
}

// setup prepares the scratch directory, the environment, the binaries, the
// fixtures and the HTTP server.
func (b *bench) setup(ctx context.Context) error {
	if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
			clockTicks = v
		}
	}
	if err := b.makeWorkdir(); err != nil {
		return err
	}
	b.logf("scratch directory: %s", b.workNote)
	b.home = filepath.Join(b.work, "home")
	if err := os.MkdirAll(b.home, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.home, ".gitconfig"), nil, 0o644); err != nil {
		return err
	}
	b.env = gitEnv(b.home)
	b.floor = filepath.Join(b.work, "floor.sh")
	if err := os.WriteFile(b.floor, floorScript, 0o755); err != nil {
		return err
	}
	if err := b.findGitSync(ctx); err != nil {
		return err
	}
	if !b.opt.noTrace {
		b.strace = haveStrace()
		if b.strace != nil {
			b.logf("process counts disabled: %v", b.strace)
		}
	} else {
		b.strace = errors.New("disabled by -no-trace")
	}
	if cg, err := findCgroupMount(); err == nil {
		b.cgroups = cg
		b.info["daemon CPU"] = "each daemon in its own cgroup: " + cg.String() + " (whole tree, ns precision)"
	} else {
		b.info["daemon CPU"] = "/proc/PID/stat utime+stime+cutime+cstime (10 ms ticks; children counted when reaped): " + err.Error()
	}
	if b.cgroups.kind == cgroupV2 {
		b.info["command CPU"] = "each command started inside its own cgroup v2 (CLONE_INTO_CGROUP): whole tree, including anything left running"
	} else {
		b.info["command CPU"] = "rusage of the command (itself and every descendant it waited for)"
	}
	b.logf("daemon CPU: %s", b.info["daemon CPU"])
	b.logf("command CPU: %s", b.info["command CPU"])
	b.fixtures = map[string]*fixture{}
	sizes := map[string]bool{}
	for _, s := range b.opt.sizes {
		sizes[s] = true
	}
	for _, sc := range b.opt.scenarios {
		if sc == "storm" || sc == "slowreader" {
			for _, s := range b.opt.stormSizes {
				sizes[s] = true
			}
		}
		if sc == "rss" || sc == "webhook" {
			sizes["small"] = true
		}
		if sc == "relay" {
			sizes["small"], sizes["medium"] = true, true
		}
	}
	fixEnv := gitEnv(b.home)
	for _, name := range []string{"small", "medium"} {
		if !sizes[name] {
			continue
		}
		start := time.Now()
		fx, err := loadFixture(ctx, fixEnv, b.opt.fixtures, fixtureSpecs[name], b.logf)
		if err != nil {
			return fmt.Errorf("fixture %s: %w", name, err)
		}
		n, _ := runGit(ctx, fixEnv, fx.Dir, "ls-tree", "-r", "--name-only", "HEAD")
		c, _ := runGit(ctx, fixEnv, fx.Dir, "rev-list", "--count", "HEAD")
		files := strings.Count(n, "\n") + 1
		b.info["fixture "+name] = fmt.Sprintf("%d files, %s commits, head %s", files, c, fx.Head)
		b.logf("fixture %s: %d files, %s commits, head %s (%v)", name, files, c, fx.Head[:12], time.Since(start).Round(time.Millisecond))
		b.fixtures[name] = fx
	}
	b.serve = filepath.Join(b.work, "serve")
	if err := os.MkdirAll(b.serve, 0o755); err != nil {
		return err
	}
	execPath, err := runGit(ctx, fixEnv, "", "--exec-path")
	if err != nil {
		return err
	}
	errlog, err := os.Create(filepath.Join(b.work, "http-backend.log"))
	if err != nil {
		return err
	}
	b.server, err = startGitServer(b.serve, execPath, fixEnv, errlog)
	if err != nil {
		return err
	}
	b.logf("smart HTTP server: %s (git http-backend via CGI)", b.server.URL)
	return nil
}

// makeWorkdir picks the scratch directory: a tmpfs when one is available
// (disk noise on shared machines swamps the differences being measured),
// else the temporary directory on disk.
func (b *bench) makeWorkdir() error {
	if b.opt.workdir != "" {
		if err := os.MkdirAll(b.opt.workdir, 0o755); err != nil {
			return err
		}
		dir, err := os.MkdirTemp(b.opt.workdir, "gitsync-bench-")
		if err != nil {
			return err
		}
		b.work = dir
		b.workNote = describeFS(dir, "chosen with -workdir")
		return nil
	}
	if isTmpfs("/dev/shm") {
		if dir, err := os.MkdirTemp("/dev/shm", "gitsync-bench-"); err == nil {
			b.work = dir
			b.workNote = describeFS(dir, "/dev/shm")
			return nil
		}
	}
	dir, err := os.MkdirTemp("", "gitsync-bench-")
	if err != nil {
		return err
	}
	b.work = dir
	if os.Geteuid() == 0 {
		if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4g", "tmpfs", dir).Run(); err == nil {
			b.unmount = true
			b.workNote = describeFS(dir, "tmpfs mounted by the runner")
			return nil
		}
	}
	b.workNote = describeFS(dir, "no tmpfs available: on disk, expect more noise")
	return nil
}

func describeFS(dir, why string) string {
	kind := "disk"
	if isTmpfs(dir) {
		kind = "tmpfs"
	}
	return fmt.Sprintf("%s (%s; %s)", dir, kind, why)
}

// findGitSync builds ./cmd/git-sync of this module unless -gitsync names a
// binary.
func (b *bench) findGitSync(ctx context.Context) error {
	if b.opt.gitsync != "" {
		p, err := exec.LookPath(b.opt.gitsync)
		if err != nil {
			return err
		}
		b.gitsync, _ = filepath.Abs(p)
	} else {
		out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
		gomod := strings.TrimSpace(string(out))
		if err != nil || gomod == "" || gomod == os.DevNull {
			return fmt.Errorf("not inside the gitsync module (run from the repository, or pass -gitsync)")
		}
		b.gitsync = filepath.Join(b.work, "bin", "git-sync")
		// Built as it ships (see README): static, without cgo. A cgo build
		// links libc dynamically only for net's DNS resolver and costs about
		// 1.4 MiB more resident memory.
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.gitsync, "./cmd/git-sync")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Dir = filepath.Dir(gomod)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building ./cmd/git-sync: %v\n%s", err, out)
		}
		b.logf("built %s (CGO_ENABLED=0)", b.gitsync)
		b.info["build"] = "CGO_ENABLED=0 go build ./cmd/git-sync (static, as shipped)"
		dir := filepath.Dir(gomod)
		if head, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--short", "HEAD").Output(); err == nil {
			tree := strings.TrimSpace(string(head))
			if st, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
				tree += " with uncommitted changes"
			}
			b.info["source"] = "./cmd/git-sync at " + tree
		}
	}
	out, _ := exec.CommandContext(ctx, b.gitsync, "--version").CombinedOutput()
	b.info["git-sync version"] = strings.TrimSpace(string(out))
	return nil
}

func (b *bench) cleanup() {
	for d := range b.daemons {
		b.stopDaemon(d)
	}
	if b.server != nil {
		b.server.Close()
	}
	if b.work == "" {
		return
	}
	if b.opt.keep {
		b.logf("kept scratch directory %s", b.work)
		return
	}
	if b.unmount {
		exec.Command("umount", b.work).Run()
	}
	os.RemoveAll(b.work)
}

// printHeader prints the machine and run description.
func (b *bench) printHeader(w io.Writer) {
	gitv, _ := exec.Command("git", "--version").Output()
	b.info["date"] = time.Now().UTC().Format("2006-01-02 15:04 UTC")
	b.info["machine"] = machineDescription()
	b.info["git"] = strings.TrimSpace(string(gitv))
	b.info["go"] = runtime.Version()
	b.info["scratch"] = b.workNote
	b.info["load average"] = loadAverage() + " (start)"
	if b.strace == nil {
		b.info["process counting"] = "strace -f (execve, clone/clone3/fork/vfork without CLONE_THREAD), separate untimed runs"
	} else {
		b.info["process counting"] = "off: " + b.strace.Error()
	}
	mode := "full"
	if b.opt.quick {
		mode = "quick"
	}
	b.info["mode"] = fmt.Sprintf("%s: %d alternating reps per figure (medians), idle window %v at --period=%v, storm %d commits/s for %v ×%d, disk growth over %d updates, memory test %d polls at --period=%v",
		mode, b.opt.reps, b.opt.idleWindow, b.opt.idlePeriod, b.opt.stormRate, b.opt.stormDuration, b.opt.stormReps, b.opt.diskUpdates, b.opt.rssPolls, b.opt.rssPeriod)
	fmt.Fprintln(w, "# git-sync benchmark")
	fmt.Fprintln(w)
	for _, k := range []string{"date", "machine", "git", "go", "git-sync version", "source", "scratch", "command CPU", "daemon CPU", "process counting", "mode", "fixture small", "fixture medium"} {
		if v, ok := b.info[k]; ok {
			fmt.Fprintf(w, "- %s: %s\n", k, v)
		}
	}
	fmt.Fprintln(w)
}

// machineDescription returns CPU count, model and memory.
func machineDescription() string {
	model := "unknown CPU"
	if bs, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(bs), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if bs, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(bs), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				f := strings.Fields(line)
				if len(f) >= 2 {
					kb, _ := strconv.ParseInt(f[1], 10, 64)
					mem = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
				}
			}
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	return fmt.Sprintf("%d CPUs (%s)%s, Linux %s", runtime.NumCPU(), model, mem, strings.TrimSpace(string(kernel)))
}

// newUpstream copies the fixture of the given size to a fresh served
// directory and returns it with its URL on the given transport.
func (b *bench) newUpstream(ctx context.Context, size string) (*upstream, error) {
	b.seq++
	name := fmt.Sprintf("%s-%d.git", size, b.seq)
	dir := filepath.Join(b.serve, name)
	if out, err := exec.CommandContext(ctx, "cp", "-a", b.fixtures[size].Dir, dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copying fixture: %v: %s", err, out)
	}
	return openUpstream(ctx, b.env, dir)
}

// repoURL is the URL of an upstream copy on a transport.
func (b *bench) repoURL(u *upstream, transport string) string {
	if transport == "http" {
		return b.server.RepoURL(filepath.Base(u.Dir))
	}
	return "file://" + u.Dir
}

// newRoot returns a fresh, not yet existing directory name for a root.
func (b *bench) newRoot(label string) string {
	b.seq++
	return filepath.Join(b.work, "roots", fmt.Sprintf("%s-%d", label, b.seq))
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (b *bench) writeJSON(path string) error {
	out := struct {
		Info    map[string]string `json:"info"`
		Results []*row            `json:"results"`
	}{b.info, b.results}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// loadAverage returns the 1-minute load average: other work on the machine
// shows up here, and in the noise of the figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}
