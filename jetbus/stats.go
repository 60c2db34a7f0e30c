package jetbus

import (
	"context"
	"fmt"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/nats-io/nats.go/jetstream"
)

// Stats is a snapshot of a bus as seen from this process. The embedded
// [mainbus.Stats] counts what this process did, per conveyor: Produced
// (stored by the server), Consumed, Failed, Panicked, Retried and the
// backpressure waits; Depth is the number of the conveyor's events on the
// server at the last reading and Capacity its limit. Server holds what
// the server said about each conveyor at the last reading, every
// [WithMonitor] interval.
//
// QueueTime counts each event at its first delivery to this process,
// from the time the server stored it (the timestamp of the message's
// metadata, not the event's Time, which the producer may set to anything)
// until the delivery. The server's clock stamps it and this process's
// clock reads it, so across machines it includes their offset; a
// negative difference counts as 0. Redeliveries, for a retry or to the
// worker that takes a conveyor over, are not counted again, so once the
// handling ends QueueTime.Count is the number of events first delivered
// here. HandlerTime counts one duration per handler attempt that
// returned, as on the in-process bus; attempts that panicked or called
// runtime.Goexit are not timed. Both are exact in every snapshot: the
// consumer adds to them under a lock that Stats takes to copy them.
//
// [StatsOf] turns the snapshots into the form the Prometheus collector of
// package prom and the dashboard take.
type Stats struct {
	mainbus.Stats
	Server []ServerStats
}

// ServerStats is the state of one conveyor on the server, plus what this
// process saw of its redeliveries and duplicates.
type ServerStats struct {
	Conveyor int

	Stored      int  // events on the server: not yet delivered or not yet acknowledged
	Pending     int  // events not yet delivered to any worker
	AckPending  int  // events delivered and not yet acknowledged
	Redelivered int  // events the server delivered more than once and still holds
	Owned       bool // this process is the conveyor's pinned owner

	// Stalls counts the stalls seen: a reading that found events pending
	// and no delivery since the reading before, after one that did not.
	// Each is also reported to the error handler, wrapping [ErrStalled].
	Stalls uint64

	// Redeliveries counts deliveries to this process that were not the
	// event's first; Duplicates those that needed no handling (the event
	// was handled here before and its ack was lost) plus publishes the
	// server dropped as duplicates of a stored message ID.
	Redeliveries uint64
	Duplicates   uint64
	AckFailed    uint64 // acks, naks and terms that failed
}

// Stats returns a snapshot of the bus. It does not block on the server
// and is safe for concurrent use. Its cost grows with the conveyors: a
// few atomic loads and one short lock each.
func (b *Bus[T]) Stats() Stats {
	n := len(b.conveyors)
	s := Stats{
		Stats: mainbus.Stats{Resource: b.resource, Active: n,
			Conveyors: make([]mainbus.ConveyorStats, n)},
		Server: make([]ServerStats, n),
	}
	for i, c := range b.conveyors {
		queue, handler := c.timings()
		s.Conveyors[i] = mainbus.ConveyorStats{
			Conveyor:    i,
			Produced:    c.produced.Load(),
			Consumed:    c.consumed.Load(),
			Failed:      c.failed.Load(),
			Panicked:    c.panicked.Load(),
			Retried:     c.retried.Load(),
			Blocked:     int(c.blocked.Load()),
			Blocks:      c.blocks.Load(),
			BlockedTime: time.Duration(c.blockedTime.Load()),
			QueueTime:   queue,
			HandlerTime: handler,
			Depth:       int(c.stored.Load()),
			Capacity:    b.cfg.capacity,
		}
		s.Server[i] = ServerStats{
			Conveyor:     i,
			Stored:       int(c.stored.Load()),
			Pending:      int(c.pending.Load()),
			AckPending:   int(c.ackPending.Load()),
			Redelivered:  int(c.serverRedelivered.Load()),
			Owned:        c.owned.Load(),
			Stalls:       c.stalls.Load(),
			Redeliveries: c.redelivered.Load(),
			Duplicates:   c.duplicates.Load(),
			AckFailed:    c.ackFailed.Load(),
		}
	}
	return s
}

// watch is the monitor goroutine: every interval it reads the state of
// the conveyors from the server, until Close.
func (b *Bus[T]) watch() {
	defer b.workers.Done()
	t := time.NewTicker(b.cfg.monitor)
	defer t.Stop()
	last := make([]uint64, len(b.conveyors)) // delivered consumer sequence
	for {
		select {
		case <-b.watchCtx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(b.watchCtx, max(b.cfg.monitor, time.Second))
		b.read(ctx, last)
		cancel()
	}
}

// read takes one reading of the stream and, on a consuming bus, of every
// conveyor's consumer. Failed readings leave the last values in place.
func (b *Bus[T]) read(ctx context.Context, last []uint64) {
	info, err := b.stream.Info(ctx, jetstream.WithSubjectFilter(
		"mainbus."+b.resource+".*"))
	if err == nil {
		for _, c := range b.conveyors {
			c.stored.Store(int64(info.State.Subjects[c.subject]))
		}
	}
	if b.handle == nil {
		return
	}
	for i, c := range b.conveyors {
		ci, err := c.cons.Info(ctx)
		if err != nil {
			continue
		}
		c.pending.Store(int64(ci.NumPending))
		c.ackPending.Store(int64(ci.NumAckPending))
		c.serverRedelivered.Store(int64(ci.NumRedelivered))
		pin, _ := c.pin.Load().(string)
		owned := false
		for _, g := range ci.PriorityGroups {
			owned = owned || pin != "" && g.PinnedClientID == pin
		}
		c.owned.Store(owned)

		// A stall: events wait on the server and nothing was delivered
		// since the last reading, to this process or any other. Counted
		// and reported once per stall, when it begins.
		stalled := ci.NumPending > 0 && ci.Delivered.Consumer == last[i]
		if stalled && !c.stalled {
			c.stalls.Add(1)
			b.report(fmt.Errorf("%w: %s L%d has %d events pending, %d unacknowledged, "+
				"and delivered none in %v", ErrStalled, b.resource, c.index,
				ci.NumPending, ci.NumAckPending, b.cfg.monitor))
		}
		c.stalled = stalled
		last[i] = ci.Delivered.Consumer
	}
}

// StatsOf returns a function that takes a snapshot of each bus, in the
// order given, and keeps its [mainbus.Stats]: the shape of
// [mainbus.StatsOf], which the Prometheus collector of package prom and
// the dashboard take. Buses of different event types mix:
//
//	stats := jetbus.StatsOf(iron, copper) // a *Bus[Plate] and a *Bus[Wire]
//	reg.MustRegister(prom.NewCollector(stats))
//
// The Server part of each snapshot is left out; read it from
// [Bus.Stats]. Give each resource once: the collector refuses a second
// bus of the same resource. The function is safe for concurrent use.
func StatsOf(buses ...interface{ Stats() Stats }) func() []mainbus.Stats {
	buses = append([]interface{ Stats() Stats }(nil), buses...)
	return func() []mainbus.Stats {
		s := make([]mainbus.Stats, len(buses))
		for i, b := range buses {
			s[i] = b.Stats().Stats
		}
		return s
	}
}
