package jetbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/internal/goid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A Bus carries the events of one resource over the conveyors of a
// JetStream stream: one subject and one durable consumer per conveyor.
// Producers in any number of processes put events on it; in each
// process that has a handler, one goroutine per conveyor takes the
// events of the conveyors this process owns and hands them to the
// handler, one at a time per conveyor.
//
// A Bus is safe for concurrent use. It must be built with [New]; the
// zero value is not usable.
type Bus[T any] struct {
	resource  string
	cfg       config
	handle    mainbus.Handler[T] // nil for a producer-only bus
	js        jetstream.JetStream
	stream    jetstream.Stream
	conveyors []*conveyor
	view      view

	// intake guards closed; producers counts Produce calls in progress,
	// each registered under the read lock while closed is false.
	intake    sync.RWMutex
	closed    bool
	producers sync.WaitGroup
	closing   chan struct{} // closed when Close begins

	// The publishing of package jetbus, in publisher.go: nc carries the
	// publishes, whose answers come to replies on subjects inbox+token;
	// ackOK begins the answer of a message stored.
	nc      *nats.Conn
	inbox   string
	ackOK   []byte
	replies *nats.Subscription

	// pend holds the publishes awaiting the server's answer by token;
	// next is the last token given; stall, if not nil, is closed when
	// pend shrinks below the limit of WithMaxPending.
	pendMu sync.Mutex
	pend   map[uint64]*record
	next   uint64
	stall  chan struct{}

	// records holds the records of ProduceBatch whose events are stored,
	// to be encoded again with their header maps.
	records sync.Pool

	// ctx is handed to handlers; cancel ends it when a Close runs out of
	// time.
	ctx    context.Context
	cancel context.CancelFunc

	workers   sync.WaitGroup     // consumer goroutines and the monitor
	watchCtx  context.Context    // ends the monitor and its reading
	stopWatch context.CancelFunc // ends watchCtx
	closeOnce sync.Once
	done      chan struct{}
	err       error // the result of Close; written before done closes

	// gids holds the goroutine IDs of the consumer goroutines, so that a
	// Close called from a handler does not wait for that handler.
	gids sync.Map

	// abort is closed, once, by the first Close whose ctx ends; cause is
	// that ctx's error, written before abort closes.
	abortOnce sync.Once
	abort     chan struct{}
	cause     error
}

// handlerKey marks the contexts handed to handlers, so that a Close
// called from a handler does not wait for that handler.
type handlerKey struct{}

// New connects the bus of resource to the JetStream of nc. It creates the
// stream and, when h is not nil, the consumers of the conveyors, or
// updates them to the options given, and starts one consumer goroutine
// per conveyor plus one that watches the conveyors' state on the server.
// A nil h makes a producer-only bus.
//
// Every process of one resource must agree on the conveyor count; New
// refuses a count that differs from the stream's. Invalid options and a
// nil ctx give an error wrapping [mainbus.ErrInvalidOption]. The bus does
// not own nc: close nc after the bus.
func New[T any](ctx context.Context, nc *nats.Conn, resource string, h mainbus.Handler[T],
	opts ...Option) (*Bus[T], error) {
	if ctx == nil {
		return nil, invalid("New of bus %s got a nil context; "+
			"want context.Background() or another", resource)
	}
	cfg, err := configure(resource, nc, opts)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetbus: bus %s: %w", resource, err)
	}
	stream, err := ensureStream(ctx, js, streamConfig(resource, cfg.conveyors, &cfg))
	if err != nil {
		return nil, fmt.Errorf("bus %s: %w", resource, err)
	}
	b := &Bus[T]{
		resource:  resource,
		cfg:       cfg,
		handle:    h,
		js:        js,
		stream:    stream,
		conveyors: make([]*conveyor, cfg.conveyors),
		closing:   make(chan struct{}),
		done:      make(chan struct{}),
		abort:     make(chan struct{}),
		pend:      map[uint64]*record{},
	}
	for i := range b.conveyors {
		b.conveyors[i] = newConveyor(resource, i)
	}
	b.view = view{b.conveyors}
	b.ctx, b.cancel = context.WithCancel(context.WithValue(context.Background(),
		handlerKey{}, b))
	b.watchCtx, b.stopWatch = context.WithCancel(context.Background())
	if err := b.listen(nc); err != nil {
		b.cancel()
		b.stopWatch()
		return nil, fmt.Errorf("jetbus: bus %s: %w", resource, err)
	}
	if h != nil {
		if err := b.startConsumers(ctx); err != nil {
			b.stopConsumers()
			b.cancel()
			b.stopWatch()
			b.workers.Wait()
			b.unlisten()
			return nil, fmt.Errorf("bus %s: %w", resource, err)
		}
	}
	b.workers.Add(1)
	go b.watch()
	return b, nil
}

// configure checks the arguments of New and applies the options.
func configure(resource string, nc *nats.Conn, opts []Option) (config, error) {
	cfg := defaultConfig()
	if err := mainbus.CheckResource(resource); err != nil {
		return cfg, err
	}
	if nc == nil {
		return cfg, invalid("connection of bus %s is nil; want one from jetbus.Connect",
			resource)
	}
	for i, o := range opts {
		if o == nil {
			return cfg, invalid("option %d of bus %s is nil; want a jetbus With… option",
				i, resource)
		}
		o.apply(&cfg)
	}
	if err := cfg.check(); err != nil {
		return cfg, fmt.Errorf("bus %s: %w", resource, err)
	}
	return cfg, nil
}

// Resource returns the name of the resource the bus carries.
func (b *Bus[T]) Resource() string { return b.resource }

// Conveyors returns the number of conveyors.
func (b *Bus[T]) Conveyors() int { return len(b.conveyors) }

// Done returns a channel that is closed once Close has finished.
func (b *Bus[T]) Done() <-chan struct{} { return b.done }

// Close stops intake, waits for the publishes in flight to be
// acknowledged, lets each conveyor finish the events already delivered to
// this process, acknowledging them, and stops its goroutines. Events
// still on the server stay there for the other workers of the resource,
// or for the next start: closing a worker loses nothing. A nil ctx waits
// without limit.
//
// If ctx ends first, Close cancels the context handed to running
// handlers, drops the events delivered and not yet handled (the server
// delivers them again after the ack wait), waits for the running
// handlers to return, as the in-process bus does, and returns an error
// wrapping ctx.Err(). A handler that may take long must watch its
// context. Close does not close the connection.
//
// Close is idempotent and safe from many goroutines. Called from a
// handler of this bus, whatever the context, it begins the shutdown and
// returns nil at once, since the shutdown waits for that handler;
// [Bus.Done] tells when it is over. So does a call with the handler's
// context, or one derived from it, from any goroutine.
func (b *Bus[T]) Close(ctx context.Context) error {
	b.closeOnce.Do(func() { go b.shutdown() })
	if ctx != nil && ctx.Value(handlerKey{}) == b || b.inHandler(goid.Current()) {
		return nil
	}
	var cut <-chan struct{}
	if ctx != nil {
		cut = ctx.Done()
	}
	select {
	case <-b.done:
		return b.err
	case <-cut:
	}
	select {
	case <-b.done: // finished as ctx ended: the shutdown's result stands
		return b.err
	default:
	}
	b.abortOnce.Do(func() {
		b.cause = ctx.Err()
		close(b.abort)
		b.cancel()
		b.stopConsumers()
	})
	// As in process: the handlers' context has ended, and Close returns
	// once they have, so that no goroutine of the bus outlives it.
	<-b.done
	return fmt.Errorf("jetbus: close of %s: %w", b.resource, ctx.Err())
}

// shutdown runs once, on a goroutine of its own, so that no Close waits
// for another's: it stops intake, waits for the publishes in flight and
// the conveyors to drain, or for abort, and closes done.
func (b *Bus[T]) shutdown() {
	b.intake.Lock()
	b.closed = true
	close(b.closing)
	b.intake.Unlock()

	var errs []error
	if err := b.wait(&b.producers); err != nil {
		errs = append(errs, fmt.Errorf("publishes in flight: %w", err))
	}
	// Drain hands out what was delivered and ends each iterator; the
	// consumer goroutines return when theirs is empty.
	for _, c := range b.conveyors {
		if c.it != nil {
			c.it.Drain()
		}
	}
	b.stopWatch()
	if err := b.wait(&b.workers); err != nil {
		errs = append(errs, fmt.Errorf("drain: %w", err))
	}
	// Nothing may outlive done: after an abort the handlers saw their
	// context end, and the iterators are stopped.
	b.workers.Wait()
	b.cancel()
	b.unlisten()
	if len(errs) > 0 {
		b.err = fmt.Errorf("jetbus: close of %s: %w", b.resource, errors.Join(errs...))
	}
	close(b.done)
}

// wait waits for wg until a Close aborts the shutdown.
func (b *Bus[T]) wait(wg *sync.WaitGroup) error {
	ch := make(chan struct{})
	go func() {
		wg.Wait()
		close(ch)
	}()
	select {
	case <-ch:
		return nil
	case <-b.abort:
		return b.cause
	}
}

// inHandler reports whether goroutine id is a consumer goroutine of the
// bus, which runs the handler.
func (b *Bus[T]) inHandler(id uint64) bool {
	_, ok := b.gids.Load(id)
	return ok
}

// enter registers a producer; it returns false once Close has begun.
func (b *Bus[T]) enter() bool {
	b.intake.RLock()
	defer b.intake.RUnlock()
	if b.closed {
		return false
	}
	b.producers.Add(1)
	return true
}

// report hands err to the error handler, if any.
func (b *Bus[T]) report(err error) {
	if b.cfg.onError != nil {
		b.cfg.onError(err)
	}
}

// A view shows the conveyors to a [mainbus.Balancer]: the depth of a
// conveyor is the number of its events the server held at the last
// reading plus this process's publishes to it not yet acknowledged.
type view struct{ c []*conveyor }

func (v view) Len() int { return len(v.c) }

func (v view) Depth(i int) int {
	c := v.c[i]
	return int(c.stored.Load() + c.inflight.Load())
}

// conveyor is the state of one conveyor in this process.
type conveyor struct {
	index   int
	subject string
	cons    jetstream.Consumer
	it      jetstream.MessagesContext

	// Counters of this process.
	produced, consumed, failed, panicked, retried atomic.Uint64
	duplicates, ackFailed, blocks, blockedTime    atomic.Uint64
	redelivered                                   atomic.Uint64
	blocked, inflight                             atomic.Int64

	// Read from the server by the monitor.
	stored, pending, ackPending, serverRedelivered atomic.Int64
	stalls                                         atomic.Uint64
	stalled                                        bool // monitor only
	owned                                          atomic.Bool
	pin                                            atomic.Value // string: the last Nats-Pin-Id seen

	// mu guards the event in the handler, told to the server as in
	// progress every half ack wait, and the timings, which the consumer
	// goroutine adds to and Stats copies.
	mu          sync.Mutex
	cur         jetstream.Msg
	hb          *time.Timer
	queueTime   mainbus.Histogram
	handlerTime mainbus.Histogram
}

func newConveyor(resource string, i int) *conveyor {
	return &conveyor{index: i, subject: Subject(resource, i)}
}

// observeQueue counts the time one event waited on the server.
func (c *conveyor) observeQueue(d time.Duration) {
	c.mu.Lock()
	c.queueTime.Observe(d)
	c.mu.Unlock()
}

// timings returns copies of the conveyor's histograms.
func (c *conveyor) timings() (queue, handler mainbus.Histogram) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queueTime, c.handlerTime
}
