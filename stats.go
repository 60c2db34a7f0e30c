package mainbus

// Stats is a snapshot of a bus's counters, one entry per conveyor. Each
// counter is read on its own while the bus runs, so a snapshot taken under
// load may be a few events apart between counters.
type Stats struct {
	Resource  string
	Conveyors []ConveyorStats
}

// ConveyorStats counts the events of one conveyor since the bus started.
type ConveyorStats struct {
	Conveyor int

	Produced uint64 // accepted onto the conveyor
	Consumed uint64 // handed to the handler, whatever the outcome
	Failed   uint64 // handler returned an error
	Panicked uint64 // handler panicked

	Depth    int // events waiting now
	Capacity int // events the conveyor holds before it is full
}

// Stats returns a snapshot of the bus's counters. It does not stop the
// bus and is safe for concurrent use.
func (b *Bus[T]) Stats() Stats {
	s := Stats{Resource: b.resource, Conveyors: make([]ConveyorStats, len(b.lanes.conveyors))}
	for i, c := range b.lanes.conveyors {
		s.Conveyors[i] = ConveyorStats{
			Conveyor: i,
			Produced: c.produced.Load(),
			Consumed: c.consumed.Load(),
			Failed:   c.failed.Load(),
			Panicked: c.panicked.Load(),
			Depth:    len(c.ch),
			Capacity: cap(c.ch),
		}
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
		t.Depth += c.Depth
		t.Capacity += c.Capacity
	}
	return t
}
