package mainbus

import (
	"context"
	"sync"
	"sync/atomic"
)

// A conveyor is one lane of a bus: a buffered channel drained by exactly
// one consumer goroutine.
type conveyor[T any] struct {
	index int
	ch    chan item[T]
	m     *meter

	// w is the conveyor's place in the graph of waiting handlers, and ctx
	// the context its handlers get, which carries w.
	w   *waiter
	ctx context.Context

	// held keeps events taken off the channel after the drain was cut
	// short. Only the consumer writes it, and only the shutdown goroutine
	// reads it, after the consumer has exited.
	held []Event[T]

	// one lends a single event to a stack handler without allocating.
	// Only the consumer uses it.
	one [1]Event[T]

	// after holds the events of the stack being delivered that come
	// after the current one. Only the consumer uses it.
	after []Event[T]

	// The consumer's own timings: mark is its last clock reading, which
	// starts the next handler call; queue and work count time in queue
	// and in the handler until the next flush, after pending
	// observations; inStack is set while the events of a stack go one by
	// one to a handler of single events, which are timed together.
	mark        int64
	queue, work tally
	pending     int
	flushedAt   int64 // the mark at the last flush
	inStack     bool
}

// observeQueue counts n events that waited since at, by the last clock
// reading.
func (c *conveyor[T]) observeQueue(at int64, n uint64) {
	c.queue.observe(c.mark-at, n)
	c.count()
}

// observeWork counts n events whose handler ran from the last clock
// reading to end, taking the same share each, and moves the mark to end.
func (c *conveyor[T]) observeWork(end int64, n uint64) {
	c.work.observe((end-c.mark)/int64(n), n)
	c.mark = end
	c.count()
}

func (c *conveyor[T]) count() {
	c.pending++
	if c.pending >= flushEvery || c.mark-c.flushedAt >= int64(flushAfter) {
		c.flush()
	}
}

// flush publishes the consumer's timings to its meter.
func (c *conveyor[T]) flush() {
	c.queue.flush(&c.m.queue)
	c.work.flush(&c.m.work)
	c.pending = 0
	c.flushedAt = c.mark
}

// A meter counts the events of one conveyor number. It outlives the
// conveyors that share its number across resizes, so counters only grow.
type meter struct {
	// Producers write these.
	produced    atomic.Uint64
	dropped     atomic.Uint64
	rejected    atomic.Uint64
	blocked     atomic.Int64  // producers waiting for room now
	blocks      atomic.Uint64 // waits for room begun
	blockedTime atomic.Int64  // nanoseconds spent waiting for room

	// The consumer writes the rest; keep them off the producers' cache
	// line, and the next meter off the consumer's.
	_            [64]byte
	consumed     atomic.Uint64
	failed       atomic.Uint64
	panicked     atomic.Uint64
	retried      atomic.Uint64
	deadLettered atomic.Uint64
	unburied     atomic.Uint64
	queue        timing
	work         timing
	_            [64]byte
}

// A layout is one generation of a bus's conveyors. A bus starts with one;
// every Resize builds the next and retires the current one, which drains
// on its own while producers move to the new one.
//
// It is also the [Conveyors] view balancers pick from; it is passed as a
// pointer so that the interface does not allocate.
type layout[T any] struct {
	conveyors []*conveyor[T]

	// state counts the producers inside the layout in its low bits;
	// closedBit is set when the layout retires. A producer that sees the
	// bit leaves without touching a conveyor, so once the count drops to
	// zero with the bit set, nothing can be sent any more and idle closes.
	// Every producer writes it twice per event: it gets a cache line of
	// its own.
	_        [64]byte
	state    atomic.Int64
	_        [56]byte
	closing  chan struct{} // closed on retire; wakes producers blocked here
	idle     chan struct{} // closed when retired and no producer is inside
	idleOnce sync.Once

	// after is the drained channel of the layout this one replaced: the
	// consumers here hand nothing to the handler until it closes, so no
	// key is handled on a new conveyor before its earlier events on the
	// old one. It is nil for a bus's first layout.
	after <-chan struct{}

	// live counts the consumers that have not finished draining; the last
	// one closes drained. Consumers stopped by a cut-short Close never
	// count down, so drained means "every event here was delivered".
	live    atomic.Int64
	drained chan struct{}
}

const closedBit = 1 << 62

func newLayout[T any](ctx context.Context, n, buffer int, meters []*meter,
	after <-chan struct{}) *layout[T] {
	l := &layout[T]{
		conveyors: make([]*conveyor[T], n),
		closing:   make(chan struct{}),
		idle:      make(chan struct{}),
		drained:   make(chan struct{}),
		after:     after,
	}
	for i := range l.conveyors {
		// The buffer is the user's WithBuffer setting (DefaultBuffer if
		// unset); when it is full the overflow policy applies.
		w := new(waiter)
		l.conveyors[i] = &conveyor[T]{
			index: i,
			ch:    make(chan item[T], buffer),
			m:     meters[i],
			w:     w,
			ctx:   handlerContext(ctx, w),
		}
	}
	l.live.Store(int64(n))
	return l
}

func (l *layout[T]) Len() int { return len(l.conveyors) }

func (l *layout[T]) Depth(i int) int { return len(l.conveyors[i].ch) }

// enter counts a producer in and reports whether the layout still takes
// events. The producer must call leave in either case.
func (l *layout[T]) enter() bool { return l.state.Add(1)&closedBit == 0 }

func (l *layout[T]) leave() {
	if l.state.Add(-1) == closedBit {
		l.idleOnce.Do(func() { close(l.idle) })
	}
}

// retire stops intake and wakes blocked producers. It is called once, with
// the bus's mutex held.
func (l *layout[T]) retire() {
	l.state.Or(closedBit)
	close(l.closing)
	if l.state.Load() == closedBit {
		l.idleOnce.Do(func() { close(l.idle) })
	}
}

// release counts down a consumer that has delivered everything.
func (l *layout[T]) release() {
	if l.live.Add(-1) == 0 {
		close(l.drained)
	}
}

// isDrained reports whether every event of l has been delivered.
func (l *layout[T]) isDrained() bool {
	select {
	case <-l.drained:
		return true
	default:
		return false
	}
}
