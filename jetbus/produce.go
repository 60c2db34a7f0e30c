package jetbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Produce puts ev on the conveyor its balancer picks and returns nil once
// the server has stored it: from then on it survives this process, and it
// is handed to a handler at least once, exactly once while no process
// crashes and no acknowledgement is lost.
//
// The message ID is ev.ID, so a second publish of an event ID within the
// stream's duplicate window ([WithDuplicateWindow]) is stored once;
// Produce returns nil for it. A server that restarted remembers only the
// IDs of the events still in the stream, so an event handled before a
// restart is stored again if produced again after it. Event IDs must
// be unique per resource within the duplicate window. An ID of 0 means
// none: the bus makes a unique message ID for the call, which protects
// the bus's own retries only.
//
// A zero ev.Time is not sent: handlers get the time the server stored
// the event, by the server's clock, which falls within the call.
//
// When the conveyor holds its capacity of unhandled events, the overflow
// policy applies: under [mainbus.Block] Produce waits for room and returns
// an error wrapping ctx.Err() if ctx ends first, the event not stored;
// under [mainbus.Reject] it returns an error wrapping [mainbus.ErrFull].
// While the server is unreachable Produce sends again until ctx ends; if
// ctx ends after a send whose outcome is unknown, the error wraps
// [ErrInDoubt]. Produce returns [mainbus.ErrClosed] once Close has begun.
func (b *Bus[T]) Produce(ctx context.Context, ev mainbus.Event[T]) error {
	if ctx == nil {
		return invalid("Produce on %s got a nil context; want context.Background() or another",
			b.resource)
	}
	return b.produce(ctx, ev, b.cfg.overflow == mainbus.Block)
}

// TryProduce is Produce that does not wait for room: on a full conveyor
// it returns an error wrapping [mainbus.ErrFull]. It still waits for the
// server's acknowledgement, up to the publish wait ([WithPublishWait]).
func (b *Bus[T]) TryProduce(ev mainbus.Event[T]) error {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.publishWait)
	defer cancel()
	return b.produce(ctx, ev, false)
}

func (b *Bus[T]) produce(ctx context.Context, ev mainbus.Event[T], wait bool) error {
	if err := b.checkResource(&ev); err != nil {
		return err
	}
	if !b.enter() {
		return mainbus.ErrClosed
	}
	defer b.producers.Done()

	i := b.cfg.balancer.Pick(ev.Key, b.view)
	if i < 0 || i >= len(b.conveyors) {
		return invalid("balancer %T picked conveyor %d of bus %s; want 0 to %d",
			b.cfg.balancer, i, b.resource, len(b.conveyors)-1)
	}
	msg, err := b.message(i, &ev)
	if err != nil {
		return err
	}
	return b.publish(ctx, b.conveyors[i], msg, wait)
}

// message encodes ev for conveyor i.
func (b *Bus[T]) message(i int, ev *mainbus.Event[T]) (*nats.Msg, error) {
	env := new(envelope)
	if err := b.encode(env, i, ev); err != nil {
		return nil, err
	}
	return &env.msg, nil
}

// An envelope is the message of one event together with the header
// values it points into, so that both cost one allocation. An envelope
// can be encoded again once the server has stored its message: the
// header map is kept.
type envelope struct {
	msg  nats.Msg
	vals [3]string // message ID, key, time
}

// encode fills env with the message of ev for conveyor i. The message ID
// carries the event ID; the key and a time set by the caller
// travel in headers of their own. A zero time is not sent: consumers take
// the time the server stored the event.
func (b *Bus[T]) encode(env *envelope, i int, ev *mainbus.Event[T]) error {
	data, err := b.cfg.codec.Marshal(ev.Value)
	if err != nil {
		return fmt.Errorf("jetbus: encode event %d of %s: %w", ev.ID, b.resource, err)
	}
	v := &env.vals
	v[0] = msgID(ev.ID)
	h := env.msg.Header
	if h == nil {
		h = make(nats.Header, 3)
	}
	h[jetstream.MsgIDHeader] = v[0:1:1]
	if ev.Key != "" {
		v[1] = ev.Key
		h[hdrKey] = v[1:2:2]
	} else {
		delete(h, hdrKey)
	}
	if !ev.Time.IsZero() {
		v[2] = formatTime(ev.Time)
		h[hdrTime] = v[2:3:3]
	} else {
		delete(h, hdrTime)
	}
	env.msg = nats.Msg{Subject: b.conveyors[i].subject, Data: data, Header: h}
	return nil
}

// msgID returns the message ID of an event: the event ID in decimal, or
// a fresh unique one of 22 letters and digits for an ID of 0. The stream
// holds one resource, so the ID alone is unique in it.
func msgID(id uint64) string {
	if id == 0 {
		return nuid.Next()
	}
	return strconv.FormatUint(id, 10)
}

// eventID returns the event ID a message ID carries, or 0 for a message
// ID made for an event without one or by another producer.
func eventID(msgID string) uint64 {
	id, err := strconv.ParseUint(msgID, 10, 64)
	if err != nil {
		return 0
	}
	return id
}

// formatTime encodes an event time for the Mainbus-Time header: unix
// nanoseconds in decimal, or RFC 3339 for times that do not fit.
func formatTime(t time.Time) string {
	if y := t.Year(); y > 1678 && y < 2262 {
		return strconv.FormatInt(t.UnixNano(), 10)
	}
	return t.Format(time.RFC3339Nano)
}

// parseTime decodes the Mainbus-Time header in either form of formatTime.
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(0, n), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// Waits between publishes of one event that the server refused for room
// or did not answer.
const (
	firstRetry = time.Millisecond
	lastRetry  = 100 * time.Millisecond
)

// publish sends msg until the server stores it, refuses it for good, or
// ctx ends; under wait a full conveyor is a reason to send again.
func (b *Bus[T]) publish(ctx context.Context, c *conveyor, msg *nats.Msg, wait bool) error {
	doubt := false // a send whose outcome is unknown
	pause := firstRetry
	var blockedAt time.Time
	defer func() {
		if !blockedAt.IsZero() {
			c.blocked.Add(-1)
			c.blockedTime.Add(uint64(time.Since(blockedAt)))
		}
	}()
	for {
		err := b.send(ctx, c, msg)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrInDoubt):
			return &mainbus.ProduceError{Resource: b.resource, Conveyor: c.index, Err: err}
		case isFull(err) && !wait:
			return &mainbus.ProduceError{Resource: b.resource, Conveyor: c.index,
				Err: mainbus.ErrFull}
		case isFull(err):
			// A definite refusal: nothing of this event is stored.
			doubt = false
			if blockedAt.IsZero() {
				blockedAt = time.Now()
				c.blocks.Add(1)
				c.blocked.Add(1)
			}
		case transient(err):
			doubt = doubt || !errors.Is(err, nats.ErrNoResponders)
		default:
			return &mainbus.ProduceError{Resource: b.resource, Conveyor: c.index, Err: err}
		}
		if err := b.pause(ctx, pause, doubt); err != nil {
			return &mainbus.ProduceError{Resource: b.resource, Conveyor: c.index, Err: err}
		}
		pause = min(2*pause, lastRetry)
	}
}

// send publishes msg once and waits for the server's answer, up to the
// publish wait. It returns an error wrapping ErrInDoubt if ctx ends while
// the answer is due.
func (b *Bus[T]) send(ctx context.Context, c *conveyor, msg *nats.Msg) error {
	done := make(chan *record, 1)
	rec := &record{c: c, done: done}
	if err := b.post(rec, msg); err != nil {
		return err
	}
	t := time.NewTimer(b.cfg.publishWait)
	defer t.Stop()
	select {
	case rec := <-done:
		return rec.err
	case <-t.C:
		if b.takeBack(rec.tok, rec) {
			return errAckTimeout
		}
	case <-ctx.Done():
		if b.takeBack(rec.tok, rec) {
			return fmt.Errorf("%w: %w", ErrInDoubt, ctx.Err())
		}
	}
	// Answered as it was given up on.
	return (<-done).err
}

// pause waits d before the next send. Close does not cut it short for an
// event in doubt: Close waits for publishes in flight.
func (b *Bus[T]) pause(ctx context.Context, d time.Duration, doubt bool) error {
	t := time.NewTimer(d)
	defer t.Stop()
	closing := b.closing
	if doubt {
		closing = nil
	}
	select {
	case <-t.C:
		return nil
	case <-closing:
		return mainbus.ErrClosed
	case <-ctx.Done():
		if doubt {
			return fmt.Errorf("%w: %w", ErrInDoubt, ctx.Err())
		}
		return ctx.Err()
	}
}

// isFull tells whether err is the server's refusal of a publish to a
// subject at its MaxMsgsPerSubject.
func isFull(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.ErrorCode == errStoreFailed &&
		strings.Contains(ae.Description, "maximum messages per subject")
}

// transient tells whether err may go away by sending again.
func transient(err error) bool {
	for _, t := range []error{nats.ErrTimeout, nats.ErrNoResponders, nats.ErrDisconnected,
		nats.ErrConnectionReconnecting, jetstream.ErrAsyncPublishTimeout,
		jetstream.ErrNoStreamResponse, jetstream.ErrTooManyStalledMsgs} {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// errStoreFailed is the JetStream error code of a message the stream
// could not store; the description says why.
const errStoreFailed jetstream.ErrorCode = 10077
