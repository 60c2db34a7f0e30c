package mainbus

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// HistogramBuckets is the number of buckets of a [Histogram].
const HistogramBuckets = 31

// bucketBase is the upper bound of the first bucket; each next bound
// doubles it, so the last finite bound is about 67 seconds.
const bucketBase = 125 * time.Nanosecond

// A Histogram counts durations in buckets. Bucket i holds the durations
// above [HistogramBound](i-1) and up to HistogramBound(i); bounds double
// from 125 ns to about 67 s, and the last bucket holds everything longer.
// Buckets are not cumulative.
type Histogram struct {
	Count   uint64
	Sum     time.Duration
	Buckets [HistogramBuckets]uint64
}

// HistogramBound returns the upper bound of bucket i of a [Histogram]:
// 125ns·2^i, or math.MaxInt64 for the last bucket. It returns 0 for an i
// out of range.
func HistogramBound(i int) time.Duration {
	switch {
	case i < 0 || i >= HistogramBuckets:
		return 0
	case i == HistogramBuckets-1:
		return math.MaxInt64
	}
	return bucketBase << i
}

// bucketOf returns the bucket of a duration of d nanoseconds.
func bucketOf(d int64) int {
	if d <= int64(bucketBase) {
		return 0
	}
	return min(bits.Len64(uint64(d-1)/uint64(bucketBase)), HistogramBuckets-1)
}

// Quantile estimates the q-quantile (0 ≤ q ≤ 1) of the durations counted,
// interpolating inside the bucket it falls in, as Prometheus does. It
// returns 0 for an empty histogram; a quantile in the last bucket is its
// lower bound.
func (h Histogram) Quantile(q float64) time.Duration {
	var total uint64
	for _, n := range h.Buckets {
		total += n
	}
	if total == 0 || math.IsNaN(q) {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := q * float64(total)
	var seen uint64
	for i, n := range h.Buckets {
		if n == 0 || float64(seen+n) < rank {
			seen += n
			continue
		}
		lo := time.Duration(0)
		if i > 0 {
			lo = HistogramBound(i - 1)
		}
		if i == HistogramBuckets-1 {
			return lo
		}
		hi := HistogramBound(i)
		frac := (rank - float64(seen)) / float64(n)
		return lo + time.Duration(frac*float64(hi-lo))
	}
	return HistogramBound(HistogramBuckets - 2)
}

// Mean returns Sum/Count, or 0 for an empty histogram.
func (h Histogram) Mean() time.Duration {
	if h.Count == 0 {
		return 0
	}
	return h.Sum / time.Duration(h.Count)
}

// Observe counts one duration; a negative one counts as 0. It lets code
// outside the package, such as another backend's consumers, keep
// histograms of the same shape. A Histogram is a plain value: Observe is
// not safe for concurrent use.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	h.Count++
	h.Sum += d
	h.Buckets[bucketOf(int64(d))]++
}

// merge adds the counts of o to h.
func (h *Histogram) merge(o Histogram) {
	h.Count += o.Count
	h.Sum += o.Sum
	for i, n := range o.Buckets {
		h.Buckets[i] += n
	}
}

// A timing is the shared form of a histogram, read by Stats while the
// consumer adds to it.
type timing struct {
	sum     atomic.Int64
	buckets [HistogramBuckets]atomic.Uint64
}

func (t *timing) load() Histogram {
	h := Histogram{Sum: time.Duration(t.sum.Load())}
	for i := range t.buckets {
		h.Buckets[i] = t.buckets[i].Load()
		h.Count += h.Buckets[i]
	}
	return h
}

// A tally is a consumer's own histogram. Counting there costs no atomic
// operation; flush moves it to the shared timing.
type tally struct {
	sum     int64
	buckets [HistogramBuckets]uint64
}

// observe counts n events that took d each.
func (t *tally) observe(d int64, n uint64) {
	d = max(d, 0)
	t.sum += d * int64(n)
	t.buckets[bucketOf(d)] += n
}

func (t *tally) flush(to *timing) {
	if t.sum != 0 {
		to.sum.Add(t.sum)
		t.sum = 0
	}
	for i, n := range t.buckets {
		if n != 0 {
			to.buckets[i].Add(n)
			t.buckets[i] = 0
		}
	}
}

// A consumer keeps its observations to itself until it has flushEvery of
// them or flushAfter has passed since it last published them to Stats,
// whichever comes first. It also publishes whenever its conveyor runs
// empty, and when it stops.
const (
	flushEvery = 64
	flushAfter = 50 * time.Millisecond
)

// clock reads the bus's monotonic clock: the time since the bus was
// built. It costs one clock reading, where time.Now costs two.
func (b *Bus[T]) clock() int64 { return int64(time.Since(b.epoch)) }
