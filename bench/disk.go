package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// scenarioDisk: how a root's .git grows over many updates. git-sync runs
// at its default flags, so --git-gc=always collects after every update
// that removed a worktree; what it must not do is keep objects of
// superseded commits (or refetch the whole tree and keep it) so that the
// object store creeps up with every update. The floor, which never runs gc,
// is reported beside it for information.
func (b *bench) scenarioDisk(ctx context.Context) error {
	for _, size := range b.opt.sizes {
		for _, tr := range b.opt.transports {
			if err := b.diskOne(ctx, size, tr); err != nil {
				return fmt.Errorf("%s over %s: %w", size, tr, err)
			}
		}
	}
	return nil
}

func (b *bench) diskOne(ctx context.Context, size, tr string) error {
	u, err := b.newUpstream(ctx, size)
	if err != nil {
		return err
	}
	url := b.repoURL(u, tr)
	n := b.opt.diskUpdates
	gsRoot, flRoot := b.newRoot("disk-gs"), b.newRoot("disk-floor")
	defer os.RemoveAll(flRoot)
	defer os.RemoveAll(gsRoot)
	b.logf("disk growth: %s repo over %s, %d updates", size, tr, n)
	// Default flags; --sync-on-signal and a long period only decide when
	// it syncs, not what it keeps.
	d, err := b.startDaemon(ctx, daemonConfig{URL: url, Root: gsRoot, Depth: 1, Period: time.Hour, Extra: []string{"--sync-on-signal=SIGHUP"}})
	if err != nil {
		return err
	}
	defer b.stopDaemon(d)
	if _, err := d.Meter.waitQuiet(ctx, 200*time.Millisecond, time.Minute); err != nil {
		return err
	}
	m0, err := d.metrics(ctx)
	if err != nil {
		return err
	}
	if _, err := runMeasured(ctx, b.env, b.work, nil, nil, "sh", b.floorArgs("first", flRoot, url, 1)...); err != nil {
		return err
	}
	gsFresh, err := diskUsage(filepath.Join(gsRoot, ".git"))
	if err != nil {
		return err
	}
	flFresh, err := diskUsage(filepath.Join(flRoot, ".git"))
	if err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		hash, err := u.Commit("bench-update.txt", fmt.Sprintf("disk update %d\n", i))
		if err != nil {
			return err
		}
		if err := d.signal(syscall.SIGHUP); err != nil {
			return err
		}
		if _, err := waitLink(ctx, gsRoot, hash, 5*time.Minute); err != nil {
			return fmt.Errorf("update %d: %w", i, err)
		}
		// Let the cleanup and gc of this update finish before the next
		// signal and before the floor runs: nothing is timed here, but
		// each update should be the whole of one.
		if _, err := d.Meter.waitQuiet(ctx, 20*time.Millisecond, 5*time.Minute); err != nil {
			return err
		}
		if _, err := runMeasured(ctx, b.env, b.work, nil, nil, "sh", b.floorArgs("update", flRoot, url, 1)...); err != nil {
			return fmt.Errorf("floor update %d: %w", i, err)
		}
		if got := readLinkHash(flRoot); got != hash {
			return fmt.Errorf("floor update %d publishes %q, want %s", i, got, hash)
		}
	}
	if _, err := d.Meter.waitQuiet(ctx, 200*time.Millisecond, 5*time.Minute); err != nil {
		return err
	}
	m1, err := d.metrics(ctx)
	if err != nil {
		return err
	}
	if de := m1[mError] - m0[mError]; de != 0 {
		return fmt.Errorf("%v sync errors during the updates:\n%s", de, d.logTail())
	}
	gsAfter, err := diskUsage(filepath.Join(gsRoot, ".git"))
	if err != nil {
		return err
	}
	flAfter, err := diskUsage(filepath.Join(flRoot, ".git"))
	if err != nil {
		return err
	}
	b.stopDaemon(d)
	mib := func(x int64) []float64 { return []float64{float64(x) / (1 << 20)} }
	b.addRatio("disk", size, tr, ".git after the first sync", "MiB", mib(gsFresh.alloc), mib(flFresh.alloc), 0, 0,
		fmt.Sprintf("apparent size: git-sync %s, floor %s", formatValue(float64(gsFresh.apparent), "B"), formatValue(float64(flFresh.apparent), "B")))
	b.addRatio("disk", size, tr, fmt.Sprintf(".git after %d updates", n), "MiB", mib(gsAfter.alloc), mib(flAfter.alloc), 0, 0,
		fmt.Sprintf("apparent size: git-sync %s, floor %s", formatValue(float64(gsAfter.apparent), "B"), formatValue(float64(flAfter.apparent), "B")))
	growth := float64(gsAfter.alloc) / float64(gsFresh.alloc)
	flGrowth := float64(flAfter.alloc) / float64(flFresh.alloc)
	b.addAbs("disk", size, tr, fmt.Sprintf(".git growth over %d updates", n), "×", []float64{growth}, targetDiskGrowth,
		fmt.Sprintf("size after the updates over size after the first sync, git-sync at default flags; the floor (which never runs gc): %.2f×", flGrowth))
	return nil
}

// usage is the space a directory tree takes.
type usage struct {
	alloc    int64 // allocated blocks, as du counts them (small loose objects cost a whole block each)
	apparent int64 // sum of the regular files' sizes
}

// diskUsage walks dir without following symlinks.
func diskUsage(dir string) (usage, error) {
	var u usage
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			u.alloc += st.Blocks * 512
		}
		if info.Mode().IsRegular() {
			u.apparent += info.Size()
		}
		return nil
	})
	return u, err
}
