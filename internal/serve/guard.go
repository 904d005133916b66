package serve

import (
	"context"
	"sync"
)

// Guard keeps garbage collection and serving apart. A running upload-pack
// reads objects it chose moments earlier; `git repack -a -d` drops
// unreachable objects from the new pack and deletes the old packs, and
// `git prune --expire=now` deletes loose objects at once, so a collection
// running beside an upload-pack can remove what it is about to send, and the
// client's fetch fails half-way. With the Guard, a collection waits for the
// requests being served to finish, and requests that arrive while it waits
// or runs wait for it (it is short next to a clone, and a writer that new
// readers could overtake forever would never collect on a busy relay).
//
// The zero value is ready to use. Both sides can stop waiting when their
// context ends.
type Guard struct {
	mu      sync.Mutex
	readers int  // requests being served
	writer  bool // a collection is running
	waiting int  // collections waiting for the readers to leave
	changed chan struct{}
}

// wait returns a channel closed at the next change of state; g.mu is held.
func (g *Guard) wait() <-chan struct{} {
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	return g.changed
}

// broadcast wakes every waiter; g.mu is held.
func (g *Guard) broadcast() {
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}

// Serve waits until no collection runs or waits, then counts a request in;
// call Served when it is done. It fails only when ctx ends first.
func (g *Guard) Serve(ctx context.Context) error {
	g.mu.Lock()
	for g.writer || g.waiting > 0 {
		ch := g.wait()
		g.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
		g.mu.Lock()
	}
	g.readers++
	g.mu.Unlock()
	return nil
}

// Served counts a request out.
func (g *Guard) Served() {
	g.mu.Lock()
	g.readers--
	if g.readers == 0 {
		g.broadcast()
	}
	g.mu.Unlock()
}

// Lock waits until no request is being served and no other collection runs;
// call Unlock when the collection is done. New requests wait from the moment
// Lock is called. It fails only when ctx ends first.
func (g *Guard) Lock(ctx context.Context) error {
	g.mu.Lock()
	g.waiting++
	for g.writer || g.readers > 0 {
		ch := g.wait()
		g.mu.Unlock()
		select {
		case <-ctx.Done():
			g.mu.Lock()
			g.waiting--
			g.broadcast()
			g.mu.Unlock()
			return ctx.Err()
		case <-ch:
		}
		g.mu.Lock()
	}
	g.waiting--
	g.writer = true
	g.mu.Unlock()
	return nil
}

// TryLock starts a collection if nothing is being served or collected and
// no collection waits, and reports whether it did; call Unlock when done.
// The repository uses it first, so that a relay serving long clones puts
// its collection off rather than stalling its sync loop and every request
// behind them (see repo's gc).
func (g *Guard) TryLock() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.writer || g.readers > 0 || g.waiting > 0 {
		return false
	}
	g.writer = true
	return true
}

// Unlock ends a collection.
func (g *Guard) Unlock() {
	g.mu.Lock()
	g.writer = false
	g.broadcast()
	g.mu.Unlock()
}
