package serve

import (
	"context"
	"errors"
	"testing"
	"time"
)

// waitDone fails the test unless ch delivers within a generous deadline.
func waitDone(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not happen", what)
		return nil
	}
}

// stillBlocked fails the test if ch delivers within a short window: the
// only way to observe that something has not happened.
func stillBlocked(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s went ahead (err %v)", what, err)
	case <-time.After(50 * time.Millisecond):
	}
}

func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// TestGuardCollectionWaitsForRequests: gc waits for every request being
// served; requests that arrive while it waits or runs wait for it; the
// order is reader, writer, then the reader that came after the writer.
func TestGuardCollectionWaitsForRequests(t *testing.T) {
	var g Guard
	ctx := context.Background()
	if err := g.Serve(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Serve(ctx); err != nil {
		t.Fatal(err)
	}
	locked := async(func() error { return g.Lock(ctx) })
	waitWaiting(t, &g)
	stillBlocked(t, locked, "gc while two requests are served")
	late := async(func() error { return g.Serve(ctx) })
	stillBlocked(t, late, "a request that arrived while gc waits")
	g.Served()
	stillBlocked(t, locked, "gc while one request is served")
	g.Served()
	if err := waitDone(t, locked, "gc after the requests ended"); err != nil {
		t.Fatal(err)
	}
	stillBlocked(t, late, "a request while gc runs")
	g.Unlock()
	if err := waitDone(t, late, "the waiting request after gc"); err != nil {
		t.Fatal(err)
	}
	g.Served()
}

// TestGuardWaitsEndWithTheirContext: a gc that gives up waiting lets the
// requests it was holding back through; a request that gives up waiting
// for gc is not counted.
func TestGuardWaitsEndWithTheirContext(t *testing.T) {
	var g Guard
	if err := g.Serve(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	locked := async(func() error { return g.Lock(ctx) })
	waitWaiting(t, &g)
	late := async(func() error { return g.Serve(context.Background()) })
	stillBlocked(t, late, "a request while gc waits")
	cancel()
	if err := waitDone(t, locked, "gc giving up"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock after its context ended: %v, want context.Canceled", err)
	}
	if err := waitDone(t, late, "the request after gc gave up"); err != nil {
		t.Fatal(err)
	}
	g.Served()
	g.Served()

	if err := g.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	waiting := async(func() error { return g.Serve(rctx) })
	rcancel()
	if err := waitDone(t, waiting, "the request giving up"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve after its context ended: %v, want context.Canceled", err)
	}
	g.Unlock()
	// Nothing is counted in: gc can run again at once.
	if err := waitDone(t, async(func() error { return g.Lock(context.Background()) }), "gc with no request"); err != nil {
		t.Fatal(err)
	}
	g.Unlock()
}

// waitWaiting returns once a collection is waiting in g.
func waitWaiting(t *testing.T, g *Guard) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		n := g.waiting
		g.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("gc never started waiting")
		}
		time.Sleep(time.Millisecond)
	}
}
