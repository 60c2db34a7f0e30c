package mainbus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// A Handler consumes the events of a bus. It is called on the consumer
// goroutine of conveyor, one event at a time per conveyor, so handlers of
// different conveyors run in parallel and a handler never runs twice at
// once on the same conveyor.
//
// ctx is canceled when a Close whose context ended cuts the drain short;
// a handler that may take long should watch it. An error or a panic is
// reported to the bus's error handler, and the conveyor goes on with its
// next event.
type Handler[T any] func(ctx context.Context, conveyor int, ev Event[T]) error

// A Bus carries the events of one resource over parallel conveyors. Each
// conveyor is a buffered channel with one consumer goroutine, owned by the
// bus from [New] until [Bus.Close] returns.
//
// A Bus is safe for concurrent use by any number of producers. It must be
// built with New; the zero value is not usable.
type Bus[T any] struct {
	resource string
	handle   Handler[T]
	balancer Balancer
	overflow Overflow
	onError  func(error)
	lanes    *layout[T]

	// state counts the producers inside Produce or TryProduce in its low
	// bits; closedBit is set once Close begins. A producer that sees the
	// bit leaves without touching a conveyor, so once the count drops to
	// zero with the bit set, nothing can be sent any more and idle closes.
	state    atomic.Int64
	closing  chan struct{} // closed when Close begins; wakes blocked producers
	idle     chan struct{} // closed when intake is stopped and no producer is inside
	idleOnce sync.Once

	beginOnce sync.Once
	abort     chan struct{} // closed when a Close's context ends before the drain
	abortOnce sync.Once
	halted    bool  // set under abortOnce; read by shutdown after abortOnce
	cause     error // the context error that cut the drain short
	done      chan struct{}
	err       error // the result of Close; written before done closes

	// ctx is handed to handlers; cancel ends it when the drain is cut
	// short or the bus has stopped.
	ctx       context.Context
	cancel    context.CancelFunc
	consumers sync.WaitGroup
}

const closedBit = 1 << 62

// New builds the bus of resource and starts one consumer goroutine per
// conveyor, each calling h. Resource names are 1 to 64 ASCII letters,
// digits, '-' or '_'.
//
// Invalid options give an error wrapping [ErrInvalidOption] that says what
// is accepted; New never panics on them.
func New[T any](resource string, h Handler[T], opts ...Option) (*Bus[T], error) {
	if err := checkResource(resource); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, invalid("handler of %s is nil; want a function that consumes its events", resource)
	}
	cfg := defaultConfig()
	for i, o := range opts {
		if o == nil {
			return nil, invalid("option %d of %s is nil; want an Option from a mainbus With… function", i, resource)
		}
		o.apply(&cfg)
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("bus %s: %w", resource, err)
	}

	b := &Bus[T]{
		resource: resource,
		handle:   h,
		balancer: cfg.balancer,
		overflow: cfg.overflow,
		onError:  cfg.onError,
		lanes:    &layout[T]{conveyors: make([]*conveyor[T], cfg.conveyors)},
		closing:  make(chan struct{}),
		idle:     make(chan struct{}),
		abort:    make(chan struct{}),
		done:     make(chan struct{}),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	for i := range b.lanes.conveyors {
		// The buffer is the user's WithBuffer setting (DefaultBuffer if
		// unset); when it is full the overflow policy applies.
		c := &conveyor[T]{index: i, ch: make(chan Event[T], cfg.buffer)}
		b.lanes.conveyors[i] = c
	}
	b.consumers.Add(len(b.lanes.conveyors))
	for _, c := range b.lanes.conveyors {
		go b.consume(c)
	}
	return b, nil
}

// checkResource says whether name can name a bus.
func checkResource(name string) error {
	const accepted = "want 1 to 64 ASCII letters, digits, '-' or '_'"
	if name == "" || len(name) > 64 {
		return invalid("resource name %q has %d bytes; %s", name, len(name), accepted)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_'
		if !ok {
			return invalid("resource name %q has %q at byte %d; %s", name, c, i, accepted)
		}
	}
	return nil
}

// Resource returns the name of the resource the bus carries.
func (b *Bus[T]) Resource() string { return b.resource }

// Conveyors returns the number of conveyors, after the even-count rule.
func (b *Bus[T]) Conveyors() int { return len(b.lanes.conveyors) }

// Produce puts ev on the conveyor its balancer picks. It returns nil once
// the event is accepted: from then on it will reach the handler exactly
// once, or be handed back by a Close whose context ends first.
//
// When the conveyor is full, the overflow policy applies. Under [Block],
// Produce waits for room and returns an error wrapping ctx.Err() if ctx
// ends first; the event is then not accepted and is never delivered. Under
// [Reject] it returns an error wrapping [ErrFull] at once.
//
// Produce returns [ErrClosed] once Close has begun, also to producers
// already waiting for room. Waiting on one conveyor holds no lock: other
// producers and conveyors go on.
func (b *Bus[T]) Produce(ctx context.Context, ev Event[T]) error {
	if ctx == nil {
		return invalid("Produce on %s got a nil context; want context.Background() or another", b.resource)
	}
	return b.produce(ctx, ev, b.overflow == Block)
}

// TryProduce is Produce that never waits: when the chosen conveyor is full
// it returns an error wrapping [ErrFull], whatever the overflow policy.
func (b *Bus[T]) TryProduce(ev Event[T]) error {
	return b.produce(nil, ev, false)
}

func (b *Bus[T]) produce(ctx context.Context, ev Event[T], wait bool) error {
	if err := b.stamp(&ev); err != nil {
		return err
	}
	// Deferred, so that a panicking balancer does not leave the producer
	// counted in and Close waiting for it.
	defer b.leave()
	if b.state.Add(1)&closedBit != 0 {
		return ErrClosed
	}
	c, err := b.pick(ev.Key)
	if err != nil {
		return err
	}
	return b.place(ctx, c, ev, wait)
}

// leave undoes a producer's entry and opens idle for the last one out
// after Close has begun.
func (b *Bus[T]) leave() {
	if b.state.Add(-1) == closedBit {
		b.idleOnce.Do(func() { close(b.idle) })
	}
}

// stamp fills in the fields the bus owns.
func (b *Bus[T]) stamp(ev *Event[T]) error {
	switch ev.Resource {
	case "":
		ev.Resource = b.resource
	case b.resource:
	default:
		return fmt.Errorf("%w: event %d is for %q, produced on the %s bus; "+
			"leave Resource empty or set it to %q",
			ErrUnknownResource, ev.ID, ev.Resource, b.resource, b.resource)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	return nil
}

func (b *Bus[T]) pick(key string) (*conveyor[T], error) {
	n := len(b.lanes.conveyors)
	i := b.balancer.Pick(key, b.lanes)
	if i < 0 || i >= n {
		return nil, invalid("balancer %T picked conveyor %d of bus %s; want 0 to %d",
			b.balancer, i, b.resource, n-1)
	}
	return b.lanes.conveyors[i], nil
}

// place sends ev on c, waiting for room only if wait is set.
func (b *Bus[T]) place(ctx context.Context, c *conveyor[T], ev Event[T], wait bool) error {
	select {
	case c.ch <- ev:
		c.produced.Add(1)
		return nil
	default:
	}
	if !wait {
		return &ProduceError{Resource: b.resource, Conveyor: c.index, Err: ErrFull}
	}

	// Each case below either sends the event or leaves it unsent, so an
	// event given up on is never delivered later.
	select {
	case c.ch <- ev:
		c.produced.Add(1)
		return nil
	case <-ctx.Done():
		return &ProduceError{Resource: b.resource, Conveyor: c.index, Err: ctx.Err()}
	case <-b.closing:
		return ErrClosed
	}
}

// consume is the body of the consumer goroutine of c.
func (b *Bus[T]) consume(c *conveyor[T]) {
	defer b.consumers.Done()
	c.gid.Store(goid())
	for {
		select {
		case ev := <-c.ch:
			if !b.deliver(c, ev) {
				return
			}
		case <-b.idle:
			// No producer can send any more: what is in the channel is
			// all there will ever be.
			for {
				select {
				case ev := <-c.ch:
					if !b.deliver(c, ev) {
						return
					}
				default:
					return
				}
			}
		case <-b.abort:
			return
		}
	}
}

// deliver hands ev to the handler and counts the outcome. If the drain
// was cut short meanwhile, it keeps ev for Close to hand back instead, and
// reports false so the consumer stops.
func (b *Bus[T]) deliver(c *conveyor[T], ev Event[T]) bool {
	select {
	case <-b.abort:
		c.held = append(c.held, ev)
		return false
	default:
	}
	b.settle(c, b.call(c, ev))
	return true
}

// settle counts a finished delivery and reports its failure, if any.
func (b *Bus[T]) settle(c *conveyor[T], err *HandlerError) {
	c.consumed.Add(1)
	if err == nil {
		return
	}
	if err.Err == nil {
		c.panicked.Add(1)
	} else {
		c.failed.Add(1)
	}
	if b.onError != nil {
		b.onError(err)
	}
}

// goexitPanic is the Panic of the HandlerError for a handler that called
// runtime.Goexit.
const goexitPanic = "mainbus: handler called runtime.Goexit"

// call runs the handler, turning a panic into a HandlerError. A handler
// that calls runtime.Goexit ends the consumer goroutine whatever we do, so
// call reports it and starts a new consumer for c before the old one goes.
func (b *Bus[T]) call(c *conveyor[T], ev Event[T]) (herr *HandlerError) {
	returned := false
	defer func() {
		if returned {
			return
		}
		p := recover()
		goexit := p == nil // panic(nil) recovers a *runtime.PanicNilError
		if goexit {
			p = goexitPanic
		}
		herr = &HandlerError{Resource: b.resource, Conveyor: c.index, EventID: ev.ID, Panic: p}
		if goexit {
			b.settle(c, herr)
			// The old goroutine's Done comes after this Add, so the
			// count of consumers never drops to zero in between.
			b.consumers.Add(1)
			go b.consume(c)
		}
	}()
	err := b.handle(b.ctx, c.index, ev)
	returned = true
	if err != nil {
		return &HandlerError{Resource: b.resource, Conveyor: c.index, EventID: ev.ID, Err: err}
	}
	return nil
}

// Close stops intake, delivers every accepted event, stops the consumers
// and returns once no goroutine of the bus is left. Producers waiting for
// room when Close begins return [ErrClosed].
//
// If ctx ends first, Close cancels the context of the running handlers,
// waits for them to return, and returns a [*DrainError] holding the
// events not delivered; none of them will be. A nil ctx waits without
// limit.
//
// Close is idempotent and safe for concurrent use: every call waits for
// the same shutdown and returns the same result. Called from inside a
// handler of this bus, Close begins the shutdown and returns nil at once,
// since the calling conveyor cannot drain until its handler returns; the
// channel of [Bus.Done] tells when the shutdown is over.
func (b *Bus[T]) Close(ctx context.Context) error {
	b.begin()
	if b.inHandler(goid()) {
		return nil
	}
	return b.wait(ctx)
}

// wait waits for the shutdown Close began, cutting it short if ctx ends.
func (b *Bus[T]) wait(ctx context.Context) error {
	var cut <-chan struct{}
	if ctx != nil {
		cut = ctx.Done()
	}
	select {
	case <-b.done:
	case <-cut:
		b.abortOnce.Do(func() {
			b.halted, b.cause = true, ctx.Err()
			close(b.abort)
			b.cancel()
		})
		<-b.done
	}
	return b.err
}

// begin starts the shutdown once: it stops intake, releases blocked
// producers and starts the goroutine that settles the result.
func (b *Bus[T]) begin() {
	b.beginOnce.Do(func() {
		b.state.Or(closedBit)
		close(b.closing)
		if b.state.Load() == closedBit {
			b.idleOnce.Do(func() { close(b.idle) })
		}
		go b.shutdown()
	})
}

// shutdown waits for the producers and consumers to stop, gathers what was
// not delivered, and closes done. It is the last goroutine of the bus.
func (b *Bus[T]) shutdown() {
	<-b.idle
	b.consumers.Wait()

	// After this Do, no Close can cut the drain short any more, and a cut
	// made before it is visible here.
	b.abortOnce.Do(func() {})
	if b.halted {
		var left []Event[T]
		for _, c := range b.lanes.conveyors {
			left = append(left, c.held...)
			c.held = nil
			for len(c.ch) > 0 {
				left = append(left, <-c.ch)
			}
		}
		if len(left) > 0 {
			b.err = &DrainError[T]{Resource: b.resource, Undelivered: left, Err: b.cause}
		}
	}
	b.cancel()
	close(b.done)
}

// inHandler reports whether goroutine id is a consumer of this bus.
func (b *Bus[T]) inHandler(id uint64) bool {
	for _, c := range b.lanes.conveyors {
		if c.gid.Load() == id {
			return true
		}
	}
	return false
}

func (b *Bus[T]) isNil() bool { return b == nil }

// Done returns a channel that is closed when the bus has stopped after
// Close: every accepted event delivered or handed back, and no goroutine
// of the bus left. The bus closes it; it is never closed before Close is
// called.
func (b *Bus[T]) Done() <-chan struct{} { return b.done }
