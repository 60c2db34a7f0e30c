package jetbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/nats-io/nats.go"
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

	p := &pipeline[T]{b: b, evs: evs,
		done: make(chan *record, min(len(evs), b.cfg.pending))}
	p.send(ctx)
	p.stopTimer()
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

// A pipeline is one ProduceBatch: the events sent and not yet answered
// and those to send again one at a time.
type pipeline[T any] struct {
	b   *Bus[T]
	evs []mainbus.Event[T]

	// done receives each publish once the server has answered it, from
	// the bus's publish callbacks. Its capacity, the most publishes a
	// pipeline has in flight, is what lets the callbacks never block,
	// also after the pipeline has given up on them.
	done     chan *record
	inflight int

	// busy holds the keys with an event awaiting its answer; held those
	// with an event not stored, whose later events wait for the retry.
	busy, held map[string]bool
	again      []unsent // events not stored in the first pass
	ended      error    // ctx's end, once seen

	// timer fires when the earliest publish in flight is due: one timer
	// for the pipeline, not one per publish.
	timer *time.Timer
}

// A record is one event of a pipeline sent to the server: its message,
// where it came from, and, once answered, the server's refusal if any.
type record struct {
	envelope
	i    int // index in the pipeline's events
	c    *conveyor
	err  error
	done chan<- *record
	tok  uint64    // the token of its reply subject
	due  time.Time // when it is given up on without an answer
}

// unsent is an event the first pass did not get stored: the message to
// send again, or why not.
type unsent struct {
	i   int // index in evs
	c   *conveyor
	msg *nats.Msg // nil if the event was not sent
	err error     // the server's refusal, or why it was not sent
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
		if p.inflight == cap(p.done) {
			p.complete(ctx)
		}
		rec, err := b.record(&p.evs[i], p.done)
		if err != nil {
			p.fail(unsent{i: i, err: err})
			continue
		}
		rec.i = i
		if err := b.post(rec, &rec.msg); err != nil {
			p.fail(unsent{i: i, c: rec.c, msg: &rec.msg, err: err})
			continue
		}
		p.inflight++
		p.startTimer()
		if key != "" {
			if p.busy == nil {
				p.busy = map[string]bool{}
			}
			p.busy[key] = true
		}
	}
	for p.inflight > 0 && p.ended == nil {
		p.complete(ctx)
	}
}

// complete waits for the answer to one publish in flight, or for the
// publish wait of some to pass, which hands them back as in doubt. If
// ctx ends first, it sets aside every publish in flight, in doubt.
func (p *pipeline[T]) complete(ctx context.Context) {
	select {
	case now := <-p.timer.C:
		if next := p.b.expire(p.done, now); !next.IsZero() {
			p.timer.Reset(next.Sub(now))
		} else {
			p.timer.Reset(p.b.cfg.publishWait)
		}
	case rec := <-p.done:
		p.inflight--
		key := p.evs[rec.i].Key
		if rec.err != nil {
			p.fail(unsent{i: rec.i, c: rec.c, msg: &rec.msg, err: rec.err})
		} else {
			// Stored: nothing else refers to rec once its answer is
			// taken from done.
			p.b.records.Put(rec)
		}
		if key != "" {
			delete(p.busy, key)
		}
	case <-ctx.Done():
		p.ended = ctx.Err()
		p.b.abandon(p.done, fmt.Errorf("%w: %w", ErrInDoubt, p.ended), p.fail)
		// What was answered before abandon is in done.
		for {
			select {
			case rec := <-p.done:
				if rec.err != nil {
					p.fail(unsent{i: rec.i, c: rec.c, msg: &rec.msg, err: rec.err})
				}
				continue
			default:
			}
			break
		}
		p.inflight = 0
	}
}

// fail sets an event aside for the retry and holds the later events of
// its key behind it.
func (p *pipeline[T]) fail(u unsent) {
	p.again = append(p.again, u)
	if key := p.evs[u.i].Key; key != "" {
		if p.held == nil {
			p.held = map[string]bool{}
		}
		p.held[key] = true
	}
}

// record encodes ev for the conveyor its balancer picks, in a record of
// an event already stored when there is one.
func (b *Bus[T]) record(ev *mainbus.Event[T], done chan<- *record) (*record, error) {
	i := b.cfg.balancer.Pick(ev.Key, b.view)
	if i < 0 || i >= len(b.conveyors) {
		return nil, invalid("balancer %T picked conveyor %d of bus %s; want 0 to %d",
			b.cfg.balancer, i, b.resource, len(b.conveyors)-1)
	}
	rec, _ := b.records.Get().(*record)
	if rec == nil {
		rec = new(record)
	}
	rec.i, rec.c, rec.err, rec.done = 0, b.conveyors[i], nil, done
	if err := b.encode(&rec.envelope, i, ev); err != nil {
		return nil, err
	}
	return rec, nil
}

// startTimer arms the pipeline's timer for the publish wait of its first
// publish; the timer runs until the pipeline has no publish in flight.
func (p *pipeline[T]) startTimer() {
	if p.timer == nil {
		p.timer = time.NewTimer(p.b.cfg.publishWait)
	}
}

// stopTimer stops the pipeline's timer, if any.
func (p *pipeline[T]) stopTimer() {
	if p.timer != nil {
		p.timer.Stop()
	}
}

// abandon takes the publishes of one pipeline still awaiting an answer
// out of pend and hands each to fail with err.
func (b *Bus[T]) abandon(done chan<- *record, err error, fail func(unsent)) {
	b.pendMu.Lock()
	var recs []*record
	for tok, rec := range b.pend {
		if rec.done == done {
			recs = append(recs, rec)
			b.unpend(tok, rec)
		}
	}
	b.pendMu.Unlock()
	for _, rec := range recs {
		fail(unsent{i: rec.i, c: rec.c, msg: &rec.msg, err: err})
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
		rec, err := b.record(&p.evs[u.i], nil)
		if err != nil {
			return err
		}
		u.c, u.msg = rec.c, &rec.msg
	case isFull(u.err) && !wait:
		return &mainbus.ProduceError{Resource: b.resource, Conveyor: u.c.index,
			Err: mainbus.ErrFull}
	}
	return b.publish(ctx, u.c, u.msg, wait)
}
