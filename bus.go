package mainbus

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mainbus-go/mainbus/internal/goid"
)

// A Handler consumes the events of a bus. It is called on the consumer
// goroutine of conveyor, one event at a time per conveyor, so handlers of
// different conveyors run in parallel and a handler never runs twice at
// once on the same conveyor.
//
// ctx is canceled when a Close whose context ended cuts the drain short;
// a handler that may take long should watch it. Pass ctx on to Produce:
// it lets Produce tell when waiting would deadlock. An error or a panic is
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
	resource    string
	handle      Handler[T]
	handleStack StackHandler[T] // set instead of handle by NewStacked
	stacks      sync.Pool       // of *stack[T]
	scratch     sync.Pool       // of *batchScratch[T]
	placed      *stack[T]       // marks, in a batch, a conveyor whose stack went out
	balancer    Balancer
	overflow    Overflow
	buffer      int
	exact       bool
	onError     func(error)
	onDrop      func(Event[T])
	retry       retryPolicy
	deadLetter  deadLetterSink[T]
	epoch       time.Time // the zero of clock

	// current is the layout producers use. Resize swaps it; the swap comes
	// before the old layout retires, so a producer that finds its layout
	// retired and the bus not closed finds the new one on reload.
	current atomic.Pointer[layout[T]]
	closed  atomic.Bool

	// mu serializes Resize and the start of Close, and guards gens and
	// meters.
	mu     sync.Mutex
	gens   []*layout[T] // layouts not known to be drained, oldest first
	meters []*meter     // one per conveyor number ever used

	// gids holds the goroutine IDs of the consumers, so that Close,
	// Resize and a blocking Produce can tell a call from a handler.
	gids sync.Map

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

// yieldsBeforeWait is how often a producer facing a full conveyor yields
// the processor and tries again before it prepares to wait.
const yieldsBeforeWait = 3

// errRetired tells a producer that its layout was replaced by Resize while
// it waited, and that it should pick again from the new one.
var errRetired = errors.New("mainbus: layout retired")

// New builds the bus of resource and starts one consumer goroutine per
// conveyor, each calling h. Resource names are 1 to 64 ASCII letters,
// digits, '-' or '_'.
//
// Invalid options give an error wrapping [ErrInvalidOption] that says what
// is accepted; New never panics on them.
func New[T any](resource string, h Handler[T], opts ...Option) (*Bus[T], error) {
	if h == nil {
		return nil, invalid("handler of %s is nil; "+
			"want a function that consumes its events", resource)
	}
	return build(resource, h, nil, opts)
}

// build is New and NewStacked; exactly one of h and sh is set.
func build[T any](resource string, h Handler[T], sh StackHandler[T],
	opts []Option) (*Bus[T], error) {
	if err := CheckResource(resource); err != nil {
		return nil, err
	}
	cfg := defaultConfig()
	for i, o := range opts {
		if o == nil {
			return nil, invalid("option %d of %s is nil; "+
				"want an Option from a mainbus With… function", i, resource)
		}
		o.apply(&cfg)
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("bus %s: %w", resource, err)
	}

	b := &Bus[T]{
		resource:    resource,
		handle:      h,
		handleStack: sh,
		balancer:    cfg.balancer,
		overflow:    cfg.overflow,
		buffer:      cfg.buffer,
		exact:       cfg.exact,
		onError:     cfg.onError,
		retry:       cfg.retry,
		abort:       make(chan struct{}),
		done:        make(chan struct{}),
		placed:      new(stack[T]),
		epoch:       time.Now(),
	}
	if err := b.typed(cfg); err != nil {
		return nil, fmt.Errorf("bus %s: %w", resource, err)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.mu.Lock()
	b.install(cfg.conveyors, nil)
	b.mu.Unlock()
	return b, nil
}

// typed takes the options whose type parameter must match the bus's.
func (b *Bus[T]) typed(cfg config) error {
	if cfg.onDrop != nil {
		f, ok := cfg.onDrop.(func(Event[T]))
		if !ok || f == nil {
			return invalid("drop handler is a %T; want a non-nil func(mainbus.Event[%s])",
				cfg.onDrop, typeName[T]())
		}
		b.onDrop = f
	}
	if cfg.deadLetter != nil {
		dl, ok := cfg.deadLetter.(deadLetterSink[T])
		if !ok || dl.produce == nil {
			return invalid("dead-letter bus is nil or carries another type; "+
				"want a *mainbus.Bus[mainbus.DeadLetter[%s]]", typeName[T]())
		}
		b.deadLetter = dl
	}
	return nil
}

func typeName[T any]() string {
	var zero T
	return fmt.Sprintf("%T", zero)
}

// install builds a layout of n conveyors that starts handling once after
// closes, makes it current and starts its consumers. b.mu must be held.
func (b *Bus[T]) install(n int, after <-chan struct{}) *layout[T] {
	for len(b.meters) < n {
		b.meters = append(b.meters, new(meter))
	}
	l := newLayout[T](b.ctx, n, b.buffer, b.meters, after)
	live := b.gens[:0]
	for _, g := range b.gens {
		if !g.isDrained() {
			live = append(live, g)
		}
	}
	b.gens = append(live, l)
	b.current.Store(l)
	b.consumers.Add(n)
	for _, c := range l.conveyors {
		go b.consume(l, c, nil)
	}
	return l
}

// CheckResource returns nil if name can name a bus, and otherwise an
// error wrapping [ErrInvalidOption] that says what is accepted: 1 to 64
// ASCII letters, digits, '-' or '_'. Such names are also valid subject
// tokens and stream names for the JetStream backend, which checks them
// with this function too.
func CheckResource(name string) error {
	const accepted = "want 1 to 64 ASCII letters, digits, '-' or '_'"
	if name == "" || len(name) > 64 {
		return invalid("resource name %q has %d bytes; %s", name, len(name), accepted)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_'
		if !ok && c >= 0x80 {
			return invalid("resource name %q has a non-ASCII character at byte %d; %s",
				name, i, accepted)
		}
		if !ok {
			return invalid("resource name %q has %q at byte %d; %s", name, c, i, accepted)
		}
	}
	return nil
}

// Resource returns the name of the resource the bus carries.
func (b *Bus[T]) Resource() string { return b.resource }

// Conveyors returns the number of conveyors producers use now, after the
// even-count rule.
func (b *Bus[T]) Conveyors() int { return b.current.Load().Len() }

// Produce puts ev on the conveyor its balancer picks. It returns nil once
// the event is accepted: from then on it will reach the handler exactly
// once, or be handed back by a Close whose context ends first, or, under
// a dropping policy, be counted and reported as dropped.
//
// When the conveyor is full, the overflow policy applies. Under [Block],
// Produce waits for room and returns an error wrapping ctx.Err() if ctx
// ends first; the event is then not accepted and is never delivered. Under
// [Reject] it returns an error wrapping [ErrFull] at once.
//
// A handler may produce into any bus, its own included. Called from inside
// a handler of this bus, Produce never waits: where it would, it returns
// an error wrapping [ErrWouldBlock], since the conveyor it waits on may
// need the calling handler to finish first. Given the handler's context
// (or one derived from it), Produce into any bus also returns
// ErrWouldBlock where waiting would close a cycle of handlers waiting on
// each other's full conveyors, across buses and helper goroutines alike;
// otherwise a handler waits for room like any producer.
//
// Produce returns [ErrClosed] once Close has begun, also to producers
// already waiting for room. Waiting on one conveyor holds no lock: other
// producers and conveyors go on.
func (b *Bus[T]) Produce(ctx context.Context, ev Event[T]) error {
	if ctx == nil {
		return invalid("Produce on %s got a nil context; "+
			"want context.Background() or another", b.resource)
	}
	return b.produce(ctx, ev, b.overflow == Block)
}

// TryProduce is Produce that never waits: where the [Block] policy would
// wait, it returns an error wrapping [ErrFull]. The other policies behave
// as in Produce.
func (b *Bus[T]) TryProduce(ev Event[T]) error {
	return b.produce(nil, ev, false)
}

func (b *Bus[T]) produce(ctx context.Context, ev Event[T], wait bool) error {
	at, err := b.stamp(&ev)
	if err != nil {
		return err
	}
	var dropped drops[T]
	for {
		err := b.produceIn(ctx, b.current.Load(), item[T]{ev: ev, at: at}, wait, &dropped)
		if err != errRetired {
			b.tell(&dropped)
			return err
		}
	}
}

// produceIn tries to place ev in layout l. It returns errRetired if a
// Resize retired l first, and the reload in produce then finds the new
// layout.
func (b *Bus[T]) produceIn(ctx context.Context, l *layout[T], it item[T], wait bool,
	d *drops[T]) error {
	// Deferred, so that a panicking balancer does not leave the producer
	// counted in and Close waiting for it.
	defer l.leave()
	if !l.enter() {
		if b.closed.Load() {
			return ErrClosed
		}
		return errRetired
	}
	c, err := b.pick(l, it.ev.Key)
	if err != nil {
		return err
	}
	return b.place(ctx, l, c, it, wait, d)
}

// checkOwn returns an error if ev is for another resource than the bus's.
func (b *Bus[T]) checkOwn(ev *Event[T]) error {
	if ev.Resource == "" || ev.Resource == b.resource {
		return nil
	}
	return fmt.Errorf("%w: event %d is for %q, produced on the %s bus; "+
		"leave Resource empty or set it to %q",
		ErrUnknownResource, ev.ID, ev.Resource, b.resource, b.resource)
}

// stamp fills in the fields the bus owns and returns the clock reading
// that times the event's wait in queue. It reads the clock once.
func (b *Bus[T]) stamp(ev *Event[T]) (at int64, err error) {
	if err := b.checkOwn(ev); err != nil {
		return 0, err
	}
	ev.Resource = b.resource
	if ev.Time.IsZero() {
		ev.Time = time.Now()
		return int64(ev.Time.Sub(b.epoch)), nil
	}
	return b.clock(), nil
}

func (b *Bus[T]) pick(l *layout[T], key string) (*conveyor[T], error) {
	n := len(l.conveyors)
	i := b.balancer.Pick(key, l)
	if i < 0 || i >= n {
		return nil, invalid("balancer %T picked conveyor %d of bus %s; want 0 to %d",
			b.balancer, i, b.resource, n-1)
	}
	return l.conveyors[i], nil
}

// place sends it on c of layout l, applying the overflow policy if c is
// full; it waits for room only if wait is set.
func (b *Bus[T]) place(ctx context.Context, l *layout[T], c *conveyor[T], it item[T], wait bool,
	d *drops[T]) error {
	// Counted before the send: once sent, a stack belongs to the consumer.
	n := it.size()
	select {
	case c.ch <- it:
		c.m.produced.Add(n)
		return nil
	default:
	}
	switch {
	case b.overflow == DropNewest:
		b.drop(c, it, d)
		return nil
	case b.overflow == DropOldest:
		b.displace(c, it, d)
		return nil
	case !wait:
		if it.stack == nil { // a batch counts all it hands back, in batchIn
			c.m.rejected.Add(1)
		}
		return &ProduceError{Resource: b.resource, Conveyor: c.index, Err: ErrFull}
	}

	// A busy consumer frees a slot within microseconds. Yield to it a few
	// times before paying about a microsecond to learn whether the caller
	// is a handler of this bus, which must not wait.
	for range yieldsBeforeWait {
		runtime.Gosched()
		select {
		case c.ch <- it:
			c.m.produced.Add(n)
			return nil
		default:
		}
	}
	c.m.blocks.Add(1)
	c.m.blocked.Add(1)
	start := b.clock()
	err := b.waitRoom(ctx, l, c, it)
	c.m.blockedTime.Add(b.clock() - start)
	c.m.blocked.Add(-1)
	return err
}

// waitRoom waits for room on c, the conveyor of layout l, and sends it
// there.
func (b *Bus[T]) waitRoom(ctx context.Context, l *layout[T], c *conveyor[T], it item[T]) error {
	n := it.size()
	ok, done := await(ctx, c.w)
	if !ok || b.inHandler(goid.Current()) {
		if ok {
			done()
		}
		return &ProduceError{Resource: b.resource, Conveyor: c.index, Err: ErrWouldBlock}
	}
	defer done()

	// Each case below either sends the event or leaves it unsent, so an
	// event given up on is never delivered later.
	select {
	case c.ch <- it:
		c.m.produced.Add(n)
		return nil
	case <-ctx.Done():
		return &ProduceError{Resource: b.resource, Conveyor: c.index, Err: ctx.Err()}
	case <-l.closing:
		if b.closed.Load() {
			return ErrClosed
		}
		return errRetired
	}
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
	if b.inHandler(goid.Current()) {
		return nil
	}
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
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return
	}
	b.closed.Store(true)
	b.current.Load().retire()
	go b.shutdown()
}

// shutdown waits for the producers and consumers to stop, gathers what was
// not delivered, and closes done. It is the last goroutine of the bus.
func (b *Bus[T]) shutdown() {
	// No layout is added once closed is set, so gens is final.
	b.mu.Lock()
	gens := b.gens
	b.mu.Unlock()
	for _, l := range gens {
		<-l.idle
	}
	b.consumers.Wait()

	// After this Do, no Close can cut the drain short any more, and a cut
	// made before it is visible here.
	b.abortOnce.Do(func() {})
	if b.halted {
		var left []Event[T]
		for _, l := range gens {
			for _, c := range l.conveyors {
				left = append(left, c.held...)
				c.held = nil
				for len(c.ch) > 0 {
					left = (<-c.ch).appendTo(left)
				}
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
	_, ok := b.gids.Load(id)
	return ok
}

func (b *Bus[T]) isNil() bool { return b == nil }

func (b *Bus[T]) deadLetterTarget() string { return b.deadLetter.resource }

// Done returns a channel that is closed when the bus has stopped after
// Close: every accepted event delivered or handed back, and no goroutine
// of the bus left. The bus closes it; it is never closed before Close is
// called.
func (b *Bus[T]) Done() <-chan struct{} { return b.done }
