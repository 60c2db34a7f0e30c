// Package natsload measures the same publish and consume work done by
// plain nats.go and by a jetbus bus against one NATS server, so that the
// cost of mainbus over JetStream is a ratio measured in one run. The
// jetbus benchmarks and "mainbus bench --nats" use it.
//
// Both sides move the same bodies: Size bytes, through as many subjects
// (conveyors) on a work-queue stream of the same storage, each case on a
// fresh stream that is deleted afterwards. The bus carries []byte values
// with a codec that sends them as they are ([Raw]), so the bodies on the
// wire are the plain side's; the bus adds its headers (the message ID,
// which carries the event ID; key and time when set), which are part of
// what it costs.
package natsload

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Work names one kind of work measured.
type Work string

// The work measured.
const (
	Publish           Work = "publish"            // publish N, wait until all are stored
	ConsumeOrdered    Work = "consume-ordered"    // one in flight per subject, acks confirmed
	ConsumeThroughput Work = "consume-throughput" // MaxInFlight per subject, acks not confirmed
)

// Config is one case: what work, how much, on what stream.
type Config struct {
	Work      Work
	Memory    bool // memory storage instead of file storage
	Events    int  // messages published or consumed
	Size      int  // body bytes
	Conveyors int  // subjects, and consumers when consuming

	// Pending bounds the publishes awaiting their ack; MaxInFlight the
	// messages delivered and not acknowledged per consumer in
	// throughput consumption. Both sides get the same values.
	Pending     int
	MaxInFlight int

	// MsgIDs gives each message of the plain side a Nats-Msg-Id header,
	// so that the server deduplicates its publishes as it does the
	// bus's. Without it, the plain side publishes bare bodies.
	MsgIDs bool
}

// Defaults of a Config.
const (
	DefaultSize        = 64
	DefaultConveyors   = 4
	DefaultPending     = 4096
	DefaultMaxInFlight = 1024
)

// withDefaults fills the zero fields of c.
func (c Config) withDefaults() Config {
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Conveyors == 0 {
		c.Conveyors = DefaultConveyors
	}
	if c.Pending == 0 {
		c.Pending = DefaultPending
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	return c
}

func (c Config) check() error {
	switch {
	case c.Work != Publish && c.Work != ConsumeOrdered && c.Work != ConsumeThroughput:
		return fmt.Errorf("natsload: work %q; want %s, %s or %s", c.Work, Publish,
			ConsumeOrdered, ConsumeThroughput)
	case c.Events < 1:
		return fmt.Errorf("natsload: %d events; want 1 or more", c.Events)
	case c.Size < 1 || c.Conveyors < 1 || c.Pending < 1 || c.MaxInFlight < 1:
		return fmt.Errorf("natsload: size %d, conveyors %d, pending %d, max in flight %d; "+
			"want each 1 or more", c.Size, c.Conveyors, c.Pending, c.MaxInFlight)
	}
	return nil
}

// Storage names the storage of c: "memory" or "file".
func (c Config) Storage() string {
	if c.Memory {
		return "memory"
	}
	return "file"
}

// A Side is who does the work: plain nats.go or a jetbus bus.
type Side string

// The two sides.
const (
	Plain  Side = "plain"
	Jetbus Side = "jetbus"
)

// A Rate is one measured run.
type Rate struct {
	Events  int
	Elapsed time.Duration
}

// PerSec returns the messages per second of r.
func (r Rate) PerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Events) / r.Elapsed.Seconds()
}

// Run does the work of cfg once on side, on a fresh stream of the server
// nc is connected to, and returns how long the timed part took: for
// Publish, from the first publish until every message is stored; for
// consumption, from creating the consumers until every message, stored
// beforehand, is acknowledged.
func Run(ctx context.Context, nc *nats.Conn, side Side, cfg Config) (Rate, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return Rate{}, err
	}
	switch side {
	case Plain:
		return runPlain(ctx, nc, cfg)
	case Jetbus:
		return runBus(ctx, nc, cfg)
	}
	return Rate{}, fmt.Errorf("natsload: side %q; want %s or %s", side, Plain, Jetbus)
}

// A Pair is one case run on both sides, plain first.
type Pair struct {
	Config
	Plain, Jetbus Rate
}

// Ratio returns the jetbus rate over the plain rate.
func (p Pair) Ratio() float64 {
	if p.Plain.PerSec() == 0 {
		return 0
	}
	return p.Jetbus.PerSec() / p.Plain.PerSec()
}

// Compare runs cfg on the plain side, then on the jetbus side.
func Compare(ctx context.Context, nc *nats.Conn, cfg Config) (Pair, error) {
	cfg = cfg.withDefaults()
	p := Pair{Config: cfg}
	var err error
	if p.Plain, err = Run(ctx, nc, Plain, cfg); err != nil {
		return p, fmt.Errorf("plain %s: %w", cfg.Work, err)
	}
	if p.Jetbus, err = Run(ctx, nc, Jetbus, cfg); err != nil {
		return p, fmt.Errorf("jetbus %s: %w", cfg.Work, err)
	}
	return p, nil
}

// body returns the body every message of cfg carries.
func body(cfg Config) []byte {
	b := make([]byte, cfg.Size)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

// name returns a fresh name for a stream or resource.
func name(prefix string) string { return prefix + nuid.Next() }

// deleteStream removes a stream of a case, on a context of its own so
// that it also runs after ctx has ended.
func deleteStream(js jetstream.JetStream, stream string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := js.DeleteStream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	return err
}
