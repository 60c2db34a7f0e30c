package mainbus

import "fmt"

// An Overflow policy says what Produce does when the chosen conveyor is
// full. Memory stays bounded by the conveyors' slots under every policy:
// conveyors × buffer events, or × StackSize with stacks.
type Overflow int

const (
	// Block waits until the conveyor has room, the producer's context
	// ends, or the bus closes. It is the default.
	Block Overflow = iota

	// Reject returns an error wrapping [ErrFull] at once.
	Reject

	// DropNewest discards the event being produced and returns nil.
	DropNewest

	// DropOldest discards the oldest slot waiting on the conveyor (an
	// event, or a whole stack from ProduceBatch) to make room for the new
	// one, and returns nil. On a conveyor without a buffer there is
	// nothing waiting, so it discards the new one.
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
	return invalid("overflow policy %d is unknown; "+
		"want Block, Reject, DropNewest or DropOldest", int(o))
}

// drops collects the events a Produce discarded, so that the drop handler
// runs after the producer has left the layout: a handler that closes or
// resizes the bus then does not wait on its own producer.
type drops[T any] struct {
	n     int
	first Event[T]
	rest  []Event[T] // rarely used: DropOldest racing other producers
}

// drop counts the events of it as discarded from c and keeps them for the
// drop handler. A dropped stack goes back to the pool.
func (b *Bus[T]) drop(c *conveyor[T], it item[T], d *drops[T]) {
	if it.stack == nil {
		c.m.dropped.Add(1)
		d.add(b, it.ev)
		return
	}
	c.m.dropped.Add(uint64(len(it.stack.evs)))
	for _, ev := range it.stack.evs {
		d.add(b, ev)
	}
	b.putStack(it.stack)
}

func (d *drops[T]) add(b *Bus[T], ev Event[T]) {
	if b.onDrop == nil {
		return
	}
	if d.n == 0 {
		d.first = ev
	} else {
		d.rest = append(d.rest, ev)
	}
	d.n++
}

// tell hands the collected events to the drop handler.
func (b *Bus[T]) tell(d *drops[T]) {
	if d.n == 0 {
		return
	}
	b.onDrop(d.first)
	for _, ev := range d.rest {
		b.onDrop(ev)
	}
}

// displace puts it on the full conveyor c by discarding its oldest
// events. Each round either sends it or takes one slot off; the consumer
// may take one meanwhile, which only makes room sooner.
func (b *Bus[T]) displace(c *conveyor[T], it item[T], d *drops[T]) {
	if cap(c.ch) == 0 {
		b.drop(c, it, d)
		return
	}
	n := it.size() // once sent, a stack belongs to the consumer
	for {
		select {
		case c.ch <- it:
			c.m.produced.Add(n)
			return
		default:
		}
		select {
		case old := <-c.ch:
			b.drop(c, old, d)
		default:
		}
	}
}
