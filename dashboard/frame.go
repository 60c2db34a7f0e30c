package dashboard

import (
	"math"
	"time"

	"github.com/mainbus-go/mainbus"
)

// A frame is one update of the page: the JSON of /events and /snapshot.
// The field names are the API scripts read; keep them stable.
type frame struct {
	Title    string      `json:"title"`
	Time     time.Time   `json:"time"`
	Interval float64     `json:"interval"` // seconds the rates cover; 0 in a first frame
	Buses    []busFrame  `json:"buses"`
	Knobs    []knobFrame `json:"knobs"`
}

// A busFrame is one bus: its total over all conveyors and each conveyor.
type busFrame struct {
	Resource  string          `json:"resource"`
	Active    int             `json:"active"`
	Draining  int             `json:"draining"`
	Total     conveyorFrame   `json:"total"`
	Conveyors []conveyorFrame `json:"conveyors"`
}

// A conveyorFrame is one conveyor, or the total of a bus (Conveyor -1).
type conveyorFrame struct {
	Conveyor         int    `json:"conveyor"`
	Active           bool   `json:"active"`
	Produced         uint64 `json:"produced"`
	Consumed         uint64 `json:"consumed"`
	Failed           uint64 `json:"failed"`
	Panicked         uint64 `json:"panicked"`
	Retried          uint64 `json:"retried"`
	DeadLettered     uint64 `json:"deadLettered"`
	DeadLetterFailed uint64 `json:"deadLetterFailed"`
	Dropped          uint64 `json:"dropped"`
	Rejected         uint64 `json:"rejected"`

	Depth          int     `json:"depth"`
	Capacity       int     `json:"capacity"`
	Blocked        int     `json:"blocked"`
	Blocks         uint64  `json:"blocks"`
	BlockedSeconds float64 `json:"blockedSeconds"`

	Rate        rates     `json:"rate"`
	QueueTime   timeFrame `json:"queueTime"`
	HandlerTime timeFrame `json:"handlerTime"`
}

// rates are events per second over the interval of the frame.
type rates struct {
	Produced float64 `json:"produced"`
	Consumed float64 `json:"consumed"`
	Dropped  float64 `json:"dropped"`
	Rejected float64 `json:"rejected"`
}

// A timeFrame summarises a histogram over the last interval and since
// the bus started.
type timeFrame struct {
	Last quantiles `json:"last"`
	All  quantiles `json:"all"`
}

// quantiles are in seconds.
type quantiles struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	Mean  float64 `json:"mean"`
}

// A knobFrame is a knob as the page shows it. Value is null when Get
// returned NaN or an infinity.
type knobFrame struct {
	Name  string   `json:"name"`
	Unit  string   `json:"unit"`
	Min   float64  `json:"min"`
	Max   float64  `json:"max"`
	Step  float64  `json:"step"`
	Value *float64 `json:"value"`
}

// A sampler makes frames, each from a snapshot of the stats and the one
// before it. Every client of /events has its own, so clients do not
// shorten each other's intervals. A sampler is used by one goroutine.
type sampler struct {
	cfg    *config
	stats  func() []mainbus.Stats
	prev   map[string]mainbus.Stats
	prevAt time.Time
}

// next takes a snapshot and returns its frame.
func (s *sampler) next() frame {
	now := time.Now()
	stats := s.stats()
	f := frame{Title: s.cfg.title, Time: now, Buses: make([]busFrame, 0, len(stats))}
	if s.prev != nil {
		f.Interval = now.Sub(s.prevAt).Seconds()
	}
	cur := make(map[string]mainbus.Stats, len(stats))
	for _, st := range stats {
		prev, seen := s.prev[st.Resource]
		f.Buses = append(f.Buses, busFrameOf(st, prev, seen, f.Interval))
		cur[st.Resource] = st
	}
	s.prev, s.prevAt = cur, now
	f.Knobs = knobFrames(s.cfg.knobs)
	return f
}

// busFrameOf returns the frame of bus st. prev is its snapshot from the
// previous frame, if seen; a bus not seen before gets no rates, since its
// counters may have grown for long before.
func busFrameOf(st, prev mainbus.Stats, seen bool, interval float64) busFrame {
	if !seen {
		interval = 0
	}
	b := busFrame{
		Resource:  st.Resource,
		Active:    st.Active,
		Draining:  st.Draining,
		Conveyors: make([]conveyorFrame, len(st.Conveyors)),
		Total:     conveyorFrameOf(st.Total(), prev.Total(), interval),
	}
	b.Total.Active = st.Active > 0
	for i, c := range st.Conveyors {
		// A conveyor number new since the previous frame started at zero.
		var p mainbus.ConveyorStats
		if i < len(prev.Conveyors) {
			p = prev.Conveyors[i]
		}
		b.Conveyors[i] = conveyorFrameOf(c, p, interval)
		b.Conveyors[i].Active = i < st.Active
	}
	return b
}

// conveyorFrameOf returns the frame of c, with rates and quantiles over
// the interval since prev; none if interval is 0.
func conveyorFrameOf(c, prev mainbus.ConveyorStats, interval float64) conveyorFrame {
	f := conveyorFrame{
		Conveyor:         c.Conveyor,
		Produced:         c.Produced,
		Consumed:         c.Consumed,
		Failed:           c.Failed,
		Panicked:         c.Panicked,
		Retried:          c.Retried,
		DeadLettered:     c.DeadLettered,
		DeadLetterFailed: c.DeadLetterFailed,
		Dropped:          c.Dropped,
		Rejected:         c.Rejected,
		Depth:            c.Depth,
		Capacity:         c.Capacity,
		Blocked:          c.Blocked,
		Blocks:           c.Blocks,
		BlockedSeconds:   c.BlockedTime.Seconds(),
		QueueTime:        timeFrame{All: quantilesOf(c.QueueTime)},
		HandlerTime:      timeFrame{All: quantilesOf(c.HandlerTime)},
	}
	if interval > 0 {
		f.Rate = rates{
			Produced: rate(c.Produced, prev.Produced, interval),
			Consumed: rate(c.Consumed, prev.Consumed, interval),
			Dropped:  rate(c.Dropped, prev.Dropped, interval),
			Rejected: rate(c.Rejected, prev.Rejected, interval),
		}
		f.QueueTime.Last = quantilesOf(since(c.QueueTime, prev.QueueTime))
		f.HandlerTime.Last = quantilesOf(since(c.HandlerTime, prev.HandlerTime))
	}
	return f
}

// rate returns the events per second between two readings of a counter.
func rate(cur, prev uint64, seconds float64) float64 {
	if cur <= prev {
		return 0
	}
	return float64(cur-prev) / seconds
}

// since returns the durations counted by h and not yet by prev.
func since(h, prev mainbus.Histogram) mainbus.Histogram {
	var d mainbus.Histogram
	for i, n := range h.Buckets {
		// Each bucket only grows; the guard keeps a stale read harmless.
		if n > prev.Buckets[i] {
			d.Buckets[i] = n - prev.Buckets[i]
			d.Count += d.Buckets[i]
		}
	}
	if h.Sum > prev.Sum {
		d.Sum = h.Sum - prev.Sum
	}
	return d
}

func quantilesOf(h mainbus.Histogram) quantiles {
	return quantiles{
		Count: h.Count,
		P50:   h.Quantile(0.5).Seconds(),
		P99:   h.Quantile(0.99).Seconds(),
		Mean:  h.Mean().Seconds(),
	}
}

func knobFrames(knobs []Knob) []knobFrame {
	fs := make([]knobFrame, len(knobs))
	for i, k := range knobs {
		fs[i] = knobFrame{Name: k.Name, Unit: k.Unit, Min: k.Min, Max: k.Max, Step: k.Step}
		if v := k.Get(); !math.IsNaN(v) && !math.IsInf(v, 0) {
			fs[i].Value = &v
		}
	}
	return fs
}
