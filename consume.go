package mainbus

import (
	"fmt"
	"time"
)

// A retrial is an event whose handler ended its goroutine with
// runtime.Goexit, passed to the consumer that replaces it.
type retrial[T any] struct {
	ev      Event[T]
	err     *HandlerError
	attempt int
}

// consume is the body of the consumer goroutine of c in layout l. If r is
// set, it first finishes the delivery that a Goexit interrupted.
func (b *Bus[T]) consume(l *layout[T], c *conveyor[T], r *retrial[T]) {
	id := goid()
	b.gids.Store(id, struct{}{})

	// cut is set when the consumer leaves because Close ran out of time:
	// its conveyor is not drained then, so it must not count down live.
	cut := false
	defer func() {
		b.gids.Delete(id)
		if !cut {
			l.release()
		}
		b.consumers.Done()
	}()

	if r != nil && !b.resume(l, c, r) {
		cut = true
		return
	}
	if l.after != nil {
		select {
		case <-l.after:
		case <-b.abort:
			cut = true
			return
		}
	}
	for {
		// Take what is waiting without the cost of the three-way select.
		select {
		case ev := <-c.ch:
			if !b.deliver(l, c, ev) {
				cut = true
				return
			}
			continue
		default:
		}
		select {
		case ev := <-c.ch:
			if !b.deliver(l, c, ev) {
				cut = true
				return
			}
		case <-l.idle:
			// No producer can send any more: what is in the channel is
			// all there will ever be.
			for {
				select {
				case ev := <-c.ch:
					if !b.deliver(l, c, ev) {
						cut = true
						return
					}
				default:
					return
				}
			}
		case <-b.abort:
			cut = true
			return
		}
	}
}

// deliver hands ev to the handler, retrying and dead-lettering as
// configured. If the drain is cut short meanwhile, it keeps ev for Close
// to hand back instead, and reports false so the consumer stops.
func (b *Bus[T]) deliver(l *layout[T], c *conveyor[T], ev Event[T]) bool {
	for attempt := 1; ; attempt++ {
		select {
		case <-b.abort:
			c.held = append(c.held, ev)
			return false
		default:
		}
		err := b.call(l, c, ev, attempt)
		if err == nil {
			c.m.consumed.Add(1)
			return true
		}
		again, ok := b.failed(c, ev, err, attempt)
		if !again {
			return ok
		}
	}
}

// resume finishes the delivery of an event whose handler called
// runtime.Goexit on the consumer this one replaces.
func (b *Bus[T]) resume(l *layout[T], c *conveyor[T], r *retrial[T]) bool {
	again, ok := b.failed(c, r.ev, r.err, r.attempt)
	for again {
		err := b.call(l, c, r.ev, r.attempt+1)
		if err == nil {
			c.m.consumed.Add(1)
			return true
		}
		r.attempt++
		again, ok = b.failed(c, r.ev, err, r.attempt)
	}
	return ok
}

// failed reports a failed attempt and decides what comes next: again is
// set if the event is to be tried once more (after the backoff, already
// waited); ok is false if the drain was cut short, in which case the event
// is kept for Close to hand back.
func (b *Bus[T]) failed(c *conveyor[T], ev Event[T], err *HandlerError, attempt int) (again, ok bool) {
	if err.Err == nil {
		c.m.panicked.Add(1)
	} else {
		c.m.failed.Add(1)
	}
	b.report(err)
	if attempt < b.retry.attempts {
		c.m.retried.Add(1)
		t := time.NewTimer(b.retry.delay(attempt))
		defer t.Stop()
		select {
		case <-t.C:
			return true, true
		case <-b.abort:
			c.held = append(c.held, ev)
			return false, false
		}
	}
	if !b.bury(c, ev, err, attempt) {
		return false, false
	}
	c.m.consumed.Add(1)
	return false, true
}

// report tells the error handler of a failure. The handler runs on a
// goroutine of its own, waited for, so that a panic or runtime.Goexit in
// it cannot take the conveyor down; a panic there is recovered and
// ignored. Failures are rare, so the goroutine's cost is not on the path
// of healthy events.
func (b *Bus[T]) report(err error) {
	if b.onError == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }()
		b.onError(err)
	}()
	<-done
}

// bury sends an event whose last attempt failed to the dead-letter bus, if
// there is one. It reports false if the drain was cut short while the
// dead-letter bus had no room; the event is then kept for Close.
func (b *Bus[T]) bury(c *conveyor[T], ev Event[T], cause *HandlerError, attempts int) bool {
	if b.deadLetter.produce == nil {
		return true
	}
	dead := Event[DeadLetter[T]]{
		ID:    ev.ID,
		Key:   ev.Key,
		Value: DeadLetter[T]{Event: ev, Err: cause, Attempts: attempts},
	}
	err := b.deadLetter.produce(b.ctx, dead)
	if err == nil {
		c.m.deadLettered.Add(1)
		return true
	}
	if b.ctx.Err() != nil {
		c.held = append(c.held, ev)
		return false
	}
	c.m.unburied.Add(1)
	b.report(&HandlerError{
		Resource: b.resource, Conveyor: c.index, EventID: ev.ID, Attempt: attempts,
		Err: fmt.Errorf("dead-letter bus %s: %w (after: %w)", b.deadLetter.resource, err, cause),
	})
	return true
}

// goexitPanic is the Panic of the HandlerError for a handler that called
// runtime.Goexit.
const goexitPanic = "mainbus: handler called runtime.Goexit"

// call runs the handler once, turning a panic into a HandlerError. A
// handler that calls runtime.Goexit ends the consumer goroutine whatever
// we do, so call starts a new consumer for c, which settles the event,
// before the old one goes.
func (b *Bus[T]) call(l *layout[T], c *conveyor[T], ev Event[T], attempt int) (herr *HandlerError) {
	returned := false
	defer func() {
		if returned {
			return
		}
		p := recover()
		goexit := p == nil // panic(nil) recovers a *runtime.PanicNilError
		if goexit {
			p = goexitPanic
		}
		herr = &HandlerError{Resource: b.resource, Conveyor: c.index, EventID: ev.ID,
			Attempt: attempt, Panic: p}
		if goexit {
			// The old goroutine's Done and release come after these
			// Adds, so neither count drops to zero in between.
			l.live.Add(1)
			b.consumers.Add(1)
			go b.consume(l, c, &retrial[T]{ev: ev, err: herr, attempt: attempt})
		}
	}()
	err := b.handle(b.ctx, c.index, ev)
	returned = true
	if err != nil {
		return &HandlerError{Resource: b.resource, Conveyor: c.index, EventID: ev.ID,
			Attempt: attempt, Err: err}
	}
	return nil
}
