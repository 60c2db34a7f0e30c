package jetbus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/internal/goid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startConsumers creates or updates the consumer of every conveyor and
// starts its goroutine.
func (b *Bus[T]) startConsumers(ctx context.Context) error {
	// The owner must pull more often than the pin TTL, or the server
	// would hand its conveyors to another worker while it is alive.
	expiry := min(b.cfg.pinTTL/2, 30*time.Second)
	batch := 64
	if b.cfg.mode == Throughput {
		batch = b.cfg.maxInFlight
	}
	for _, c := range b.conveyors {
		cc := consumerConfig(b.resource, c.index, &b.cfg)
		cons, err := b.js.CreateOrUpdateConsumer(ctx, StreamName(b.resource), cc)
		if err != nil {
			return fmt.Errorf("jetbus: consumer %s of %s: %w", cc.Durable, StreamName(b.resource),
				err)
		}
		it, err := cons.Messages(
			jetstream.PullPriorityGroup(group),
			jetstream.PullMaxMessages(batch),
			jetstream.PullExpiry(expiry))
		if err != nil {
			return fmt.Errorf("jetbus: consume %s: %w", cc.Durable, err)
		}
		c.cons, c.it = cons, it
		c.hb = time.AfterFunc(time.Hour, c.beat(b.cfg.ackWait/2))
		c.hb.Stop()
		b.workers.Add(1)
		go b.consume(c, 0, nil)
	}
	return nil
}

// stopConsumers stops every iterator; events delivered and not handled
// are delivered again after the ack wait.
func (b *Bus[T]) stopConsumers() {
	for _, c := range b.conveyors {
		if c.it != nil {
			c.it.Stop()
		}
	}
}

// consume is the goroutine of conveyor c: it hands each event delivered
// to this process to the handler, in the order delivered. done is the
// stream sequence of the last event handled here; in Ordered mode the
// server delivers a conveyor's events in sequence, so an older one is a
// redelivery of an event whose ack was lost. If r is set, consume first
// settles the delivery whose handler ended the goroutine before it.
func (b *Bus[T]) consume(c *conveyor, done uint64, r *interrupted) {
	id := goid.Current()
	b.gids.Store(id, struct{}{})
	defer func() {
		b.gids.Delete(id)
		b.workers.Done()
	}()
	if r != nil {
		b.retry(c, r.msg, r.attempt)
	}
	for {
		msg, err := c.it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return
		}
		if err != nil {
			b.report(fmt.Errorf("jetbus: %s L%d: %w", b.resource, c.index, err))
			continue
		}
		b.deliver(c, msg, &done)
	}
}

// An interrupted delivery is one whose handler called runtime.Goexit,
// left for the consumer goroutine that replaces the one it ended.
type interrupted struct {
	msg     jetstream.Msg
	attempt int
}

// deliver hands one message to the handler and settles it with the
// server: ack on success, a delayed redelivery or termination on failure.
func (b *Bus[T]) deliver(c *conveyor, msg jetstream.Msg, done *uint64) {
	meta, err := msg.Metadata()
	if err != nil {
		b.report(fmt.Errorf("jetbus: %s L%d: %w", b.resource, c.index, err))
		return
	}
	if pin := msg.Headers().Get("Nats-Pin-Id"); pin != "" {
		c.pin.Store(pin)
	}
	seq := meta.Sequence.Stream
	if meta.NumDelivered > 1 {
		c.redelivered.Add(1)
	}
	// A conveyor's sequences only grow and Ordered mode hands them out in
	// order, so one at or below the last handled here is a redelivery,
	// whatever its delivery count: a server that restarts after a crash
	// may have lost the delivery and count this one as the first.
	if b.cfg.mode == Ordered && seq <= *done {
		c.duplicates.Add(1)
		b.ack(c, msg)
		return
	}
	if meta.NumDelivered == 1 {
		// The server's timestamp, not the event's Time, which the
		// producer may have set to anything.
		c.observeQueue(time.Since(meta.Timestamp))
	}
	ev, err := b.decode(msg, meta)
	if err != nil {
		c.failed.Add(1)
		c.consumed.Add(1)
		b.report(fmt.Errorf("jetbus: %s L%d: event at stream sequence %d cannot be "+
			"decoded, so it is removed: %w", b.resource, c.index, seq, err))
		b.settle(c, msg.TermWithReason("mainbus: undecodable"))
		return
	}

	attempt := int(meta.NumDelivered)
	if err := b.call(c, msg, ev, attempt, *done); err == nil {
		c.consumed.Add(1)
		*done = max(*done, seq)
		b.ack(c, msg)
		return
	}
	b.retry(c, msg, attempt)
}

// retry settles a failed attempt: a delayed redelivery while attempts
// remain, else the event is terminated.
func (b *Bus[T]) retry(c *conveyor, msg jetstream.Msg, attempt int) {
	if attempt < b.cfg.attempts {
		c.retried.Add(1)
		b.settle(c, msg.NakWithDelay(b.backoff(attempt)))
		return
	}
	c.consumed.Add(1)
	b.settle(c, msg.TermWithReason("mainbus: handler failed on the last attempt"))
}

// goexitPanic is the Panic of the HandlerError for a handler that called
// runtime.Goexit; the in-process bus reports it in the same words.
const goexitPanic = "mainbus: handler called runtime.Goexit"

// call runs the handler on ev, timing it, turning a panic into a
// failure, and reports a failure as a [*mainbus.HandlerError]. A handler
// that calls runtime.Goexit ends the consumer goroutine whatever we do,
// so call starts a new consumer for c, which settles the event as a
// failed attempt, before the old one goes; done is handed to it.
func (b *Bus[T]) call(c *conveyor, msg jetstream.Msg, ev mainbus.Event[T],
	attempt int, done uint64) (err error) {
	// The heartbeat runs only between here and the deferred Stop, so no
	// consumer goroutine needs to stop it on its way out.
	c.mu.Lock()
	c.cur = msg
	c.hb.Reset(b.cfg.ackWait / 2)
	c.mu.Unlock()
	returned := false
	start := time.Now()
	defer func() {
		took := time.Since(start)
		c.mu.Lock()
		c.cur = nil
		c.hb.Stop()
		if returned {
			c.handlerTime.Observe(took)
		}
		c.mu.Unlock()

		he := &mainbus.HandlerError{Resource: b.resource, Conveyor: c.index,
			EventID: ev.ID, Attempt: attempt}
		p := recover()
		goexit := !returned && p == nil // panic(nil) recovers a *runtime.PanicNilError
		switch {
		case !returned:
			c.panicked.Add(1)
			he.Panic = p
			if goexit {
				he.Panic = goexitPanic
			}
		case err != nil:
			c.failed.Add(1)
			he.Err = err
		default:
			return
		}
		err = he
		b.report(he)
		if goexit {
			// The old goroutine's Done comes after this Add, so a Close
			// never sees the count at zero in between.
			b.workers.Add(1)
			go b.consume(c, done, &interrupted{msg: msg, attempt: attempt})
		}
	}()
	err = b.handle(b.ctx, c.index, ev)
	returned = true
	return err
}

// beat returns the timer function that tells the server, every d, that
// the event in the handler is still being worked on, so that a long
// handler does not get its event delivered to another worker.
func (c *conveyor) beat(d time.Duration) func() {
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.cur != nil {
			_ = c.cur.InProgress() // a lost beat only risks a redelivery
			c.hb.Reset(d)
		}
	}
}

// ack acknowledges msg. In Ordered mode it waits for the server to
// confirm, and sends the ack again while the server does not answer (a
// restart, a reconnect) for up to the ack wait: until the server has it,
// the conveyor delivers nothing, and after the ack wait the server would
// deliver the event again.
func (b *Bus[T]) ack(c *conveyor, msg jetstream.Msg) {
	if b.cfg.mode == Throughput {
		b.settle(c, msg.Ack())
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.ackWait)
	defer cancel()
	try := min(b.cfg.publishWait, b.cfg.ackWait/4)
	for {
		actx, acancel := context.WithTimeout(ctx, try)
		err := msg.DoubleAck(actx)
		acancel()
		if err == nil || ctx.Err() != nil || errors.Is(err, nats.ErrConnectionClosed) {
			b.settle(c, err)
			return
		}
	}
}

// settle counts and reports a failed ack, nak or term.
func (b *Bus[T]) settle(c *conveyor, err error) {
	if err != nil {
		c.ackFailed.Add(1)
		b.report(fmt.Errorf("jetbus: %s L%d: acknowledge: %w "+
			"(the server delivers the event again)", b.resource, c.index, err))
	}
}

// backoff returns the wait before attempt+1: base·2^(attempt-1) capped at
// max, drawn from its upper half.
func (b *Bus[T]) backoff(attempt int) time.Duration {
	d := b.cfg.retryBase
	for i := 1; i < attempt && d < b.cfg.retryMax; i++ {
		d *= 2
	}
	d = min(d, b.cfg.retryMax)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// decode rebuilds the event carried by msg. The event ID comes from the
// Mainbus-Id header when there is one, else from the message ID; the
// time from the Mainbus-Time header when there is one, else it is the
// time the server stored the event.
func (b *Bus[T]) decode(msg jetstream.Msg, meta *jetstream.MsgMetadata) (mainbus.Event[T],
	error) {
	h := msg.Headers()
	ev := mainbus.Event[T]{Resource: b.resource, Key: h.Get(hdrKey), Time: meta.Timestamp}
	ev.ID = eventID(h.Get(jetstream.MsgIDHeader))
	if s := h.Get(hdrTime); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return ev, fmt.Errorf("header %s: %w", hdrTime, err)
		}
		ev.Time = t
	}
	if err := b.cfg.codec.Unmarshal(msg.Data(), &ev.Value); err != nil {
		return ev, fmt.Errorf("value: %w", err)
	}
	return ev, nil
}
