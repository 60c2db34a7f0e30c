package mainbus

import "fmt"

// An Overflow policy says what Produce does when the chosen conveyor is
// full. Memory stays bounded by the conveyors' buffers under every policy.
type Overflow int

const (
	// Block waits until the conveyor has room, the producer's context
	// ends, or the bus closes. It is the default.
	Block Overflow = iota

	// Reject returns an error wrapping [ErrFull] at once.
	Reject

	// DropNewest discards the event being produced and returns nil.
	DropNewest

	// DropOldest discards the oldest event waiting on the conveyor to make
	// room for the new one, and returns nil. On a conveyor without a
	// buffer there is nothing waiting, so it discards the new event.
	DropOldest
)

// Under DropNewest and DropOldest, Produce returns nil for an event that
// is then discarded; every discarded event is counted in [Stats] and
// handed to the drop handler ([WithDropHandler]), so none is lost
// silently.

func (o Overflow) String() string {
	switch o {
	case Block:
		return "block"
	case Reject:
		return "reject"
	case DropNewest:
		return "drop-newest"
	case DropOldest:
		return "drop-oldest"
	}
	return fmt.Sprintf("Overflow(%d)", int(o))
}

func (o Overflow) check() error {
	switch o {
	case Block, Reject, DropNewest, DropOldest:
		return nil
	}
	return invalid("overflow policy %d is unknown; want Block, Reject, DropNewest or DropOldest", int(o))
}

// drop counts ev as discarded from c and tells the drop handler.
func (b *Bus[T]) drop(c *conveyor[T], ev Event[T]) {
	c.m.dropped.Add(1)
	if b.onDrop != nil {
		b.onDrop(ev)
	}
}

// displace puts ev on the full conveyor c by discarding its oldest events.
// Each round either sends ev or takes one event off; the consumer may take
// one meanwhile, which only makes room sooner.
func (b *Bus[T]) displace(c *conveyor[T], ev Event[T]) {
	if cap(c.ch) == 0 {
		b.drop(c, ev)
		return
	}
	for {
		select {
		case c.ch <- ev:
			c.m.produced.Add(1)
			return
		default:
		}
		select {
		case old := <-c.ch:
			b.drop(c, old)
		default:
		}
	}
}
