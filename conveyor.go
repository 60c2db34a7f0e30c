package mainbus

import "sync/atomic"

// A conveyor is one lane of a bus: a buffered channel and the counters of
// the one consumer goroutine that drains it.
type conveyor[T any] struct {
	index int
	ch    chan Event[T]

	// gid is the ID of the consumer goroutine, so that Close can tell
	// whether it is called from inside a handler of this bus.
	gid atomic.Uint64

	// held keeps an event received after the drain was cut short. Only
	// the consumer writes it, and only the shutdown goroutine reads it,
	// after the consumer has exited.
	held []Event[T]

	produced atomic.Uint64
	consumed atomic.Uint64
	failed   atomic.Uint64
	panicked atomic.Uint64

	// Producers and the consumer write the counters above from different
	// cores; keep the next conveyor's counters off this cache line.
	_ [64]byte
}

// layout is the set of conveyors of a bus, as a [Conveyors] view for
// balancers. It is passed as a pointer so the interface does not allocate.
type layout[T any] struct {
	conveyors []*conveyor[T]
}

func (l *layout[T]) Len() int { return len(l.conveyors) }

func (l *layout[T]) Depth(i int) int { return len(l.conveyors[i].ch) }
