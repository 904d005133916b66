package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Processes are counted with strace, which sees every fork and exec of a
// process tree without changing what runs (a counting --git wrapper would
// itself add a process per git command, and would miss the helpers git
// starts). The traced runs are separate from the timed ones: tracing slows
// process creation down, so no CPU or wall figure is ever taken from them.

// straceSyscalls are the system calls traced: process creation, exec, and
// (for the idle-poll analysis) which files are opened for writing and how
// many directories are listed.
const straceSyscalls = "execve,clone,clone3,fork,vfork,openat,getdents64"

// straceArgs returns the strace command line that traces argv into out.
func straceArgs(out string, argv ...string) []string {
	return append([]string{
		"-f", "-qq", "-ttt", "-s", "512", "--seccomp-bpf",
		"-e", "trace=" + straceSyscalls, "-o", out, "--",
	}, argv...)
}

// haveStrace reports whether strace is installed and can trace here
// (containers without CAP_SYS_PTRACE cannot).
func haveStrace() error {
	path, err := exec.LookPath("strace")
	if err != nil {
		return fmt.Errorf("strace not found (apt-get install strace)")
	}
	tmp, err := os.CreateTemp("", "strace-probe")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	out, err := exec.Command(path, straceArgs(tmp.Name(), "true")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("strace cannot trace here: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// traceEvent is one traced system call that completed successfully.
type traceEvent struct {
	PID  int
	At   time.Time
	Kind string   // "exec", "spawn", "write-open", "listdir"
	Argv []string // exec: the program's arguments
	Path string   // write-open: the file
}

// parseTrace reads an strace -f -ttt output file. System calls that strace
// split into "<unfinished ...>" and "<... resumed>" halves are joined
// before they are interpreted.
func parseTrace(path string) ([]traceEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pending := map[int]string{}
	var events []traceEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		pid, at, rest, ok := splitTraceLine(sc.Text())
		if !ok {
			continue
		}
		if strings.HasSuffix(rest, "<unfinished ...>") {
			pending[pid] = strings.TrimSuffix(rest, "<unfinished ...>")
			continue
		}
		if strings.HasPrefix(rest, "<... ") {
			i := strings.Index(rest, " resumed>")
			if i < 0 {
				continue
			}
			rest = pending[pid] + rest[i+len(" resumed>"):]
			delete(pending, pid)
		}
		if ev, ok := interpretCall(pid, at, rest); ok {
			events = append(events, ev)
		}
	}
	return events, sc.Err()
}

// splitTraceLine splits "PID SECONDS.MICROS call(...) = ret".
func splitTraceLine(line string) (pid int, at time.Time, rest string, ok bool) {
	f := strings.SplitN(line, " ", 2)
	if len(f) != 2 {
		return 0, time.Time{}, "", false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, time.Time{}, "", false
	}
	rest = strings.TrimLeft(f[1], " ")
	g := strings.SplitN(rest, " ", 2)
	if len(g) != 2 {
		return 0, time.Time{}, "", false
	}
	secs, err := strconv.ParseFloat(g[0], 64)
	if err != nil {
		return 0, time.Time{}, "", false
	}
	at = time.Unix(0, int64(secs*1e9))
	return pid, at, g[1], true
}

// interpretCall turns one complete system call line into an event.
func interpretCall(pid int, at time.Time, call string) (traceEvent, bool) {
	eq := strings.LastIndex(call, ") = ")
	if eq < 0 {
		return traceEvent{}, false
	}
	ret := strings.Fields(call[eq+len(") = "):])
	if len(ret) == 0 {
		return traceEvent{}, false
	}
	rv, err := strconv.ParseInt(ret[0], 10, 64)
	if err != nil || rv < 0 {
		return traceEvent{}, false
	}
	name, args, _ := strings.Cut(call[:eq], "(")
	ev := traceEvent{PID: pid, At: at}
	switch name {
	case "execve":
		ev.Kind = "exec"
		ev.Argv = parseArgv(args)
	case "clone", "clone3":
		if strings.Contains(args, "CLONE_THREAD") {
			return traceEvent{}, false
		}
		ev.Kind = "spawn"
	case "fork", "vfork":
		ev.Kind = "spawn"
	case "openat":
		if !strings.Contains(args, "O_WRONLY") && !strings.Contains(args, "O_RDWR") && !strings.Contains(args, "O_CREAT") {
			return traceEvent{}, false
		}
		ev.Kind = "write-open"
		if s, ok := firstQuoted(args); ok {
			ev.Path = s
		}
	case "getdents64":
		if rv == 0 {
			return traceEvent{}, false // the end-of-directory read
		}
		ev.Kind = "listdir"
	default:
		return traceEvent{}, false
	}
	return ev, true
}

// firstQuoted returns the first C string literal in s, unescaped.
func firstQuoted(s string) (string, bool) {
	i := strings.IndexByte(s, '"')
	if i < 0 {
		return "", false
	}
	str, _, ok := readCString(s[i:])
	return str, ok
}

// readCString reads a double-quoted C string at the start of s and returns
// it and the rest of s.
func readCString(s string) (string, string, bool) {
	if s == "" || s[0] != '"' {
		return "", s, false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), s[i+1:], true
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'x':
				if i+2 < len(s) {
					if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
						b.WriteByte(byte(v))
						i += 2
					}
				}
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), "", false
}

// parseArgv extracts the argv array from execve's arguments:
// "/path", ["a", "b"], 0x... /* N vars */
func parseArgv(args string) []string {
	i := strings.IndexByte(args, '[')
	if i < 0 {
		return nil
	}
	s := args[i+1:]
	var argv []string
	for {
		s = strings.TrimLeft(s, ", ")
		if s == "" || s[0] != '"' {
			return argv
		}
		str, rest, ok := readCString(s)
		if !ok {
			return argv
		}
		// strace marks a string it cut at -s with "..." after the quote.
		rest = strings.TrimPrefix(rest, "...")
		argv = append(argv, str)
		s = rest
	}
}

// traceSummary is what a traced interval cost in processes.
type traceSummary struct {
	Spawns   int            // processes created
	Execs    int            // programs started
	Commands map[string]int // "git ls-remote", "git-upload-pack", ... -> count
	Writes   map[string]int // files opened for writing (paths shortened)
	Listdirs int            // getdents64 calls that returned entries
}

// summarize counts the events in [from, to] (a zero bound is open);
// shorten, if not nil, rewrites the paths of written files for the report.
func summarize(events []traceEvent, from, to time.Time, shorten func(string) string) traceSummary {
	s := traceSummary{Commands: map[string]int{}, Writes: map[string]int{}}
	for _, ev := range events {
		if !from.IsZero() && ev.At.Before(from) {
			continue
		}
		if !to.IsZero() && ev.At.After(to) {
			continue
		}
		switch ev.Kind {
		case "spawn":
			s.Spawns++
		case "exec":
			s.Execs++
			s.Commands[commandName(ev.Argv)]++
		case "write-open":
			p := ev.Path
			if shorten != nil {
				p = shorten(p)
			}
			s.Writes[p]++
		case "listdir":
			s.Listdirs++
		}
	}
	return s
}

// commandName names an exec for the report: the program's base name plus,
// for git, the subcommand (skipping options before it).
func commandName(argv []string) string {
	if len(argv) == 0 {
		return "?"
	}
	name := filepath.Base(argv[0])
	if name != "git" {
		return name
	}
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		switch {
		case gitOptionsWithValue[a]:
			i++ // skip the option's value
		case strings.HasPrefix(a, "-"):
		default:
			return "git " + a
		}
	}
	return name
}

// gitOptionsWithValue are git's global options that take a separate value.
var gitOptionsWithValue = map[string]bool{
	"-c": true, "-C": true, "--shallow-file": true, "--git-dir": true,
	"--work-tree": true, "--namespace": true, "--super-prefix": true,
	"--config-env": true, "--list-cmds": true,
}

// formatCounts renders a name->count map as "name×n, ..." sorted by name,
// with counts divided by per (e.g. the number of polls).
func formatCounts(m map[string]int, per float64) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var parts []string
	for _, k := range names {
		v := float64(m[k]) / per
		if v == float64(int(v)) {
			parts = append(parts, fmt.Sprintf("%s ×%d", k, int(v)))
		} else {
			parts = append(parts, fmt.Sprintf("%s ×%.2f", k, v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
