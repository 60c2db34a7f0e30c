package mainbus_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mainbus-go/mainbus"
)

// The helpers below, all named policy…, are shared by overflow_test.go
// and failure_test.go.

// policyLog records events in the order they arrive. It is safe for
// concurrent use.
type policyLog struct {
	mu  sync.Mutex
	evs []mainbus.Event[int]
}

func (l *policyLog) add(ev mainbus.Event[int]) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

func (l *policyLog) events() []mainbus.Event[int] {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.evs)
}

func (l *policyLog) ids() []uint64 {
	var ids []uint64
	for _, ev := range l.events() {
		ids = append(ids, ev.ID)
	}
	return ids
}

func (l *policyLog) has(id uint64) bool {
	return slices.Contains(l.ids(), id)
}

// policyErrors records what a bus reports to its error handler.
type policyErrors struct {
	mu   sync.Mutex
	errs []error
}

func (e *policyErrors) add(err error) {
	e.mu.Lock()
	e.errs = append(e.errs, err)
	e.mu.Unlock()
}

func (e *policyErrors) list() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.errs)
}

// handlerErrors returns the reports as *HandlerError, failing the test if
// one is not.
func (e *policyErrors) handlerErrors(t *testing.T) []*mainbus.HandlerError {
	t.Helper()
	var hes []*mainbus.HandlerError
	for _, err := range e.list() {
		var he *mainbus.HandlerError
		if !errors.As(err, &he) {
			t.Fatalf("error handler got %T %v; want a *mainbus.HandlerError", err, err)
		}
		hes = append(hes, he)
	}
	return hes
}

// policyGate is a handler that announces each event on started, then
// holds it until release gives a token or is closed. A test thereby knows
// which event sits in the handler, and that its conveyor is not receiving.
type policyGate struct {
	started  chan uint64
	release  chan struct{}
	openOnce sync.Once
	handled  policyLog
}

func newPolicyGate() *policyGate {
	return &policyGate{started: make(chan uint64, 4096), release: make(chan struct{})}
}

func (g *policyGate) handle(ctx context.Context, _ int, ev mainbus.Event[int]) error {
	g.started <- ev.ID
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.handled.add(ev)
	return nil
}

// step lets the event in the handler finish.
func (g *policyGate) step(t *testing.T) {
	t.Helper()
	select {
	case g.release <- struct{}{}:
	case <-time.After(waitLimit):
		t.Fatalf("no handler took the release token within %v", waitLimit)
	}
}

// open lets every event through from now on.
func (g *policyGate) open() { g.openOnce.Do(func() { close(g.release) }) }

// waitStart waits until the handler begins an event and checks it is want.
func (g *policyGate) waitStart(t *testing.T, want uint64) {
	t.Helper()
	if got := recv(t, g.started, "handler start"); got != want {
		t.Fatalf("handler began event %d; want %d", got, want)
	}
}

// newPolicyBus builds a bus and closes it when the test ends, after
// calling release (if not nil) so that no handler holds the drain up.
// Tests that check Close's result call it themselves; Close is idempotent.
func newPolicyBus[T any](t *testing.T, resource string, h mainbus.Handler[T], release func(),
	opts ...mainbus.Option) *mainbus.Bus[T] {
	t.Helper()
	b, err := mainbus.New(resource, h, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if release != nil {
			release()
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = b.Close(ctx) // the result is checked by the tests that care
	})
	return b
}

// newGatedBus builds an "iron" bus of one conveyor whose handler is a new
// policyGate.
func newGatedBus(t *testing.T, opts ...mainbus.Option) (*mainbus.Bus[int], *policyGate) {
	t.Helper()
	g := newPolicyGate()
	opts = append([]mainbus.Option{mainbus.WithConveyors(1), mainbus.WithExactConveyors()}, opts...)
	return newPolicyBus(t, "iron", g.handle, g.open, opts...), g
}

// policyEvent is event id, with a value derived from it.
func policyEvent(id uint64) mainbus.Event[int] {
	return mainbus.Event[int]{ID: id, Value: int(id) * 10}
}

// policyProduce produces the events ids, each of which must be accepted.
func policyProduce(t *testing.T, b *mainbus.Bus[int], ids ...uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for _, id := range ids {
		if err := b.Produce(ctx, policyEvent(id)); err != nil {
			t.Fatalf("Produce(%d): %v", id, err)
		}
	}
}

// policyClose closes b and checks that Close returns nil.
func policyClose[T any](t *testing.T, b *mainbus.Bus[T]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// policyIDs is the IDs from to to, inclusive.
func policyIDs(from, to uint64) []uint64 {
	var ids []uint64
	for id := from; id <= to; id++ {
		ids = append(ids, id)
	}
	return ids
}

func checkIDs(t *testing.T, what string, got, want []uint64) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got IDs %v; want %v", what, got, want)
	}
}

// checkProduceError checks that err is a *ProduceError of the iron bus's
// conveyor wrapping want.
func checkProduceError(t *testing.T, err error, conveyor int, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v; want one wrapping %v", err, want)
	}
	var pe *mainbus.ProduceError
	if !errors.As(err, &pe) {
		t.Fatalf("got %T %v; want a *mainbus.ProduceError", err, err)
	}
	if pe.Resource != "iron" || pe.Conveyor != conveyor {
		t.Errorf("ProduceError names %s L%d; want iron L%d", pe.Resource, pe.Conveyor, conveyor)
	}
}

// TestOverflowBlock checks the Block policy on a conveyor whose handler
// holds event 1 and whose one-slot buffer holds event 2. Each case runs in
// a synctest bubble, where synctest.Wait proves that a producer is blocked
// before the test acts on it.
func TestOverflowBlock(t *testing.T) {
	t.Parallel()

	full := func(t *testing.T) (*mainbus.Bus[int], *policyGate) {
		t.Helper()
		b, g := newGatedBus(t, mainbus.WithBuffer(1), mainbus.WithOverflow(mainbus.Block))
		policyProduce(t, b, 1)
		g.waitStart(t, 1)
		policyProduce(t, b, 2)
		return b, g
	}

	// blocked starts Produce(ctx, event id) and returns its result
	// channel once the producer waits.
	blocked := func(t *testing.T, b *mainbus.Bus[int], ctx context.Context, id uint64) <-chan error {
		t.Helper()
		res := make(chan error, 1)
		go func() { res <- b.Produce(ctx, policyEvent(id)) }()
		synctest.Wait()
		select {
		case err := <-res:
			t.Fatalf("Produce returned %v while the conveyor was full", err)
		default:
		}
		return res
	}

	t.Run("Produce waits for room", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			b, g := full(t)
			res := blocked(t, b, context.Background(), 3)

			// Finishing event 1 lets the consumer take event 2, which
			// makes room for event 3.
			g.step(t)
			g.waitStart(t, 2)
			if err := recv(t, res, "Produce result"); err != nil {
				t.Fatalf("Produce once room appeared: %v", err)
			}
			g.open()
			policyClose(t, b)
			checkIDs(t, "handled", g.handled.ids(), []uint64{1, 2, 3})
		})
	})

	t.Run("TryProduce returns ErrFull", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			b, g := full(t)
			checkProduceError(t, b.TryProduce(policyEvent(3)), 0, mainbus.ErrFull)
			g.open()
			policyClose(t, b)
			checkIDs(t, "handled", g.handled.ids(), []uint64{1, 2})
		})
	})

	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{
			name: "deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Second)
			},
			want: context.DeadlineExceeded,
		},
		{
			name: "cancel",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithCancel(context.Background())
			},
			want: context.Canceled,
		},
	} {
		t.Run("context "+tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				b, g := full(t)
				ctx, cancel := tc.ctx()
				defer cancel()
				res := blocked(t, b, ctx, 3)
				if tc.want == context.Canceled {
					cancel()
				} // else the bubble's clock runs to the deadline
				checkProduceError(t, recv(t, res, "Produce result"), 0, tc.want)

				// Event 3 was given up on: it must not turn up once room
				// appears, while event 4 produced after it does.
				g.open()
				policyProduce(t, b, 4)
				policyClose(t, b)
				checkIDs(t, "handled", g.handled.ids(), []uint64{1, 2, 4})
				if s := b.Stats().Conveyors[0]; s.Produced != 3 || s.Consumed != 3 {
					t.Errorf("stats produced %d, consumed %d; want 3 and 3", s.Produced, s.Consumed)
				}
			})
		})
	}

	t.Run("Close releases a waiting producer", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			b, g := full(t)
			res := blocked(t, b, context.Background(), 3)
			closed := make(chan error, 1)
			go func() { closed <- b.Close(context.Background()) }()
			if err := recv(t, res, "Produce result"); !errors.Is(err, mainbus.ErrClosed) {
				t.Fatalf("Produce waiting during Close returned %v; want ErrClosed", err)
			}
			g.open()
			if err := recv(t, closed, "Close result"); err != nil {
				t.Fatalf("Close: %v", err)
			}
			checkIDs(t, "handled", g.handled.ids(), []uint64{1, 2})
		})
	})
}

// TestOverflowReject checks that under Reject a full conveyor refuses the
// event at once, naming the conveyor, and that nothing is dropped.
func TestOverflowReject(t *testing.T) {
	t.Parallel()
	g := newPolicyGate()
	toL1 := mainbus.BalancerFunc(func(string, mainbus.Conveyors) int { return 1 })
	b := newPolicyBus(t, "iron", g.handle, g.open,
		mainbus.WithConveyors(2), mainbus.WithExactConveyors(), mainbus.WithBuffer(1),
		mainbus.WithOverflow(mainbus.Reject), mainbus.WithBalancer(toL1))
	policyProduce(t, b, 1)
	g.waitStart(t, 1)
	policyProduce(t, b, 2)

	// A context that outlives the test: Produce must not wait on it.
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for _, tc := range []struct {
		name    string
		produce func(mainbus.Event[int]) error
	}{
		{"Produce", func(ev mainbus.Event[int]) error { return b.Produce(ctx, ev) }},
		{"TryProduce", b.TryProduce},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkProduceError(t, tc.produce(policyEvent(3)), 1, mainbus.ErrFull)
		})
	}

	g.open()
	policyClose(t, b)
	checkIDs(t, "handled", g.handled.ids(), []uint64{1, 2})
	s := b.Stats()
	if c := s.Conveyors[1]; c.Produced != 2 || c.Consumed != 2 || c.Dropped != 0 {
		t.Errorf("L1 stats %+v; want 2 produced, 2 consumed, 0 dropped", c)
	}
	if c := s.Conveyors[0]; c.Produced != 0 {
		t.Errorf("L0 produced %d; the balancer never picked it", c.Produced)
	}
}

// TestOverflowDrop checks which events the dropping policies discard: the
// handler holds event k, the buffer (if any) fills, and four more events
// come. The drop handler must receive exactly the discarded events, and
// Stats must count them.
func TestOverflowDrop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		policy mainbus.Overflow
		buffer int

		// IDs as offsets from k, the event the handler holds.
		handled, dropped []uint64
	}{
		{"DropNewest", mainbus.DropNewest, 2, []uint64{0, 1, 2}, []uint64{3, 4}},
		{"DropOldest", mainbus.DropOldest, 2, []uint64{0, 3, 4}, []uint64{1, 2}},
		{"DropNewest without buffer", mainbus.DropNewest, 0, []uint64{0}, []uint64{1, 2, 3, 4}},
		{"DropOldest without buffer", mainbus.DropOldest, 0, []uint64{0}, []uint64{1, 2, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var dropped policyLog
			b, g := newGatedBus(t, mainbus.WithBuffer(tc.buffer), mainbus.WithOverflow(tc.policy),
				mainbus.WithDropHandler(dropped.add))

			// Without a buffer an event is taken only if the consumer is
			// already waiting; until it is, a dropping policy discards.
			// Those early drops are expected too.
			var k uint64
			deadline := time.Now().Add(waitLimit)
			for id := uint64(1); k == 0; id++ {
				policyProduce(t, b, id)
				switch {
				case !dropped.has(id):
					g.waitStart(t, id)
					k = id
				case time.Now().After(deadline):
					t.Fatalf("the consumer took none of %d events", id)
				default:
					runtime.Gosched()
				}
			}
			wantDropped := policyIDs(1, k-1)
			policyProduce(t, b, policyIDs(k+1, k+4)...)
			for _, off := range tc.dropped {
				wantDropped = append(wantDropped, k+off)
			}
			// The drops happen in Produce, so they are all known now.
			checkIDs(t, "dropped", dropped.ids(), wantDropped)

			g.open()
			policyClose(t, b)
			var wantHandled []uint64
			for _, off := range tc.handled {
				wantHandled = append(wantHandled, k+off)
			}
			checkIDs(t, "handled", g.handled.ids(), wantHandled)
			checkIDs(t, "dropped after Close", dropped.ids(), wantDropped)

			for _, ev := range dropped.events() {
				if ev.Value != int(ev.ID)*10 || ev.Resource != "iron" || ev.Time.IsZero() {
					t.Errorf("drop handler got %+v; want the event as produced and stamped", ev)
				}
			}
			s := b.Stats().Conveyors[0]
			if s.Dropped != uint64(len(wantDropped)) || s.Consumed != uint64(len(wantHandled)) {
				t.Errorf("stats dropped %d, consumed %d; want %d and %d",
					s.Dropped, s.Consumed, len(wantDropped), len(wantHandled))
			}
		})
	}
}

// TestOverflowBounded drives each policy with many fast producers and a
// slow handler. Stats must never show a conveyor holding more than its
// capacity, and after Close every accepted event must be either handled
// or dropped, exactly once, with the counters agreeing.
func TestOverflowBounded(t *testing.T) {
	t.Parallel()
	const (
		producers = 8
		each      = 250
		conveyors = 2
		buffer    = 4
	)
	for _, policy := range []mainbus.Overflow{mainbus.Block, mainbus.Reject,
		mainbus.DropNewest, mainbus.DropOldest} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()

			// The handler waits until a conveyor has overflowed, so that
			// every run exercises the policy; then it is merely slow.
			pressure := make(chan struct{})
			var pressOnce sync.Once
			press := func() { pressOnce.Do(func() { close(pressure) }) }
			var handled, dropped, accepted policyLog
			h := func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
				select {
				case <-pressure:
				case <-ctx.Done():
					return ctx.Err()
				}
				handled.add(ev)
				for range 10 {
					runtime.Gosched()
				}
				return nil
			}
			b := newPolicyBus(t, "iron", h, press,
				mainbus.WithConveyors(conveyors), mainbus.WithExactConveyors(),
				mainbus.WithBuffer(buffer), mainbus.WithOverflow(policy),
				mainbus.WithDropHandler(func(ev mainbus.Event[int]) {
					dropped.add(ev)
					press()
				}))

			// The poller samples Stats until the producers are done.
			stop := make(chan struct{})
			polled := make(chan []string, 1)
			var sawFull atomic.Bool
			go func() {
				var bad []string
				for {
					for _, c := range b.Stats().Conveyors {
						if c.Capacity != buffer || c.Depth > c.Capacity {
							bad = append(bad, fmt.Sprintf("L%d depth %d capacity %d",
								c.Conveyor, c.Depth, c.Capacity))
						}
						if c.Depth == c.Capacity {
							sawFull.Store(true)
							press()
						}
					}
					select {
					case <-stop:
						polled <- bad
						return
					default:
						runtime.Gosched()
					}
				}
			}()

			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			var rejected atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, producers)
			for p := range producers {
				wg.Go(func() {
					for i := range each {
						ev := policyEvent(uint64(p*each + i + 1))
						err := b.Produce(ctx, ev)
						switch {
						case err == nil:
							accepted.add(ev)
						case policy == mainbus.Reject && errors.Is(err, mainbus.ErrFull):
							rejected.Add(1)
							press()
						default:
							errs <- fmt.Errorf("Produce(%d): %w", ev.ID, err)
							return
						}
					}
				})
			}
			wg.Wait()
			press()
			close(stop)
			if bad := <-polled; len(bad) > 0 {
				t.Errorf("Stats showed %d bad samples, first %s; want depth <= capacity = %d",
					len(bad), bad[0], buffer)
			}
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			policyClose(t, b)

			checkOnce(t, accepted.ids(), handled.ids(), dropped.ids())
			nAcc, nDrop := uint64(len(accepted.ids())), uint64(len(dropped.ids()))
			tot := b.Stats().Total()
			if tot.Consumed != uint64(len(handled.ids())) || tot.Dropped != nDrop {
				t.Errorf("stats consumed %d, dropped %d; the handlers saw %d and %d",
					tot.Consumed, tot.Dropped, len(handled.ids()), nDrop)
			}
			if tot.Consumed+tot.Dropped != nAcc {
				t.Errorf("stats consumed %d + dropped %d != %d accepted",
					tot.Consumed, tot.Dropped, nAcc)
			}

			// Where the policy's overflow shows, and what Produced counts.
			wantProduced := nAcc
			switch policy {
			case mainbus.Block:
				if nAcc != producers*each || !sawFull.Load() {
					t.Errorf("accepted %d of %d, saw a full conveyor: %v; want all, true",
						nAcc, producers*each, sawFull.Load())
				}
			case mainbus.Reject:
				if n := rejected.Load(); n == 0 || nAcc+uint64(n) != producers*each {
					t.Errorf("accepted %d, rejected %d; want some rejected, %d in all",
						nAcc, n, producers*each)
				}
			case mainbus.DropNewest:
				// The discarded event never reached a conveyor.
				wantProduced = nAcc - nDrop
			}
			if policy == mainbus.Block || policy == mainbus.Reject {
				if nDrop != 0 {
					t.Errorf("%d events dropped under %v", nDrop, policy)
				}
			} else if nDrop == 0 {
				t.Errorf("nothing dropped under %v although conveyors overflowed", policy)
			}
			if tot.Produced != wantProduced {
				t.Errorf("stats produced %d; want %d", tot.Produced, wantProduced)
			}
		})
	}
}

// checkOnce checks that every accepted ID was handled or dropped, exactly
// once, and that nothing else was.
func checkOnce(t *testing.T, accepted, handled, dropped []uint64) {
	t.Helper()
	type fate struct{ handled, dropped int }
	fates := make(map[uint64]*fate, len(accepted))
	for _, id := range accepted {
		fates[id] = &fate{}
	}
	for _, id := range handled {
		if f := fates[id]; f != nil {
			f.handled++
		} else {
			t.Errorf("event %d handled but never accepted", id)
		}
	}
	for _, id := range dropped {
		if f := fates[id]; f != nil {
			f.dropped++
		} else {
			t.Errorf("event %d dropped but never accepted", id)
		}
	}
	bad := 0
	for id, f := range fates {
		if f.handled+f.dropped != 1 && bad < 10 {
			bad++
			t.Errorf("event %d handled %d times, dropped %d times; want once in all",
				id, f.handled, f.dropped)
		}
	}
}

// TestOverflowOptions checks that New refuses the policy options it
// cannot use, saying what it accepts.
func TestOverflowOptions(t *testing.T) {
	t.Parallel()
	h := func(context.Context, int, mainbus.Event[int]) error { return nil }
	for _, tc := range []struct {
		name string
		opt  mainbus.Option
		want string
	}{
		{"drop handler of another payload", mainbus.WithDropHandler(func(mainbus.Event[string]) {}),
			"func(mainbus.Event[int])"},
		{"unknown policy", mainbus.WithOverflow(mainbus.Overflow(42)),
			"want Block, Reject, DropNewest or DropOldest"},
		{"negative policy", mainbus.WithOverflow(mainbus.Overflow(-1)),
			"want Block, Reject, DropNewest or DropOldest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkInvalid(t, h, tc.opt, tc.want)
		})
	}
}

// checkInvalid checks that New refuses opt with an error wrapping
// ErrInvalidOption whose message contains want.
func checkInvalid(t *testing.T, h mainbus.Handler[int], opt mainbus.Option, want string) {
	t.Helper()
	b, err := mainbus.New("iron", h, opt)
	if err == nil {
		_ = b.Close(context.Background())
		t.Fatal("New accepted the option")
	}
	if !errors.Is(err, mainbus.ErrInvalidOption) {
		t.Errorf("New: %v; want an error wrapping ErrInvalidOption", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("New: %q; want it to say %q", err, want)
	}
	if b != nil {
		t.Errorf("New returned a bus with its error")
	}
}
