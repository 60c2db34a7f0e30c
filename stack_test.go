package mainbus_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mainbus-go/mainbus"
	"pgregory.net/rapid"
)

// The tests of this file check the stacked belts: Bus.ProduceBatch, which
// puts the events bound for one conveyor on one slot, up to StackSize of
// them, and NewStacked, whose handler takes a slot's events in one call.
// Their helpers are named stack…; they build on the policy… helpers of
// overflow_test.go.

// handlerKinds are the two ways a bus hands events over: one at a time
// (New) or a slot at a time (NewStacked).
var handlerKinds = []struct {
	name    string
	stacked bool
}{{"Handler", false}, {"StackHandler", true}}

// newStackBus builds the bus "iron" whose events go to h: in one call per
// slot if stacked, else in one call per event. It closes the bus when the
// test ends, after calling release (if not nil); see newPolicyBus.
func newStackBus[T any](t *testing.T, stacked bool, h mainbus.StackHandler[T], release func(),
	opts ...mainbus.Option) *mainbus.Bus[T] {
	t.Helper()
	if !stacked {
		return newPolicyBus(t, "iron", func(ctx context.Context, c int, ev mainbus.Event[T]) error {
			return h(ctx, c, []mainbus.Event[T]{ev})
		}, release, opts...)
	}
	b, err := mainbus.NewStacked("iron", h, opts...)
	if err != nil {
		t.Fatalf("NewStacked: %v", err)
	}
	t.Cleanup(func() {
		if release != nil {
			release()
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// stackBatch is the batch of events from to to, inclusive, each made by
// policyEvent.
func stackBatch(from, to uint64) []mainbus.Event[int] {
	var evs []mainbus.Event[int]
	for _, id := range policyIDs(from, to) {
		evs = append(evs, policyEvent(id))
	}
	return evs
}

// stackIDs returns the IDs of evs, in order.
func stackIDs[T any](evs []mainbus.Event[T]) []uint64 {
	ids := make([]uint64, 0, len(evs))
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	return ids
}

// stackCall is one call of a handler: the conveyor and the events.
type stackCall struct {
	conveyor int
	evs      []mainbus.Event[int]
}

// stackLog records the calls of a handler. It is safe for concurrent use.
type stackLog struct {
	mu    sync.Mutex
	calls []stackCall
}

// handle records a successful call of evs.
func (l *stackLog) handle(_ context.Context, c int, evs []mainbus.Event[int]) error {
	l.add(c, evs)
	return nil
}

func (l *stackLog) add(c int, evs []mainbus.Event[int]) {
	l.mu.Lock()
	l.calls = append(l.calls, stackCall{conveyor: c, evs: slices.Clone(evs)})
	l.mu.Unlock()
}

func (l *stackLog) list() []stackCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// events returns the events of every call, in call order.
func (l *stackLog) events() []mainbus.Event[int] {
	var evs []mainbus.Event[int]
	for _, c := range l.list() {
		evs = append(evs, c.evs...)
	}
	return evs
}

func (l *stackLog) ids() []uint64 { return stackIDs(l.events()) }

// stackGate is policyGate for handlers of either kind: it announces the
// IDs of each call on started, then holds them until release gives a
// token or is closed, and records them once released. If its context ends
// first it returns the context's error without recording.
type stackGate struct {
	started  chan []uint64
	release  chan struct{}
	openOnce sync.Once
	handled  stackLog
}

func newStackGate() *stackGate {
	return &stackGate{started: make(chan []uint64, 4096), release: make(chan struct{})}
}

func (g *stackGate) handle(ctx context.Context, c int, evs []mainbus.Event[int]) error {
	g.started <- stackIDs(evs)
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.handled.add(c, evs)
	return nil
}

// open lets every call through from now on.
func (g *stackGate) open() { g.openOnce.Do(func() { close(g.release) }) }

// waitStart waits until the handler begins a call and checks its IDs.
func (g *stackGate) waitStart(t *testing.T, want ...uint64) {
	t.Helper()
	stackCheckIDs(t, "handler start", recv(t, g.started, "handler start"), want)
}

// newGatedStackBus builds an "iron" bus of one conveyor whose handler, of
// the given kind, is a new stackGate.
func newGatedStackBus(t *testing.T, stacked bool,
	opts ...mainbus.Option) (*mainbus.Bus[int], *stackGate) {
	t.Helper()
	g := newStackGate()
	opts = append([]mainbus.Option{mainbus.WithConveyors(1), mainbus.WithExactConveyors()}, opts...)
	return newStackBus(t, stacked, g.handle, g.open, opts...), g
}

// stackCheckIDs is checkIDs for long runs of IDs: it shows them as
// ranges.
func stackCheckIDs(t *testing.T, what string, got, want []uint64) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got IDs %s; want %s", what, idRanges(got), idRanges(want))
	}
}

// idRanges writes ids as runs, "1..64 70 3", and repeats as "7×3", at
// most 20 of them.
func idRanges(ids []uint64) string {
	if len(ids) == 0 {
		return "none"
	}
	var b strings.Builder
	runs := 0
	for i := 0; i < len(ids); runs++ {
		if runs == 20 {
			fmt.Fprintf(&b, " … (%d in all)", len(ids))
			break
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		j, step := i, uint64(1)
		if i+1 < len(ids) && ids[i+1] == ids[i] {
			step = 0
		}
		for j+1 < len(ids) && ids[j+1] == ids[j]+step {
			j++
		}
		switch {
		case j == i:
			fmt.Fprint(&b, ids[i])
		case step == 0:
			fmt.Fprintf(&b, "%d×%d", ids[i], j-i+1)
		default:
			fmt.Fprintf(&b, "%d..%d", ids[i], ids[j])
		}
		i = j + 1
	}
	return b.String()
}

// checkBatchError checks that err is a *BatchError of the iron bus
// wrapping want, and returns the IDs it hands back.
func checkBatchError(t *testing.T, err error, want error) []uint64 {
	t.Helper()
	var be *mainbus.BatchError[int]
	if !errors.As(err, &be) {
		t.Fatalf("ProduceBatch returned %T %v; want a *mainbus.BatchError[int]", err, err)
	}
	if !errors.Is(err, want) {
		t.Errorf("ProduceBatch: %v; want an error wrapping %v", err, want)
	}
	if be.Resource != "iron" {
		t.Errorf("BatchError names resource %q; want iron", be.Resource)
	}
	return stackIDs(be.Rejected)
}

// checkTotals checks the bus's counters summed over its conveyors.
func checkTotals[T any](t *testing.T, b *mainbus.Bus[T], produced, consumed, dropped uint64) {
	t.Helper()
	tot := b.Stats().Total()
	if tot.Produced != produced || tot.Consumed != consumed || tot.Dropped != dropped {
		t.Errorf("stats produced %d, consumed %d, dropped %d; want %d, %d, %d",
			tot.Produced, tot.Consumed, tot.Dropped, produced, consumed, dropped)
	}
}

// stackValue is the payload of the tests with many producers: who made
// the event, its place in that producer's sequence, and, for an event of
// a batch, the batch's number and the event's place in it (-1 and 0 for
// an event sent by Produce).
type stackValue struct {
	producer, seq int
	batch, pos    int
}

// TestProduceBatchDeliversOnce is promise 1 for batches: 8 producers mix
// ProduceBatch calls of 1 to 300 events with single Produce calls, and
// every event reaches the handler exactly once. Under the keyed balancers
// each key's events are handled in the order produced. Under every
// balancer the events of one batch that share a conveyor are handled in
// the order given, and a stack handler gets at most StackSize events of
// one batch per call, in that order.
func TestProduceBatchDeliversOnce(t *testing.T) {
	t.Parallel()
	const (
		producers   = 8
		perProducer = 1500
		keysEach    = 5
	)
	balancers := []struct {
		name  string
		new   func() mainbus.Balancer
		keyed bool
	}{
		{"KeyHash", mainbus.KeyHash, true},
		{"JumpHash", mainbus.JumpHash, true},
		{"RoundRobin", mainbus.RoundRobin, false},
		{"Random", mainbus.Random, false},
	}
	for _, bal := range balancers {
		for _, kind := range handlerKinds {
			t.Run(bal.name+"/"+kind.name, func(t *testing.T) {
				t.Parallel()
				var (
					mu      sync.Mutex
					count   = map[uint64]int{}
					byKey   = map[string][]int{} // seqs, in handling order
					keyLane = map[string]int{}   // conveyor of each key
					lanes   = map[[3]int][]int{} // [conveyor, producer, batch] -> pos
					bad     []string             // what a call got wrong
					sizes   = map[int]int{}      // events per call -> calls
				)
				h := func(_ context.Context, c int, evs []mainbus.Event[stackValue]) error {
					mu.Lock()
					defer mu.Unlock()
					sizes[len(evs)]++
					if len(evs) > mainbus.StackSize {
						bad = append(bad, fmt.Sprintf("a call got %d events", len(evs)))
					}
					for i, ev := range evs {
						v := ev.Value
						count[ev.ID]++
						byKey[ev.Key] = append(byKey[ev.Key], v.seq)
						if k, ok := keyLane[ev.Key]; ok && k != c && bal.keyed {
							bad = append(bad, fmt.Sprintf("key %s on L%d and L%d", ev.Key, k, c))
						}
						keyLane[ev.Key] = c
						if v.batch >= 0 {
							lane := [3]int{c, v.producer, v.batch}
							lanes[lane] = append(lanes[lane], v.pos)
						}
						if i > 0 && (v.batch < 0 || v.producer != evs[0].Value.producer ||
							v.batch != evs[0].Value.batch || v.pos <= evs[i-1].Value.pos) {
							bad = append(bad,
								fmt.Sprintf("one call got %+v after %+v", v, evs[i-1].Value))
						}
					}
					return nil
				}
				b := newStackBus(t, kind.stacked, h, nil, mainbus.WithConveyors(4),
					mainbus.WithBuffer(8), mainbus.WithBalancer(bal.new()))

				var (
					wg      sync.WaitGroup
					sent    [producers]int // events each producer sent
					batches atomic.Int64
				)
				for p := range producers {
					wg.Go(func() {
						rng := rand.New(rand.NewPCG(uint64(p), 42))
						ctx := context.Background()
						event := func(seq, batch, pos int) mainbus.Event[stackValue] {
							return mainbus.Event[stackValue]{
								ID:    uint64(p)<<32 | uint64(seq),
								Key:   fmt.Sprintf("p%d-k%d", p, seq%keysEach),
								Value: stackValue{producer: p, seq: seq, batch: batch, pos: pos},
							}
						}
						seq := 0
						for batch := 0; seq < perProducer; batch++ {
							if rng.IntN(4) == 0 {
								if err := b.Produce(ctx, event(seq, -1, 0)); err != nil {
									t.Errorf("Produce: %v", err)
									return
								}
								seq++
								continue
							}
							evs := make([]mainbus.Event[stackValue], 1+rng.IntN(300))
							for i := range evs {
								evs[i] = event(seq, batch, i)
								seq++
							}
							if err := b.ProduceBatch(ctx, evs); err != nil {
								t.Errorf("ProduceBatch: %v", err)
								return
							}
							batches.Add(1)
						}
						sent[p] = seq
					})
				}
				wg.Wait()
				policyClose(t, b)

				mu.Lock()
				defer mu.Unlock()
				for _, s := range bad[:min(len(bad), 5)] {
					t.Error(s)
				}
				total := 0
				for p, n := range sent {
					total += n
					for seq := range n {
						if got := count[uint64(p)<<32|uint64(seq)]; got != 1 {
							t.Fatalf("event %d of producer %d handled %d times; want once",
								seq, p, got)
						}
					}
				}
				if len(count) != total {
					t.Errorf("handled %d distinct events; %d were produced", len(count), total)
				}
				if bal.keyed {
					for key, seqs := range byKey {
						if !slices.IsSorted(seqs) {
							t.Errorf("key %s handled in the order %v; want the order produced",
								key, seqs)
						}
					}
				}
				for lane, pos := range lanes {
					if !slices.IsSorted(pos) {
						t.Errorf("L%d, producer %d, batch %d: events handled in the order %v; "+
							"want the order given", lane[0], lane[1], lane[2], pos)
					}
				}
				if kind.stacked && batches.Load() > 0 && sizes[1] == len(count) {
					t.Errorf("every call of the stack handler got one event; want batches stacked")
				}
				checkTotals(t, b, uint64(total), uint64(total), 0)
			})
		}
	}
}

// stackOp is one call a producer of the property test makes.
type stackOp struct {
	batch    int           // events in the batch; 0 for one Produce
	deadline time.Duration // 0: the call's context never ends
}

// stackPlan is one drawn scenario of the property test.
type stackPlan struct {
	conveyors int
	exact     bool
	buffer    int
	balancer  string
	overflow  mainbus.Overflow
	stacked   bool
	keysEach  int
	ops       [][]stackOp // per producer
	resizes   []int       // conveyor counts, applied in turn while producers run

	closeAt      int           // ops done before Close is called
	closeTimeout time.Duration // negative: Close without a deadline
}

// stackBalancers are the balancers the property test draws from; the
// keyed ones promise per-key order.
var stackBalancers = map[string]struct {
	new   func() mainbus.Balancer
	keyed bool
}{
	"KeyHash":     {mainbus.KeyHash, true},
	"JumpHash":    {mainbus.JumpHash, true},
	"RoundRobin":  {mainbus.RoundRobin, false},
	"Random":      {mainbus.Random, false},
	"LeastLoaded": {mainbus.LeastLoaded, false},
}

func stackDraw(rt *rapid.T) stackPlan {
	p := stackPlan{
		conveyors: rapid.IntRange(1, 6).Draw(rt, "conveyors"),
		exact:     rapid.Bool().Draw(rt, "exact"),
		buffer:    rapid.IntRange(0, 4).Draw(rt, "buffer"),
		balancer: rapid.SampledFrom([]string{
			"KeyHash", "JumpHash", "RoundRobin", "Random", "LeastLoaded",
		}).Draw(rt, "balancer"),
		overflow: rapid.SampledFrom([]mainbus.Overflow{
			mainbus.Block, mainbus.Reject, mainbus.DropNewest, mainbus.DropOldest,
		}).Draw(rt, "overflow"),
		stacked:  rapid.Bool().Draw(rt, "stacked"),
		keysEach: rapid.IntRange(1, 4).Draw(rt, "keysEach"),
	}
	op := rapid.Custom(func(rt *rapid.T) stackOp {
		o := stackOp{}
		if rapid.IntRange(0, 3).Draw(rt, "single") > 0 {
			o.batch = rapid.IntRange(1, 150).Draw(rt, "batch")
		}
		if rapid.IntRange(0, 3).Draw(rt, "ends") == 0 {
			o.deadline = time.Duration(rapid.IntRange(1, 50).Draw(rt, "µs")) * time.Microsecond
		}
		return o
	})
	producers := rapid.IntRange(2, 8).Draw(rt, "producers")
	total := 0
	for i := range producers {
		ops := rapid.SliceOfN(op, 0, 6).Draw(rt, fmt.Sprintf("ops of producer %d", i))
		p.ops = append(p.ops, ops)
		total += len(ops)
	}
	p.resizes = rapid.SliceOfN(rapid.IntRange(1, 6), 0, 4).Draw(rt, "resizes")
	p.closeAt = rapid.IntRange(0, total).Draw(rt, "closeAt")
	p.closeTimeout = rapid.SampledFrom([]time.Duration{
		-1, -1, 0, 50 * time.Microsecond, time.Millisecond,
	}).Draw(rt, "closeTimeout")
	return p
}

// event returns event seq of producer p under plan pl; IDs are unique.
func (pl stackPlan) event(p, seq, batch, pos int) mainbus.Event[stackValue] {
	return mainbus.Event[stackValue]{
		ID:    uint64(p)<<32 | uint64(seq),
		Key:   fmt.Sprintf("p%d-%d", p, seq%pl.keysEach),
		Value: stackValue{producer: p, seq: seq, batch: batch, pos: pos},
	}
}

// stackRun is what a run of a plan gives.
type stackRun struct {
	bus      *mainbus.Bus[stackValue]
	sent     [][][]mainbus.Event[stackValue] // per producer, per op: the events
	errs     [][]error                       // per producer, per op
	resized  []error
	closeErr error

	handled []mainbus.Event[stackValue] // in handling order
	dropped []mainbus.Event[stackValue] // as the drop handler got them
	others  []string                    // what a call got wrong
}

func stackRunPlan(rt *rapid.T, pl stackPlan) *stackRun {
	var (
		mu  sync.Mutex
		res = &stackRun{}
	)
	keyless := !stackBalancers[pl.balancer].keyed
	h := func(_ context.Context, _ int, evs []mainbus.Event[stackValue]) error {
		mu.Lock()
		defer mu.Unlock()
		if len(evs) > mainbus.StackSize {
			res.others = append(res.others, fmt.Sprintf("a call got %d events", len(evs)))
		}
		for i, ev := range evs {
			res.handled = append(res.handled, ev)
			v, first := ev.Value, evs[0].Value
			if i > 0 && (v.batch < 0 || v.producer != first.producer || v.batch != first.batch ||
				keyless && v.pos <= evs[i-1].Value.pos) {
				res.others = append(res.others,
					fmt.Sprintf("one call got %+v after %+v", v, evs[i-1].Value))
			}
		}
		if rand.IntN(4) == 0 {
			runtime.Gosched() // mix the schedules
		}
		return nil
	}
	opts := []mainbus.Option{
		mainbus.WithConveyors(pl.conveyors), mainbus.WithBuffer(pl.buffer),
		mainbus.WithBalancer(stackBalancers[pl.balancer].new()), mainbus.WithOverflow(pl.overflow),
		mainbus.WithDropHandler(func(ev mainbus.Event[stackValue]) {
			mu.Lock()
			res.dropped = append(res.dropped, ev)
			mu.Unlock()
		}),
	}
	if pl.exact {
		opts = append(opts, mainbus.WithExactConveyors())
	}
	var err error
	if pl.stacked {
		res.bus, err = mainbus.NewStacked("iron", h, opts...)
	} else {
		res.bus, err = mainbus.New("iron",
			func(ctx context.Context, c int, ev mainbus.Event[stackValue]) error {
				return h(ctx, c, []mainbus.Event[stackValue]{ev})
			}, opts...)
	}
	if err != nil {
		rt.Fatalf("New: %v", err)
	}
	bus := res.bus

	// start opens once closeAt ops are done; the closer then calls Close
	// while producers and the resizer go on.
	start := make(chan struct{})
	var done atomic.Int64
	if pl.closeAt == 0 {
		close(start)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		<-start
		ctx := context.Background()
		if pl.closeTimeout >= 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, pl.closeTimeout)
			defer cancel()
		}
		res.closeErr = bus.Close(ctx)
	})
	wg.Go(func() {
		for _, n := range pl.resizes {
			res.resized = append(res.resized, bus.Resize(context.Background(), n))
		}
	})
	res.sent = make([][][]mainbus.Event[stackValue], len(pl.ops))
	res.errs = make([][]error, len(pl.ops))
	for p, ops := range pl.ops {
		res.sent[p] = make([][]mainbus.Event[stackValue], len(ops))
		res.errs[p] = make([]error, len(ops))
		wg.Go(func() {
			seq := 0
			for i, op := range ops {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if op.deadline > 0 {
					ctx, cancel = context.WithTimeout(ctx, op.deadline)
				}
				if op.batch == 0 {
					ev := pl.event(p, seq, -1, 0)
					seq++
					res.sent[p][i] = []mainbus.Event[stackValue]{ev}
					res.errs[p][i] = bus.Produce(ctx, ev)
				} else {
					evs := make([]mainbus.Event[stackValue], op.batch)
					for j := range evs {
						evs[j] = pl.event(p, seq, i, j)
						seq++
					}
					res.sent[p][i] = slices.Clone(evs)
					res.errs[p][i] = bus.ProduceBatch(ctx, evs)
				}
				cancel()
				if done.Add(1) == int64(pl.closeAt) {
					close(start)
				}
			}
		})
	}
	wg.Wait()
	return res
}

// TestProduceBatchProperty is the property of batches: under any mix of
// batches and single events from many producers, resizes racing them,
// any overflow policy, and a Close that may run out of time, every event
// a ProduceBatch accepted (every event of the batch but those its
// BatchError hands back) is handled exactly once, handed back once by the
// DrainError, or, under a dropping policy, dropped once and counted, and
// only one of these; nothing refused turns up; and under the keyed
// balancers each key's events come in the order produced.
func TestProduceBatchProperty(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		pl := stackDraw(rt)
		res := stackRunPlan(rt, pl)
		for _, o := range res.others[:min(len(res.others), 5)] {
			rt.Error(o)
		}
		for i, err := range res.resized {
			if err != nil && !errors.Is(err, mainbus.ErrClosed) {
				rt.Errorf("Resize %d: %v; want nil or ErrClosed", i, err)
			}
		}
		accepted := stackAccepted(rt, pl, res)
		stackCheckDelivery(rt, pl, res, accepted)
	})
}

// stackAccepted checks what every Produce and ProduceBatch returned and
// gives the events they accepted, by ID.
func stackAccepted(rt *rapid.T, pl stackPlan, res *stackRun) map[uint64]bool {
	accepted := map[uint64]bool{}
	for p, ops := range pl.ops {
		for i, op := range ops {
			sent, err := res.sent[p][i], res.errs[p][i]
			allowed := []error{mainbus.ErrClosed}
			if pl.overflow == mainbus.Reject {
				allowed = append(allowed, mainbus.ErrFull)
			} else if op.deadline > 0 {
				allowed = append(allowed, context.DeadlineExceeded)
			}
			if err != nil &&
				!slices.ContainsFunc(allowed, func(a error) bool { return errors.Is(err, a) }) {
				rt.Errorf("producer %d op %d (%+v): %v; want nil or one of %v",
					p, i, op, err, allowed)
			}
			refused := map[uint64]bool{}
			var be *mainbus.BatchError[stackValue]
			switch {
			case err == nil:
			case op.batch == 0:
				refused[sent[0].ID] = true
			case !errors.As(err, &be):
				rt.Fatalf("producer %d op %d: ProduceBatch returned %T %v; want a *BatchError",
					p, i, err, err)
			case be.Resource != "iron" || len(be.Rejected) == 0:
				rt.Errorf("producer %d op %d: %v names %q, hands back %d; want iron, 1 or more",
					p, i, be, be.Resource, len(be.Rejected))
			default:
				for _, ev := range be.Rejected {
					if refused[ev.ID] ||
						!slices.ContainsFunc(sent, func(s mainbus.Event[stackValue]) bool {
							return s.ID == ev.ID && s.Value == ev.Value && s.Key == ev.Key
						}) {
						rt.Errorf("producer %d op %d: BatchError hands back %+v twice or not sent",
							p, i, ev)
					}
					refused[ev.ID] = true
				}
			}
			for _, ev := range sent {
				if !refused[ev.ID] {
					accepted[ev.ID] = true
				}
			}
		}
	}
	return accepted
}

// stackCheckDelivery checks that each accepted event was handled,
// dropped or handed back, once, that no refused one was, the per-key
// order under the keyed balancers, and the counters.
func stackCheckDelivery(rt *rapid.T, pl stackPlan, res *stackRun, accepted map[uint64]bool) {
	var back []mainbus.Event[stackValue]
	var de *mainbus.DrainError[stackValue]
	switch err := res.closeErr; {
	case err == nil:
	case pl.closeTimeout < 0:
		rt.Errorf("Close without a deadline: %v; want nil", err)
	case !errors.As(err, &de) || !errors.Is(err, context.DeadlineExceeded) || de.Resource != "iron":
		rt.Errorf("Close: %T %v; want nil or an iron *DrainError wrapping DeadlineExceeded",
			err, err)
	default:
		back = de.Undelivered
	}

	seen := map[uint64]string{}
	byKey := map[string][]int{}
	for _, what := range []struct {
		name string
		evs  []mainbus.Event[stackValue]
	}{{"handled", res.handled}, {"dropped", res.dropped}, {"handed back", back}} {
		for _, ev := range what.evs {
			switch {
			case !accepted[ev.ID]:
				rt.Errorf("event %+v %s but never accepted", ev, what.name)
			case seen[ev.ID] != "":
				rt.Errorf("event %+v %s after it was %s", ev, what.name, seen[ev.ID])
			}
			seen[ev.ID] = what.name
			if what.name != "dropped" {
				byKey[ev.Key] = append(byKey[ev.Key], ev.Value.seq)
			}
		}
	}
	for id := range accepted {
		if seen[id] == "" {
			rt.Errorf("event %#x accepted, then neither handled, dropped nor handed back", id)
		}
	}
	if stackBalancers[pl.balancer].keyed {
		for key, seqs := range byKey {
			if !slices.IsSorted(seqs) {
				rt.Errorf("key %s handled, then handed back, in the order %v; want it as produced",
					key, seqs)
			}
		}
	}
	tot := res.bus.Stats().Total()
	if tot.Consumed != uint64(len(res.handled)) || tot.Dropped != uint64(len(res.dropped)) {
		rt.Errorf("stats consumed %d, dropped %d; want %d handled, %d dropped",
			tot.Consumed, tot.Dropped, len(res.handled), len(res.dropped))
	}
	// DropOldest drops events already produced, to make room; DropNewest,
	// and DropOldest where there is no buffer to make room in, drop the
	// event being produced.
	produced := uint64(len(accepted))
	if pl.overflow == mainbus.DropNewest || pl.overflow == mainbus.DropOldest && pl.buffer == 0 {
		produced -= tot.Dropped
	}
	if tot.Produced != produced {
		rt.Errorf("stats produced %d; want %d", tot.Produced, produced)
	}
}

// stackBalancerCases are the two paths of ProduceBatch: a keyless
// balancer, asked once per stack, and a keyed one, asked once per event.
var stackBalancerCases = []struct {
	name string
	new  func() mainbus.Balancer
}{{"RoundRobin", mainbus.RoundRobin}, {"KeyHash", mainbus.KeyHash}}

// TestProduceBatchAfterClose checks that a batch produced after Close
// comes back whole, in order, wrapping ErrClosed, and that none of it is
// handled.
func TestProduceBatchAfterClose(t *testing.T) {
	t.Parallel()
	for _, kind := range handlerKinds {
		for _, bal := range stackBalancerCases {
			t.Run(kind.name+"/"+bal.name, func(t *testing.T) {
				t.Parallel()
				var log stackLog
				b := newStackBus(t, kind.stacked, log.handle, nil, mainbus.WithBalancer(bal.new()))
				policyClose(t, b)
				for _, n := range []uint64{1, 64, 200} {
					err := b.ProduceBatch(context.Background(), stackBatch(1, n))
					stackCheckIDs(t, "rejected", checkBatchError(t, err, mainbus.ErrClosed),
						policyIDs(1, n))
				}
				stackCheckIDs(t, "handled", log.ids(), nil)
				checkTotals(t, b, 0, 0, 0)
			})
		}
	}
}

// TestProduceBatchReject checks a batch meeting a full conveyor under
// Reject: the handler holds event 1 and the buffer has two slots, so the
// first two stacks of the batch are accepted and the rest comes back,
// wrapping ErrFull; what was accepted is handled once, in order.
func TestProduceBatchReject(t *testing.T) {
	t.Parallel()
	for _, kind := range handlerKinds {
		for _, bal := range stackBalancerCases {
			t.Run(kind.name+"/"+bal.name, func(t *testing.T) {
				t.Parallel()
				b, g := newGatedStackBus(t, kind.stacked, mainbus.WithBuffer(2),
					mainbus.WithOverflow(mainbus.Reject), mainbus.WithBalancer(bal.new()))
				policyProduce(t, b, 1)
				g.waitStart(t, 1)

				err := b.ProduceBatch(context.Background(), stackBatch(2, 301))
				rejected := checkBatchError(t, err, mainbus.ErrFull)
				var pe *mainbus.ProduceError
				if !errors.As(err, &pe) || pe.Resource != "iron" || pe.Conveyor != 0 {
					t.Errorf("ProduceBatch: %v; want it to wrap a *ProduceError of iron L0", err)
				}
				stackCheckIDs(t, "rejected", rejected, policyIDs(2+2*mainbus.StackSize, 301))

				g.open()
				policyClose(t, b)
				stackCheckIDs(t, "handled", g.handled.ids(), policyIDs(1, 1+2*mainbus.StackSize))
				checkTotals(t, b, 1+2*mainbus.StackSize, 1+2*mainbus.StackSize, 0)
			})
		}
	}
}

// TestProduceBatchBlockContext is promise 3 for batches: a ProduceBatch
// waiting for room returns when its context ends, hands back the events
// not placed, and none of them is delivered later, while an event
// produced after it is. The handler holds event 1 and the buffer has two
// slots; a synctest bubble proves the producer waits.
func TestProduceBatchBlockContext(t *testing.T) {
	t.Parallel()
	for _, kind := range handlerKinds {
		for _, bal := range stackBalancerCases {
			for _, end := range []struct {
				name string
				want error
			}{{"deadline", context.DeadlineExceeded}, {"cancel", context.Canceled}} {
				t.Run(kind.name+"/"+bal.name+"/"+end.name, func(t *testing.T) {
					t.Parallel()
					synctest.Test(t, func(t *testing.T) {
						b, g := newGatedStackBus(t, kind.stacked, mainbus.WithBuffer(2),
							mainbus.WithBalancer(bal.new()))
						policyProduce(t, b, 1)
						g.waitStart(t, 1)

						ctx, cancel := context.WithTimeout(context.Background(), time.Second)
						defer cancel()
						res := make(chan error, 1)
						go func() { res <- b.ProduceBatch(ctx, stackBatch(2, 301)) }()
						synctest.Wait()
						select {
						case err := <-res:
							t.Fatalf("ProduceBatch returned %v while the conveyor was full", err)
						default:
						}
						if end.want == context.Canceled {
							cancel()
						} // else the bubble's clock runs to the deadline
						err := recv(t, res, "ProduceBatch result")
						rejected := checkBatchError(t, err, end.want)
						stackCheckIDs(t, "rejected", rejected,
							policyIDs(2+2*mainbus.StackSize, 301))

						g.open()
						policyProduce(t, b, 302)
						policyClose(t, b)
						want := append(policyIDs(1, 1+2*mainbus.StackSize), 302)
						stackCheckIDs(t, "handled", g.handled.ids(), want)
						checkTotals(t, b, uint64(len(want)), uint64(len(want)), 0)
					})
				})
			}
		}
	}
}

// TestProduceBatchFromHandler checks that a handler producing a batch
// into its own full conveyor does not wait on itself, whether it passes
// on its context or another: the stacks that find room are accepted, the
// rest comes back wrapping ErrWouldBlock, and the accepted events are
// handled once the handler returns.
func TestProduceBatchFromHandler(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ctx  func(handler context.Context) context.Context
	}{
		{"handler's context", func(ctx context.Context) context.Context { return ctx }},
		{"another context", func(context.Context) context.Context { return context.Background() }},
	} {
		for _, kind := range handlerKinds {
			t.Run(tc.name+"/"+kind.name, func(t *testing.T) {
				t.Parallel()
				testProduceBatchFromHandler(t, kind.stacked, tc.ctx)
			})
		}
	}
}

func testProduceBatchFromHandler(t *testing.T, stacked bool,
	produceCtx func(handler context.Context) context.Context) {
	var (
		b       *mainbus.Bus[int]
		log     stackLog
		results = make(chan error, 1)
	)
	h := func(ctx context.Context, c int, evs []mainbus.Event[int]) error {
		if evs[0].ID == 1 {
			// Bounded, so that a handler waiting on itself fails the test.
			ctx, cancel := context.WithTimeout(produceCtx(ctx), waitLimit)
			defer cancel()
			results <- b.ProduceBatch(ctx, stackBatch(2, 301))
		}
		return log.handle(ctx, c, evs)
	}
	b = newStackBus(t, stacked, h, nil, mainbus.WithConveyors(1),
		mainbus.WithExactConveyors(), mainbus.WithBuffer(1))
	policyProduce(t, b, 1)
	err := recv(t, results, "ProduceBatch result")
	stackCheckIDs(t, "rejected", checkBatchError(t, err, mainbus.ErrWouldBlock),
		policyIDs(2+mainbus.StackSize, 301))
	policyClose(t, b)
	stackCheckIDs(t, "handled", log.ids(), policyIDs(1, 1+mainbus.StackSize))
}

// stackKeys returns a key that KeyHash puts on L0 and one it puts on L1
// of two conveyors.
func stackKeys(t *testing.T) (k0, k1 string) {
	t.Helper()
	for i := 0; k0 == "" || k1 == ""; i++ {
		key := fmt.Sprint("furnace-", i)
		switch mainbus.KeyHash().Pick(key, fixedLanes(2)) {
		case 0:
			k0 = cmp.Or(k0, key)
		case 1:
			k1 = cmp.Or(k1, key)
		}
	}
	return k0, k1
}

// TestProduceBatchRejectedOrder checks that a BatchError hands back its
// events in the order given, also when they were bound for several
// conveyors. Of two conveyors, the handler holds L0's first event and
// L0's one-slot buffer is full, so under Reject the batch stops at the
// first stack for L0, whether it fills up or is the last one placed.
func TestProduceBatchRejectedOrder(t *testing.T) {
	t.Parallel()
	k0, k1 := stackKeys(t)
	for _, tc := range []struct {
		name string
		keys []string // of the batch's events, IDs 3, 4, …
	}{
		{"L0 first and last", []string{k0, k1, k0}},
		{"L0 last", []string{k1, k0, k1}},
		{"L0 in the middle", []string{k1, k0, k1, k0}},
		{"L1 inside a full L0 stack", slices.Concat([]string{k0, k1},
			slices.Repeat([]string{k0}, mainbus.StackSize-1))},
		{"L1 before a full L0 stack", append([]string{k1},
			slices.Repeat([]string{k0}, mainbus.StackSize)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newStackGate()
			h := func(ctx context.Context, c int, evs []mainbus.Event[int]) error {
				if c == 0 {
					return g.handle(ctx, c, evs)
				}
				return nil
			}
			b := newStackBus(t, false, h, g.open, mainbus.WithConveyors(2),
				mainbus.WithExactConveyors(),
				mainbus.WithBuffer(1), mainbus.WithOverflow(mainbus.Reject),
				mainbus.WithBalancer(mainbus.KeyHash()))
			for id := range uint64(2) {
				if err := b.Produce(context.Background(),
					mainbus.Event[int]{ID: id + 1, Key: k0}); err != nil {
					t.Fatalf("Produce: %v", err)
				}
				if id == 0 {
					g.waitStart(t, 1)
				}
			}

			var batch []mainbus.Event[int]
			for i, key := range tc.keys {
				batch = append(batch, mainbus.Event[int]{ID: uint64(3 + i), Key: key})
			}
			err := b.ProduceBatch(context.Background(), batch)
			rejected := checkBatchError(t, err, mainbus.ErrFull)
			if !isSubsequence(rejected, stackIDs(batch)) {
				t.Errorf("BatchError hands back %s; want them in the order given, %s",
					idRanges(rejected), idRanges(stackIDs(batch)))
			}
		})
	}
}

// isSubsequence reports whether sub is made of elements of s in the
// order they have in s.
func isSubsequence(sub, s []uint64) bool {
	for _, v := range sub {
		i := slices.Index(s, v)
		if i < 0 {
			return false
		}
		s = s[i+1:]
	}
	return true
}

// TestProduceBatchBadBalancer checks a balancer that picks a conveyor
// that does not exist for one event of a batch: ProduceBatch returns an
// error wrapping ErrInvalidOption, and no event of the batch is lost:
// every one is either handed back or handled, once.
func TestProduceBatchBadBalancer(t *testing.T) {
	t.Parallel()
	for _, kind := range handlerKinds {
		for _, bad := range []int{-1, 2, 99} {
			t.Run(fmt.Sprintf("%s/picks %d", kind.name, bad), func(t *testing.T) {
				t.Parallel()
				var log stackLog
				pick := mainbus.BalancerFunc(func(key string, _ mainbus.Conveyors) int {
					switch key {
					case "bad":
						return bad
					case "a":
						return 0
					}
					return 1
				})
				b := newStackBus(t, kind.stacked, log.handle, nil, mainbus.WithConveyors(2),
					mainbus.WithBuffer(8), mainbus.WithBalancer(pick))
				batch := stackBatch(1, 300)
				for i := range batch {
					batch[i].Key = []string{"a", "b", "a"}[i%3]
				}
				batch[200].Key = "bad"
				err := b.ProduceBatch(context.Background(), batch)
				rejected := checkBatchError(t, err, mainbus.ErrInvalidOption)
				if !slices.Contains(rejected, batch[200].ID) {
					t.Errorf("the event the balancer could not place is not handed back")
				}
				policyClose(t, b)
				handled := log.ids()
				checkOnce(t, stackIDs(batch), handled, rejected)
				checkTotals(t, b, uint64(len(handled)), uint64(len(handled)), 0)
			})
		}
	}
}

// TestProduceBatchBadInput checks what ProduceBatch does with input it
// cannot take: a nil context or an event for another resource is refused
// with a clear error and nothing of the batch is accepted, the events
// coming back in a BatchError where the bus could read them; an empty
// batch is accepted and nothing is handled.
func TestProduceBatchBadInput(t *testing.T) {
	t.Parallel()
	foreign := stackBatch(1, 100)
	foreign[70].Resource = "copper"
	own := stackBatch(1, 100)
	for i := range own {
		own[i].Resource = "iron"
	}
	var nilCtx context.Context
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		evs   []mainbus.Event[int]
		want  error // nil: accepted
		count uint64
		back  bool // the refused batch comes back in a BatchError
	}{
		{"nil context", nilCtx, stackBatch(1, 100), mainbus.ErrInvalidOption, 0, false},
		{"event for another resource", context.Background(), foreign, mainbus.ErrUnknownResource,
			0, true},
		{"nil batch", context.Background(), nil, nil, 0, false},
		{"empty batch", context.Background(), []mainbus.Event[int]{}, nil, 0, false},
		{"events naming the bus", context.Background(), own, nil, 100, false},
	} {
		for _, kind := range handlerKinds {
			t.Run(tc.name+"/"+kind.name, func(t *testing.T) {
				t.Parallel()
				var log stackLog
				b := newStackBus(t, kind.stacked, log.handle, nil)
				err := b.ProduceBatch(tc.ctx, slices.Clone(tc.evs))
				if !errors.Is(err, tc.want) {
					t.Errorf("ProduceBatch: %v; want %v", err, tc.want)
				}
				if tc.back {
					stackCheckIDs(t, "handed back", checkBatchError(t, err, tc.want),
						stackIDs(tc.evs))
				}
				policyClose(t, b)
				if got := uint64(len(log.ids())); got != tc.count {
					t.Errorf("handled %d events; want %d", got, tc.count)
				}
				checkTotals(t, b, tc.count, tc.count, 0)
			})
		}
	}
}

// TestProduceBatchStacks checks that a stack handler gets at most
// StackSize events a call, each call's events bound for its conveyor in
// the order given, and that the events bound for one conveyor travel
// together: on one conveyor, a batch of 300 comes in full stacks and one
// of the rest.
func TestProduceBatchStacks(t *testing.T) {
	t.Parallel()
	for _, bal := range stackBalancerCases {
		for _, conveyors := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/%d conveyors", bal.name, conveyors), func(t *testing.T) {
				t.Parallel()
				var log stackLog
				b := newStackBus(t, true, log.handle, nil, mainbus.WithConveyors(conveyors),
					mainbus.WithExactConveyors(), mainbus.WithBuffer(16),
					mainbus.WithBalancer(bal.new()))
				batch := stackBatch(1, 300)
				for i := range batch {
					batch[i].Key = fmt.Sprint("furnace-", i%10)
				}
				if err := b.ProduceBatch(context.Background(), batch); err != nil {
					t.Fatalf("ProduceBatch: %v", err)
				}
				policyClose(t, b)

				var sizes []int
				for _, call := range log.list() {
					sizes = append(sizes, len(call.evs))
					if len(call.evs) == 0 || len(call.evs) > mainbus.StackSize {
						t.Errorf("a call got %d events; want 1 to %d",
							len(call.evs), mainbus.StackSize)
					}
					if ids := stackIDs(call.evs); !slices.IsSorted(ids) {
						t.Errorf("a call got the events %v; want them in the order given", ids)
					}
				}
				checkOnce(t, policyIDs(1, 300), log.ids(), nil)
				if want := []int{64, 64, 64, 64, 44}; conveyors == 1 && !slices.Equal(sizes, want) {
					t.Errorf("calls got %v events; want %v", sizes, want)
				}
				if len(sizes) > 300/mainbus.StackSize+4 {
					t.Errorf("%d calls for 300 events on %d conveyors; want them stacked",
						len(sizes), conveyors)
				}
			})
		}
	}
}

// TestProduceBatchStamps checks the fields the bus fills in: Resource,
// and a zero Time, stamped with one clock reading for the whole batch,
// taken during the call. A Time the caller set is kept.
func TestProduceBatchStamps(t *testing.T) {
	t.Parallel()
	set := time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC)
	for _, kind := range handlerKinds {
		for _, bal := range stackBalancerCases {
			t.Run(kind.name+"/"+bal.name, func(t *testing.T) {
				t.Parallel()
				var log stackLog
				b := newStackBus(t, kind.stacked, log.handle, nil, mainbus.WithBalancer(bal.new()))
				batch := stackBatch(1, 200)
				for i := range batch {
					batch[i].Key = fmt.Sprint("furnace-", i%7)
					if i%3 == 0 {
						batch[i].Time = set.Add(time.Duration(i) * time.Second)
					}
				}
				before := time.Now()
				if err := b.ProduceBatch(context.Background(), batch); err != nil {
					t.Fatalf("ProduceBatch: %v", err)
				}
				after := time.Now()
				policyClose(t, b)

				var stamps []time.Time
				handled := log.events()
				for _, ev := range handled {
					i := int(ev.ID) - 1
					if ev.Resource != "iron" {
						t.Errorf("event %d has Resource %q; want iron", ev.ID, ev.Resource)
					}
					switch {
					case i%3 == 0 && !ev.Time.Equal(batch[i].Time):
						t.Errorf("event %d has Time %v; want the %v given",
							ev.ID, ev.Time, batch[i].Time)
					case i%3 != 0:
						stamps = append(stamps, ev.Time)
					}
				}
				if len(handled) != len(batch) || len(stamps) == 0 {
					t.Fatalf("handled %d events; want %d", len(handled), len(batch))
				}
				for _, s := range stamps {
					if !s.Equal(stamps[0]) {
						t.Fatalf("stamped times %v and %v; want one reading for the batch",
							stamps[0], s)
					}
				}
				if stamps[0].Before(before) || stamps[0].After(after) {
					t.Errorf("stamped %v; want a time during the call, %v to %v",
						stamps[0], before, after)
				}
			})
		}
	}
}

// stackOverwrite overwrites evs, as a caller reusing its slice would.
func stackOverwrite(evs []mainbus.Event[int]) {
	for i := range evs {
		evs[i] = mainbus.Event[int]{ID: 1 << 40, Key: "reused", Value: -1, Resource: "iron"}
	}
}

// TestProduceBatchReuse checks that ProduceBatch keeps nothing of the
// caller's slice: overwritten as soon as the call returns, while the
// handler holds its first events, it changes nothing of what is handled.
func TestProduceBatchReuse(t *testing.T) {
	t.Parallel()
	for _, kind := range handlerKinds {
		for _, bal := range stackBalancerCases {
			t.Run(kind.name+"/"+bal.name, func(t *testing.T) {
				t.Parallel()
				g := newStackGate()
				b := newStackBus(t, kind.stacked, g.handle, g.open, mainbus.WithConveyors(4),
					mainbus.WithBuffer(8), mainbus.WithBalancer(bal.new()))
				batch := stackBatch(1, 300)
				for i := range batch {
					batch[i].Key = fmt.Sprint("furnace-", i%10)
				}
				want := slices.Clone(batch)
				// The stacks fit in the buffers while the gate is shut.
				ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
				defer cancel()
				if err := b.ProduceBatch(ctx, batch); err != nil {
					t.Fatalf("ProduceBatch: %v", err)
				}
				stackOverwrite(batch)
				g.open()
				policyClose(t, b)

				got := g.handled.events()
				checkOnce(t, stackIDs(want), stackIDs(got), nil)
				for _, ev := range got {
					if w := want[ev.ID-1]; ev.Key != w.Key || ev.Value != w.Value {
						t.Fatalf("handled %+v; want key %s, value %d as produced",
							ev, w.Key, w.Value)
					}
				}
			})
		}
	}
}

// TestBatchErrorOwnsEvents checks that the events a BatchError hands back
// are its own: the caller may reuse its slice as soon as ProduceBatch
// returns, so overwriting the slice must not change them.
func TestBatchErrorOwnsEvents(t *testing.T) {
	t.Parallel()
	for _, kind := range handlerKinds {
		for _, bal := range stackBalancerCases {
			t.Run(kind.name+"/"+bal.name+"/closed", func(t *testing.T) {
				t.Parallel()
				var log stackLog
				b := newStackBus(t, kind.stacked, log.handle, nil, mainbus.WithBalancer(bal.new()))
				policyClose(t, b)
				batch := stackBatch(1, 100)
				err := b.ProduceBatch(context.Background(), batch)
				stackOverwrite(batch)
				stackCheckIDs(t, "handed back, after the caller reused its slice",
					checkBatchError(t, err, mainbus.ErrClosed), policyIDs(1, 100))
			})
			t.Run(kind.name+"/"+bal.name+"/full", func(t *testing.T) {
				t.Parallel()
				b, g := newGatedStackBus(t, kind.stacked, mainbus.WithBuffer(1),
					mainbus.WithOverflow(mainbus.Reject), mainbus.WithBalancer(bal.new()))
				policyProduce(t, b, 1)
				g.waitStart(t, 1)
				batch := stackBatch(2, 201)
				err := b.ProduceBatch(context.Background(), batch)
				stackOverwrite(batch)
				stackCheckIDs(t, "handed back, after the caller reused its slice",
					checkBatchError(t, err, mainbus.ErrFull), policyIDs(2+mainbus.StackSize, 201))
			})
		}
	}
}

// TestProduceBatchDrop checks the dropping policies with stacks. The
// handler holds event 1 and the one-slot buffer takes the batch's first
// stack, 2..65. Under DropNewest each later stack finds no room and is
// dropped whole; under DropOldest each displaces the one waiting, so only
// the last stays. Every dropped event goes to the drop handler once and
// is counted; Consumed + Dropped is what was accepted.
func TestProduceBatchDrop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy           mainbus.Overflow
		handled, dropped []uint64
	}{
		{mainbus.DropNewest, policyIDs(1, 65), policyIDs(66, 201)},
		{mainbus.DropOldest, append([]uint64{1}, policyIDs(194, 201)...), policyIDs(2, 193)},
	} {
		for _, kind := range handlerKinds {
			for _, bal := range stackBalancerCases {
				t.Run(fmt.Sprint(tc.policy, "/", kind.name, "/", bal.name), func(t *testing.T) {
					t.Parallel()
					var drops policyLog
					b, g := newGatedStackBus(t, kind.stacked, mainbus.WithBuffer(1),
						mainbus.WithOverflow(tc.policy), mainbus.WithBalancer(bal.new()),
						mainbus.WithDropHandler(drops.add))
					policyProduce(t, b, 1)
					g.waitStart(t, 1)

					if err := b.ProduceBatch(context.Background(), stackBatch(2, 201)); err != nil {
						t.Fatalf("ProduceBatch: %v", err)
					}
					// The drop handler has run by the time ProduceBatch returns.
					stackCheckIDs(t, "dropped", drops.ids(), tc.dropped)

					g.open()
					policyClose(t, b)
					stackCheckIDs(t, "handled", g.handled.ids(), tc.handled)
					stackCheckIDs(t, "dropped after Close", drops.ids(), tc.dropped)
					checkOnce(t, policyIDs(1, 201), g.handled.ids(), drops.ids())
					tot := b.Stats().Total()
					if tot.Dropped != uint64(len(tc.dropped)) || tot.Consumed+tot.Dropped != 201 {
						t.Errorf("stats consumed %d, dropped %d; want %d dropped and 201 in all",
							tot.Consumed, tot.Dropped, len(tc.dropped))
					}
				})
			}
		}
	}
}

// TestStackHandlerFailure checks that an error or a panic of a stack
// handler fails the whole stack: each attempt is reported once, naming
// the stack's first event; the stack is retried together; after the last
// attempt its events go to the dead-letter bus one by one, once each, in
// order; and the conveyor goes on with the next stacks. On one conveyor,
// a batch of 200 makes the stacks 1..64, 65..128, 129..192 and 193..200;
// the handler fails on the second.
func TestStackHandlerFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		panics   bool
		attempts int
		fails    int  // failing attempts at the stack
		dead     bool // with a dead-letter bus
	}{
		{"error, no retry", false, 1, 1, false},
		{"panic, no retry", true, 1, 1, false},
		{"error, retried to success", false, 3, 2, false},
		{"panic, retried to success", true, 3, 2, false},
		{"error, dead-lettered", false, 2, 2, true},
		{"panic, dead-lettered", true, 3, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var dl deadLetters
			var dlBus *mainbus.Bus[mainbus.DeadLetter[int]]
			if tc.dead {
				dlBus = newPolicyBus(t, "slag", dl.handle, nil,
					mainbus.WithConveyors(1), mainbus.WithExactConveyors())
			}
			var (
				calls   stackLog // every attempt
				handled stackLog // the attempts that succeeded
				reports policyErrors
				mu      sync.Mutex
				failed  int
			)
			h := func(ctx context.Context, c int, evs []mainbus.Event[int]) error {
				calls.add(c, evs)
				if evs[0].ID == 65 {
					mu.Lock()
					failed++
					fail := failed <= tc.fails
					mu.Unlock()
					switch {
					case fail && tc.panics:
						panic(fmt.Sprint("stack of ", len(evs), " cold"))
					case fail:
						return fmt.Errorf("stack of %d: %w", len(evs), errSmelt)
					}
				}
				handled.add(c, evs)
				return nil
			}
			opts := []mainbus.Option{
				mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(8),
				mainbus.WithBalancer(mainbus.RoundRobin()), mainbus.WithErrorHandler(reports.add),
			}
			if tc.attempts > 1 {
				opts = append(opts,
					mainbus.WithRetry(tc.attempts, time.Microsecond, time.Microsecond))
			}
			if tc.dead {
				opts = append(opts, mainbus.WithDeadLetter(dlBus))
			}
			b := newStackBus(t, true, h, nil, opts...)
			if err := b.ProduceBatch(context.Background(), stackBatch(1, 200)); err != nil {
				t.Fatalf("ProduceBatch: %v", err)
			}
			policyClose(t, b)

			var firsts []uint64
			for _, call := range calls.list() {
				firsts = append(firsts, call.evs[0].ID)
				if call.evs[0].ID == 65 {
					stackCheckIDs(t, "an attempt at the failing stack", stackIDs(call.evs),
						policyIDs(65, 128))
				}
			}
			want := []uint64{1}
			for range min(tc.fails+1, tc.attempts) {
				want = append(want, 65)
			}
			stackCheckIDs(t, "first events of the calls", firsts, append(want, 129, 193))
			if tc.fails < tc.attempts {
				stackCheckIDs(t, "handled", handled.ids(), policyIDs(1, 200))
			} else {
				stackCheckIDs(t, "handled", handled.ids(),
					slices.Concat(policyIDs(1, 64), policyIDs(129, 200)))
			}

			hes := reports.handlerErrors(t)
			if len(hes) != tc.fails {
				t.Fatalf("error handler got %d reports %v; want one per failed attempt, %d",
					len(hes), hes, tc.fails)
			}
			for i, he := range hes {
				checkReport(t, he, 0, 65, i+1)
				if tc.panics != (he.Panic != nil) || !tc.panics && !errors.Is(he, errSmelt) {
					t.Errorf("report %d: %v, Panic %v; want a panic: %v",
						i, he, he.Panic, tc.panics)
				}
			}

			if tc.dead {
				policyClose(t, dlBus)
				var buried []uint64
				for _, d := range dl.list() {
					buried = append(buried, d.ID)
					var he *mainbus.HandlerError
					if d.ID != d.Value.Event.ID || d.Value.Attempts != tc.attempts ||
						!errors.As(d.Value.Err, &he) || he.EventID != 65 ||
						he.Attempt != tc.attempts {
						t.Errorf("dead letter %d: %+v; want the event, %d attempts, last report",
							d.ID, d.Value, tc.attempts)
					}
				}
				stackCheckIDs(t, "dead-lettered", buried, policyIDs(65, 128))
			}

			s := b.Stats().Total()
			want64 := func(ok bool) uint64 {
				if ok {
					return 64
				}
				return 0
			}
			wantStats := mainbus.ConveyorStats{
				Conveyor: -1, Produced: 200, Consumed: 200,
				Retried:      uint64(min(tc.fails, tc.attempts-1)),
				DeadLettered: want64(tc.dead),
				Capacity:     8,
			}
			if tc.panics {
				wantStats.Panicked = uint64(tc.fails)
			} else {
				wantStats.Failed = uint64(tc.fails)
			}
			if counts(s) != wantStats {
				t.Errorf("stats %+v; want %+v", s, wantStats)
			}
		})
	}
}

// TestStackGoexit checks a handler that calls runtime.Goexit while its
// conveyor delivers a stack: the call is reported as a panic, retried as
// configured, and the rest of the stack and the stacks after it are still
// delivered, exactly once and in order. On one conveyor, a batch of 150
// makes the stacks 1..64, 65..128 and 129..150. For a Handler the events
// named are those whose handler exits; for a StackHandler, the first
// events of the stacks whose handler exits.
func TestStackGoexit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		stacked  bool
		attempts int
		goexits  map[uint64]int // attempts that exit, by event
	}{
		{"Handler/mid-stack, no retry", false, 1, map[uint64]int{70: 1}},
		{"Handler/mid-stack, retried", false, 2, map[uint64]int{70: 1}},
		{"Handler/mid-stack twice, retried", false, 3, map[uint64]int{70: 2}},
		{"Handler/two events of a stack, retried", false, 2, map[uint64]int{70: 1, 72: 1}},
		{"Handler/two events of a stack, no retry", false, 1, map[uint64]int{70: 1, 72: 1}},
		{"Handler/last of a stack, no retry", false, 1, map[uint64]int{64: 1}},
		{"Handler/first of a stack, retried", false, 2, map[uint64]int{65: 1}},
		{"StackHandler/no retry", true, 1, map[uint64]int{65: 1}},
		{"StackHandler/retried", true, 2, map[uint64]int{65: 1}},
		{"StackHandler/twice, retried", true, 3, map[uint64]int{65: 2}},
		{"StackHandler/two stacks, retried", true, 2, map[uint64]int{65: 1, 129: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				mu      sync.Mutex
				tries   = map[uint64]int{}
				handled stackLog
				reports policyErrors
			)
			h := func(_ context.Context, c int, evs []mainbus.Event[int]) error {
				mu.Lock()
				tries[evs[0].ID]++
				exit := tries[evs[0].ID] <= tc.goexits[evs[0].ID]
				mu.Unlock()
				if exit {
					runtime.Goexit()
				}
				handled.add(c, evs)
				return nil
			}
			b := newStackBus(t, tc.stacked, h, nil, mainbus.WithConveyors(1),
				mainbus.WithExactConveyors(), mainbus.WithBuffer(8),
				mainbus.WithBalancer(mainbus.RoundRobin()), mainbus.WithErrorHandler(reports.add),
				mainbus.WithRetry(tc.attempts, time.Microsecond, time.Microsecond))
			if err := b.ProduceBatch(context.Background(), stackBatch(1, 150)); err != nil {
				t.Fatalf("ProduceBatch: %v", err)
			}
			policyClose(t, b)

			// What is lost: the events, or stacks, whose every attempt
			// exited.
			var want []uint64
			var panicked uint64
			stack := uint64(0)
			for id := uint64(1); id <= 150; id++ {
				if tc.stacked && (id-1)%mainbus.StackSize == 0 {
					stack = id
				}
				key := id
				if tc.stacked {
					key = stack
				}
				if tc.goexits[key] < tc.attempts {
					want = append(want, id)
				}
			}
			stackCheckIDs(t, "handled", handled.ids(), want)

			hes := reports.handlerErrors(t)
			var got []string
			for _, he := range hes {
				got = append(got, fmt.Sprintf("%d#%d", he.EventID, he.Attempt))
				if !isGoexit(he.Panic) || he.Resource != "iron" || he.Conveyor != 0 {
					t.Errorf("report %v, Panic %v; want one of iron L0 naming runtime.Goexit",
						he, he.Panic)
				}
			}
			var wantReports []string
			for _, id := range slices.Sorted(maps.Keys(tc.goexits)) {
				for a := range min(tc.goexits[id], tc.attempts) {
					wantReports = append(wantReports, fmt.Sprintf("%d#%d", id, a+1))
					panicked++
				}
			}
			if !slices.Equal(got, wantReports) {
				t.Errorf("reports of event#attempt %v; want %v", got, wantReports)
			}
			if s := b.Stats().Total(); s.Consumed != 150 || s.Panicked != panicked {
				t.Errorf("stats consumed %d, panicked %d; want 150 and %d",
					s.Consumed, s.Panicked, panicked)
			}
		})
	}
}

// TestProduceBatchDrainError checks a Close whose deadline passes while
// stacks wait: the handlers hold their first call until the drain is cut
// short, and the DrainError then holds every event not handled, each
// conveyor's in the order produced, so that what each conveyor handled
// followed by what it handed back is what was produced for it.
func TestProduceBatchDrainError(t *testing.T) {
	t.Parallel()
	for _, kind := range handlerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			const conveyors = 2
			started := make(chan int, 4096)
			var handled stackLog
			h := func(ctx context.Context, c int, evs []mainbus.Event[int]) error {
				handled.add(c, evs)
				started <- c
				<-ctx.Done() // held until Close cuts the drain short
				return nil
			}
			b := newStackBus(t, kind.stacked, h, nil, mainbus.WithConveyors(conveyors),
				mainbus.WithExactConveyors(), mainbus.WithBuffer(16),
				mainbus.WithBalancer(mainbus.KeyHash()))
			batch := stackBatch(1, 300)
			for i := range batch {
				batch[i].Key = fmt.Sprint("furnace-", i%10)
			}
			// The stacks fit in the buffers: nothing waits, unless the
			// bus fails to stack the batch.
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			if err := b.ProduceBatch(ctx, batch); err != nil {
				t.Fatalf("ProduceBatch: %v", err)
			}
			for _, id := range policyIDs(301, 305) {
				ev := policyEvent(id)
				ev.Key = fmt.Sprint("furnace-", id%10)
				if err := b.Produce(ctx, ev); err != nil {
					t.Fatalf("Produce %d: %v", id, err)
				}
				batch = append(batch, ev)
			}
			for range conveyors {
				recv(t, started, "handler start")
			}

			short, cancelShort := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancelShort()
			err := b.Close(short)
			var de *mainbus.DrainError[int]
			if !errors.As(err, &de) || !errors.Is(err, context.DeadlineExceeded) ||
				de.Resource != "iron" {
				t.Fatalf("Close: %T %v; want an iron *DrainError wrapping DeadlineExceeded",
					err, err)
			}

			lane := func(ev mainbus.Event[int]) int {
				return mainbus.KeyHash().Pick(ev.Key, fixedLanes(conveyors))
			}
			var want, got [conveyors][]uint64
			for _, ev := range batch {
				want[lane(ev)] = append(want[lane(ev)], ev.ID)
			}
			for _, call := range handled.list() {
				got[call.conveyor] = append(got[call.conveyor], stackIDs(call.evs)...)
			}
			for c := range conveyors {
				if len(got[c]) == 0 || len(got[c]) == len(want[c]) {
					t.Errorf("L%d handled %d of its %d events; want its first call only",
						c, len(got[c]), len(want[c]))
				}
			}
			for _, ev := range de.Undelivered {
				if ev.Resource != "iron" || ev.Time.IsZero() || ev.Value != int(ev.ID)*10 {
					t.Errorf("handed back %+v; want the event as produced, with resource and time",
						ev)
				}
				got[lane(ev)] = append(got[lane(ev)], ev.ID)
			}
			for c := range conveyors {
				stackCheckIDs(t, fmt.Sprintf("L%d handled, then handed back", c), got[c], want[c])
			}
		})
	}
}

// TestProduceBatchResizeKeepsOrder checks that a batch whose producer
// waits on a full conveyor when a Resize comes keeps its order on the new
// conveyors. Of two conveyors, L0 is held: its handler has event 1, its
// one-slot buffer event 2. The batch is a stack of 64 for L0, events 3
// and 5 to 67, with event 4 for L1 among them; the producer waits to place
// the full stack on L0. A Resize to one conveyor then moves the batch
// there: the producer's events, now all on one conveyor, must be handled
// in the order given.
func TestProduceBatchResizeKeepsOrder(t *testing.T) {
	t.Parallel()
	k0, k1 := stackKeys(t)
	for _, kind := range handlerKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				g := newStackGate()
				b := newStackBus(t, kind.stacked, g.handle, g.open, mainbus.WithConveyors(2),
					mainbus.WithExactConveyors(), mainbus.WithBuffer(1),
					mainbus.WithBalancer(mainbus.KeyHash()))
				for _, id := range []uint64{1, 2} {
					if err := b.Produce(context.Background(),
						mainbus.Event[int]{ID: id, Key: k0}); err != nil {
						t.Fatalf("Produce: %v", err)
					}
					if id == 1 {
						g.waitStart(t, 1)
					}
				}
				batch := []mainbus.Event[int]{{ID: 3, Key: k0}, {ID: 4, Key: k1}}
				for id := range uint64(mainbus.StackSize - 1) {
					batch = append(batch, mainbus.Event[int]{ID: 5 + id, Key: k0})
				}
				produced := make(chan error, 1)
				go func() { produced <- b.ProduceBatch(context.Background(), batch) }()
				synctest.Wait()

				resized := make(chan error, 1)
				go func() { resized <- b.Resize(context.Background(), 1) }()
				synctest.Wait()
				g.open()
				if err := recv(t, produced, "ProduceBatch result"); err != nil {
					t.Fatalf("ProduceBatch: %v", err)
				}
				if err := recv(t, resized, "Resize result"); err != nil {
					t.Fatalf("Resize: %v", err)
				}
				policyClose(t, b)
				stackCheckIDs(t, "handled", g.handled.ids(), policyIDs(1, 3+mainbus.StackSize))
			})
		})
	}
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// TestProduceBatchAllocs checks that batching allocates nothing in the
// steady state: a ProduceBatch into a running bus, handler calls
// included, reuses the bus's pooled stacks, whatever the balancer and
// however large the batch. It does not run in parallel, since
// AllocsPerRun counts the allocations of every goroutine.
func TestProduceBatchAllocs(t *testing.T) {
	if raceEnabled() {
		t.Skip("under the race detector sync.Pool drops a quarter of what is put back, at random")
	}
	stackNop := func(context.Context, int, []mainbus.Event[int]) error { return nil }
	for _, tc := range []struct {
		name      string
		balancer  func() mainbus.Balancer
		conveyors int
		events    int
	}{
		{"RoundRobin", mainbus.RoundRobin, 4, 64},
		{"Random", mainbus.Random, 4, 64},
		{"LeastLoaded", mainbus.LeastLoaded, 4, 64},
		{"KeyHash", mainbus.KeyHash, 4, 64},
		{"JumpHash", mainbus.JumpHash, 4, 64},
		{"RoundRobin, 8192 events", mainbus.RoundRobin, 1, 8192},
		{"KeyHash, 8192 events", mainbus.KeyHash, 1, 8192},
	} {
		for _, kind := range handlerKinds {
			t.Run(kind.name+"/"+tc.name, func(t *testing.T) {
				opts := []mainbus.Option{mainbus.WithBalancer(tc.balancer()),
					mainbus.WithConveyors(tc.conveyors), mainbus.WithExactConveyors()}
				// A Handler of newStackBus wraps each event in a slice: give
				// New one of its own.
				var b *mainbus.Bus[int]
				if kind.stacked {
					b = newStackBus(t, true, stackNop, nil, opts...)
				} else {
					b = newPolicyBus(t, "iron", nop, nil, opts...)
				}
				batch := make([]mainbus.Event[int], tc.events)
				for i := range batch {
					batch[i].Key = fmt.Sprint("furnace-", i%8)
				}
				ctx := context.Background()
				produce := func() {
					if err := b.ProduceBatch(ctx, batch); err != nil {
						t.Fatalf("ProduceBatch: %v", err)
					}
				}
				runs := 64000 / tc.events
				for range 2 * runs {
					produce() // fill the pool
				}
				if n := testing.AllocsPerRun(runs, produce); n != 0 {
					t.Errorf("ProduceBatch of %d events allocates %v times; want 0", tc.events, n)
				}
			})
		}
	}
}
