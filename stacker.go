package mainbus

import (
	"context"
	"errors"
	"sync"
	"time"
)

// A Stacker gathers events produced one at a time into stacks for
// [Bus.ProduceBatch], as an inserter stacks items before they go on a
// belt. It hands its events to the bus when a Produce finds size of them
// waiting, when linger has passed since the first of them, and on Flush
// and Close.
//
// A handover after linger never waits for room: if the bus is full it
// tries again linger later, and the next Produce that finds a full stack
// waits as the bus's overflow policy says; so the linger bound holds
// while the bus has room.
//
// Like a bufio.Writer, a Stacker holds events outside the bus until it
// hands them over: Produce returning nil means the stacker has taken the
// event, not yet that the bus has accepted it. Close it before the bus.
// An event the bus refuses comes back to the caller in a [*BatchError],
// from the call that handed it over or, for a handover after linger, from
// the next call to the stacker; it is never dropped silently.
//
// Events keep their order: they reach the bus in the order taken. Time is
// stamped when zero at the handover, once per stack. A Stacker is safe for
// concurrent use, though it is meant for one producer goroutine.
type Stacker[T any] struct {
	bus    *Bus[T]
	size   int
	linger time.Duration

	// turn is held, as a one-slot channel so that waiting for it respects
	// a context, by whoever hands a stack over: one handover at a time
	// keeps the stacks in order.
	turn chan struct{}

	mu      sync.Mutex // guards the fields below; never held while waiting
	pending []Event[T]
	refused *BatchError[T] // from a handover after linger, for the next call
	closed  bool

	// timer runs flushLate linger after pending stops being empty. late
	// counts its fires pending or running, so that Close can wait for
	// them: every Reset adds one, every Stop that cancels a fire and every
	// run of flushLate takes one away.
	timer *time.Timer
	late  sync.WaitGroup

	// lateCtx bounds the handovers after linger; Close cancels it if its
	// own context ends first.
	lateCtx    context.Context
	cancelLate context.CancelFunc
}

// NewStacker returns a Stacker for b that hands over stacks of size events
// (1 to 65536), and hands over a partial stack linger after its first event
// (a positive duration up to one hour).
func NewStacker[T any](b *Bus[T], size int, linger time.Duration) (*Stacker[T], error) {
	if b == nil {
		return nil, invalid("NewStacker got a nil bus; want one built by New")
	}
	if size < 1 || size > 1<<16 {
		return nil, invalid("stacker size is %d; want 1 to 65536", size)
	}
	if linger <= 0 || linger > time.Hour {
		return nil, invalid("stacker linger is %v; want more than 0 and at most 1h, "+
			"so that no event waits for a stack to fill", linger)
	}
	s := &Stacker[T]{
		bus:     b,
		size:    size,
		linger:  linger,
		turn:    make(chan struct{}, 1),
		pending: make([]Event[T], 0, size),
	}
	s.lateCtx, s.cancelLate = context.WithCancel(context.Background())
	s.timer = time.AfterFunc(time.Hour, s.flushLate)
	s.timer.Stop()
	return s, nil
}

// Produce takes ev. If a full stack is waiting, Produce first hands it to
// the bus, waiting under the bus's overflow policy, bounded by ctx. It
// returns an error, and does not take ev, if that handover fails (a
// [*BatchError] holding the refused events, which the stacker no longer
// holds), if a handover after linger failed since the last call (the same),
// or with [ErrClosed] once Close has begun.
func (s *Stacker[T]) Produce(ctx context.Context, ev Event[T]) error {
	if ctx == nil {
		return invalid("Stacker.Produce got a nil context; want context.Background() or another")
	}
	if err := s.bus.checkOwn(&ev); err != nil {
		return err
	}
	s.mu.Lock()
	if err := s.check(); err != nil {
		s.mu.Unlock()
		return err
	}
	if len(s.pending) >= s.size {
		s.mu.Unlock()
		if err := s.Flush(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		if err := s.check(); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	s.pending = append(s.pending, ev)
	if len(s.pending) == 1 {
		s.disarm()
		s.late.Add(1)
		s.timer.Reset(s.linger)
	}
	s.mu.Unlock()
	return nil
}

// disarm cancels a pending fire of the timer. s.mu must be held.
func (s *Stacker[T]) disarm() {
	if s.timer.Stop() {
		s.late.Done()
	}
}

// check returns the error a call must report before taking anything.
// s.mu must be held.
func (s *Stacker[T]) check() error {
	if s.closed {
		return ErrClosed
	}
	if s.refused != nil {
		err := s.refused
		s.refused = nil
		return err
	}
	return nil
}

// Flush hands every waiting event to the bus now, waiting under the bus's
// overflow policy, bounded by ctx. It returns a [*BatchError] holding the
// events the bus refused, now or in a handover after linger since the
// last call; the stacker no longer holds them.
func (s *Stacker[T]) Flush(ctx context.Context) error {
	if ctx == nil {
		return invalid("Stacker.Flush got a nil context; want context.Background() or another")
	}
	select {
	case s.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.turn }()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	refused := s.refused
	s.refused = nil
	stack := s.pending
	s.pending = make([]Event[T], 0, s.size)
	s.disarm()
	s.mu.Unlock()

	if len(stack) == 0 {
		return refusal(refused)
	}
	return refusal(s.join(refused, s.bus.ProduceBatch(ctx, stack)))
}

// refusal turns a refusal into an error, keeping nil nil.
func refusal[T any](r *BatchError[T]) error {
	if r == nil {
		return nil
	}
	return r
}

// flushLate is the handover after linger, on the timer's goroutine. It
// never waits for room, so that no handler can end up waiting on it: what
// finds its conveyor full goes back to the front of the stack and, under
// the Block policy, is tried again linger later, or by the next Produce,
// Flush or Close, which wait. A refusal for another reason is kept for
// the next call.
func (s *Stacker[T]) flushLate() {
	defer s.late.Done()
	select {
	case s.turn <- struct{}{}:
	case <-s.lateCtx.Done():
		return
	}
	defer func() { <-s.turn }()

	s.mu.Lock()
	if len(s.pending) == 0 || s.closed {
		s.mu.Unlock()
		return
	}
	stack := s.pending
	s.pending = make([]Event[T], 0, s.size)
	s.mu.Unlock()

	err := s.bus.produceBatch(s.lateCtx, stack, false)
	if err == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	be, ok := err.(*BatchError[T])
	if ok && errors.Is(err, ErrFull) && s.bus.overflow == Block && !s.closed {
		s.pending = append(be.Rejected, s.pending...)
		s.disarm()
		s.late.Add(1)
		s.timer.Reset(s.linger)
		return
	}
	s.refused = s.join(s.refused, err)
}

// Close stops the stacker and hands every waiting event to the bus, as
// Flush does; later calls return [ErrClosed]. If ctx ends first, the
// events not handed over come back in a [*BatchError]: after Close the
// stacker holds nothing. It is idempotent; a second call returns nil.
func (s *Stacker[T]) Close(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true // from here on nothing is taken
	s.disarm()
	s.mu.Unlock()

	// take empties the stacker; what a handover after linger refused is
	// read while holding the turn, so none is missed.
	take := func() ([]Event[T], *BatchError[T]) {
		s.mu.Lock()
		defer s.mu.Unlock()
		stack, refused := s.pending, s.refused
		s.pending, s.refused = nil, nil
		return stack, refused
	}
	var result *BatchError[T]
	select {
	case s.turn <- struct{}{}:
		stack, refused := take()
		result = refused
		if len(stack) > 0 {
			result = s.join(refused, s.bus.ProduceBatch(ctx, stack))
		}
		<-s.turn
	case <-ctx.Done():
		// A handover after linger holds the turn: cut it short, and wait
		// for it to record what it could not hand over.
		s.cancelLate()
		s.late.Wait()
		stack, refused := take()
		result = s.join(refused, &BatchError[T]{Rejected: stack, Err: ctx.Err()})
	}
	// A fire under way finds the stacker empty and ends at once.
	s.late.Wait()
	s.cancelLate()
	return refusal(result)
}

// join merges two refusals; either may be nil. The result is a
// *BatchError if either is one, naming the stacker's resource.
func (s *Stacker[T]) join(a *BatchError[T], err error) *BatchError[T] {
	b, _ := err.(*BatchError[T])
	if err != nil && b == nil {
		b = &BatchError[T]{Err: err}
	}
	switch {
	case a == nil && b == nil:
		return nil
	case a == nil:
		a, b = b, nil
	case b != nil:
		a = &BatchError[T]{Rejected: append(a.Rejected, b.Rejected...), Err: b.Err}
	}
	a.Resource = s.bus.resource
	return a
}
