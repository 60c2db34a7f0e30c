package mainbus

import "fmt"

// Defaults used when an option is not given.
const (
	// DefaultConveyors is the conveyor count of a bus built without
	// WithConveyors.
	DefaultConveyors = 4

	// DefaultBuffer is how many events each conveyor holds before
	// producers meet the overflow policy.
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
}

func defaultConfig() config {
	return config{
		conveyors: DefaultConveyors,
		buffer:    DefaultBuffer,
		balancer:  Random(),
		overflow:  Block,
	}
}

// check validates the configuration and applies the even-count rule.
func (c *config) check() error {
	if c.conveyors < 1 {
		return invalid("conveyors is %d; want 1 or more", c.conveyors)
	}
	if c.conveyors > maxConveyors {
		return invalid("conveyors is %d; want at most %d", c.conveyors, maxConveyors)
	}
	if c.buffer < 0 {
		return invalid("buffer is %d; want 0 or more", c.buffer)
	}
	if c.balancer == nil {
		return invalid("balancer is nil; want one of Random, RoundRobin, " +
			"KeyHash, LeastLoaded or your own Balancer")
	}
	if err := c.overflow.check(); err != nil {
		return err
	}
	if !c.exact && c.conveyors%2 == 1 {
		c.conveyors++
	}
	return nil
}

// maxConveyors bounds the conveyor count so that a typo cannot start a
// million goroutines.
const maxConveyors = 1 << 16

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

// WithBuffer sets how many events each conveyor holds waiting for its
// consumer. Zero makes every hand-over a rendezvous with the consumer.
// The default is [DefaultBuffer]. When a conveyor is full, the overflow
// policy decides what Produce does.
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

// WithErrorHandler sets the function told of every handler failure, as a
// [*HandlerError]. It is called on the consumer goroutine of the conveyor
// that failed, so it should return quickly. Without it, failures are only
// counted in [Stats].
func WithErrorHandler(f func(error)) Option {
	return optionFunc(func(c *config) { c.onError = f })
}

// An Overflow policy says what Produce does when the chosen conveyor is
// full.
type Overflow int

const (
	// Block waits until the conveyor has room, the producer's context
	// ends, or the bus closes. It is the default.
	Block Overflow = iota

	// Reject returns an error wrapping [ErrFull] at once.
	Reject
)

func (o Overflow) String() string {
	switch o {
	case Block:
		return "block"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("Overflow(%d)", int(o))
}

func (o Overflow) check() error {
	switch o {
	case Block, Reject:
		return nil
	}
	return invalid("overflow policy %d is unknown; want Block or Reject", int(o))
}
