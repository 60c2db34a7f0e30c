package mainbus

import (
	"context"

	"github.com/mainbus-go/mainbus/internal/goid"
)

// Resize changes the number of conveyors of a running bus to n, after the
// even-count rule the bus was built with. Producers move to the new
// conveyors at once; producers waiting on a full old conveyor pick again
// among the new ones. The old conveyors drain what they hold, and the new
// ones hand nothing to the handler until the old ones are done, so every
// accepted event is handled exactly once and no key (under [KeyHash] or
// [JumpHash]) or producer sees its events reordered across the resize.
// The handler pauses for as long as the old conveyors take to drain.
//
// One resize drains at a time: if the conveyors an earlier Resize
// replaced still hold events, Resize first waits for them, so a bus never
// holds more than two sets of conveyors. It then returns once the
// conveyors it replaced have drained. If ctx ends first it returns ctx's
// error; the new count is in effect if Resize got as far as making it so,
// which [Bus.Conveyors] tells. Called from inside a handler of this bus,
// Resize does not wait: it returns an error wrapping [ErrWouldBlock] if an
// earlier resize is still draining.
//
// Resize returns [ErrClosed] once Close has begun, and an error wrapping
// [ErrInvalidOption] for a count out of range. Concurrent calls apply one
// after the other.
func (b *Bus[T]) Resize(ctx context.Context, n int) error {
	n, err := conveyorCount(n, b.exact)
	if err == nil {
		err = checkSlots(n, b.buffer)
	}
	if err != nil {
		return err
	}
	inHandler := b.inHandler(goid.Current())
	var cut <-chan struct{}
	if ctx != nil {
		cut = ctx.Done()
	}

	b.mu.Lock()
	for {
		if b.closed.Load() {
			b.mu.Unlock()
			return ErrClosed
		}
		draining := b.draining()
		if draining == nil {
			break
		}
		b.mu.Unlock()
		if inHandler {
			return ErrWouldBlock
		}
		select {
		case <-draining.drained:
		case <-b.done:
		case <-cut:
			return ctx.Err()
		}
		b.mu.Lock()
	}
	old := b.current.Load()
	if n == old.Len() {
		b.mu.Unlock()
		return nil
	}
	// install makes the new layout current before the old one retires:
	// producers that find the old one retired find the new one.
	b.install(n, old.drained)
	old.retire()
	b.mu.Unlock()

	if inHandler {
		return nil
	}
	select {
	case <-old.drained:
		return nil
	case <-b.done:
		// A Close cut the drain short; the events are in its DrainError.
		return ErrClosed
	case <-cut:
		return ctx.Err()
	}
}

// draining returns a retired layout that still holds events, or nil.
// b.mu must be held.
func (b *Bus[T]) draining() *layout[T] {
	cur := b.current.Load()
	for _, l := range b.gens {
		if l != cur && !l.isDrained() {
			return l
		}
	}
	return nil
}
