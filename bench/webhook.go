package main

// scenarioWebhook (issue 12): how soon a push is published when a forge's
// webhook triggers the sync, with --period=5m so that no poll can help,
// against the floor's update; then 10 s of requests with bad signatures,
// as fast as one client sends them, while real pushes keep arriving: no
// bad request may trigger a sync, the real pushes must still be published
// as fast, and the daemon's CPU and RSS are reported.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// webhookSecret is the shared secret of the benchmark's webhooks.
const webhookSecret = "bench-webhook-secret"

// webhookSlackMs is how much slower than the floor's update a
// webhook-triggered publish may be (the target).
const webhookSlackMs = 50

// floodWindow is how long the bad-signature flood lasts.
const floodWindow = 10 * time.Second

// pushPayload is a GitHub push notification for hash on the fixture's
// branch, about the size GitHub sends for a push of one commit.
func pushPayload(before, after string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"ref":"refs/heads/%s","before":"%s","after":"%s","created":false,"deleted":false,"forced":false,`, fixtureBranch, before, after)
	fmt.Fprintf(&b, `"repository":{"id":1,"name":"bench","full_name":"org/bench","default_branch":"%s","private":true},`, fixtureBranch)
	fmt.Fprintf(&b, `"commits":[{"id":"%s","message":"update","author":{"name":"bench","email":"bench@example.com"},"modified":["bench-update.txt"]}],`, after)
	b.WriteString(`"pusher":{"name":"bench","email":"bench@example.com"},"sender":{"login":"bench","id":1}}`)
	return b.Bytes()
}

// sendPush posts a GitHub push notification to base's /webhook, signed
// with secret, and returns the status.
func sendPush(ctx context.Context, client *http.Client, base, secret string, body []byte) (int, error) {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/webhook", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// webhookPublish commits to u, sends the push notification to d and
// returns the time from the commit to the link naming it; with quiet it
// then waits until the daemon is quiet, so that the next measurement starts
// clean (not during the flood, which keeps it busy by design).
func (b *bench) webhookPublish(ctx context.Context, d *daemon, u *upstream, i int, quiet bool) (time.Duration, error) {
	before := u.Head()
	t0 := time.Now()
	hash, err := u.Commit("bench-update.txt", fmt.Sprintf("webhook %d\n", i))
	if err != nil {
		return 0, err
	}
	code, err := sendPush(ctx, http.DefaultClient, d.Base, webhookSecret, pushPayload(before, hash))
	if err != nil {
		return 0, err
	}
	if code != http.StatusAccepted {
		return 0, fmt.Errorf("the webhook answered %d, want 202", code)
	}
	pub, err := waitLink(ctx, d.Root, hash, time.Minute)
	if err != nil {
		return 0, err
	}
	if quiet {
		if _, err := d.Meter.waitQuiet(ctx, 200*time.Millisecond, time.Minute); err != nil {
			return 0, err
		}
	}
	return pub.Sub(t0), nil
}

func (b *bench) scenarioWebhook(ctx context.Context) error {
	const size, tr = "small", "http"
	u, err := b.newUpstream(ctx, size)
	if err != nil {
		return err
	}
	url := b.repoURL(u, tr)
	gsRoot, flRoot := b.newRoot("webhook-gs"), b.newRoot("webhook-floor")
	defer os.RemoveAll(flRoot)
	defer os.RemoveAll(gsRoot)
	secretFile := filepath.Join(b.work, "webhook-secret")
	if err := os.WriteFile(secretFile, []byte(webhookSecret+"\n"), 0o600); err != nil {
		return err
	}
	b.logf("webhook: %s repo over %s, --period=5m", size, tr)
	d, err := b.startDaemon(ctx, daemonConfig{URL: url, Root: gsRoot, Depth: 1, Period: 5 * time.Minute,
		Extra: []string{"--webhook-secret-file=" + secretFile}})
	if err != nil {
		return err
	}
	defer b.stopDaemon(d)
	if _, err := runMeasured(ctx, b.env, b.work, nil, nil, "sh", b.floorArgs("first", flRoot, url, 1)...); err != nil {
		return err
	}

	// Commit to published, alternating with the floor's update.
	var gsLat, flWall []float64
	for i := 0; i <= b.opt.reps; i++ { // round 0 is the warm-up
		lat, err := b.webhookPublish(ctx, d, u, i, true)
		if err != nil {
			return err
		}
		hash, err := u.Commit("bench-floor.txt", fmt.Sprintf("floor %d\n", i))
		if err != nil {
			return err
		}
		m, err := b.flUpdate(ctx, flRoot, url, hash)
		if err != nil {
			return err
		}
		if i > 0 {
			gsLat = append(gsLat, float64(lat)/float64(time.Millisecond))
			flWall = append(flWall, float64(m.Wall)/float64(time.Millisecond))
		}
	}
	ceiling := median(flWall) + webhookSlackMs
	b.addAbs("webhook", size, tr, "commit to published, webhook trigger", "ms", gsLat, ceiling,
		fmt.Sprintf("from the commit to the link naming it: the push notification is sent right after the commit; target: the floor's update wall time (median %.1f ms, fetch + worktree + flip) plus %d ms", median(flWall), webhookSlackMs))

	// The flood: one client sending bad signatures back to back, while a
	// real push arrives every second.
	m0, err := d.metrics(ctx)
	if err != nil {
		return err
	}
	c0, t0 := d.Meter.sample(), time.Now()
	floodCtx, stop := context.WithTimeout(ctx, floodWindow)
	defer stop()
	var sent, refused atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		body := pushPayload(u.Head(), u.Head())
		for floodCtx.Err() == nil {
			code, err := sendPush(floodCtx, client, d.Base, "not-the-secret", body)
			if err != nil {
				continue
			}
			sent.Add(1)
			if code == http.StatusUnauthorized {
				refused.Add(1)
			}
		}
	}()
	var rss []float64
	var floodLat []float64
	for i := 0; floodCtx.Err() == nil; i++ {
		lat, err := b.webhookPublish(ctx, d, u, 1000+i, false)
		if err != nil {
			stop()
			wg.Wait()
			return err
		}
		floodLat = append(floodLat, float64(lat)/float64(time.Millisecond))
		rss = append(rss, float64(readProcMem(d.PID).RSS)/1024)
		select {
		case <-floodCtx.Done():
		case <-time.After(time.Second):
		}
	}
	wg.Wait()
	c1, elapsed := d.Meter.sample(), time.Since(t0)
	m1, err := d.metrics(ctx)
	if err != nil {
		return err
	}
	mem := readProcMem(d.PID)
	triggers := m1[`git_sync_triggers_total{source="webhook"}`] - m0[`git_sync_triggers_total{source="webhook"}`]
	bad := triggers - float64(len(floodLat))
	b.addCheck("webhook flood", size, tr, "syncs triggered by bad signatures", "", []float64{bad}, "0", bad == 0,
		fmt.Sprintf("%d requests with a bad signature in %.1f s (%.0f/s, one client, keep-alive), %d answered 401; %d real pushes meanwhile, %v webhook triggers counted",
			sent.Load(), elapsed.Seconds(), float64(sent.Load())/elapsed.Seconds(), refused.Load(), len(floodLat), triggers))
	b.addAbs("webhook flood", size, tr, "commit to published during the flood", "ms", floodLat, ceiling,
		"real pushes, one a second, while the flood runs; same target as without it")
	cpu := c1.sub(c0)
	b.addAbs("webhook flood", size, tr, "daemon CPU during the flood", "ms", []float64{float64(cpu.Total) / float64(time.Millisecond)}, 0,
		fmt.Sprintf("over %.1f s: %.0f%% of one core, of which git-sync itself %.0f ms (the rest: git for the real pushes)",
			elapsed.Seconds(), 100*cpu.Total.Seconds()/elapsed.Seconds(), float64(cpu.Self)/float64(time.Millisecond)))
	b.addAbs("webhook flood", size, tr, "git-sync RSS during the flood", "MiB", rss, 0,
		fmt.Sprintf("sampled after each real push; at the end: %s", mem))
	return nil
}
