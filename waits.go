package mainbus

import (
	"context"
	"sync/atomic"
)

// A waiter stands for the consumer of one conveyor in the graph of who
// waits for whom: while a handler on that conveyor waits for room on a
// full conveyor of any bus, waitsOn points to that conveyor's waiter. A
// handler about to wait follows the chain from the conveyor it waits on;
// if the chain comes back to its own conveyor, waiting would never end,
// and Produce returns ErrWouldBlock instead.
type waiter struct {
	waitsOn atomic.Pointer[waiter]
}

// waiterKey is the context key under which a handler's context carries
// the waiter of its conveyor.
type waiterKey struct{}

// handlerContext returns the context handed to the handlers of a conveyor.
func handlerContext(parent context.Context, w *waiter) context.Context {
	return context.WithValue(parent, waiterKey{}, w)
}

// maxHops bounds the walk along a chain of waiting handlers.
const maxHops = 1 << 10

// await records that the handler whose context is ctx, if any, is about to
// wait on target, and reports false if that closes a cycle of handlers
// waiting on each other. On true, the caller must call done when the wait
// ends.
//
// The edge is stored before the walk: of two handlers closing a cycle at
// once, at least one sees the other's edge and backs off.
func await(ctx context.Context, target *waiter) (ok bool, done func()) {
	self, _ := ctx.Value(waiterKey{}).(*waiter)
	if self == nil {
		return true, func() {}
	}
	self.waitsOn.Store(target)
	for n, hops := target, 0; n != nil && hops < maxHops; n, hops = n.waitsOn.Load(), hops+1 {
		if n == self {
			self.waitsOn.Store(nil)
			return false, nil
		}
	}
	return true, func() { self.waitsOn.Store(nil) }
}
