package jetbus

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mainbus-go/mainbus"
)

// A Mode says how many events of one conveyor may be in flight between
// the server and the process that owns the conveyor.
type Mode int

const (
	// Ordered hands a conveyor's events to the handler one at a time: the
	// server delivers the next event only once the previous one is
	// acknowledged. Events of one conveyor, and so of one key under
	// [mainbus.KeyHash], are handled in the order stored, also across a
	// failover and a crash. It is the default.
	Ordered Mode = iota

	// Throughput lets up to [WithMaxInFlight] events per conveyor travel
	// to its owner ahead of the handler, and acknowledges without
	// waiting. The handler still sees one event at a time per conveyor,
	// in order, while nothing fails; a handler error or a crashed owner
	// makes the server deliver the events concerned again after later
	// ones, so order is not kept across failures.
	Throughput
)

func (m Mode) String() string {
	switch m {
	case Ordered:
		return "ordered"
	case Throughput:
		return "throughput"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Defaults used when an option is not given.
const (
	DefaultConveyors   = mainbus.DefaultConveyors
	DefaultCapacity    = 1 << 16 // events per conveyor on the server
	DefaultMaxInFlight = 256     // events per conveyor, Throughput mode
	DefaultAckWait     = 30 * time.Second
	DefaultPinTTL      = 10 * time.Second
	DefaultPublishWait = 10 * time.Second
	DefaultPending     = 4096 // unacknowledged publishes per bus
	DefaultMonitor     = time.Second
)

// A Codec turns event values into message bodies and back.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default [Codec]: encoding/json.
type JSON struct{}

// Marshal returns json.Marshal(v).
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal calls json.Unmarshal(data, v).
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// An Option configures a [Bus]. Options are checked once, by [New].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	conveyors   int
	exact       bool
	balancer    mainbus.Balancer
	overflow    mainbus.Overflow
	onError     func(error)
	mode        Mode
	maxInFlight int
	ackWait     time.Duration
	pinTTL      time.Duration
	memory      bool
	replicas    int
	capacity    int
	codec       Codec
	attempts    int
	retryBase   time.Duration
	retryMax    time.Duration
	publishWait time.Duration
	pending     int
	dupWindow   time.Duration
	monitor     time.Duration
}

func defaultConfig() config {
	return config{
		conveyors:   DefaultConveyors,
		balancer:    mainbus.Random(),
		overflow:    mainbus.Block,
		maxInFlight: DefaultMaxInFlight,
		ackWait:     DefaultAckWait,
		pinTTL:      DefaultPinTTL,
		replicas:    1,
		capacity:    DefaultCapacity,
		codec:       JSON{},
		attempts:    1,
		publishWait: DefaultPublishWait,
		pending:     DefaultPending,
		monitor:     DefaultMonitor,
	}
}

// check validates the configuration and applies the even-count rule of
// the in-process bus.
func (c *config) check() error {
	switch {
	case c.conveyors < 1 || c.conveyors > maxConveyors:
		return invalid("conveyors is %d; want 1 to %d", c.conveyors, maxConveyors)
	case c.balancer == nil:
		return invalid("balancer is nil; want one of mainbus.Random, RoundRobin, " +
			"KeyHash, JumpHash, LeastLoaded or your own")
	case c.overflow != mainbus.Block && c.overflow != mainbus.Reject:
		return invalid("overflow policy %v; want mainbus.Block or mainbus.Reject "+
			"(a JetStream bus never discards accepted events)", c.overflow)
	case c.mode != Ordered && c.mode != Throughput:
		return invalid("mode %v; want Ordered or Throughput", c.mode)
	case c.maxInFlight < 1 || c.maxInFlight > 1<<16:
		return invalid("max in flight is %d; want 1 to 65536", c.maxInFlight)
	case c.ackWait < time.Second:
		return invalid("ack wait is %v; want 1s or more", c.ackWait)
	case c.pinTTL < 2*time.Second:
		return invalid("pin TTL is %v; want 2s or more", c.pinTTL)
	case c.replicas < 1 || c.replicas > 5:
		return invalid("replicas is %d; want 1 to 5", c.replicas)
	case c.capacity < 1:
		return invalid("capacity is %d; want 1 or more events per conveyor", c.capacity)
	case c.codec == nil:
		return invalid("codec is nil; want jetbus.JSON{} or your own Codec")
	case c.attempts < 1:
		return invalid("retry attempts is %d; want 1 or more", c.attempts)
	case c.retryBase < 0 || c.retryMax < c.retryBase:
		return invalid("retry waits %v to %v; want 0 <= base <= max", c.retryBase, c.retryMax)
	case c.publishWait <= 0:
		return invalid("publish wait is %v; want more than 0", c.publishWait)
	case c.pending < 1:
		return invalid("pending publishes is %d; want 1 or more", c.pending)
	case c.dupWindow < 0:
		return invalid("duplicate window is %v; want 0 (the server's default) or more",
			c.dupWindow)
	case c.monitor < 10*time.Millisecond:
		return invalid("monitor interval is %v; want 10ms or more", c.monitor)
	}
	if !c.exact && c.conveyors%2 == 1 {
		c.conveyors++
	}
	return nil
}

// maxConveyors bounds the subjects and consumers one bus makes.
const maxConveyors = 1024

// WithConveyors sets how many conveyors (subjects and consumers) the bus
// has. Every process of one resource must use the same count: New refuses
// a count that differs from the stream's. Odd counts are rounded up to the
// next even number unless [WithExactConveyors] is given, as in process.
// The default is [DefaultConveyors]; accepted counts are 1 to 1024.
func WithConveyors(n int) Option { return optionFunc(func(c *config) { c.conveyors = n }) }

// WithExactConveyors keeps the conveyor count as given, odd included.
func WithExactConveyors() Option { return optionFunc(func(c *config) { c.exact = true }) }

// WithBalancer sets how producers of this process pick the conveyor of
// each event, with the balancers of the in-process bus. The default is
// [mainbus.Random]. [mainbus.LeastLoaded] sees the depth last read from
// the server plus this process's publishes in flight.
func WithBalancer(b mainbus.Balancer) Option {
	return optionFunc(func(c *config) { c.balancer = b })
}

// WithOverflow sets what Produce does when the chosen conveyor holds its
// capacity of unhandled events: [mainbus.Block] (the default) waits for
// room, [mainbus.Reject] returns an error wrapping [mainbus.ErrFull]. The
// dropping policies are refused: the server never discards accepted
// events.
func WithOverflow(o mainbus.Overflow) Option {
	return optionFunc(func(c *config) { c.overflow = o })
}

// WithErrorHandler sets the function told of handler failures (as
// [*mainbus.HandlerError]), failed acknowledgements, stalls and consumer
// errors. It is called on a conveyor's goroutine or the monitor's, so it
// should return quickly. Without it, failures are only counted in Stats.
func WithErrorHandler(f func(error)) Option {
	return optionFunc(func(c *config) { c.onError = f })
}

// WithMode sets [Ordered] (the default) or [Throughput].
func WithMode(m Mode) Option { return optionFunc(func(c *config) { c.mode = m }) }

// WithMaxInFlight sets how many events of one conveyor may be delivered
// and not yet acknowledged in [Throughput] mode; Ordered mode always has
// one. The default is [DefaultMaxInFlight]. Events wait in this process
// with their acknowledgement timers running, so n times the handler's
// time must stay well under the ack wait, or the server delivers them
// again (counted in Stats as Redelivered).
func WithMaxInFlight(n int) Option { return optionFunc(func(c *config) { c.maxInFlight = n }) }

// WithAckWait sets how long the server waits for the acknowledgement of
// a delivered event before it delivers it again. While a handler runs,
// the bus tells the server every half ack wait that it is still working.
// The default is [DefaultAckWait]; at least 1s.
func WithAckWait(d time.Duration) Option { return optionFunc(func(c *config) { c.ackWait = d }) }

// WithPinTTL sets how long a conveyor stays with an owner process that
// has stopped asking for events before the server hands it to another
// worker. The default is [DefaultPinTTL]; at least 2s.
func WithPinTTL(d time.Duration) Option { return optionFunc(func(c *config) { c.pinTTL = d }) }

// WithMemoryStorage keeps the stream in the servers' memory instead of
// files: faster, and lost when the servers restart.
func WithMemoryStorage() Option { return optionFunc(func(c *config) { c.memory = true }) }

// WithReplicas sets how many servers of a cluster hold the stream and
// its consumers; 1 (the default) to 5.
func WithReplicas(n int) Option { return optionFunc(func(c *config) { c.replicas = n }) }

// WithCapacity sets how many unhandled events one conveyor holds on the
// server before Produce meets the overflow policy. The default is
// [DefaultCapacity].
func WithCapacity(n int) Option { return optionFunc(func(c *config) { c.capacity = n }) }

// WithCodec sets how event values are encoded. The default is [JSON].
func WithCodec(cd Codec) Option { return optionFunc(func(c *config) { c.codec = cd }) }

// WithRetry makes the server deliver an event up to attempts times while
// the handler fails (returns an error, panics or calls runtime.Goexit,
// which ends no conveyor), waiting base, 2×base, … capped at max between
// attempts; after the last failure the event is terminated (removed) and
// reported. In Ordered mode the conveyor waits for the retry, so order
// holds. The default is one attempt.
func WithRetry(attempts int, base, max time.Duration) Option {
	return optionFunc(func(c *config) { c.attempts, c.retryBase, c.retryMax = attempts, base, max })
}

// WithPublishWait bounds how long TryProduce waits for the server's
// acknowledgement, and how long any publish waits before it is sent
// again. The default is [DefaultPublishWait].
func WithPublishWait(d time.Duration) Option {
	return optionFunc(func(c *config) { c.publishWait = d })
}

// WithMaxPending bounds the publishes of this bus awaiting the server's
// acknowledgement; producers past it wait. The default is
// [DefaultPending].
func WithMaxPending(n int) Option { return optionFunc(func(c *config) { c.pending = n }) }

// WithDuplicateWindow sets how long the stream remembers message IDs to
// drop a second publish of the same event. Zero (the default) keeps the
// server's default of two minutes.
func WithDuplicateWindow(d time.Duration) Option {
	return optionFunc(func(c *config) { c.dupWindow = d })
}

// WithMonitor sets how often the bus reads its conveyors' state from the
// server for Stats, stall detection and the depth seen by balancers. The
// default is [DefaultMonitor].
func WithMonitor(d time.Duration) Option { return optionFunc(func(c *config) { c.monitor = d }) }
