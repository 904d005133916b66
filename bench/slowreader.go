package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// slowReaderHold is how long the slow reader keeps using each tree it
// resolved (issue 15: a reader that keeps a tree for 20 ms).
const slowReaderHold = 20 * time.Millisecond

// slowReaderKeep is the --keep-worktrees value measured against the default.
const slowReaderKeep = 5

// slowRead is the outcome of a slow reader's run.
type slowRead struct{ reads, lost int }

// slowReader resolves the link under root, reads a file of the tree it
// found, keeps the tree for slowReaderHold (the sleep is the workload being
// modelled), and reads the file again by the same path; until stop closes.
// A read whose tree vanished meanwhile is lost.
func slowReader(root string, stop <-chan struct{}, out chan<- slowRead) {
	var r slowRead
	link := filepath.Join(root, linkName)
	for {
		select {
		case <-stop:
			out <- r
			return
		default:
		}
		target, err := os.Readlink(link)
		if err != nil {
			time.Sleep(time.Millisecond)
			continue
		}
		// Every worktree has its .git file, whatever the commit holds.
		file := filepath.Join(root, target, ".git")
		_, err1 := os.ReadFile(file)
		time.Sleep(slowReaderHold)
		_, err2 := os.ReadFile(file)
		r.reads++
		if err1 != nil || err2 != nil {
			r.lost++
		}
	}
}

// scenarioSlowReader: the commit storm (20 commits/s, git-sync at
// --period=100ms) with a reader that holds each tree it resolves for
// 20 ms, at git-sync's defaults (--stale-worktree-timeout=0) and with
// --keep-worktrees=5: how many reads lose their tree. git-sync only; the
// floor removes each tree as soon as it is replaced.
func (b *bench) scenarioSlowReader(ctx context.Context) error {
	for _, size := range b.opt.stormSizes {
		tr := b.opt.stormTrans
		for _, keep := range []int{0, slowReaderKeep} {
			var lost, reads []float64
			for i := 0; i < b.opt.stormReps; i++ {
				b.logf("slow reader: %s repo over %s, %d commits/s for %v, --keep-worktrees=%d, reader holds each tree %v",
					size, tr, b.opt.stormRate, b.opt.stormDuration, keep, slowReaderHold)
				r, err := b.slowReaderOne(ctx, size, tr, keep)
				if err != nil {
					return err
				}
				lost = append(lost, float64(r.lost))
				reads = append(reads, float64(r.reads))
			}
			metric := fmt.Sprintf("reads that lost their tree, --keep-worktrees=%d", keep)
			note := fmt.Sprintf("of %s reads per run; the reader holds each tree %v", formatSamples(reads, ""), slowReaderHold)
			if keep == 0 {
				b.addAbs("slow reader", size, tr, metric+" (default)", "", lost, 0, note+"; the default removes a replaced tree at the next sync")
			} else {
				b.addCheck("slow reader", size, tr, metric, "", lost, "= 0", maxOf(lost) == 0, note)
			}
		}
	}
	return nil
}

func (b *bench) slowReaderOne(ctx context.Context, size, tr string, keep int) (slowRead, error) {
	u, err := b.newUpstream(ctx, size)
	if err != nil {
		return slowRead{}, err
	}
	root := b.newRoot("slowreader")
	d, err := b.startDaemon(ctx, daemonConfig{URL: b.repoURL(u, tr), Root: root, Depth: 1, Period: 100 * time.Millisecond,
		Extra: []string{fmt.Sprintf("--keep-worktrees=%d", keep)}})
	if err != nil {
		return slowRead{}, err
	}
	defer b.stopDaemon(d)
	stop := make(chan struct{})
	out := make(chan slowRead, 1)
	go slowReader(root, stop, out)
	_, _, _, err = storm(ctx, u, b.opt.stormRate, b.opt.stormDuration)
	if err == nil {
		_, err = waitLink(ctx, root, u.Head(), stormConvergeLimit)
	}
	close(stop)
	r := <-out
	return r, err
}
