package metrics

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file writes the go_* and process_* series that Prometheus' Go client
// registers by default. Upstream git-sync serves that default registry, so
// dashboards and alerts built for it (the "open fds near the limit" alert,
// the standard Go runtime dashboards) query these names; they are written
// here with the same names, types and meaning, from the same sources
// (runtime/metrics, runtime/debug, /proc/self).

// runtimeNames are the runtime/metrics samples read on every scrape. The
// order is fixed: goSamples indexes the slice with the constants below.
var runtimeNames = [...]string{
	rmGOGC:          "/gc/gogc:percent",
	rmMemLimit:      "/gc/gomemlimit:bytes",
	rmGOMAXPROCS:    "/sched/gomaxprocs:threads",
	rmAllocBytes:    "/gc/heap/allocs:bytes",
	rmAllocObjects:  "/gc/heap/allocs:objects",
	rmTinyAllocs:    "/gc/heap/tiny/allocs:objects",
	rmFreeObjects:   "/gc/heap/frees:objects",
	rmHeapObjects:   "/gc/heap/objects:objects",
	rmHeapGoal:      "/gc/heap/goal:bytes",
	rmHeapFree:      "/memory/classes/heap/free:bytes",
	rmHeapLive:      "/memory/classes/heap/objects:bytes",
	rmHeapReleased:  "/memory/classes/heap/released:bytes",
	rmHeapStacks:    "/memory/classes/heap/stacks:bytes",
	rmHeapUnused:    "/memory/classes/heap/unused:bytes",
	rmMCacheFree:    "/memory/classes/metadata/mcache/free:bytes",
	rmMCacheInuse:   "/memory/classes/metadata/mcache/inuse:bytes",
	rmMSpanFree:     "/memory/classes/metadata/mspan/free:bytes",
	rmMSpanInuse:    "/memory/classes/metadata/mspan/inuse:bytes",
	rmMetadataOther: "/memory/classes/metadata/other:bytes",
	rmOSStacks:      "/memory/classes/os-stacks:bytes",
	rmOther:         "/memory/classes/other:bytes",
	rmProfBuckets:   "/memory/classes/profiling/buckets:bytes",
	rmTotal:         "/memory/classes/total:bytes",
}

const (
	rmGOGC = iota
	rmMemLimit
	rmGOMAXPROCS
	rmAllocBytes
	rmAllocObjects
	rmTinyAllocs
	rmFreeObjects
	rmHeapObjects
	rmHeapGoal
	rmHeapFree
	rmHeapLive
	rmHeapReleased
	rmHeapStacks
	rmHeapUnused
	rmMCacheFree
	rmMCacheInuse
	rmMSpanFree
	rmMSpanInuse
	rmMetadataOther
	rmOSStacks
	rmOther
	rmProfBuckets
	rmTotal
	rmCount
)

// goSamples reads runtimeNames. runtime/metrics does not stop the world,
// unlike runtime.ReadMemStats, so a scrape never pauses the sync loop.
func goSamples() [rmCount]float64 {
	var samples [rmCount]rtmetrics.Sample
	for i, name := range runtimeNames {
		samples[i].Name = name
	}
	rtmetrics.Read(samples[:])
	var out [rmCount]float64
	for i, s := range samples {
		if s.Value.Kind() == rtmetrics.KindUint64 {
			out[i] = float64(s.Value.Uint64())
		}
	}
	return out
}

// writeGo writes the Go runtime series.
func writeGo(b *bytes.Buffer) {
	v := goSamples()

	var gc debug.GCStats
	// Minimum, quartiles and maximum of the recent pauses.
	gc.PauseQuantiles = make([]time.Duration, 5)
	debug.ReadGCStats(&gc)
	writeHeader(b, "go_gc_duration_seconds", "summary", "Distribution of the stop-the-world pause durations of recent garbage collections, in seconds.")
	for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		sample(b, "go_gc_duration_seconds", `quantile="`+q+`"`, gc.PauseQuantiles[i].Seconds())
	}
	sample(b, "go_gc_duration_seconds_sum", "", gc.PauseTotal.Seconds())
	sample(b, "go_gc_duration_seconds_count", "", float64(gc.NumGC))

	gauge(b, "go_gc_gogc_percent", "The garbage collector's heap growth target in percent (GOGC, debug.SetGCPercent; 100 unless set).", v[rmGOGC])
	gauge(b, "go_gc_gomemlimit_bytes", "The Go runtime's soft memory limit in bytes (GOMEMLIMIT, debug.SetMemoryLimit; math.MaxInt64 unless set).", v[rmMemLimit])
	gauge(b, "go_goroutines", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	writeHeader(b, "go_info", "gauge", "Information about the Go environment; the version label holds the Go release that built the binary.")
	sample(b, "go_info", `version="`+escapeLabel(runtime.Version())+`"`, 1)

	heapInuse := v[rmHeapLive] + v[rmHeapUnused]
	heapIdle := v[rmHeapReleased] + v[rmHeapFree]
	tiny := v[rmTinyAllocs]
	gauge(b, "go_memstats_alloc_bytes", "Bytes of allocated heap objects still in use (live or not yet collected).", v[rmHeapLive])
	counter(b, "go_memstats_alloc_bytes_total", "Cumulative bytes allocated for heap objects, freed ones included.", v[rmAllocBytes])
	gauge(b, "go_memstats_buck_hash_sys_bytes", "Bytes of memory in the profiling bucket hash tables.", v[rmProfBuckets])
	counter(b, "go_memstats_frees_total", "Cumulative count of heap objects freed.", v[rmFreeObjects]+tiny)
	gauge(b, "go_memstats_gc_sys_bytes", "Bytes of memory in garbage collection metadata.", v[rmMetadataOther])
	gauge(b, "go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects still in use; the same as go_memstats_alloc_bytes.", v[rmHeapLive])
	gauge(b, "go_memstats_heap_idle_bytes", "Bytes in idle (unused) heap spans, whether or not returned to the OS.", heapIdle)
	gauge(b, "go_memstats_heap_inuse_bytes", "Bytes in heap spans that hold at least one object.", heapInuse)
	gauge(b, "go_memstats_heap_objects", "Number of allocated heap objects.", v[rmHeapObjects])
	gauge(b, "go_memstats_heap_released_bytes", "Bytes of physical memory returned to the OS.", v[rmHeapReleased])
	gauge(b, "go_memstats_heap_sys_bytes", "Bytes of heap memory obtained from the OS.", heapInuse+heapIdle)
	gauge(b, "go_memstats_last_gc_time_seconds", "Time the last garbage collection finished, in seconds since the Unix epoch (0 if none yet).", unixSeconds(gc.LastGC))
	counter(b, "go_memstats_mallocs_total", "Cumulative count of heap objects allocated.", v[rmAllocObjects]+tiny)
	gauge(b, "go_memstats_mcache_inuse_bytes", "Bytes of allocated mcache structures.", v[rmMCacheInuse])
	gauge(b, "go_memstats_mcache_sys_bytes", "Bytes of memory obtained from the OS for mcache structures.", v[rmMCacheInuse]+v[rmMCacheFree])
	gauge(b, "go_memstats_mspan_inuse_bytes", "Bytes of allocated mspan structures.", v[rmMSpanInuse])
	gauge(b, "go_memstats_mspan_sys_bytes", "Bytes of memory obtained from the OS for mspan structures.", v[rmMSpanInuse]+v[rmMSpanFree])
	gauge(b, "go_memstats_next_gc_bytes", "Heap size at which the next garbage collection is due, in bytes.", v[rmHeapGoal])
	gauge(b, "go_memstats_other_sys_bytes", "Bytes of memory in miscellaneous off-heap runtime allocations.", v[rmOther])
	gauge(b, "go_memstats_stack_inuse_bytes", "Bytes in stack spans allocated from the heap.", v[rmHeapStacks])
	gauge(b, "go_memstats_stack_sys_bytes", "Bytes of stack memory obtained from the OS.", v[rmHeapStacks]+v[rmOSStacks])
	gauge(b, "go_memstats_sys_bytes", "Total bytes of memory obtained from the OS by the Go runtime.", v[rmTotal])
	gauge(b, "go_sched_gomaxprocs_threads", "The current GOMAXPROCS: how many OS threads may run Go code at once.", v[rmGOMAXPROCS])
	threads, _ := runtime.ThreadCreateProfile(nil)
	gauge(b, "go_threads", "Number of OS threads created.", float64(threads))
}

// unixSeconds converts t to seconds since the Unix epoch; the zero time is 0.
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// userHZ is the unit of the CPU times and the start time in /proc/PID/stat:
// USER_HZ, which Linux fixes at 100 for user space on every architecture.
const userHZ = 100

// writeProcess writes the process_* series, read from /proc/self and the
// resource limits. A source that cannot be read (not Linux, /proc not
// mounted) leaves its series out rather than reporting a made-up value.
func (m *Metrics) writeProcess(b *bytes.Buffer) {
	st, statOK := readStat()
	if statOK {
		counter(b, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", (st.utime+st.stime)/userHZ)
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		gauge(b, "process_max_fds", "Maximum number of open file descriptors (the soft limit).", float64(lim.Cur))
	}
	if rx, tx, ok := readNetDev(); ok {
		counter(b, "process_network_receive_bytes_total", "Bytes received over the network, all interfaces of the process's network namespace.", rx)
		counter(b, "process_network_transmit_bytes_total", "Bytes sent over the network, all interfaces of the process's network namespace.", tx)
	}
	if n, ok := countOpenFDs(); ok {
		gauge(b, "process_open_fds", "Number of open file descriptors.", float64(n))
	}
	if statOK {
		gauge(b, "process_resident_memory_bytes", "Resident memory size in bytes.", st.rssPages*float64(os.Getpagesize()))
	}
	start := unixSeconds(m.start)
	if boot, ok := bootTime(); ok && statOK {
		start = boot + st.startTicks/userHZ
	}
	gauge(b, "process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.", start)
	if statOK {
		gauge(b, "process_virtual_memory_bytes", "Virtual memory size in bytes.", st.vsize)
	}
	if syscall.Getrlimit(syscall.RLIMIT_AS, &lim) == nil {
		gauge(b, "process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes (the soft limit of the address space).", float64(lim.Cur))
	}
}

// procStat holds the fields of /proc/self/stat that the process series use.
type procStat struct {
	utime, stime float64 // clock ticks
	startTicks   float64 // clock ticks after boot
	vsize        float64 // bytes
	rssPages     float64
}

// readStat parses /proc/self/stat (proc(5)).
func readStat() (procStat, bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return procStat{}, false
	}
	// The command name, field 2, is in parentheses and may contain spaces
	// and parentheses itself: count fields from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 22 {
		return procStat{}, false
	}
	num := func(field int) float64 {
		v, _ := strconv.ParseFloat(f[field-3], 64)
		return v
	}
	return procStat{utime: num(14), stime: num(15), startTicks: num(22), vsize: num(23), rssPages: num(24)}, true
}

// bootTime reads the boot time, in seconds since the Unix epoch, from the
// btime line of /proc/stat.
func bootTime() (float64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "btime "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// countOpenFDs counts the entries of /proc/self/fd without building a
// sorted listing (the directory read itself holds one descriptor, which is
// not counted).
func countOpenFDs() (int, bool) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(256)
		n += len(names)
		if err != nil {
			break
		}
	}
	return n - 1, true
}

// readNetDev sums the received and transmitted bytes of every interface in
// /proc/self/net/dev.
func readNetDev() (rx, tx float64, ok bool) {
	b, err := os.ReadFile("/proc/self/net/dev")
	if err != nil {
		return 0, 0, false
	}
	for line := range strings.Lines(string(b)) {
		_, counters, found := strings.Cut(line, ":")
		if !found {
			continue // the two header lines
		}
		f := strings.Fields(counters)
		if len(f) < 9 {
			continue
		}
		r, err1 := strconv.ParseFloat(f[0], 64)
		t, err2 := strconv.ParseFloat(f[8], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		rx += r
		tx += t
		ok = true
	}
	return rx, tx, ok
}
