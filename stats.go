package mainbus

import "time"

// Stats is a snapshot of a bus's counters, one entry per conveyor number
// the bus has had. Each counter is read on its own while the bus runs, so
// a snapshot taken under load may be a few events apart between counters.
// Counters only grow, also across resizes. Once a bus has closed,
// Consumed + Dropped equals the number of events accepted, under every
// overflow policy, plus those a Close that ran out of time handed back in
// its [DrainError], which no counter holds.
type Stats struct {
	Resource string

	// Active is the number of conveyors producers use now; Conveyors[i]
	// is active for i < Active. Entries past it are conveyors removed by
	// a Resize, kept so that totals never go down.
	Active    int
	Conveyors []ConveyorStats

	// Draining counts the slots still taken on conveyors that a Resize
	// replaced; they are handled before any event on the new ones.
	Draining int
}

// ConveyorStats counts the events of one conveyor number since the bus
// started.
//
// The two histograms count events. QueueTime runs from Produce (from the
// handover, for a [Stacker]) until the consumer takes the event's slot.
// HandlerTime counts one duration per event per handler attempt that
// returned; attempts that panicked are not timed. Events that came in a
// stack share its time: each is counted as taking the mean, for a stack
// handler and for a handler of single events alike, so that the clock is
// read once per stack. A consumer publishes its timings every 64 events or
// 50 ms, whichever comes first, and whenever its conveyor runs empty, so
// under load they may lag the counters above by that much.
type ConveyorStats struct {
	Conveyor int

	Produced         uint64 // put on the conveyor (DropOldest may drop it later)
	Consumed         uint64 // done with: handled, or failed on the last attempt
	Failed           uint64 // handler attempts that returned an error
	Panicked         uint64 // handler attempts that panicked
	Retried          uint64 // attempts followed by another
	DeadLettered     uint64 // handed to the dead-letter bus
	DeadLetterFailed uint64 // refused by the dead-letter bus; each reported to the error handler
	Dropped          uint64 // discarded by a dropping overflow policy
	Rejected         uint64 // refused with ErrFull, never accepted: the caller has them back

	// Backpressure: producers that found the conveyor full, yielded the
	// processor a few times to its consumer, and still had to wait.
	Blocked     int           // producers waiting for room now
	Blocks      uint64        // waits begun
	BlockedTime time.Duration // time spent in waits that have ended

	QueueTime   Histogram
	HandlerTime Histogram

	Depth    int // slots taken now (a stack takes one); 0 if the conveyor is not active
	Capacity int // slots the conveyor has before it is full
}

// Stats returns a snapshot of the bus's counters. It does not stop the
// bus and is safe for concurrent use.
func (b *Bus[T]) Stats() Stats {
	b.mu.Lock()
	l := b.current.Load()
	meters := b.meters
	draining := 0
	for _, g := range b.gens {
		if g != l {
			for _, c := range g.conveyors {
				draining += len(c.ch)
			}
		}
	}
	b.mu.Unlock()

	s := Stats{
		Resource:  b.resource,
		Active:    l.Len(),
		Conveyors: make([]ConveyorStats, len(meters)),
		Draining:  draining,
	}
	for i, m := range meters {
		cs := ConveyorStats{
			Conveyor:         i,
			Produced:         m.produced.Load(),
			Consumed:         m.consumed.Load(),
			Failed:           m.failed.Load(),
			Panicked:         m.panicked.Load(),
			Retried:          m.retried.Load(),
			DeadLettered:     m.deadLettered.Load(),
			DeadLetterFailed: m.unburied.Load(),
			Dropped:          m.dropped.Load(),
			Rejected:         m.rejected.Load(),
			Blocked:          int(m.blocked.Load()),
			Blocks:           m.blocks.Load(),
			BlockedTime:      time.Duration(m.blockedTime.Load()),
			QueueTime:        m.queue.load(),
			HandlerTime:      m.work.load(),
		}
		if i < l.Len() {
			cs.Depth = len(l.conveyors[i].ch)
			cs.Capacity = cap(l.conveyors[i].ch)
		}
		s.Conveyors[i] = cs
	}
	return s
}

// Total returns the sum over all conveyors, with Conveyor set to -1.
func (s Stats) Total() ConveyorStats {
	t := ConveyorStats{Conveyor: -1}
	for _, c := range s.Conveyors {
		t.Produced += c.Produced
		t.Consumed += c.Consumed
		t.Failed += c.Failed
		t.Panicked += c.Panicked
		t.Retried += c.Retried
		t.DeadLettered += c.DeadLettered
		t.DeadLetterFailed += c.DeadLetterFailed
		t.Dropped += c.Dropped
		t.Rejected += c.Rejected
		t.Blocked += c.Blocked
		t.Blocks += c.Blocks
		t.BlockedTime += c.BlockedTime
		t.QueueTime.merge(c.QueueTime)
		t.HandlerTime.merge(c.HandlerTime)
		t.Depth += c.Depth
		t.Capacity += c.Capacity
	}
	return t
}

// StatsOf returns a function that takes a snapshot of each bus, in the
// order given. It has the shape of [Complex.Stats], so code that reads the
// stats of many buses, such as the Prometheus collector and the dashboard,
// takes either.
func StatsOf(buses ...Member) func() []Stats {
	buses = append([]Member(nil), buses...)
	return func() []Stats {
		s := make([]Stats, len(buses))
		for i, b := range buses {
			s[i] = b.Stats()
		}
		return s
	}
}
