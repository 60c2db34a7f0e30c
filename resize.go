package mainbus

import "context"

// Resize changes the number of conveyors of a running bus to n, after the
// even-count rule the bus was built with. Producers move to the new
// conveyors at once; producers waiting on a full old conveyor pick again
// among the new ones. The old conveyors drain what they hold, and the new
// ones hand nothing to the handler until the old ones are done, so every
// accepted event is handled exactly once and no key (under [KeyHash] or
// [JumpHash]) or producer sees its events reordered across the resize.
// The handler pauses for as long as the old conveyors take to drain.
//
// Resize returns once the old conveyors have drained, or with ctx's error
// if ctx ends first; the new count is in effect either way. Called from
// inside a handler of this bus it does not wait. It returns [ErrClosed]
// once Close has begun, and an error wrapping [ErrInvalidOption] for a
// count out of range. Concurrent calls apply one after the other.
func (b *Bus[T]) Resize(ctx context.Context, n int) error {
	n, err := conveyorCount(n, b.exact)
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return ErrClosed
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

	if b.inHandler(goid()) {
		return nil
	}
	var cut <-chan struct{}
	if ctx != nil {
		cut = ctx.Done()
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
