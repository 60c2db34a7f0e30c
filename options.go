package mainbus

import (
	"context"
	"time"
)

// Defaults used when an option is not given.
const (
	// DefaultConveyors is the conveyor count of a bus built without
	// WithConveyors.
	DefaultConveyors = 4

	// DefaultBuffer is how many slots (an event, or a stack of events
	// from ProduceBatch) each conveyor has before producers meet the
	// overflow policy.
	DefaultBuffer = 64
)

// An Option configures a [Bus]. Options are checked once, by [New].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	conveyors int
	exact     bool
	buffer    int
	balancer  Balancer
	overflow  Overflow
	onError   func(error)
	retry     retryPolicy

	// onDrop and deadLetter hold typed values; New checks that their
	// type parameter is the bus's.
	onDrop     any
	deadLetter any
}

func defaultConfig() config {
	return config{
		conveyors: DefaultConveyors,
		buffer:    DefaultBuffer,
		balancer:  Random(),
		overflow:  Block,
		retry:     retryPolicy{attempts: 1},
	}
}

// check validates the configuration and applies the even-count rule.
func (c *config) check() error {
	if c.buffer < 0 || c.buffer > maxBuffer {
		return invalid("buffer is %d; want 0 to %d", c.buffer, maxBuffer)
	}
	if f, ok := c.balancer.(BalancerFunc); c.balancer == nil || ok && f == nil {
		return invalid("balancer is nil; want one of Random, RoundRobin, " +
			"KeyHash, LeastLoaded or your own Balancer")
	}
	if err := c.overflow.check(); err != nil {
		return err
	}
	if err := c.retry.check(); err != nil {
		return err
	}
	n, err := conveyorCount(c.conveyors, c.exact)
	if err == nil {
		err = checkSlots(n, c.buffer)
	}
	c.conveyors = n
	return err
}

// checkSlots bounds the events a bus can hold, conveyors times buffer, so
// that a typo cannot take the machine's memory.
func checkSlots(conveyors, buffer int) error {
	if conveyors*buffer > maxSlots {
		return invalid("%d conveyors of %d events hold %d; want at most %d in all",
			conveyors, buffer, conveyors*buffer, maxSlots)
	}
	return nil
}

// conveyorCount checks a conveyor count and applies the even-count rule.
func conveyorCount(n int, exact bool) (int, error) {
	if n < 1 {
		return n, invalid("conveyors is %d; want 1 or more", n)
	}
	if n > maxConveyors {
		return n, invalid("conveyors is %d; want at most %d", n, maxConveyors)
	}
	if !exact && n%2 == 1 {
		n++
	}
	return n, nil
}

// Limits that keep a typo from starting a million goroutines or taking
// the machine's memory.
const (
	maxConveyors = 1 << 16
	maxBuffer    = 1 << 20
	maxSlots     = 1 << 24 // conveyors × buffer
)

// WithConveyors sets how many conveyors the bus has. An odd count is
// rounded up to the next even number unless [WithExactConveyors] is given.
// The default is [DefaultConveyors]; accepted counts are 1 to 65536.
func WithConveyors(n int) Option {
	return optionFunc(func(c *config) { c.conveyors = n })
}

// WithExactConveyors keeps the conveyor count as given, odd counts
// included, instead of rounding it up to an even number.
func WithExactConveyors() Option {
	return optionFunc(func(c *config) { c.exact = true })
}

// WithBuffer sets how many slots each conveyor has for items waiting for
// its consumer. A slot holds one event from Produce, or one stack of up
// to [StackSize] events from [Bus.ProduceBatch]. Zero makes every
// hand-over a rendezvous with the consumer. The default is
// [DefaultBuffer]; accepted sizes are 0 to 1048576, with at most 16777216
// slots in all the conveyors of a bus. When a conveyor is full, the
// overflow policy decides what Produce does.
func WithBuffer(n int) Option {
	return optionFunc(func(c *config) { c.buffer = n })
}

// WithBalancer sets how the conveyor of each event is picked. The default
// is [Random].
func WithBalancer(b Balancer) Option {
	return optionFunc(func(c *config) { c.balancer = b })
}

// WithOverflow sets what Produce does when the chosen conveyor is full.
// The default is [Block].
func WithOverflow(o Overflow) Option {
	return optionFunc(func(c *config) { c.overflow = o })
}

// WithDropHandler sets the function told of every event a dropping
// overflow policy ([DropNewest], [DropOldest]) discards. It is called on
// the producer's goroutine before Produce returns, once the producer has
// left the conveyor, so it may even close or resize the bus. Every drop is
// also counted in [Stats] whether or not a handler is set. New returns an
// error if T is not the bus's payload type.
func WithDropHandler[T any](f func(Event[T])) Option {
	return optionFunc(func(c *config) { c.onDrop = f })
}

// WithRetry makes the bus call the handler up to attempts times for an
// event while it fails (returns an error or panics). Between attempts the
// conveyor waits base, 2×base, 4×base, … capped at max, each wait drawn at
// random from its upper half so that conveyors do not retry in step.
// While an event is retried, the later events of its conveyor wait, so
// per-conveyor and per-key order hold. Every failed attempt is reported
// to the error handler. The default is one attempt, no retry.
func WithRetry(attempts int, base, max time.Duration) Option {
	return optionFunc(func(c *config) { c.retry = retryPolicy{attempts, base, max} })
}

// WithDeadLetter sends every event whose last attempt failed to dl, once,
// as a [DeadLetter] with the error and the number of attempts. If dl's
// conveyor is full, dl's overflow policy applies: under Block the failing
// conveyor waits for room. If dl refuses the event (closed, full under
// Reject, …), the failure is reported to the error handler and counted as
// DeadLetterFailed instead. New returns an
// error if T is not the bus's payload type.
func WithDeadLetter[T any](dl *Bus[DeadLetter[T]]) Option {
	return optionFunc(func(c *config) {
		sink := deadLetterSink[T]{}
		if dl != nil {
			sink = deadLetterSink[T]{resource: dl.resource, produce: dl.Produce}
		}
		c.deadLetter = sink
	})
}

// A deadLetterSink is the part of a dead-letter bus a bus uses. A Bus[T]
// cannot hold a *Bus[DeadLetter[T]] itself: the type would be infinite.
type deadLetterSink[T any] struct {
	resource string
	produce  func(context.Context, Event[DeadLetter[T]]) error
}

// WithErrorHandler sets the function told of every handler failure, as a
// [*HandlerError]. The conveyor that failed waits for it to return, so it
// should return quickly; it runs on a goroutine of its own, so a panic or
// runtime.Goexit in it (a test's t.FailNow, say) cannot stop the
// conveyor. Without it, failures are only counted in [Stats].
func WithErrorHandler(f func(error)) Option {
	return optionFunc(func(c *config) { c.onError = f })
}
