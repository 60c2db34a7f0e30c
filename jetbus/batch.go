package jetbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ProduceBatch puts evs on the bus and returns nil once the server has
// stored every one of them, as if each had been given to [Bus.Produce].
// The events are sent without waiting for each answer, up to
// [WithMaxPending] at a time, so a batch costs about one round trip to
// the server instead of one per event.
//
// Events of one key keep their order: an event is sent only once the
// previous event of its key in the batch is stored, and when one is not
// stored, the later events of its key are not sent ahead of it. Events
// without a key, like events on different conveyors, are independent.
//
// Events the server refuses for room on their conveyor meet the overflow
// policy: under [mainbus.Block] they are sent again, one at a time and in
// order, until there is room or ctx ends; under [mainbus.Reject] they are
// not accepted. ProduceBatch returns a [*mainbus.BatchError] holding
// exactly the events not stored, in the order given, and the first cause:
// an error wrapping [mainbus.ErrFull], ctx.Err(), [mainbus.ErrClosed], or
// [ErrInDoubt] when ctx ended while the server's answer for some of them
// was due (those may be stored; producing them again with the same IDs is
// safe within the duplicate window). An empty batch on a closed bus
// returns [mainbus.ErrClosed]. evs is not kept and not modified.
func (b *Bus[T]) ProduceBatch(ctx context.Context, evs []mainbus.Event[T]) error {
	if ctx == nil {
		return invalid("ProduceBatch on %s got a nil context; "+
			"want context.Background() or another", b.resource)
	}
	for i := range evs {
		if err := b.checkResource(&evs[i]); err != nil {
			return &mainbus.BatchError[T]{Resource: b.resource, Rejected: slices.Clone(evs),
				Err: err}
		}
	}
	if !b.enter() {
		if len(evs) == 0 {
			return mainbus.ErrClosed
		}
		return &mainbus.BatchError[T]{Resource: b.resource, Rejected: slices.Clone(evs),
			Err: mainbus.ErrClosed}
	}
	defer b.producers.Done()
	if len(evs) == 0 {
		return nil
	}

	p := &pipeline[T]{b: b, evs: evs, now: time.Now(),
		ring: make([]sent, min(len(evs), b.cfg.pending))}
	p.send(ctx)
	return p.retry(ctx)
}

// checkResource refuses an event of another resource.
func (b *Bus[T]) checkResource(ev *mainbus.Event[T]) error {
	if ev.Resource != "" && ev.Resource != b.resource {
		return fmt.Errorf("%w: event %d is for %q, produced on the %s bus; "+
			"leave Resource empty or set it to %q",
			mainbus.ErrUnknownResource, ev.ID, ev.Resource, b.resource, b.resource)
	}
	return nil
}

// A pipeline is one ProduceBatch: the events sent and not yet answered,
// in the order sent, and those to send again one at a time.
type pipeline[T any] struct {
	b   *Bus[T]
	evs []mainbus.Event[T]
	now time.Time // the time of events without one

	// ring holds the publishes awaiting their answer, oldest at head.
	ring       []sent
	head, size int

	// busy holds the keys with an event awaiting its answer; held those
	// with an event not stored, whose later events wait for the retry.
	busy, held map[string]bool
	again      []unsent // events not stored in the first pass
	ended      error    // ctx's end, once seen
}

// unsent is an event the first pass did not get stored: the message to
// send again, or why not.
type unsent struct {
	i   int // index in evs
	c   *conveyor
	msg *nats.Msg // nil if the event was not sent
	err error     // the server's refusal, or why it was not sent
}

// sent is one publish awaiting the server's answer.
type sent struct {
	i   int // index in evs
	c   *conveyor
	msg *nats.Msg
	f   jetstream.PubAckFuture
}

// send publishes every event once, keeping at most one event of each key
// in flight, and collects the answers.
func (p *pipeline[T]) send(ctx context.Context) {
	b := p.b
	for i := range p.evs {
		key := p.evs[i].Key
		if key != "" {
			for p.busy[key] && p.ended == nil {
				p.complete(ctx)
			}
			if p.held[key] {
				p.again = append(p.again, unsent{i: i})
				continue
			}
		}
		if p.ended != nil {
			p.again = append(p.again, unsent{i: i, err: p.ended})
			continue
		}
		if p.size == len(p.ring) {
			p.complete(ctx)
		}
		c, msg, err := b.prepare(&p.evs[i], p.now)
		if err != nil {
			p.fail(unsent{i: i, err: err}, key)
			continue
		}
		c.inflight.Add(1)
		f, err := b.js.PublishMsgAsync(msg)
		if err != nil {
			c.inflight.Add(-1)
			p.fail(unsent{i: i, c: c, msg: msg, err: err}, key)
			continue
		}
		p.ring[(p.head+p.size)%len(p.ring)] = sent{i: i, c: c, msg: msg, f: f}
		p.size++
		if key != "" {
			if p.busy == nil {
				p.busy = map[string]bool{}
			}
			p.busy[key] = true
		}
	}
	for p.size > 0 {
		p.complete(ctx)
	}
}

// complete waits for the answer to the oldest publish in flight. Once
// ctx has ended it waits for nothing and sets aside every publish in
// flight, to be reported in doubt.
func (p *pipeline[T]) complete(ctx context.Context) {
	s := &p.ring[p.head]
	var err error
	if p.ended == nil {
		select {
		case ack := <-s.f.Ok():
			if ack.Duplicate {
				s.c.duplicates.Add(1)
			}
		case err = <-s.f.Err():
		case <-ctx.Done():
			p.ended = ctx.Err()
		}
	}
	if p.ended != nil && err == nil {
		err = fmt.Errorf("%w: %w", ErrInDoubt, p.ended)
	}
	s.c.inflight.Add(-1)
	key := p.evs[s.i].Key
	if err == nil {
		s.c.produced.Add(1)
	} else {
		p.fail(unsent{i: s.i, c: s.c, msg: s.msg, err: err}, key)
	}
	if key != "" {
		delete(p.busy, key)
	}
	*s = sent{}
	p.head = (p.head + 1) % len(p.ring)
	p.size--
}

// fail sets an event aside for the retry and holds the later events of
// its key behind it.
func (p *pipeline[T]) fail(u unsent, key string) {
	p.again = append(p.again, u)
	if key != "" {
		if p.held == nil {
			p.held = map[string]bool{}
		}
		p.held[key] = true
	}
}

// retry sends the events set aside one at a time, in the order given,
// with the overflow policy of Produce, and returns the events not stored.
func (p *pipeline[T]) retry(ctx context.Context) error {
	if len(p.again) == 0 {
		return nil
	}
	// Answers come in the order sent, not the order given.
	slices.SortFunc(p.again, func(x, y unsent) int { return x.i - y.i })
	b := p.b
	var (
		rejected []mainbus.Event[T]
		first    error
		refused  map[string]bool // keys with an event not stored
	)
	for _, u := range p.again {
		ev := &p.evs[u.i]
		var err error
		if ev.Key != "" && refused[ev.Key] {
			err = first // behind an event of its key that is not stored
		} else {
			err = p.again1(ctx, u)
		}
		if err == nil {
			continue
		}
		rejected = append(rejected, *ev)
		if first == nil {
			first = err
		}
		if ev.Key != "" {
			if refused == nil {
				refused = map[string]bool{}
			}
			refused[ev.Key] = true
		}
	}
	if len(rejected) == 0 {
		return nil
	}
	return &mainbus.BatchError[T]{Resource: b.resource, Rejected: rejected, Err: first}
}

// again1 sends one event set aside as Produce does, waiting for room
// under Block, or returns why it cannot be stored.
func (p *pipeline[T]) again1(ctx context.Context, u unsent) error {
	b := p.b
	wait := b.cfg.overflow == mainbus.Block
	switch {
	case p.ended != nil && errors.Is(u.err, ErrInDoubt):
		return &mainbus.ProduceError{Resource: b.resource, Conveyor: u.c.index, Err: u.err}
	case p.ended != nil:
		return &mainbus.ProduceError{Resource: b.resource, Conveyor: -1, Err: p.ended}
	case u.msg == nil && u.err != nil:
		return u.err // an event that cannot be encoded or placed
	case u.msg == nil:
		// Held behind an event of its key that is now stored.
		c, msg, err := b.prepare(&p.evs[u.i], p.now)
		if err != nil {
			return err
		}
		u.c, u.msg = c, msg
	case isFull(u.err) && !wait:
		return &mainbus.ProduceError{Resource: b.resource, Conveyor: u.c.index,
			Err: mainbus.ErrFull}
	}
	return b.publish(ctx, u.c, u.msg, wait)
}

// prepare picks the conveyor of ev and encodes it, stamping a zero time
// with now.
func (b *Bus[T]) prepare(ev *mainbus.Event[T], now time.Time) (*conveyor, *nats.Msg, error) {
	i := b.cfg.balancer.Pick(ev.Key, b.view)
	if i < 0 || i >= len(b.conveyors) {
		return nil, nil, invalid("balancer %T picked conveyor %d of bus %s; want 0 to %d",
			b.cfg.balancer, i, b.resource, len(b.conveyors)-1)
	}
	e := *ev
	if e.Time.IsZero() {
		e.Time = now
	}
	msg, err := b.message(i, &e)
	if err != nil {
		return nil, nil, err
	}
	return b.conveyors[i], msg, nil
}
