package jetbus

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The bus publishes on the core connection and reads the server's
// answers itself: one reply subscription per bus, on a private inbox,
// with the token ending the reply subject finding the publish in pend.
// This spares each publish what the asynchronous publishing of package
// jetstream costs: a timer, a random reply token and a JSON decoding of
// every acknowledgement.

// stallWait bounds how long a publish waits for room among the bus's
// publishes awaiting an answer ([WithMaxPending]) before it is refused
// with [jetstream.ErrTooManyStalledMsgs], which Produce sends again.
const stallWait = 200 * time.Millisecond

// errAckTimeout is the outcome of a publish not answered within the
// publish wait: in doubt, sent again.
var errAckTimeout = jetstream.ErrAsyncPublishTimeout

// listen subscribes the bus to the answers of its publishes and starts
// the goroutine that fails the publishes a lost connection leaves
// unanswered. The reply subscription ends with [Bus.unlisten].
func (b *Bus[T]) listen(nc *nats.Conn) error {
	b.nc = nc
	b.inbox = nc.NewInbox() + "."
	b.ackOK = []byte(`{"stream":` + strconv.Quote(StreamName(b.resource)) + `,"seq":`)
	sub, err := nc.Subscribe(b.inbox+"*", b.reply)
	if err != nil {
		return err
	}
	b.replies = sub
	// Registered before the first publish: a publish registered in pend
	// before a disconnect is failed by the status event that follows.
	status := nc.StatusChanged(nats.RECONNECTING, nats.CLOSED)
	b.workers.Add(1)
	go b.watchStatus(status)
	return nil
}

// unlisten ends the reply subscription.
func (b *Bus[T]) unlisten() {
	if b.replies != nil {
		_ = b.replies.Unsubscribe() // fails only on a closed connection
	}
}

// watchStatus fails every publish awaiting an answer when the
// connection is lost: the server's answers to them cannot come. It
// returns when the monitor stops or the connection closes.
func (b *Bus[T]) watchStatus(status chan nats.Status) {
	defer b.workers.Done()
	defer b.nc.RemoveStatusListener(status)
	for {
		select {
		case s, ok := <-status:
			if !ok {
				return
			}
			b.failAll(nats.ErrDisconnected)
			if s == nats.CLOSED {
				return
			}
		case <-b.watchCtx.Done():
			return
		}
	}
}

// failAll hands every publish awaiting an answer back with err.
func (b *Bus[T]) failAll(err error) {
	b.pendMu.Lock()
	defer b.pendMu.Unlock()
	for tok, rec := range b.pend {
		b.unpend(tok, rec)
		rec.err = err
		rec.done <- rec
	}
}

// post registers rec as awaiting the server's answer and publishes msg
// with the reply subject that finds it. The answer, or the failure that
// takes its place, goes to rec.done. When post returns an error, nothing
// goes to rec.done.
func (b *Bus[T]) post(rec *record, msg *nats.Msg) error {
	tok, err := b.pendAdd(rec)
	if err != nil {
		return err
	}
	msg.Reply = b.inbox + strconv.FormatUint(tok, 36)
	if err := b.nc.PublishMsg(msg); err != nil {
		if b.takeBack(tok, rec) {
			return err
		}
		// A lost connection failed it already: the failure is in done.
	}
	return nil
}

// pendAdd registers rec under a new token once the bus has fewer than
// its limit of publishes awaiting an answer, waiting up to stallWait.
func (b *Bus[T]) pendAdd(rec *record) (uint64, error) {
	var t *time.Timer
	b.pendMu.Lock()
	for len(b.pend) >= b.cfg.pending {
		if b.stall == nil {
			b.stall = make(chan struct{})
		}
		stall := b.stall
		b.pendMu.Unlock()
		if t == nil {
			t = time.NewTimer(stallWait)
			defer t.Stop()
		}
		select {
		case <-stall:
		case <-t.C:
			return 0, jetstream.ErrTooManyStalledMsgs
		}
		b.pendMu.Lock()
	}
	b.next++
	tok := b.next
	rec.tok, rec.due = tok, time.Now().Add(b.cfg.publishWait)
	b.pend[tok] = rec
	rec.c.inflight.Add(1)
	b.pendMu.Unlock()
	return tok, nil
}

// unpend removes rec, registered under tok, from pend. The caller holds
// pendMu.
func (b *Bus[T]) unpend(tok uint64, rec *record) {
	delete(b.pend, tok)
	rec.c.inflight.Add(-1)
	if b.stall != nil && len(b.pend) < b.cfg.pending {
		close(b.stall)
		b.stall = nil
	}
}

// takeBack removes rec from pend and reports whether it was still there,
// that is, whether nothing has gone or will go to rec.done for it.
func (b *Bus[T]) takeBack(tok uint64, rec *record) bool {
	b.pendMu.Lock()
	defer b.pendMu.Unlock()
	if b.pend[tok] != rec {
		return false
	}
	b.unpend(tok, rec)
	return true
}

// reply is the handler of the reply subscription: it hands the server's
// answer to the publish it is for.
func (b *Bus[T]) reply(m *nats.Msg) {
	if len(m.Subject) <= len(b.inbox) {
		return
	}
	tok, err := strconv.ParseUint(m.Subject[len(b.inbox):], 36, 64)
	if err != nil {
		return
	}
	dup, err := b.ackResult(m)
	b.pendMu.Lock()
	defer b.pendMu.Unlock()
	rec := b.pend[tok]
	if rec == nil {
		return // given up on: timed out, or its producer's ctx ended
	}
	b.unpend(tok, rec)
	if err == nil {
		rec.c.produced.Add(1)
		if dup {
			rec.c.duplicates.Add(1)
		}
	}
	rec.err = err
	// Under the lock, so that whoever looks for rec finds it either in
	// pend or in done. done has room for every publish of its owner.
	rec.done <- rec
}

// Status of an answer that no stream took the publish.
const (
	statusHdr          = "Status"
	statusNoResponders = "503"
)

// ackResult reads the server's answer to a publish: whether the stream
// already held the message ID, or why the message is not stored. The
// answer of a stored message, {"stream":"…","seq":N} with maybe a domain
// and "duplicate": true, is read without decoding the JSON.
func (b *Bus[T]) ackResult(m *nats.Msg) (dup bool, err error) {
	if rest, ok := bytes.CutPrefix(m.Data, b.ackOK); ok &&
		!bytes.Contains(rest, []byte(`"error"`)) {
		return duplicate(rest), nil
	}
	if len(m.Data) == 0 && m.Header.Get(statusHdr) == statusNoResponders {
		return false, nats.ErrNoResponders
	}
	return parseAck(m.Data)
}

// duplicate tells whether the rest of an acknowledgement holds
// "duplicate": true, which the server writes with a space.
func duplicate(rest []byte) bool {
	_, v, ok := bytes.Cut(rest, []byte(`"duplicate":`))
	return ok && bytes.HasPrefix(bytes.TrimLeft(v, " "), []byte("true"))
}

// parseAck decodes an answer other than the plain acknowledgement of a
// message stored in the bus's stream.
func parseAck(data []byte) (dup bool, err error) {
	var a struct {
		Stream    string              `json:"stream"`
		Duplicate bool                `json:"duplicate"`
		Error     *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(data, &a); err != nil {
		return false, jetstream.ErrInvalidJSAck
	}
	if a.Error != nil {
		return false, a.Error
	}
	if a.Stream == "" {
		return false, jetstream.ErrInvalidJSAck
	}
	return a.Duplicate, nil
}

// expire hands back with errAckTimeout the publishes of the owner of
// done due before now, and returns the earliest due time of its others,
// zero if none.
func (b *Bus[T]) expire(done chan<- *record, now time.Time) time.Time {
	b.pendMu.Lock()
	defer b.pendMu.Unlock()
	var next time.Time
	for tok, rec := range b.pend {
		switch {
		case rec.done != done:
		case !rec.due.After(now):
			b.unpend(tok, rec)
			rec.err = errAckTimeout
			rec.done <- rec
		case next.IsZero() || rec.due.Before(next):
			next = rec.due
		}
	}
	return next
}
