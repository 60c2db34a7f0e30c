package mainbus

import (
	"fmt"
	"time"

	"github.com/mainbus-go/mainbus/internal/goid"
)

// A retrial is an event, or the stack of a stack handler, whose handler
// ended its goroutine with runtime.Goexit, passed to the consumer that
// replaces it.
type retrial[T any] struct {
	evs     []Event[T]
	err     *HandlerError
	attempt int

	// after holds the events of the same stack that came after evs, for
	// a handler of single events: they are delivered next.
	after []Event[T]
}

// consume is the body of the consumer goroutine of c in layout l. If r is
// set, it first finishes the delivery that a Goexit interrupted.
func (b *Bus[T]) consume(l *layout[T], c *conveyor[T], r *retrial[T]) {
	id := goid.Current()
	b.gids.Store(id, struct{}{})

	// drained stays false when the consumer leaves because Close ran out
	// of time, or unwinds from a Goexit: its conveyor is not drained then.
	// (After a Goexit the replacement consumer counts itself in first.)
	drained := false
	defer func() {
		b.gids.Delete(id)
		if drained || !b.isCut() {
			l.release()
		}
		b.consumers.Done()
	}()
	drained = b.run(l, c, r)
	c.flush()
}

// isCut reports whether a Close has cut the drain short.
func (b *Bus[T]) isCut() bool {
	select {
	case <-b.abort:
		return true
	default:
		return false
	}
}

// run hands the events of c to the handler until the layout has retired
// and c is empty, and reports true; or until Close cuts the drain short,
// and reports false.
func (b *Bus[T]) run(l *layout[T], c *conveyor[T], r *retrial[T]) bool {
	if r != nil && !b.resume(l, c, r) {
		return false
	}
	if l.after != nil {
		select {
		case <-l.after:
		case <-b.abort:
			return false
		}
	}
	c.mark = b.clock()
	for {
		// Take what is waiting without the cost of the three-way select.
		select {
		case it := <-c.ch:
			if !b.take(l, c, it) {
				return false
			}
			continue
		default:
		}
		// The conveyor is empty: publish the timings before waiting, and
		// read the clock after, since waiting is not handling.
		c.flush()
		select {
		case it := <-c.ch:
			c.mark = b.clock()
			if !b.take(l, c, it) {
				return false
			}
		case <-l.idle:
			c.mark = b.clock()
			// No producer can send any more: what is in the channel is
			// all there will ever be.
			for {
				select {
				case it := <-c.ch:
					if !b.take(l, c, it) {
						return false
					}
				default:
					return true
				}
			}
		case <-b.abort:
			return false
		}
	}
}

// take hands what one slot held to the handler. A stack goes back to the
// pool once its events are delivered or kept for Close.
func (b *Bus[T]) take(l *layout[T], c *conveyor[T], it item[T]) bool {
	c.observeQueue(it.at, it.size())
	if it.stack == nil {
		if b.handleStack != nil {
			c.one[0] = it.ev
			return b.deliverStack(l, c, c.one[:])
		}
		return b.deliver(l, c, it.ev)
	}
	defer b.putStack(it.stack)
	if b.handleStack != nil {
		return b.deliverStack(l, c, it.stack.evs)
	}
	return b.deliverEach(l, c, it.stack.evs)
}

// deliverEach delivers evs one at a time. c.after tells a handler that
// calls runtime.Goexit which events are still to come; it is reset on the
// way out by hand, not deferred, since after a Goexit the new consumer
// owns it while this goroutine unwinds.
//
// The events are timed together, to read the clock once per stack rather
// than once per event: each is counted as taking the stack's mean.
func (b *Bus[T]) deliverEach(l *layout[T], c *conveyor[T], evs []Event[T]) bool {
	c.inStack = true
	for i, ev := range evs {
		c.after = evs[i+1:]
		if !b.deliver(l, c, ev) {
			c.after = nil
			c.inStack = false
			c.held = append(c.held, evs[i+1:]...)
			return false
		}
	}
	c.after = nil
	c.inStack = false
	if len(evs) > 0 {
		c.observeWork(b.clock(), uint64(len(evs)))
	}
	return true
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
		again, ok := b.failed(c, []Event[T]{ev}, err, attempt)
		if !again {
			return ok
		}
	}
}

// deliverStack is deliver for a stack handler: the events of one slot go
// to the handler in one call, and are retried and dead-lettered together.
func (b *Bus[T]) deliverStack(l *layout[T], c *conveyor[T], evs []Event[T]) bool {
	for attempt := 1; ; attempt++ {
		select {
		case <-b.abort:
			c.held = append(c.held, evs...)
			return false
		default:
		}
		err := b.callStack(l, c, evs, attempt)
		if err == nil {
			c.m.consumed.Add(uint64(len(evs)))
			return true
		}
		again, ok := b.failed(c, evs, err, attempt)
		if !again {
			return ok
		}
	}
}

// resume finishes the delivery that a runtime.Goexit interrupted on the
// consumer this one replaces.
func (b *Bus[T]) resume(l *layout[T], c *conveyor[T], r *retrial[T]) bool {
	c.inStack = false
	c.mark = b.clock()
	c.after = r.after // for a Goexit again while redoing
	ok := b.redo(l, c, r)
	c.after = nil
	if !ok {
		c.held = append(c.held, r.after...)
		return false
	}
	return b.deliverEach(l, c, r.after)
}

// redo retries the interrupted delivery of r.evs.
func (b *Bus[T]) redo(l *layout[T], c *conveyor[T], r *retrial[T]) bool {
	again, ok := b.failed(c, r.evs, r.err, r.attempt)
	for again {
		r.attempt++
		var err *HandlerError
		if b.handleStack != nil {
			err = b.callStack(l, c, r.evs, r.attempt)
		} else {
			err = b.call(l, c, r.evs[0], r.attempt)
		}
		if err == nil {
			c.m.consumed.Add(uint64(len(r.evs)))
			return true
		}
		again, ok = b.failed(c, r.evs, err, r.attempt)
	}
	return ok
}

// failed reports a failed attempt at evs and decides what comes next:
// again is set if they are to be tried once more (after the backoff,
// already waited); ok is false if the drain was cut short, in which case
// the events not yet dealt with are kept for Close to hand back.
func (b *Bus[T]) failed(c *conveyor[T], evs []Event[T], err *HandlerError,
	attempt int) (again, ok bool) {
	if err.Err == nil {
		c.m.panicked.Add(1)
	} else {
		c.m.failed.Add(1)
	}
	b.report(err)
	if !c.inStack {
		// The backoff and the dead-letter bus are not the handler's time.
		defer func() { c.mark = b.clock() }()
	}
	if attempt < b.retry.attempts {
		c.m.retried.Add(1)
		t := time.NewTimer(b.retry.delay(attempt))
		defer t.Stop()
		select {
		case <-t.C:
			return true, true
		case <-b.abort:
			c.held = append(c.held, evs...)
			return false, false
		}
	}
	for i, ev := range evs {
		if !b.bury(c, ev, err, attempt) {
			c.held = append(c.held, evs[i+1:]...)
			return false, false
		}
		c.m.consumed.Add(1)
	}
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
	err := b.deadLetter.produce(c.ctx, dead)
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
			// The rest of the stack goes back to the pool when this
			// goroutine unwinds; the new consumer gets a copy.
			r := &retrial[T]{evs: []Event[T]{ev}, err: herr, attempt: attempt,
				after: append([]Event[T](nil), c.after...)}
			go b.consume(l, c, r)
		}
	}()
	err := b.handle(c.ctx, c.index, ev)
	returned = true
	if !c.inStack {
		c.observeWork(b.clock(), 1)
	}
	if err != nil {
		return &HandlerError{Resource: b.resource, Conveyor: c.index, EventID: ev.ID,
			Attempt: attempt, Err: err}
	}
	return nil
}

// callStack is call for a stack handler. A failure is reported with the
// ID of the stack's first event.
func (b *Bus[T]) callStack(l *layout[T], c *conveyor[T], evs []Event[T],
	attempt int) (herr *HandlerError) {
	returned := false
	defer func() {
		if returned {
			return
		}
		p := recover()
		goexit := p == nil
		if goexit {
			p = goexitPanic
		}
		herr = &HandlerError{Resource: b.resource, Conveyor: c.index, EventID: evs[0].ID,
			Attempt: attempt, Panic: p}
		if goexit {
			// The stack goes back to the pool when this goroutine
			// unwinds; the new consumer gets a copy.
			r := &retrial[T]{evs: append([]Event[T](nil), evs...), err: herr, attempt: attempt}
			l.live.Add(1)
			b.consumers.Add(1)
			go b.consume(l, c, r)
		}
	}()
	err := b.handleStack(c.ctx, c.index, evs)
	returned = true
	c.observeWork(b.clock(), uint64(len(evs)))
	if err != nil {
		return &HandlerError{Resource: b.resource, Conveyor: c.index, EventID: evs[0].ID,
			Attempt: attempt, Err: err}
	}
	return nil
}
