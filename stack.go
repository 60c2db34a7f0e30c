package mainbus

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// StackSize is the most events one slot of a conveyor carries when they
// come from [Bus.ProduceBatch]: a batch is cut into stacks of at most
// this many events per conveyor, as a Factorio belt carries stacked items.
const StackSize = 64

// An item is what one slot of a conveyor holds: one event, or a stack of
// them.
type item[T any] struct {
	ev    Event[T]
	stack *stack[T] // if set, ev is unused
	at    int64     // the bus's clock when it was produced
}

// size returns the number of events in it.
func (it item[T]) size() uint64 {
	if it.stack == nil {
		return 1
	}
	return uint64(len(it.stack.evs))
}

// appendTo appends the events of it to evs.
func (it item[T]) appendTo(evs []Event[T]) []Event[T] {
	if it.stack == nil {
		return append(evs, it.ev)
	}
	return append(evs, it.stack.evs...)
}

// A stack is a run of events for one conveyor. Stacks are pooled per bus:
// the producer takes one, the consumer puts it back once its events are
// delivered, so steady batching allocates nothing.
type stack[T any] struct {
	evs []Event[T]
	idx []int // for ProduceBatch: where each event stands in the batch
}

func (b *Bus[T]) getStack() *stack[T] {
	if s, ok := b.stacks.Get().(*stack[T]); ok {
		return s
	}
	return &stack[T]{evs: make([]Event[T], 0, StackSize), idx: make([]int, 0, StackSize)}
}

// unsent gathers, when a batch fails, the events not placed, in the order
// given: those of the open stacks and those from i on, copied, since the
// caller owns evs. A key's placed events all come before its unplaced
// ones, so placing these anew keeps every key's order. The open stacks go
// back to the pool.
func (b *Bus[T]) unsent(evs []Event[T], i int, open []*stack[T], touched []int) []Event[T] {
	var at []int
	for _, k := range touched {
		if s := open[k]; s != nil && s != b.placed {
			at = append(at, s.idx...)
			b.putStack(s)
		}
		open[k] = nil
	}
	slices.Sort(at)
	left := make([]Event[T], 0, len(at)+len(evs)-i)
	for _, j := range at {
		left = append(left, evs[j])
	}
	return append(left, evs[i:]...)
}

// A batchScratch is what a keyed ProduceBatch on a bus of more than 64
// conveyors borrows: open has every entry nil when it goes back.
type batchScratch[T any] struct {
	open    []*stack[T]
	touched []int
}

func (b *Bus[T]) getScratch(n int) *batchScratch[T] {
	sc, _ := b.scratch.Get().(*batchScratch[T])
	if sc == nil || len(sc.open) < n {
		// Too narrow after a Resize: let the pool drop it.
		sc = &batchScratch[T]{open: make([]*stack[T], n)}
	}
	return sc
}

func (b *Bus[T]) putStack(s *stack[T]) {
	clear(s.evs) // drop references the values hold
	s.evs, s.idx = s.evs[:0], s.idx[:0]
	b.stacks.Put(s)
}

// A StackHandler consumes the events of a bus a slot at a time: one event,
// or a stack of up to [StackSize] events produced together by
// [Bus.ProduceBatch], in the order accepted. It is called on the consumer
// goroutine of conveyor, like a [Handler]. An error or a panic counts as a
// failure of every event in evs: they are retried together and
// dead-lettered one by one. evs is valid only until the handler returns.
type StackHandler[T any] func(ctx context.Context, conveyor int, evs []Event[T]) error

// NewStacked builds a bus like [New] whose consumers hand events to h a
// slot at a time, so a handler can write a stack of events to a file or a
// database in one go.
func NewStacked[T any](resource string, h StackHandler[T], opts ...Option) (*Bus[T], error) {
	if h == nil {
		return nil, invalid("stack handler of %s is nil; "+
			"want a function that consumes its events", resource)
	}
	return build(resource, nil, h, opts)
}

// A BatchError is returned by [Bus.ProduceBatch] when some events of the
// batch were not accepted. Rejected holds them, in the order given; every
// other event of the batch was accepted.
type BatchError[T any] struct {
	Resource string
	Rejected []Event[T]
	Err      error
}

func (e *BatchError[T]) Error() string {
	return fmt.Sprintf("mainbus: batch to %s: %d events not accepted: %v",
		e.Resource, len(e.Rejected), e.Err)
}

// Unwrap returns the cause: [ErrClosed], [ErrFull], a context error, …
func (e *BatchError[T]) Unwrap() error { return e.Err }

// ProduceBatch puts evs on the bus in stacks: the events bound for one
// conveyor travel together, up to [StackSize] to a slot, so a batch costs
// one channel operation per stack instead of one per event. Events of one
// key keep their order, as do the events of one conveyor. Zero times are
// stamped with one clock reading for the whole batch.
//
// It returns nil when every event is accepted. Otherwise it stops at the
// first stack that cannot be placed (conveyor full under [Reject], ctx
// ended under [Block], bus closed, …) and returns a [*BatchError] holding
// the events not accepted; the others are accepted as by Produce. Under
// the dropping policies a stack that finds no room is dropped whole. evs
// is not kept: the caller may reuse it as soon as ProduceBatch returns.
func (b *Bus[T]) ProduceBatch(ctx context.Context, evs []Event[T]) error {
	if ctx == nil {
		return invalid("ProduceBatch on %s got a nil context; "+
			"want context.Background() or another", b.resource)
	}
	return b.produceBatch(ctx, evs, b.overflow == Block)
}

// produceBatch is ProduceBatch; it waits for room only if wait is set.
func (b *Bus[T]) produceBatch(ctx context.Context, evs []Event[T], wait bool) error {
	if len(evs) == 0 && b.closed.Load() {
		return ErrClosed
	}
	for i := range evs {
		if err := b.checkOwn(&evs[i]); err != nil {
			return &BatchError[T]{Resource: b.resource, Rejected: slices.Clone(evs), Err: err}
		}
	}
	var (
		dropped drops[T]
		now     time.Time
	)
	for len(evs) > 0 {
		rest, err := b.batchIn(ctx, b.current.Load(), evs, &now, wait, &dropped)
		if err == errRetired {
			evs = rest // a Resize came between: place the rest anew
			continue
		}
		b.tell(&dropped)
		if err != nil {
			return &BatchError[T]{Resource: b.resource, Rejected: rest, Err: err}
		}
		return nil
	}
	return nil
}

// stampInPlace fills in the fields of ev the bus owns, reading the clock
// at most once per batch.
func (b *Bus[T]) stampInPlace(ev *Event[T], now *time.Time) {
	if ev.Resource == "" {
		ev.Resource = b.resource
	}
	if ev.Time.IsZero() {
		if now.IsZero() {
			*now = time.Now()
		}
		ev.Time = *now
	}
}

// countRejected counts as rejected the events a batch hands back because
// a conveyor of l had no room: those of the stack refused, and all those
// after it, which were not tried.
func countRejected[T any](l *layout[T], rest []Event[T], err error) {
	if pe, ok := err.(*ProduceError); ok && pe.Err == ErrFull {
		l.conveyors[pe.Conveyor].m.rejected.Add(uint64(len(rest)))
	}
}

// batchKeyless is batchIn for balancers that ignore the key: it cuts evs
// into stacks in order and asks the balancer once per stack.
func (b *Bus[T]) batchKeyless(ctx context.Context, l *layout[T], evs []Event[T], now *time.Time,
	wait bool, d *drops[T]) (rest []Event[T], err error) {
	for start := 0; start < len(evs); start += StackSize {
		chunk := evs[start:min(start+StackSize, len(evs))]
		c, err := b.pick(l, chunk[0].Key)
		if err != nil {
			return slices.Clone(evs[start:]), err
		}
		s := b.getStack()
		s.evs = append(s.evs, chunk...)
		for i := range s.evs {
			b.stampInPlace(&s.evs[i], now)
		}
		if err := b.place(ctx, l, c, item[T]{stack: s, at: b.clock()}, wait, d); err != nil {
			b.putStack(s)
			return slices.Clone(evs[start:]), err
		}
	}
	return nil, nil
}

// batchIn places evs in layout l, stack by stack. It returns the events
// not placed and why; their order keeps every key's order.
func (b *Bus[T]) batchIn(ctx context.Context, l *layout[T], evs []Event[T], now *time.Time,
	wait bool, d *drops[T]) (rest []Event[T], err error) {
	defer l.leave()
	defer func() { countRejected(l, rest, err) }()
	if !l.enter() {
		if b.closed.Load() {
			return slices.Clone(evs), ErrClosed
		}
		return evs, errRetired
	}

	if _, ok := b.balancer.(keyless); ok {
		return b.batchKeyless(ctx, l, evs, now, wait, d)
	}

	// Buses of up to 64 conveyors keep the bookkeeping on this
	// goroutine's stack; wider ones borrow it from a pool, so that a batch
	// costs nothing per conveyor it does not touch.
	if l.Len() <= 64 {
		var (
			open    [64]*stack[T]
			touched [64]int
		)
		rest, _, err := b.batchKeyed(ctx, l, evs, now, wait, d, open[:], touched[:0])
		return rest, err
	}
	sc := b.getScratch(l.Len())
	rest, touched, err := b.batchKeyed(ctx, l, evs, now, wait, d, sc.open, sc.touched[:0])
	sc.touched = touched[:0]
	b.scratch.Put(sc)
	return rest, err
}

// batchKeyed is batchIn for balancers that look at the key. open holds
// the stack being filled for each conveyor, all nil on entry and on
// return, and touched collects the conveyors that have one, in the order
// they were opened.
func (b *Bus[T]) batchKeyed(ctx context.Context, l *layout[T], evs []Event[T], now *time.Time,
	wait bool, d *drops[T], open []*stack[T], touched []int) ([]Event[T], []int, error) {
	for i := range evs {
		ev := evs[i]
		b.stampInPlace(&ev, now)
		c, err := b.pick(l, ev.Key)
		if err != nil {
			return b.unsent(evs, i, open, touched), touched, err
		}
		s := open[c.index]
		if s == nil || s == b.placed {
			// A conveyor is listed once, however many stacks it fills,
			// so touched never outgrows the number of conveyors.
			if s == nil {
				touched = append(touched, c.index)
			}
			s = b.getStack()
			open[c.index] = s
		}
		s.evs = append(s.evs, ev)
		s.idx = append(s.idx, i)
		if len(s.evs) < StackSize {
			continue
		}
		open[c.index] = b.placed
		if err := b.place(ctx, l, c, item[T]{stack: s, at: b.clock()}, wait, d); err != nil {
			open[c.index] = s
			return b.unsent(evs, i+1, open, touched), touched, err
		}
	}
	for _, k := range touched {
		s := open[k]
		open[k] = nil
		if s == b.placed {
			continue
		}
		it := item[T]{stack: s, at: b.clock()}
		if err := b.place(ctx, l, l.conveyors[k], it, wait, d); err != nil {
			open[k] = s
			return b.unsent(evs, len(evs), open, touched), touched, err
		}
	}
	return nil, touched, nil
}
