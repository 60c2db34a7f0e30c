package mainbus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mainbus-go/mainbus"
)

// waitLimit bounds every wait in these tests, so that a broken promise
// fails a test instead of hanging it. Inside a synctest bubble the clock
// is fake: the limit passes at once, but only when every goroutine of the
// bubble is stuck.
const waitLimit = 10 * time.Second

// newBus builds the bus "iron" and closes it when the test ends.
func newBus[T any](t *testing.T, h mainbus.Handler[T], opts ...mainbus.Option) *mainbus.Bus[T] {
	t.Helper()
	b, err := mainbus.New("iron", h, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { closeBus(b) })
	return b
}

// closeBus closes b, cutting the drain short if it takes longer than
// waitLimit. Handlers of these tests watch their context, so it returns.
func closeBus[T any](b *mainbus.Bus[T]) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_ = b.Close(ctx)
}

// newGate returns a channel for handlers to wait on and the function that
// opens it. The gate opens at the latest when the test ends.
func newGate(t *testing.T) (<-chan struct{}, func()) {
	t.Helper()
	ch := make(chan struct{})
	open := sync.OnceFunc(func() { close(ch) })
	t.Cleanup(open)
	return ch, open
}

// hold keeps a handler until gate opens or its context ends.
func hold(ctx context.Context, gate <-chan struct{}) {
	select {
	case <-gate:
	case <-ctx.Done():
	}
}

// recv returns the next value of ch, failing the test if none comes
// within waitLimit.
func recv[V any](t *testing.T, ch <-chan V, what string) V {
	t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("no %s within %v", what, waitLimit)
		panic("unreachable")
	}
}

// firstIDs returns the IDs 0 to n-1.
func firstIDs(n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = uint64(i)
	}
	return s
}

// produceIDs produces one event per ID on b, in order, failing the test
// unless each is accepted.
func produceIDs(t *testing.T, b *mainbus.Bus[int], ids ...uint64) {
	t.Helper()
	for _, id := range ids {
		if err := b.Produce(context.Background(), mainbus.Event[int]{ID: id}); err != nil {
			t.Fatalf("Produce %d: %v", id, err)
		}
	}
}

// idSet is a set of event IDs that handlers fill from many goroutines.
type idSet struct {
	mu  sync.Mutex
	ids map[uint64]int
}

// add counts one more sighting of id.
func (s *idSet) add(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = make(map[uint64]int)
	}
	s.ids[id]++
}

// snapshot returns a copy of the counts.
func (s *idSet) snapshot() map[uint64]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[uint64]int, len(s.ids))
	for id, n := range s.ids {
		m[id] = n
	}
	return m
}

// sorted returns the IDs of s in increasing order.
func (s *idSet) sorted() []uint64 {
	m := s.snapshot()
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// checkExactlyOnce fails the test unless handled holds every accepted ID
// exactly once and nothing else.
func checkExactlyOnce(t *testing.T, accepted []uint64, handled map[uint64]int) {
	t.Helper()
	want := make(map[uint64]bool, len(accepted))
	for _, id := range accepted {
		if want[id] {
			t.Fatalf("event %d accepted twice; the test sends each ID once", id)
		}
		want[id] = true
	}
	var missing, twice, extra int
	for _, id := range accepted {
		switch n := handled[id]; {
		case n == 0:
			if missing++; missing <= 3 {
				t.Errorf("accepted event %d never handled", id)
			}
		case n > 1:
			if twice++; twice <= 3 {
				t.Errorf("accepted event %d handled %d times", id, n)
			}
		}
	}
	for id := range handled {
		if !want[id] {
			if extra++; extra <= 3 {
				t.Errorf("event %d handled but its Produce did not accept it", id)
			}
		}
	}
	if missing+twice+extra > 0 {
		t.Errorf("of %d accepted events: %d never handled, %d handled more than once; "+
			"%d handled without being accepted", len(accepted), missing, twice, extra)
	}
}

// Promise 1: every event Produce accepted reaches the handler exactly
// once, and events of one producer that share a conveyor are handled in
// the order they were produced, whatever the balancer.
func TestProduceDeliversAcceptedEventsOnceInOrder(t *testing.T) {
	t.Parallel()
	const (
		producers   = 8
		perProducer = 2000
		conveyors   = 4
	)
	cases := []struct {
		name     string
		balancer mainbus.Balancer
		byKey    bool // every event of one key must land on one conveyor
	}{
		{"key-hash", mainbus.KeyHash(), true},
		{"round-robin", mainbus.RoundRobin(), false},
		{"random", mainbus.Random(), false},
		{"least-loaded", mainbus.LeastLoaded(), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				handled [producers][perProducer]atomic.Int32
				// next[c][p] is one past the last sequence number of
				// producer p handled on conveyor c. Only the consumer of
				// c touches next[c].
				next [conveyors][producers]int
				// home[p] is 1 + the conveyor of p's first handled event.
				home       [producers]atomic.Int32
				outOfOrder atomic.Int64
			)
			h := func(_ context.Context, c int, ev mainbus.Event[int]) error {
				p, seq := int(ev.ID/perProducer), ev.Value
				if c < 0 || c >= conveyors {
					t.Errorf("event %d handed over as conveyor %d; want 0 to %d",
						ev.ID, c, conveyors-1)
					return nil
				}
				handled[p][seq].Add(1)
				if seq < next[c][p] && outOfOrder.Add(1) <= 3 {
					t.Errorf("conveyor %d handled event %d of producer %d after its event %d",
						c, seq, p, next[c][p]-1)
				}
				next[c][p] = max(next[c][p], seq+1)
				if tc.byKey {
					home[p].CompareAndSwap(0, int32(c+1))
					if want := home[p].Load() - 1; int32(c) != want {
						t.Errorf("key of producer %d went to conveyors %d and %d", p, want, c)
					}
				}
				return nil
			}
			b := newBus(t, h, mainbus.WithConveyors(conveyors), mainbus.WithBuffer(8),
				mainbus.WithBalancer(tc.balancer))

			var wg sync.WaitGroup
			for p := range producers {
				wg.Go(func() {
					key := fmt.Sprintf("producer-%d", p)
					for seq := range perProducer {
						id := uint64(p*perProducer + seq)
						ev := mainbus.Event[int]{ID: id, Key: key, Value: seq}
						if err := b.Produce(context.Background(), ev); err != nil {
							t.Errorf("producer %d: Produce of event %d: %v", p, seq, err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := b.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}

			var wrong int
			for p := range producers {
				for seq := range perProducer {
					if n := handled[p][seq].Load(); n != 1 {
						if wrong++; wrong <= 3 {
							t.Errorf("event %d of producer %d handled %d times; want 1", seq, p, n)
						}
					}
				}
			}
			const all = producers * perProducer
			if wrong > 0 {
				t.Errorf("%d of %d accepted events not handled exactly once", wrong, all)
			}
			total := b.Stats().Total()
			if total.Produced != all || total.Consumed != all {
				t.Errorf("Stats: Produced %d, Consumed %d; want %d each",
					total.Produced, total.Consumed, all)
			}
		})
	}
}

// Promise 2: producers racing Close get nil (and the event is handled
// exactly once), ErrClosed, or, for TryProduce, ErrFull; nothing panics.
func TestCloseWhileProducing(t *testing.T) {
	t.Parallel()
	const producers = 8
	var (
		handled idSet
		count   atomic.Int64
		busy    = make(chan struct{})
	)
	b := newBus(t, func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		handled.add(ev.ID)
		if count.Add(1) == 500 {
			close(busy)
		}
		return nil
	}, mainbus.WithBuffer(2))

	// stop ends the producers if they never see ErrClosed.
	stop, giveUp := context.WithCancel(context.Background())
	accepted := make([][]uint64, producers)
	var wg sync.WaitGroup
	t.Cleanup(func() { giveUp(); wg.Wait() })
	for p := range producers {
		wg.Go(func() {
			try := p%2 == 1 // half the producers use TryProduce
			for seq := uint64(0); stop.Err() == nil; seq++ {
				ev := mainbus.Event[int]{ID: uint64(p)<<32 | seq}
				var err error
				if try {
					err = b.TryProduce(ev)
				} else {
					err = b.Produce(stop, ev)
				}
				switch {
				case err == nil:
					accepted[p] = append(accepted[p], ev.ID)
				case errors.Is(err, mainbus.ErrClosed), errors.Is(err, context.Canceled):
					return
				case try && errors.Is(err, mainbus.ErrFull):
				default:
					t.Errorf("producer %d (TryProduce %t): %v; want nil or ErrClosed", p, try, err)
					return
				}
			}
		})
	}

	// Close while every producer is still in its loop.
	recv(t, busy, "500 handled events")
	if err := b.Close(context.Background()); err != nil {
		t.Errorf("Close: %v", err)
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(waitLimit):
		t.Errorf("producers got no ErrClosed within %v after Close returned", waitLimit)
		giveUp()
		<-finished
	}
	checkExactlyOnce(t, slices.Concat(accepted...), handled.snapshot())
}

// Promise 2: once Close has returned, Produce and TryProduce return
// ErrClosed whatever the event, the context or the overflow policy.
func TestProduceAfterClose(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name    string
		opts    []mainbus.Option
		produce func(*mainbus.Bus[int]) error
	}{
		{"Produce", nil, func(b *mainbus.Bus[int]) error {
			return b.Produce(context.Background(), mainbus.Event[int]{ID: 1})
		}},
		{"Produce with a canceled context", nil, func(b *mainbus.Bus[int]) error {
			return b.Produce(canceled, mainbus.Event[int]{ID: 1})
		}},
		{"Produce under Reject", []mainbus.Option{mainbus.WithOverflow(mainbus.Reject)},
			func(b *mainbus.Bus[int]) error {
				return b.Produce(context.Background(), mainbus.Event[int]{ID: 1})
			}},
		{"TryProduce", nil, func(b *mainbus.Bus[int]) error {
			return b.TryProduce(mainbus.Event[int]{ID: 1})
		}},
		{"TryProduce with a key", []mainbus.Option{mainbus.WithBalancer(mainbus.KeyHash())},
			func(b *mainbus.Bus[int]) error {
				return b.TryProduce(mainbus.Event[int]{ID: 1, Key: "k"})
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var handled atomic.Int64
			b := newBus(t, func(context.Context, int, mainbus.Event[int]) error {
				handled.Add(1)
				return nil
			}, tc.opts...)
			if err := b.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := tc.produce(b); !errors.Is(err, mainbus.ErrClosed) {
				t.Errorf("after Close: %v; want ErrClosed", err)
			}
			if n := handled.Load(); n != 0 {
				t.Errorf("%d events handled after Close", n)
			}
			if p := b.Stats().Total().Produced; p != 0 {
				t.Errorf("Stats counts %d events produced after Close; want 0", p)
			}
		})
	}
}

// Promise 2: Close called from many goroutines at once returns the same
// result to each of them, whether the drain completes or is cut short.
func TestCloseFromManyGoroutines(t *testing.T) {
	t.Parallel()
	const closers = 16
	cases := []struct {
		name string
		// hang makes the handler wait until its context ends.
		hang bool
		// timeout bounds each Close; zero means context.Background().
		timeout time.Duration
		// mixed gives the timeout to every other Close only.
		mixed bool
		// nilCtx passes a nil context, which waits without limit.
		nilCtx bool
		events int
	}{
		{name: "drained", events: 100},
		{name: "drained with nil contexts", nilCtx: true, events: 100},
		{name: "cut short", hang: true, timeout: time.Second, events: 6},
		{name: "cut short by half of them", hang: true, timeout: time.Second, mixed: true,
			events: 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var handled atomic.Int64
				b := newBus(t, func(ctx context.Context, _ int, _ mainbus.Event[int]) error {
					handled.Add(1)
					if tc.hang {
						<-ctx.Done()
					}
					return nil
				}, mainbus.WithConveyors(2), mainbus.WithBuffer(tc.events),
					mainbus.WithBalancer(mainbus.RoundRobin()))
				produceIDs(t, b, firstIDs(tc.events)...)

				start := make(chan struct{})
				results := make(chan error, closers)
				for i := range closers {
					go func() {
						ctx := context.Background()
						if tc.nilCtx {
							ctx = nil
						}
						if tc.timeout > 0 && (!tc.mixed || i%2 == 0) {
							var cancel context.CancelFunc
							ctx, cancel = context.WithTimeout(ctx, tc.timeout)
							defer cancel()
						}
						<-start
						results <- b.Close(ctx)
					}()
				}
				close(start)
				first := recv(t, results, "result of Close")
				for i := 1; i < closers; i++ {
					if err := recv(t, results, "result of Close"); err != first {
						t.Errorf("Close results differ: %v and %v", first, err)
					}
				}
				if err := b.Close(context.Background()); err != first {
					t.Errorf("Close after the others: %v; want %v", err, first)
				}

				if !tc.hang {
					if first != nil {
						t.Errorf("Close: %v; want nil", first)
					}
					if n := handled.Load(); n != int64(tc.events) {
						t.Errorf("handled %d events; want %d", n, tc.events)
					}
					return
				}
				var de *mainbus.DrainError[int]
				if !errors.As(first, &de) || !errors.Is(first, context.DeadlineExceeded) {
					t.Fatalf("Close: %v; want a *DrainError wrapping DeadlineExceeded", first)
				}
				if got := handled.Load() + int64(len(de.Undelivered)); got != int64(tc.events) {
					t.Errorf("handled %d + undelivered %d = %d; want %d accepted",
						handled.Load(), len(de.Undelivered), got, tc.events)
				}
			})
		})
	}
}

// Promise 2: a handler may close its own bus. Close returns nil at once,
// the events already accepted are still delivered, and Done closes.
func TestCloseFromHandler(t *testing.T) {
	t.Parallel()
	const events = 10
	cases := []struct {
		name string
		opts []mainbus.Option
	}{
		{"one conveyor", []mainbus.Option{mainbus.WithConveyors(1), mainbus.WithExactConveyors()}},
		{"four conveyors", []mainbus.Option{mainbus.WithConveyors(4),
			mainbus.WithBalancer(mainbus.RoundRobin())}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// In a bubble, a Close that deadlocks in its handler fails the
			// test at once instead of hanging it.
			synctest.Test(t, func(t *testing.T) {
				gate, open := newGate(t)
				var (
					b       *mainbus.Bus[int]
					handled idSet
				)
				type outcome struct{ close, produce error }
				inside := make(chan outcome, 1)
				b = newBus(t, func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
					handled.add(ev.ID)
					if ev.ID == 0 {
						hold(ctx, gate)
						var o outcome
						o.close = b.Close(context.Background())
						o.produce = b.Produce(context.Background(), mainbus.Event[int]{ID: 99})
						inside <- o
					}
					return nil
				}, slices.Concat(tc.opts, []mainbus.Option{mainbus.WithBuffer(events)})...)

				accepted := firstIDs(events)
				produceIDs(t, b, accepted...)
				synctest.Wait()
				select {
				case <-b.Done():
					t.Fatal("Done closed before Close was called")
				default:
				}

				open()
				o := recv(t, inside, "return of Close inside the handler")
				if o.close != nil {
					t.Errorf("Close inside the handler: %v; want nil", o.close)
				}
				if !errors.Is(o.produce, mainbus.ErrClosed) {
					t.Errorf("Produce in the handler after Close: %v; want ErrClosed", o.produce)
				}
				recv(t, b.Done(), "close of Done")
				checkExactlyOnce(t, accepted, handled.snapshot())
				if err := b.Close(context.Background()); err != nil {
					t.Errorf("Close after Done: %v; want nil", err)
				}
			})
		})
	}
}

// Promise 2: a producer waiting for room when Close begins returns
// ErrClosed, and its event is never handled.
func TestCloseReleasesBlockedProducer(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		gate, open := newGate(t)
		var handled idSet
		b := newBus(t, func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
			handled.add(ev.ID)
			hold(ctx, gate)
			return nil
		}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(1))

		// Event 1 in the handler, event 2 in the buffer, event 3 waiting.
		for id := uint64(1); id <= 2; id++ {
			produceIDs(t, b, id)
			synctest.Wait()
		}
		blocked := make(chan error, 1)
		go func() { blocked <- b.Produce(context.Background(), mainbus.Event[int]{ID: 3}) }()
		synctest.Wait()
		select {
		case err := <-blocked:
			t.Fatalf("Produce on a full conveyor returned %v before Close", err)
		default:
		}

		closed := make(chan error, 1)
		go func() { closed <- b.Close(context.Background()) }()
		err := recv(t, blocked, "return of the blocked Produce")
		if !errors.Is(err, mainbus.ErrClosed) {
			t.Errorf("blocked Produce: %v; want ErrClosed", err)
		}
		open()
		if err := recv(t, closed, "return of Close"); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkExactlyOnce(t, []uint64{1, 2}, handled.snapshot())
	})
}

// Promise 3: a producer waiting for room returns when its context ends,
// with an error saying which conveyor was full, and its event is never
// delivered.
func TestProduceBlockedRespectsContext(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		// end makes the test cancel ctx; otherwise its deadline passes.
		end  bool
		want error
	}{
		{"canceled", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, true, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Second)
		}, false, context.DeadlineExceeded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				gate, open := newGate(t)
				var handled idSet
				// Two conveyors; every event goes to conveyor 1.
				toL1 := mainbus.BalancerFunc(func(string, mainbus.Conveyors) int { return 1 })
				b := newBus(t, func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
					handled.add(ev.ID)
					hold(ctx, gate)
					return nil
				}, mainbus.WithConveyors(2), mainbus.WithBuffer(1), mainbus.WithBalancer(toL1))

				for id := uint64(1); id <= 2; id++ {
					produceIDs(t, b, id)
					synctest.Wait()
				}
				ctx, cancel := tc.ctx()
				defer cancel()
				result := make(chan error, 1)
				go func() { result <- b.Produce(ctx, mainbus.Event[int]{ID: 3}) }()
				synctest.Wait()
				if tc.end {
					select {
					case err := <-result:
						t.Fatalf("Produce to a full conveyor returned %v before ctx ended", err)
					default:
					}
					cancel()
				}

				err := recv(t, result, "return of the blocked Produce")
				if !errors.Is(err, tc.want) {
					t.Errorf("Produce: %v; want an error wrapping %v", err, tc.want)
				}
				var pe *mainbus.ProduceError
				if !errors.As(err, &pe) {
					t.Fatalf("Produce: %v (%T); want a *ProduceError", err, err)
				}
				if pe.Resource != "iron" || pe.Conveyor != 1 {
					t.Errorf("ProduceError names %s L%d; want iron L1", pe.Resource, pe.Conveyor)
				}
				msg := err.Error()
				if !strings.Contains(msg, "iron L1") || !strings.Contains(msg, tc.want.Error()) {
					t.Errorf("message %q does not name the conveyor (iron L1) and the cause", msg)
				}

				open()
				if err := b.Close(context.Background()); err != nil {
					t.Errorf("Close: %v", err)
				}
				checkExactlyOnce(t, []uint64{1, 2}, handled.snapshot())
				if p := b.Stats().Total().Produced; p != 2 {
					t.Errorf("Stats: Produced %d; want 2", p)
				}
			})
		})
	}
}

// Promises 1 and 2: a Close whose context ends first cancels the handlers'
// context and hands back, in a *DrainError, exactly the accepted events
// that were not handled, oldest first per conveyor.
func TestCloseDeadlineHandsBackUndelivered(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const conveyors = 4
		var (
			handled  idSet
			canceled atomic.Int64
		)
		started := make(chan struct{}, 64) // room for every event: never blocks
		b := newBus(t, func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
			handled.add(ev.ID)
			started <- struct{}{}
			<-ctx.Done()
			if errors.Is(ctx.Err(), context.Canceled) {
				canceled.Add(1)
			}
			return nil
		}, mainbus.WithConveyors(conveyors), mainbus.WithBuffer(4),
			mainbus.WithBalancer(mainbus.RoundRobin()))

		// One event in every handler, then as many more as fit.
		var accepted []uint64
		for id := range uint64(40) {
			switch err := b.TryProduce(mainbus.Event[int]{ID: id}); {
			case err == nil:
				accepted = append(accepted, id)
			case !errors.Is(err, mainbus.ErrFull):
				t.Fatalf("TryProduce %d: %v", id, err)
			}
			if id == conveyors-1 {
				for range conveyors {
					recv(t, started, "start of a handler")
				}
			}
		}
		if len(accepted) != conveyors*5 {
			t.Fatalf("accepted %d events; want %d (one in each handler, four in each buffer)",
				len(accepted), conveyors*5)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := b.Close(ctx)
		var de *mainbus.DrainError[int]
		if !errors.As(err, &de) {
			t.Fatalf("Close: %v (%T); want a *DrainError[int]", err, err)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close: %v; want it to wrap context.DeadlineExceeded", err)
		}
		if de.Resource != "iron" {
			t.Errorf("DrainError.Resource = %q; want iron", de.Resource)
		}
		n := fmt.Sprintf("%d events undelivered", len(de.Undelivered))
		if msg := err.Error(); !strings.Contains(msg, n) || !strings.Contains(msg, "iron") {
			t.Errorf("message %q does not say %q of iron", msg, n)
		}
		select {
		case <-b.Done():
		default:
			t.Error("Done not closed after Close returned")
		}

		got := handled.snapshot()
		for _, ev := range de.Undelivered {
			got[ev.ID]++
		}
		checkExactlyOnce(t, accepted, got)
		if n, h := canceled.Load(), int64(len(handled.snapshot())); n != h {
			t.Errorf("%d of %d handlers saw their context canceled", n, h)
		}

		// RoundRobin put event id on conveyor id%conveyors.
		last := make(map[uint64]uint64)
		for _, ev := range de.Undelivered {
			c := ev.ID % conveyors
			if prev, ok := last[c]; ok && ev.ID < prev {
				t.Errorf("Undelivered lists event %d after %d of the same conveyor", ev.ID, prev)
			}
			last[c] = ev.ID
			if ev.Resource != "iron" {
				t.Errorf("undelivered event %d has Resource %q; want iron", ev.ID, ev.Resource)
			}
		}

		total, nHandled := b.Stats().Total(), uint64(len(handled.snapshot()))
		if total.Produced != uint64(len(accepted)) || total.Consumed != nHandled ||
			total.Depth != 0 {
			t.Errorf("Stats: Produced %d, Consumed %d, Depth %d; want %d, %d, 0",
				total.Produced, total.Consumed, total.Depth, len(accepted), nHandled)
		}
		if again := b.Close(context.Background()); again != err {
			t.Errorf("second Close: %v; want the first result %v", again, err)
		}
	})
}

// Promise 5: a handler that panics or fails is reported with the event it
// failed on and counted, and its conveyor goes on with the next event.
func TestHandlerFailuresDoNotStopConveyor(t *testing.T) {
	t.Parallel()
	const events = 30
	errBad := errors.New("bad plate")
	// Event i panics when i%3 == 1, fails when i%3 == 2, else succeeds.
	handler := func(order *[]uint64) mainbus.Handler[int] {
		return func(_ context.Context, _ int, ev mainbus.Event[int]) error {
			*order = append(*order, ev.ID) // one conveyor: one goroutine
			switch ev.ID % 3 {
			case 1:
				panic(fmt.Sprintf("jam at %d", ev.ID))
			case 2:
				return fmt.Errorf("event %d: %w", ev.ID, errBad)
			}
			return nil
		}
	}
	cases := []struct {
		name string
		hook bool
	}{
		{"with error handler", true},
		{"without error handler", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				order    []uint64
				reported []error // written by the one consumer
			)
			opts := []mainbus.Option{mainbus.WithConveyors(1), mainbus.WithExactConveyors()}
			if tc.hook {
				opts = append(opts, mainbus.WithErrorHandler(func(err error) {
					reported = append(reported, err)
				}))
			}
			b := newBus(t, handler(&order), opts...)
			produceIDs(t, b, firstIDs(events)...)
			if err := b.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}

			want := make([]uint64, events)
			for i := range want {
				want[i] = uint64(i)
			}
			if !slices.Equal(order, want) {
				t.Errorf("handled %v; want %v", order, want)
			}
			s := b.Stats().Conveyors[0]
			if s.Consumed != events || s.Failed != events/3 || s.Panicked != events/3 {
				t.Errorf("Stats: Consumed %d, Failed %d, Panicked %d; want %d, %d, %d",
					s.Consumed, s.Failed, s.Panicked, events, events/3, events/3)
			}
			if !tc.hook {
				return
			}

			if len(reported) != 2*events/3 {
				t.Fatalf("error handler called %d times; want %d", len(reported), 2*events/3)
			}
			for i, err := range reported {
				id := uint64(i/2*3 + 1 + i%2) // 1, 2, 4, 5, 7, …
				var he *mainbus.HandlerError
				if !errors.As(err, &he) {
					t.Errorf("report %d: %v (%T); want a *HandlerError", i, err, err)
					continue
				}
				if he.Resource != "iron" || he.Conveyor != 0 || he.EventID != id {
					t.Errorf("report %d names %s L%d event %d; want iron L0 event %d",
						i, he.Resource, he.Conveyor, he.EventID, id)
				}
				if !strings.Contains(he.Error(), fmt.Sprint(id)) {
					t.Errorf("report %q does not name event %d", he.Error(), id)
				}
				if id%3 == 1 {
					if want := fmt.Sprintf("jam at %d", id); he.Panic != want || he.Err != nil {
						t.Errorf("report of event %d: Panic %v, Err %v; want Panic %q, Err nil",
							id, he.Panic, he.Err, want)
					}
				} else if he.Panic != nil || !errors.Is(he, errBad) {
					t.Errorf("report of event %d: Panic %v, Err %v; want no Panic, Err wrapping %v",
						id, he.Panic, he.Err, errBad)
				}
			}
		})
	}
}

// panicValue is a type a handler may panic with.
type panicValue struct{ code int }

// Promise 5: whatever value a handler panics with, the panic is one
// failed delivery: reported once, counted once, and the conveyor goes on
// with one consumer, in order.
func TestHandlerPanicValues(t *testing.T) {
	t.Parallel()
	const events = 10
	cases := []struct {
		name  string
		value any
	}{
		{"string", "jam"},
		{"error", errors.New("jam")},
		{"struct", panicValue{code: 7}},
		{"nil", nil},
		// The text the bus itself uses for a handler that called
		// runtime.Goexit; a user may panic with it too.
		{"goexit text", "mainbus: handler called runtime.Goexit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				order    []uint64 // the one consumer appends
				inside   atomic.Int32
				overlap  atomic.Int32
				reported []*mainbus.HandlerError // the one consumer appends
			)
			b := newBus(t, func(_ context.Context, _ int, ev mainbus.Event[int]) error {
				if inside.Add(1) > 1 {
					overlap.Add(1)
				}
				defer inside.Add(-1)
				order = append(order, ev.ID)
				if ev.ID == 3 {
					panic(tc.value)
				}
				return nil
			}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(),
				mainbus.WithErrorHandler(func(err error) {
					var he *mainbus.HandlerError
					if errors.As(err, &he) {
						reported = append(reported, he)
					}
				}))
			produceIDs(t, b, firstIDs(events)...)
			if err := b.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}

			if n := overlap.Load(); n > 0 {
				t.Errorf("the handler ran twice at once on conveyor 0 (%d times)", n)
			}
			if want := []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(order, want) {
				t.Errorf("handled %v; want %v", order, want)
			}
			if len(reported) != 1 || reported[0].EventID != 3 || reported[0].Panic == nil ||
				reported[0].Err != nil {
				t.Errorf("reported %v; want one HandlerError for event 3 with Panic set", reported)
			}
			s := b.Stats().Total()
			if s.Consumed != events || s.Panicked != 1 || s.Failed != 0 {
				t.Errorf("Stats: Consumed %d, Panicked %d, Failed %d; want %d, 1, 0",
					s.Consumed, s.Panicked, s.Failed, events)
			}
		})
	}
}

// Promise 6: one conveyor with a stuck handler, a full buffer and a
// producer waiting on it does not keep another conveyor from working.
func TestSlowConveyorDoesNotStallOthers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		gate, open := newGate(t)
		var handled idSet
		fast := make(chan uint64, 10)
		byKey := mainbus.BalancerFunc(func(key string, _ mainbus.Conveyors) int {
			if key == "slow" {
				return 0
			}
			return 1
		})
		b := newBus(t, func(ctx context.Context, c int, ev mainbus.Event[int]) error {
			handled.add(ev.ID)
			if c == 0 {
				hold(ctx, gate)
				return nil
			}
			fast <- ev.ID
			return nil
		}, mainbus.WithConveyors(2), mainbus.WithBuffer(1), mainbus.WithBalancer(byKey))

		for id := uint64(1); id <= 2; id++ {
			ev := mainbus.Event[int]{ID: id, Key: "slow"}
			if err := b.Produce(context.Background(), ev); err != nil {
				t.Fatalf("Produce %d: %v", id, err)
			}
			synctest.Wait()
		}
		blocked := make(chan error, 1)
		go func() {
			blocked <- b.Produce(context.Background(), mainbus.Event[int]{ID: 3, Key: "slow"})
		}()
		synctest.Wait()

		for id := uint64(100); id < 110; id++ {
			ev := mainbus.Event[int]{ID: id, Key: "fast"}
			if err := b.Produce(context.Background(), ev); err != nil {
				t.Fatalf("Produce %d to conveyor 1: %v", id, err)
			}
			if got := recv(t, fast, "event on conveyor 1"); got != id {
				t.Errorf("conveyor 1 handled event %d; want %d", got, id)
			}
		}
		select {
		case err := <-blocked:
			t.Fatalf("Produce to the full conveyor 0 returned %v while it was still full", err)
		default:
		}

		open()
		if err := recv(t, blocked, "return of the blocked Produce"); err != nil {
			t.Errorf("Produce to conveyor 0 after it freed up: %v", err)
		}
		if err := b.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
		if got := handled.sorted(); len(got) != 13 {
			t.Errorf("handled %v; want events 1-3 and 100-109", got)
		}
	})
}

// nop is a handler that does nothing.
func nop(context.Context, int, mainbus.Event[int]) error { return nil }

// Promise 7: New rejects bad options, names and handlers with an error
// wrapping ErrInvalidOption that names the wrong value.
func TestNewRejectsBadInput(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 65)
	cases := []struct {
		name     string
		resource string
		handler  mainbus.Handler[int]
		opts     []mainbus.Option
		want     []string // substrings of the message
	}{
		{"zero conveyors", "iron", nop, []mainbus.Option{mainbus.WithConveyors(0)},
			[]string{"conveyors is 0", "want"}},
		{"negative conveyors", "iron", nop, []mainbus.Option{mainbus.WithConveyors(-1)},
			[]string{"conveyors is -1", "want"}},
		{"too many conveyors", "iron", nop, []mainbus.Option{mainbus.WithConveyors(70000)},
			[]string{"70000", "65536"}},
		{"negative buffer", "iron", nop, []mainbus.Option{mainbus.WithBuffer(-1)},
			[]string{"buffer is -1", "want"}},
		{"nil balancer", "iron", nop, []mainbus.Option{mainbus.WithBalancer(nil)},
			[]string{"balancer is nil", "want"}},
		{"unknown overflow", "iron", nop,
			[]mainbus.Option{mainbus.WithOverflow(mainbus.Overflow(9))},
			[]string{"overflow policy 9", "want"}},
		{"nil option", "iron", nop, []mainbus.Option{mainbus.WithBuffer(1), nil},
			[]string{"option 1", "nil"}},
		{"nil handler", "iron", nil, nil, []string{"handler", "nil"}},
		{"empty resource", "", nop, nil, []string{`""`, "want"}},
		{"resource with a space", "a b", nop, nil, []string{`"a b"`, "want"}},
		{"resource with a dot", "a.b", nop, nil, []string{`"a.b"`, "'.'", "want"}},
		{"resource of 65 bytes", long, nop, nil, []string{long, "65", "want"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := mainbus.New(tc.resource, tc.handler, tc.opts...)
			if b != nil {
				t.Cleanup(func() { closeBus(b) })
				t.Errorf("New returned a bus with error %v; want no bus", err)
			}
			if !errors.Is(err, mainbus.ErrInvalidOption) {
				t.Fatalf("New: %v; want an error wrapping ErrInvalidOption", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("New: %q does not contain %q", err, s)
				}
			}
		})
	}
}

// Promise 7: Produce rejects a nil context, an event of another resource
// and a balancer's out-of-range pick with a clear error, accepts nothing
// and does not panic; the bus still closes cleanly.
func TestProduceRejectsBadInput(t *testing.T) {
	t.Parallel()
	copper, err := mainbus.New("copper", nop)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBus(copper) })
	pickAt := func(i int) []mainbus.Option {
		f := func(string, mainbus.Conveyors) int { return i }
		return []mainbus.Option{mainbus.WithBalancer(mainbus.BalancerFunc(f))}
	}
	foreign := mainbus.Event[int]{ID: 7, Resource: copper.Resource()}
	cases := []struct {
		name    string
		opts    []mainbus.Option
		produce func(*mainbus.Bus[int]) error
		target  error
		want    []string
	}{
		{"nil context", nil, func(b *mainbus.Bus[int]) error {
			//lint:ignore SA1012 the nil context is the bad input under test
			return b.Produce(nil, mainbus.Event[int]{ID: 7})
		}, mainbus.ErrInvalidOption, []string{"nil context"}},
		{"Produce of another bus's event", nil, func(b *mainbus.Bus[int]) error {
			return b.Produce(context.Background(), foreign)
		}, mainbus.ErrUnknownResource, []string{`"copper"`, "iron"}},
		{"TryProduce of another bus's event", nil, func(b *mainbus.Bus[int]) error {
			return b.TryProduce(foreign)
		}, mainbus.ErrUnknownResource, []string{`"copper"`, "iron"}},
		{"Produce with balancer picking -1", pickAt(-1), func(b *mainbus.Bus[int]) error {
			return b.Produce(context.Background(), mainbus.Event[int]{ID: 7})
		}, mainbus.ErrInvalidOption, []string{"-1", "want 0 to 1"}},
		{"Produce with balancer picking n", pickAt(2), func(b *mainbus.Bus[int]) error {
			return b.Produce(context.Background(), mainbus.Event[int]{ID: 7})
		}, mainbus.ErrInvalidOption, []string{"conveyor 2", "want 0 to 1"}},
		{"TryProduce with balancer picking -1", pickAt(-1), func(b *mainbus.Bus[int]) error {
			return b.TryProduce(mainbus.Event[int]{ID: 7})
		}, mainbus.ErrInvalidOption, []string{"-1", "want 0 to 1"}},
		{"TryProduce with balancer picking n+5", pickAt(7), func(b *mainbus.Bus[int]) error {
			return b.TryProduce(mainbus.Event[int]{ID: 7})
		}, mainbus.ErrInvalidOption, []string{"conveyor 7", "want 0 to 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var handled atomic.Int64
			b := newBus(t, func(context.Context, int, mainbus.Event[int]) error {
				handled.Add(1)
				return nil
			}, append([]mainbus.Option{mainbus.WithConveyors(2)}, tc.opts...)...)

			err := tc.produce(b)
			if !errors.Is(err, tc.target) {
				t.Fatalf("got %v; want an error wrapping %v", err, tc.target)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not contain %q", err, s)
				}
			}

			// The refused call must leave the bus able to close at once.
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			if err := b.Close(ctx); err != nil {
				t.Errorf("Close: %v", err)
			}
			if n := handled.Load(); n != 0 {
				t.Errorf("%d refused events handled", n)
			}
			if p := b.Stats().Total().Produced; p != 0 {
				t.Errorf("Stats counts %d refused events as produced", p)
			}
		})
	}
}

// Promises 7 and 2: a balancer that panics is the caller's bug, but it
// must not leave the bus unable to close.
func TestProduceBalancerPanicLeavesBusClosable(t *testing.T) {
	t.Parallel()
	// In a bubble, a Close that never returns fails the test at once.
	synctest.Test(t, func(t *testing.T) {
		jam := mainbus.BalancerFunc(func(string, mainbus.Conveyors) int { panic("balancer jam") })
		b := newBus(t, nop, mainbus.WithBalancer(jam))
		func() {
			defer func() { _ = recover() }() // a panic passing through is allowed
			_ = b.Produce(context.Background(), mainbus.Event[int]{ID: 1})
		}()

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		closed := make(chan error, 1)
		go func() { closed <- b.Close(ctx) }()
		if err := recv(t, closed, "return of Close after a balancer panic"); err != nil {
			t.Errorf("Close: %v; want nil, nothing was accepted", err)
		}
	})
}

// Without WithExactConveyors an odd conveyor count is rounded up to the
// next even number; with it the count is kept, and every conveyor works.
func TestConveyorCount(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts []mainbus.Option
		want int
	}{
		{"default", nil, mainbus.DefaultConveyors},
		{"1 rounds up to 2", []mainbus.Option{mainbus.WithConveyors(1)}, 2},
		{"3 rounds up to 4", []mainbus.Option{mainbus.WithConveyors(3)}, 4},
		{"4 stays 4", []mainbus.Option{mainbus.WithConveyors(4)}, 4},
		{"exact 1", []mainbus.Option{mainbus.WithConveyors(1), mainbus.WithExactConveyors()}, 1},
		{"exact 3", []mainbus.Option{mainbus.WithExactConveyors(), mainbus.WithConveyors(3)}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var hits [8]atomic.Int64
			rr := mainbus.WithBalancer(mainbus.RoundRobin())
			opts := slices.Concat(tc.opts, []mainbus.Option{rr})
			b := newBus(t, func(_ context.Context, c int, _ mainbus.Event[int]) error {
				hits[c].Add(1)
				return nil
			}, opts...)
			if got := b.Conveyors(); got != tc.want {
				t.Fatalf("Conveyors() = %d; want %d", got, tc.want)
			}
			if got := len(b.Stats().Conveyors); got != tc.want {
				t.Errorf("Stats has %d conveyors; want %d", got, tc.want)
			}
			produceIDs(t, b, firstIDs(tc.want)...)
			if err := b.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			for c := range tc.want {
				if n := hits[c].Load(); n != 1 {
					t.Errorf("conveyor %d handled %d events; want 1", c, n)
				}
			}
		})
	}
}

// Produce stamps Resource and a zero Time, and keeps every other field.
func TestProduceStampsEvent(t *testing.T) {
	t.Parallel()
	set := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		ev   mainbus.Event[int]
		try  bool
	}{
		{"zero time", mainbus.Event[int]{ID: 1, Key: "k", Value: 10}, false},
		{"zero time, TryProduce", mainbus.Event[int]{ID: 2, Key: "k", Value: 20}, true},
		{"time set", mainbus.Event[int]{ID: 3, Key: "k", Value: 30, Time: set}, false},
		{"resource set", mainbus.Event[int]{ID: 4, Resource: "iron", Value: 40, Time: set}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan mainbus.Event[int], 1)
			b := newBus(t, func(_ context.Context, _ int, ev mainbus.Event[int]) error {
				got <- ev
				return nil
			})
			before := time.Now()
			var err error
			if tc.try {
				err = b.TryProduce(tc.ev)
			} else {
				err = b.Produce(context.Background(), tc.ev)
			}
			after := time.Now()
			if err != nil {
				t.Fatalf("produce: %v", err)
			}
			ev := recv(t, got, "handled event")

			if ev.Resource != "iron" {
				t.Errorf("Resource = %q; want iron", ev.Resource)
			}
			if ev.ID != tc.ev.ID || ev.Key != tc.ev.Key || ev.Value != tc.ev.Value {
				t.Errorf("handled %+v; want ID, Key and Value of %+v", ev, tc.ev)
			}
			switch {
			case !tc.ev.Time.IsZero() && !ev.Time.Equal(tc.ev.Time):
				t.Errorf("Time = %v; want the given %v", ev.Time, tc.ev.Time)
			case tc.ev.Time.IsZero() && (ev.Time.Before(before) || ev.Time.After(after)):
				t.Errorf("Time = %v; want between %v and %v", ev.Time, before, after)
			}
		})
	}
}

// On a full conveyor TryProduce, and Produce under Reject, return ErrFull
// at once, naming the conveyor; the refused event is never handled.
func TestFullConveyorRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		overflow mainbus.Overflow
		buffer   int
		try      bool
	}{
		{"TryProduce under Block", mainbus.Block, 1, true},
		{"TryProduce under Reject", mainbus.Reject, 1, true},
		{"Produce under Reject", mainbus.Reject, 1, false},
		{"TryProduce with buffer 0", mainbus.Block, 0, true},
		{"Produce under Reject with buffer 0", mainbus.Reject, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				gate, open := newGate(t)
				var handled idSet
				b := newBus(t, func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
					handled.add(ev.ID)
					hold(ctx, gate)
					return nil
				}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(),
					mainbus.WithBuffer(tc.buffer), mainbus.WithOverflow(tc.overflow))

				// Event 1 in the handler, then fill the buffer.
				var accepted []uint64
				for id := uint64(1); id <= uint64(1+tc.buffer); id++ {
					synctest.Wait() // the consumer is waiting, or busy with event 1
					produceIDs(t, b, id)
					accepted = append(accepted, id)
				}
				synctest.Wait()

				ev := mainbus.Event[int]{ID: 99}
				var err error
				if tc.try {
					err = b.TryProduce(ev)
				} else {
					err = b.Produce(context.Background(), ev)
				}
				if !errors.Is(err, mainbus.ErrFull) {
					t.Errorf("on a full conveyor: %v; want an error wrapping ErrFull", err)
				}
				var pe *mainbus.ProduceError
				if !errors.As(err, &pe) || pe.Conveyor != 0 || pe.Resource != "iron" {
					t.Errorf("on a full conveyor: %#v; want a *ProduceError for iron L0", err)
				}

				open()
				if err := b.Close(context.Background()); err != nil {
					t.Errorf("Close: %v", err)
				}
				checkExactlyOnce(t, accepted, handled.snapshot())
			})
		})
	}
}

// WithBuffer(0) makes every hand-over a rendezvous, and the bus still
// delivers every event, in order per producer and conveyor.
func TestZeroBufferDelivers(t *testing.T) {
	t.Parallel()
	const events = 500
	var (
		handled idSet
		last    [2]int64 // per conveyor; only its consumer writes
	)
	last[0], last[1] = -1, -1
	b := newBus(t, func(_ context.Context, c int, ev mainbus.Event[int]) error {
		handled.add(ev.ID)
		if int64(ev.ID) <= last[c] {
			t.Errorf("conveyor %d handled event %d after %d", c, ev.ID, last[c])
		}
		last[c] = int64(ev.ID)
		return nil
	}, mainbus.WithConveyors(2), mainbus.WithBuffer(0))

	accepted := firstIDs(events)
	produceIDs(t, b, accepted...)
	if err := b.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkExactlyOnce(t, accepted, handled.snapshot())
	for _, s := range b.Stats().Conveyors {
		if s.Capacity != 0 || s.Depth != 0 {
			t.Errorf("L%d: Capacity %d, Depth %d; want 0, 0", s.Conveyor, s.Capacity, s.Depth)
		}
	}
}

// After Close, Stats of every conveyor add up: everything produced was
// consumed, nothing waits, and Capacity is the buffer.
func TestStatsAddUpAfterClose(t *testing.T) {
	t.Parallel()
	const (
		conveyors = 4
		buffer    = 16
		events    = 1000
	)
	var perConveyor [conveyors]uint64 // only conveyor c's consumer writes [c]
	b := newBus(t, func(_ context.Context, c int, _ mainbus.Event[int]) error {
		perConveyor[c]++
		return nil
	}, mainbus.WithConveyors(conveyors), mainbus.WithBuffer(buffer),
		mainbus.WithBalancer(mainbus.RoundRobin()))
	produceIDs(t, b, firstIDs(events)...)
	if err := b.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s := b.Stats()
	if s.Resource != "iron" || len(s.Conveyors) != conveyors {
		t.Fatalf("Stats for %q with %d conveyors; want iron with %d",
			s.Resource, len(s.Conveyors), conveyors)
	}
	for i, c := range s.Conveyors {
		want := mainbus.ConveyorStats{
			Conveyor: i, Produced: events / conveyors, Consumed: events / conveyors,
			Capacity: buffer,
		}
		checkTimings(t, c)
		if counts(c) != want || perConveyor[i] != events/conveyors {
			t.Errorf("L%d: %+v, handler saw %d; want %+v", i, c, perConveyor[i], want)
		}
	}
	want := mainbus.ConveyorStats{
		Conveyor: -1, Produced: events, Consumed: events, Capacity: conveyors * buffer,
	}
	checkTimings(t, s.Total())
	if got := counts(s.Total()); got != want {
		t.Errorf("Total: %+v; want %+v", got, want)
	}
}

// counts returns cs without the figures that vary from run to run: its
// timings and its backpressure, for comparing exact counts.
func counts(cs mainbus.ConveyorStats) mainbus.ConveyorStats {
	cs.Blocks, cs.BlockedTime = 0, 0
	cs.QueueTime, cs.HandlerTime = mainbus.Histogram{}, mainbus.Histogram{}
	return cs
}

// checkTimings checks the timings of a conveyor whose events were all
// handled at the first attempt, on a closed bus: both histograms count
// every event once, with durations that add up.
func checkTimings(t *testing.T, cs mainbus.ConveyorStats) {
	t.Helper()
	for _, h := range []struct {
		name string
		h    mainbus.Histogram
	}{{"QueueTime", cs.QueueTime}, {"HandlerTime", cs.HandlerTime}} {
		var n uint64
		for _, b := range h.h.Buckets {
			n += b
		}
		if h.h.Count != cs.Consumed || n != cs.Consumed {
			t.Errorf("L%d %s counts %d, buckets hold %d; want %d, the events consumed",
				cs.Conveyor, h.name, h.h.Count, n, cs.Consumed)
		}
		if h.h.Sum < 0 || (cs.Consumed > 0 && h.h.Sum == 0) {
			t.Errorf("L%d %s sums to %v for %d events; want more than 0",
				cs.Conveyor, h.name, h.h.Sum, cs.Consumed)
		}
	}
	if cs.Blocked != 0 {
		t.Errorf("L%d: %d producers blocked on a closed bus; want 0", cs.Conveyor, cs.Blocked)
	}
}
