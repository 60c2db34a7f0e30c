package mainbus_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"pgregory.net/rapid"
)

// propOp is one thing a producer does in the property test.
type propOp int

const (
	propProduce  propOp = iota // Produce with context.Background()
	propTry                    // TryProduce
	propCanceled               // Produce with a context already canceled
	propDeadline               // Produce with a context ending in microseconds
)

func (o propOp) String() string {
	return [...]string{"Produce", "TryProduce", "Produce(canceled)", "Produce(deadline)"}[o]
}

// propValue is the payload: who produced the event, and its place in
// that producer's sequence.
type propValue struct {
	producer int
	seq      int
}

// propPlan is one drawn scenario.
type propPlan struct {
	conveyors int
	exact     bool
	buffer    int
	balancer  string
	overflow  mainbus.Overflow
	ops       [][]propOp // per producer

	failEvery  uint64 // handler fails on IDs divisible by it; 0 never
	panicEvery uint64 // handler panics on IDs divisible by it; 0 never
	yield      bool   // handler yields the processor, to mix schedules

	closeInHandler uint64        // ID whose handler calls Close; 0 none
	closeAt        int           // ops done before Close is called
	closeTimeout   time.Duration // negative: Close without a deadline
	closers        int           // goroutines calling Close at once
}

func propDraw(rt *rapid.T) propPlan {
	p := propPlan{
		conveyors: rapid.IntRange(1, 6).Draw(rt, "conveyors"),
		exact:     rapid.Bool().Draw(rt, "exact"),
		buffer:    rapid.IntRange(0, 4).Draw(rt, "buffer"),
		balancer: rapid.SampledFrom([]string{
			"Random", "SeededRandom", "RoundRobin", "KeyHash", "LeastLoaded",
		}).Draw(rt, "balancer"),
		overflow: rapid.SampledFrom([]mainbus.Overflow{mainbus.Block, mainbus.Reject}).Draw(rt, "overflow"),
	}
	producers := rapid.IntRange(1, 8).Draw(rt, "producers")
	total := 0
	for i := range producers {
		ops := rapid.SliceOfN(rapid.SampledFrom([]propOp{
			propProduce, propTry, propCanceled, propDeadline,
		}), 0, 40).Draw(rt, fmt.Sprintf("ops of producer %d", i))
		p.ops = append(p.ops, ops)
		total += len(ops)
	}
	p.failEvery = rapid.Uint64Range(0, 5).Draw(rt, "failEvery")
	p.panicEvery = rapid.Uint64Range(0, 7).Draw(rt, "panicEvery")
	p.yield = rapid.Bool().Draw(rt, "yield")
	if rapid.IntRange(0, 3).Draw(rt, "close in a handler") == 0 && total > 0 {
		pr := rapid.IntRange(0, producers-1).Draw(rt, "producer whose event closes")
		if n := len(p.ops[pr]); n > 0 {
			p.closeInHandler = propID(pr, rapid.IntRange(0, n-1).Draw(rt, "event that closes"))
		}
	}
	p.closeAt = rapid.IntRange(0, total).Draw(rt, "closeAt")
	p.closeTimeout = rapid.SampledFrom([]time.Duration{
		-1, -1, 0, 0, 20 * time.Microsecond, 200 * time.Microsecond, time.Millisecond,
	}).Draw(rt, "closeTimeout")
	p.closers = rapid.IntRange(1, 2).Draw(rt, "closers")
	return p
}

// propID is the event ID of op i of producer p; IDs are unique and
// never 0.
func propID(p, i int) uint64 { return uint64(p*1000 + i + 1) }

// propKey is the key of event id: unique, so the picked conveyor of each
// event can be looked up by its key.
func propKey(id uint64) string { return strconv.FormatUint(id, 10) }

var errPropHandler = errors.New("handler failed on purpose")

// propHandled is one call of the handler.
type propHandled struct {
	id    uint64
	value propValue
}

// propResult is what a run of a plan gives.
type propResult struct {
	bus       *mainbus.Bus[propValue]
	errs      [][]error // per producer, per op
	order     [][]int   // per producer, per op: how many ops had ended with it
	closeErrs []error
	handled   [][]propHandled // per conveyor, in handler order
	picks     map[string]int  // key -> conveyor picked
	hooks     []*mainbus.HandlerError
	inHandler []error // results of Close called inside a handler
	others    []string
}

func propRun(rt *rapid.T, p propPlan) *propResult {
	var (
		mu    sync.Mutex
		res   = &propResult{picks: map[string]int{}}
		inner mainbus.Balancer
	)
	switch p.balancer {
	case "Random":
		inner = mainbus.Random()
	case "SeededRandom":
		inner = mainbus.SeededRandom(uint64(p.conveyors))
	case "RoundRobin":
		inner = mainbus.RoundRobin()
	case "KeyHash":
		inner = mainbus.KeyHash()
	case "LeastLoaded":
		inner = mainbus.LeastLoaded()
	}
	record := mainbus.BalancerFunc(func(key string, c mainbus.Conveyors) int {
		i := inner.Pick(key, c)
		mu.Lock()
		if _, dup := res.picks[key]; dup {
			res.others = append(res.others, fmt.Sprintf("balancer called twice for key %s", key))
		}
		res.picks[key] = i
		mu.Unlock()
		return i
	})

	var bus *mainbus.Bus[propValue]
	h := func(ctx context.Context, c int, ev mainbus.Event[propValue]) error {
		mu.Lock()
		if c < 0 || c >= len(res.handled) {
			res.others = append(res.others, fmt.Sprintf("handler called with conveyor %d", c))
			mu.Unlock()
			return nil
		}
		res.handled[c] = append(res.handled[c], propHandled{id: ev.ID, value: ev.Value})
		mu.Unlock()
		if p.yield {
			runtime.Gosched()
		}
		if ev.ID == p.closeInHandler {
			err := bus.Close(context.Background())
			mu.Lock()
			res.inHandler = append(res.inHandler, err)
			mu.Unlock()
		}
		if p.panicEvery > 0 && ev.ID%p.panicEvery == 0 {
			panic(fmt.Sprintf("handler panics on event %d", ev.ID))
		}
		if p.failEvery > 0 && ev.ID%p.failEvery == 0 {
			return fmt.Errorf("event %d: %w", ev.ID, errPropHandler)
		}
		return nil
	}
	opts := []mainbus.Option{
		mainbus.WithConveyors(p.conveyors), mainbus.WithBuffer(p.buffer),
		mainbus.WithBalancer(record), mainbus.WithOverflow(p.overflow),
		mainbus.WithErrorHandler(func(err error) {
			var he *mainbus.HandlerError
			mu.Lock()
			defer mu.Unlock()
			if !errors.As(err, &he) {
				res.others = append(res.others, fmt.Sprintf("error hook got %T %v", err, err))
				return
			}
			res.hooks = append(res.hooks, he)
		}),
	}
	if p.exact {
		opts = append(opts, mainbus.WithExactConveyors())
	}
	bus, err := mainbus.New("iron", h, opts...)
	if err != nil {
		rt.Fatalf("New: %v", err)
	}
	res.bus = bus
	res.handled = make([][]propHandled, bus.Conveyors())

	// start opens when closeAt ops are done; then the closers call Close
	// while the producers go on.
	start := make(chan struct{})
	var done atomic.Int64
	if p.closeAt == 0 {
		close(start)
	}
	res.closeErrs = make([]error, p.closers)
	var closers sync.WaitGroup
	for i := range p.closers {
		closers.Go(func() {
			<-start
			ctx := context.Background()
			if i == 0 && p.closeTimeout >= 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, p.closeTimeout)
				defer cancel()
			}
			res.closeErrs[i] = bus.Close(ctx)
		})
	}

	res.errs = make([][]error, len(p.ops))
	res.order = make([][]int, len(p.ops))
	var producers sync.WaitGroup
	for pr, ops := range p.ops {
		res.errs[pr] = make([]error, len(ops))
		res.order[pr] = make([]int, len(ops))
		producers.Go(func() {
			for i, op := range ops {
				id := propID(pr, i)
				ev := mainbus.Event[propValue]{ID: id, Key: propKey(id), Value: propValue{pr, i}}
				res.errs[pr][i] = propDo(bus, op, i, ev)
				n := done.Add(1)
				res.order[pr][i] = int(n)
				if n == int64(p.closeAt) {
					close(start)
				}
			}
		})
	}
	producers.Wait()
	closers.Wait()
	return res
}

// propDo does op with ev on bus.
func propDo(bus *mainbus.Bus[propValue], op propOp, i int, ev mainbus.Event[propValue]) error {
	switch op {
	case propTry:
		return bus.TryProduce(ev)
	case propCanceled:
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return bus.Produce(ctx, ev)
	case propDeadline:
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%4)*25*time.Microsecond)
		defer cancel()
		return bus.Produce(ctx, ev)
	}
	return bus.Produce(context.Background(), ev)
}

// propAllowed lists the errors op may return under overflow, besides nil.
func propAllowed(op propOp, overflow mainbus.Overflow) []error {
	if op == propTry || overflow == mainbus.Reject {
		return []error{mainbus.ErrClosed, mainbus.ErrFull}
	}
	switch op {
	case propCanceled:
		return []error{mainbus.ErrClosed, context.Canceled}
	case propDeadline:
		return []error{mainbus.ErrClosed, context.DeadlineExceeded}
	}
	return []error{mainbus.ErrClosed}
}

func TestPropertyAcceptedHandledOnce(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		p := propDraw(rt)
		res := propRun(rt, p)
		propCheckErrors(rt, p, res)
		propCheckClose(rt, p, res)
		propCheckDelivery(rt, p, res)
		propCheckStats(rt, p, res)
	})
}

// propCheckErrors checks what every Produce and TryProduce returned.
func propCheckErrors(rt *rapid.T, p propPlan, res *propResult) {
	for _, o := range res.others {
		rt.Error(o)
	}
	for pr, ops := range p.ops {
		for i, op := range ops {
			err := res.errs[pr][i]
			if err == nil {
				continue
			}
			id := propID(pr, i)
			allowed := propAllowed(op, p.overflow)
			ok := false
			for _, a := range allowed {
				ok = ok || errors.Is(err, a)
			}
			if !ok {
				rt.Errorf("event %d: %v = %v, want nil or one of %v", id, op, err, allowed)
				continue
			}
			if errors.Is(err, mainbus.ErrClosed) {
				// An op that ended before start opened ended before any
				// Close was called, unless a handler called it.
				if res.order[pr][i] <= p.closeAt && p.closeInHandler == 0 {
					rt.Errorf("event %d: %v = %v, though no Close had been called yet", id, op, err)
				}
				continue
			}
			// ErrFull and context errors say which conveyor refused.
			var pe *mainbus.ProduceError
			if !errors.As(err, &pe) {
				rt.Errorf("event %d: %v = %v (%T), want a *ProduceError", id, op, err, err)
				continue
			}
			if c, picked := res.picks[propKey(id)]; pe.Resource != "iron" || !picked || pe.Conveyor != c {
				rt.Errorf("event %d: %v = %+v, want resource iron and the picked conveyor %d (picked: %v)",
					id, op, pe, c, picked)
			}
		}
	}
}

// propCheckClose checks the results of Close and the state after it.
func propCheckClose(rt *rapid.T, p propPlan, res *propResult) {
	first := res.closeErrs[0]
	for i, err := range res.closeErrs[1:] {
		if err != first {
			rt.Errorf("Close %d = %v, Close 0 = %v; every Close must return the same result", i+1, err, first)
		}
	}
	for _, err := range res.inHandler {
		if err != nil {
			rt.Errorf("Close inside a handler = %v, want nil", err)
		}
	}
	if first != nil {
		var de *mainbus.DrainError[propValue]
		switch {
		case p.closeTimeout < 0:
			rt.Errorf("Close without a deadline = %v, want nil", first)
		case !errors.As(first, &de):
			rt.Errorf("Close = %v (%T), want nil or a *DrainError", first, first)
		case !errors.Is(first, context.DeadlineExceeded):
			rt.Errorf("Close = %v, want it to wrap context.DeadlineExceeded", first)
		case de.Resource != "iron" || len(de.Undelivered) == 0:
			rt.Errorf("DrainError = %+v, want resource iron and at least one event", de)
		}
	}
	select {
	case <-res.bus.Done():
	default:
		rt.Error("Done is not closed after Close returned")
	}
	ev := mainbus.Event[propValue]{ID: 1 << 40}
	if err := res.bus.Produce(context.Background(), ev); !errors.Is(err, mainbus.ErrClosed) {
		rt.Errorf("Produce after Close = %v, want ErrClosed", err)
	}
	if err := res.bus.TryProduce(ev); !errors.Is(err, mainbus.ErrClosed) {
		rt.Errorf("TryProduce after Close = %v, want ErrClosed", err)
	}
}

// propCheckDelivery checks that each accepted event was handled once or
// handed back once, that no refused event was, and the per-conveyor order
// of each producer.
func propCheckDelivery(rt *rapid.T, p propPlan, res *propResult) {
	var undelivered []mainbus.Event[propValue]
	var de *mainbus.DrainError[propValue]
	if errors.As(res.closeErrs[0], &de) {
		undelivered = de.Undelivered
	}
	handled := map[uint64]int{}
	back := map[uint64]int{}
	lanes := make([][]propHandled, len(res.handled))
	for c, evs := range res.handled {
		for _, h := range evs {
			handled[h.id]++
			if picked, ok := res.picks[propKey(h.id)]; !ok || picked != c {
				rt.Errorf("event %d handled on conveyor %d, balancer picked %d (%v)", h.id, c, picked, ok)
			}
		}
		lanes[c] = append(lanes[c], evs...)
	}
	for _, ev := range undelivered {
		back[ev.ID]++
		if ev.Resource != "iron" || ev.Key != propKey(ev.ID) || ev.Time.IsZero() {
			rt.Errorf("undelivered event %+v: want resource iron, its key, and a time", ev)
		}
		if c, ok := res.picks[ev.Key]; ok {
			lanes[c] = append(lanes[c], propHandled{id: ev.ID, value: ev.Value})
		}
	}

	known := map[uint64]bool{}
	for pr, ops := range p.ops {
		for i, op := range ops {
			id := propID(pr, i)
			known[id] = true
			err := res.errs[pr][i]
			h, b := handled[id], back[id]
			switch {
			case err == nil && h+b != 1:
				rt.Errorf("event %d: %v accepted it, then handled %d times and handed back %d times; "+
					"want exactly one of the two, once", id, op, h, b)
			case err != nil && h+b != 0:
				rt.Errorf("event %d: %v refused it (%v), yet handled %d times, handed back %d times",
					id, op, err, h, b)
			}
		}
	}
	for id := range handled {
		if !known[id] {
			rt.Errorf("handled event %d was never produced", id)
		}
	}
	for id := range back {
		if !known[id] {
			rt.Errorf("undelivered event %d was never produced", id)
		}
	}

	// Per conveyor, handled then handed back: each producer's events in
	// the order it produced them.
	for c, evs := range lanes {
		last := map[int]int{}
		for _, h := range evs {
			if prev, ok := last[h.value.producer]; ok && h.value.seq <= prev {
				rt.Errorf("conveyor %d: producer %d's event seq %d came after seq %d",
					c, h.value.producer, h.value.seq, prev)
			}
			last[h.value.producer] = h.value.seq
		}
	}
}

// propCheckStats checks the counters and the error hook against what
// the handler saw.
func propCheckStats(rt *rapid.T, p propPlan, res *propResult) {
	s := res.bus.Stats()
	wantLanes := p.conveyors
	if !p.exact && wantLanes%2 == 1 {
		wantLanes++
	}
	if len(s.Conveyors) != wantLanes || res.bus.Conveyors() != wantLanes {
		rt.Fatalf("bus has %d conveyors (Stats %d), want %d", res.bus.Conveyors(), len(s.Conveyors), wantLanes)
	}
	accepted := make([]uint64, wantLanes)
	rejected := make([]uint64, wantLanes)
	for pr, ops := range p.ops {
		for i := range ops {
			c := res.picks[propKey(propID(pr, i))]
			switch err := res.errs[pr][i]; {
			case err == nil:
				accepted[c]++
			case errors.Is(err, mainbus.ErrFull):
				rejected[c]++
			}
		}
	}
	var wantHooks int
	for c, cs := range s.Conveyors {
		var failed, panicked uint64
		for _, h := range res.handled[c] {
			switch {
			case p.panicEvery > 0 && h.id%p.panicEvery == 0:
				panicked++
			case p.failEvery > 0 && h.id%p.failEvery == 0:
				failed++
			}
		}
		wantHooks += int(failed + panicked)
		want := mainbus.ConveyorStats{
			Conveyor: c, Produced: accepted[c], Consumed: uint64(len(res.handled[c])),
			Failed: failed, Panicked: panicked, Rejected: rejected[c],
			Depth: 0, Capacity: p.buffer,
		}
		if counts(cs) != want {
			rt.Errorf("Stats of conveyor %d = %+v, want %+v", c, cs, want)
		}
		// Every attempt that returned is timed; there are no retries here.
		if n := cs.HandlerTime.Count; n != cs.Consumed-cs.Panicked {
			rt.Errorf("conveyor %d timed %d handler calls; want %d, consumed less panicked",
				c, n, cs.Consumed-cs.Panicked)
		}
		if cs.Blocked != 0 {
			rt.Errorf("conveyor %d has %d producers blocked after Close; want 0", c, cs.Blocked)
		}
	}

	// A slot taken before a cut-short Close counts its wait in queue even
	// if its event is handed back.
	var back uint64
	var de *mainbus.DrainError[propValue]
	if errors.As(res.closeErrs[0], &de) {
		back = uint64(len(de.Undelivered))
	}
	if tot := s.Total(); tot.QueueTime.Count < tot.Consumed ||
		tot.QueueTime.Count > tot.Consumed+back {
		rt.Errorf("%d waits in queue timed; want %d consumed, plus at most %d handed back",
			tot.QueueTime.Count, tot.Consumed, back)
	}

	if len(res.hooks) != wantHooks {
		rt.Errorf("error hook called %d times, want %d", len(res.hooks), wantHooks)
	}
	for _, he := range res.hooks {
		isPanic := p.panicEvery > 0 && he.EventID%p.panicEvery == 0
		ok := he.Resource == "iron" && he.Conveyor == res.picks[propKey(he.EventID)]
		if isPanic {
			ok = ok && he.Panic != nil && he.Err == nil
		} else {
			ok = ok && he.Panic == nil && errors.Is(he, errPropHandler)
		}
		if !ok {
			rt.Errorf("error hook got %+v for event %d (panic expected: %v)", he, he.EventID, isPanic)
		}
	}
}
