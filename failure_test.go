package mainbus_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mainbus-go/mainbus"
)

// errSmelt is the error the failing handlers of these tests return.
var errSmelt = errors.New("furnace cold")

// checkReport checks the fields every report of a failed attempt carries.
func checkReport(t *testing.T, he *mainbus.HandlerError, conveyor int, id uint64, attempt int) {
	t.Helper()
	if he.Resource != "iron" || he.Conveyor != conveyor || he.EventID != id || he.Attempt != attempt {
		t.Errorf("report names %s L%d event %d attempt %d; want iron L%d event %d attempt %d",
			he.Resource, he.Conveyor, he.EventID, he.Attempt, conveyor, id, attempt)
	}
	if (he.Err == nil) == (he.Panic == nil) {
		t.Errorf("report has Err %v and Panic %v; want exactly one set", he.Err, he.Panic)
	}
}

// isGoexit reports whether p is the Panic of a report of runtime.Goexit.
func isGoexit(p any) bool {
	s, ok := p.(string)
	return ok && strings.Contains(s, "Goexit")
}

// TestHandlerFailure checks that a failing handler is reported with the
// event's coordinates and counted, and that its conveyor goes on.
func TestHandlerFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		fail     func() error // the handler of event 3
		check    func(t *testing.T, he *mainbus.HandlerError)
		panicked bool
	}{
		{
			name: "error",
			fail: func() error { return fmt.Errorf("smelt: %w", errSmelt) },
			check: func(t *testing.T, he *mainbus.HandlerError) {
				if !errors.Is(he, errSmelt) || he.Panic != nil {
					t.Errorf("report %v, Panic %v; want it to wrap errSmelt, no Panic", he, he.Panic)
				}
			},
		},
		{
			name: "panic",
			fail: func() error { panic("boom") },
			check: func(t *testing.T, he *mainbus.HandlerError) {
				if he.Panic != "boom" || he.Err != nil {
					t.Errorf("report Panic %v, Err %v; want boom, nil", he.Panic, he.Err)
				}
			},
			panicked: true,
		},
		{
			name: "panic with an error",
			fail: func() error { panic(errSmelt) },
			check: func(t *testing.T, he *mainbus.HandlerError) {
				if he.Panic != errSmelt || he.Err != nil || errors.Is(he, errSmelt) {
					t.Errorf("report Panic %v, Err %v; want the panic value only, not unwrapped",
						he.Panic, he.Err)
				}
			},
			panicked: true,
		},
		{
			name: "panic nil",
			fail: func() error { panic(nil) },
			check: func(t *testing.T, he *mainbus.HandlerError) {
				var pn *runtime.PanicNilError
				if err, _ := he.Panic.(error); !errors.As(err, &pn) {
					t.Errorf("report Panic %T %v; want a *runtime.PanicNilError", he.Panic, he.Panic)
				}
			},
			panicked: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var handled policyLog
			var reports policyErrors
			h := func(_ context.Context, conveyor int, ev mainbus.Event[int]) error {
				if conveyor != 1 {
					return fmt.Errorf("handler called for L%d; want L1", conveyor)
				}
				if ev.ID == 3 {
					return tc.fail()
				}
				handled.add(ev)
				return nil
			}
			toL1 := mainbus.BalancerFunc(func(string, mainbus.Conveyors) int { return 1 })
			b := newPolicyBus(t, "iron", h, nil, mainbus.WithConveyors(2),
				mainbus.WithExactConveyors(), mainbus.WithBalancer(toL1),
				mainbus.WithErrorHandler(reports.add))
			policyProduce(t, b, policyIDs(1, 6)...)
			policyClose(t, b)

			checkIDs(t, "handled", handled.ids(), []uint64{1, 2, 4, 5, 6})
			hes := reports.handlerErrors(t)
			if len(hes) != 1 {
				t.Fatalf("error handler got %d reports %v; want 1", len(hes), hes)
			}
			checkReport(t, hes[0], 1, 3, 1)
			tc.check(t, hes[0])

			want := mainbus.ConveyorStats{Conveyor: 1, Produced: 6, Consumed: 6, Failed: 1}
			if tc.panicked {
				want.Failed, want.Panicked = 0, 1
			}
			got := counts(b.Stats().Conveyors[1])
			got.Depth, got.Capacity = 0, 0
			if got != want {
				t.Errorf("L1 stats %+v; want %+v", got, want)
			}
		})
	}
}

// TestHandlerGoexit checks that a handler calling runtime.Goexit is
// reported as a panic, that its conveyor goes on in order, that a retry
// after it delivers the event once, and that Close still returns.
func TestHandlerGoexit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		attempts int
		goexits  int // the first this many attempts at event 3 call Goexit
		handled  []uint64
	}{
		{"no retry", 1, 1, []uint64{1, 2, 4, 5}},
		{"retry then success", 3, 1, []uint64{1, 2, 3, 4, 5}},
		{"retry, Goexit every attempt", 3, 3, []uint64{1, 2, 4, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var handled policyLog
			var reports policyErrors
			var mu sync.Mutex
			calls := 0 // attempts at event 3
			h := func(_ context.Context, _ int, ev mainbus.Event[int]) error {
				if ev.ID == 3 {
					mu.Lock()
					calls++
					n := calls
					mu.Unlock()
					if n <= tc.goexits {
						runtime.Goexit()
					}
				}
				handled.add(ev)
				return nil
			}
			b := newPolicyBus(t, "iron", h, nil, mainbus.WithConveyors(1),
				mainbus.WithExactConveyors(), mainbus.WithErrorHandler(reports.add),
				mainbus.WithRetry(tc.attempts, time.Microsecond, time.Microsecond))
			policyProduce(t, b, policyIDs(1, 5)...)
			policyClose(t, b)

			checkIDs(t, "handled", handled.ids(), tc.handled)
			hes := reports.handlerErrors(t)
			if len(hes) != tc.goexits {
				t.Fatalf("error handler got %d reports %v; want %d", len(hes), hes, tc.goexits)
			}
			for i, he := range hes {
				checkReport(t, he, 0, 3, i+1)
				if !isGoexit(he.Panic) {
					t.Errorf("report %d Panic %v; want a string naming runtime.Goexit", i, he.Panic)
				}
			}
			mu.Lock()
			got := calls
			mu.Unlock()
			if want := min(tc.goexits+1, tc.attempts); got != want {
				t.Errorf("event 3 tried %d times; want %d", got, want)
			}
			s := b.Stats().Conveyors[0]
			wantRetried := uint64(min(tc.goexits, tc.attempts-1))
			if s.Consumed != 5 || s.Panicked != uint64(tc.goexits) || s.Retried != wantRetried {
				t.Errorf("stats %+v; want 5 consumed, %d panicked, %d retried",
					s, tc.goexits, wantRetried)
			}
		})
	}
}

// TestRetryKeepsOrder checks that a failing event is retried until it
// succeeds, is handled once, and holds up the later events of its
// conveyor, so handling follows production order.
func TestRetryKeepsOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var calls []uint64
	fails := map[uint64]int{3: 2, 6: 1} // attempts that fail per event
	var handled policyLog
	var reports policyErrors
	h := func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		mu.Lock()
		calls = append(calls, ev.ID)
		fail := fails[ev.ID] > 0
		if fail {
			fails[ev.ID]--
		}
		mu.Unlock()
		if fail {
			return errSmelt
		}
		handled.add(ev)
		return nil
	}
	b := newPolicyBus(t, "iron", h, nil, mainbus.WithConveyors(1), mainbus.WithExactConveyors(),
		mainbus.WithRetry(3, time.Microsecond, 4*time.Microsecond),
		mainbus.WithErrorHandler(reports.add))
	policyProduce(t, b, policyIDs(1, 8)...)
	policyClose(t, b)

	checkIDs(t, "handled", handled.ids(), policyIDs(1, 8))
	checkIDs(t, "calls", calls, []uint64{1, 2, 3, 3, 3, 4, 5, 6, 6, 7, 8})
	hes := reports.handlerErrors(t)
	want := []struct {
		id      uint64
		attempt int
	}{{3, 1}, {3, 2}, {6, 1}}
	if len(hes) != len(want) {
		t.Fatalf("error handler got %d reports %v; want %d", len(hes), hes, len(want))
	}
	for i, w := range want {
		checkReport(t, hes[i], 0, w.id, w.attempt)
		if !errors.Is(hes[i], errSmelt) {
			t.Errorf("report %v; want it to wrap errSmelt", hes[i])
		}
	}
	s := b.Stats().Conveyors[0]
	if s.Produced != 8 || s.Consumed != 8 || s.Failed != 3 || s.Retried != 3 {
		t.Errorf("stats %+v; want 8 produced, 8 consumed, 3 failed, 3 retried", s)
	}
}

// TestRetryBackoff checks the waits between attempts, in a synctest
// bubble: base, 2×base, 4×base, … capped at max, each drawn from its
// upper half.
func TestRetryBackoff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var times []time.Time // written by the one consumer, read after Close
		b, err := mainbus.New("iron", func(context.Context, int, mainbus.Event[int]) error {
			times = append(times, time.Now())
			return errSmelt
		}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(),
			mainbus.WithRetry(5, 10*time.Millisecond, 50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Produce(context.Background(), policyEvent(1)); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}

		full := []time.Duration{10, 20, 40, 50} // ms, after attempts 1 to 4
		if len(times) != len(full)+1 {
			t.Fatalf("handler called %d times; want %d", len(times), len(full)+1)
		}
		for i, d := range full {
			d *= time.Millisecond
			if gap := times[i+1].Sub(times[i]); gap < d/2 || gap > d {
				t.Errorf("wait after attempt %d is %v; want %v to %v", i+1, gap, d/2, d)
			}
		}
	})
}

// deadLetters collects what arrives on a dead-letter bus.
type deadLetters struct {
	mu  sync.Mutex
	evs []mainbus.Event[mainbus.DeadLetter[int]]
}

func (d *deadLetters) handle(_ context.Context, _ int,
	ev mainbus.Event[mainbus.DeadLetter[int]]) error {
	d.mu.Lock()
	d.evs = append(d.evs, ev)
	d.mu.Unlock()
	return nil
}

func (d *deadLetters) list() []mainbus.Event[mainbus.DeadLetter[int]] {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.evs)
}

// TestDeadLetter checks that an event failing every attempt reaches the
// dead-letter bus once, with its last error and the number of attempts.
func TestDeadLetter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		attempts int
		panics   bool
	}{
		{"one attempt", 1, false},
		{"three attempts", 3, false},
		{"panics", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var letters deadLetters
			dl := newPolicyBus(t, "iron-dead", letters.handle, nil)

			var handled policyLog
			var reports policyErrors
			h := func(_ context.Context, _ int, ev mainbus.Event[int]) error {
				switch {
				case ev.ID != 7:
					handled.add(ev)
					return nil
				case tc.panics:
					panic("boom")
				}
				return errSmelt
			}
			// Registered after dl's, the cleanup of b runs before it.
			b := newPolicyBus(t, "iron", h, nil, mainbus.WithConveyors(1),
				mainbus.WithExactConveyors(), mainbus.WithErrorHandler(reports.add),
				mainbus.WithRetry(tc.attempts, time.Microsecond, 2*time.Microsecond),
				mainbus.WithDeadLetter(dl))
			policyProduce(t, b, policyIDs(1, 10)...)
			policyClose(t, b)
			policyClose(t, dl)

			checkIDs(t, "handled", handled.ids(), slices.Delete(policyIDs(1, 10), 6, 7))
			got := letters.list()
			if len(got) != 1 {
				t.Fatalf("dead-letter bus got %d events %+v; want 1", len(got), got)
			}
			letter := got[0].Value
			if ev := letter.Event; ev.ID != 7 || ev.Value != 70 || ev.Resource != "iron" {
				t.Errorf("dead letter holds %+v; want event 7 as produced", ev)
			}
			if letter.Attempts != tc.attempts {
				t.Errorf("dead letter says %d attempts; want %d", letter.Attempts, tc.attempts)
			}
			var he *mainbus.HandlerError
			if !errors.As(letter.Err, &he) {
				t.Fatalf("dead letter Err is %T %v; want a *mainbus.HandlerError",
					letter.Err, letter.Err)
			}
			checkReport(t, he, 0, 7, tc.attempts)
			if tc.panics != (he.Panic == "boom") || !tc.panics && !errors.Is(he, errSmelt) {
				t.Errorf("dead letter Err %v, Panic %v; want the last attempt's failure",
					he.Err, he.Panic)
			}
			if n := len(reports.list()); n != tc.attempts {
				t.Errorf("error handler got %d reports; want one per attempt, %d", n, tc.attempts)
			}

			s := b.Stats().Conveyors[0]
			if s.DeadLettered != 1 || s.DeadLetterFailed != 0 || s.Consumed != 10 ||
				s.Retried != uint64(tc.attempts-1) || s.Failed+s.Panicked != uint64(tc.attempts) {
				t.Errorf("stats %+v; want 1 dead-lettered, 10 consumed, %d retried, %d failed",
					s, tc.attempts-1, tc.attempts)
			}
			if s := dl.Stats().Total(); s.Produced != 1 || s.Consumed != 1 {
				t.Errorf("dead-letter bus stats %+v; want 1 produced and consumed", s)
			}
		})
	}
}

// TestDeadLetterClosed checks that when the dead-letter bus is closed, the
// failure goes to the error handler and nothing hangs.
func TestDeadLetterClosed(t *testing.T) {
	t.Parallel()
	var letters deadLetters
	dl := newPolicyBus(t, "iron-dead", letters.handle, nil)
	policyClose(t, dl)

	var handled policyLog
	var reports policyErrors
	h := func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		if ev.ID == 1 {
			return errSmelt
		}
		handled.add(ev)
		return nil
	}
	b := newPolicyBus(t, "iron", h, nil, mainbus.WithConveyors(1), mainbus.WithExactConveyors(),
		mainbus.WithErrorHandler(reports.add), mainbus.WithDeadLetter(dl),
		mainbus.WithRetry(2, time.Microsecond, time.Microsecond))
	policyProduce(t, b, 1, 2)
	policyClose(t, b)

	checkIDs(t, "handled", handled.ids(), []uint64{2})
	hes := reports.handlerErrors(t)
	if len(hes) != 3 {
		t.Fatalf("error handler got %d reports %v; want 2 attempts and the dead-letter failure",
			len(hes), hes)
	}
	for i, he := range hes[:2] {
		checkReport(t, he, 0, 1, i+1)
	}
	last := hes[2]
	if last.EventID != 1 || !errors.Is(last, mainbus.ErrClosed) || !errors.Is(last, errSmelt) {
		t.Errorf("last report %v; want event 1, wrapping ErrClosed and the handler's error", last)
	}
	if len(letters.list()) != 0 {
		t.Errorf("the closed dead-letter bus handled %d events", len(letters.list()))
	}
	s := b.Stats().Conveyors[0]
	if s.DeadLettered != 0 || s.Consumed != 2 || s.Retried != 1 {
		t.Errorf("stats %+v; want 0 dead-lettered, 2 consumed, 1 retried", s)
	}
	// ConveyorStats.Failed counts "handler attempts that returned an
	// error": two here. The dead-letter failure is not a handler attempt;
	// it has its own counter.
	if s.Failed != 2 || s.DeadLetterFailed != 1 {
		t.Errorf("stats Failed %d, DeadLetterFailed %d; want 2 handler attempts, 1 refusal",
			s.Failed, s.DeadLetterFailed)
	}
}

// TestProduceFromHandler checks that a handler producing into its own bus
// never hangs: it gets ErrWouldBlock where Produce would wait, ErrFull from
// TryProduce, and succeeds where there is room.
func TestProduceFromHandler(t *testing.T) {
	t.Parallel()

	t.Run("full own conveyor", func(t *testing.T) {
		t.Parallel()
		var b *mainbus.Bus[int]
		var handled policyLog
		results := make(chan []error, 1)
		h := func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
			handled.add(ev)
			if ev.ID != 1 {
				return nil
			}
			// A context that outlives the test: waiting on it would
			// show as DeadlineExceeded, not ErrWouldBlock.
			ctx, cancel := context.WithTimeout(ctx, waitLimit)
			defer cancel()
			results <- []error{
				b.Produce(ctx, policyEvent(2)), // fills the one slot
				b.Produce(ctx, policyEvent(3)),
				b.TryProduce(policyEvent(4)),
			}
			return nil
		}
		b = newPolicyBus(t, "iron", h, nil, mainbus.WithConveyors(1),
			mainbus.WithExactConveyors(), mainbus.WithBuffer(1))
		policyProduce(t, b, 1)
		errs := recv(t, results, "handler's Produce results")
		if errs[0] != nil {
			t.Fatalf("Produce into room from a handler: %v", errs[0])
		}
		checkProduceError(t, errs[1], 0, mainbus.ErrWouldBlock)
		checkProduceError(t, errs[2], 0, mainbus.ErrFull)
		if errors.Is(errs[2], mainbus.ErrWouldBlock) {
			t.Errorf("TryProduce: %v; want ErrFull only", errs[2])
		}
		policyClose(t, b)
		checkIDs(t, "handled", handled.ids(), []uint64{1, 2})
	})

	t.Run("chain of follow-ups", func(t *testing.T) {
		t.Parallel()
		const last = 50
		var b *mainbus.Bus[int]
		var handled policyLog
		done := make(chan struct{})
		h := func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
			handled.add(ev)
			if ev.ID == last {
				close(done)
				return nil
			}
			return b.Produce(ctx, policyEvent(ev.ID+1))
		}
		var reports policyErrors
		b = newPolicyBus(t, "iron", h, nil, mainbus.WithConveyors(1),
			mainbus.WithExactConveyors(), mainbus.WithBuffer(1),
			mainbus.WithErrorHandler(reports.add))
		policyProduce(t, b, 1)
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Fatalf("chain did not complete within %v; reports %v", waitLimit, reports.list())
		}
		policyClose(t, b)
		checkIDs(t, "handled", handled.ids(), policyIDs(1, last))
		if errs := reports.list(); len(errs) > 0 {
			t.Errorf("error handler got %v; want nothing", errs)
		}
	})
}

// TestCloseCutsFailingEvent checks that a Close whose context ends while
// an event is retried, or waits for the dead-letter bus, hands that event
// back with those behind it, and that every accepted event is accounted
// for: handled, dead-lettered or handed back, once.
func TestCloseCutsFailingEvent(t *testing.T) {
	t.Parallel()
	// Events keyed "stuck" go to L0, the others to L1.
	byKey := mainbus.BalancerFunc(func(key string, _ mainbus.Conveyors) int {
		if key == "stuck" {
			return 0
		}
		return 1
	})

	for _, tc := range []struct {
		name string

		// opts builds the options of the bus under test; the handler
		// fails events 1 and 2 (key stuck, on L0) on every attempt.
		opts func(t *testing.T) []mainbus.Option

		// stuck is reached once L0 has begun the wait Close cuts short.
		stuck func(t *testing.T, reports *policyErrors)

		undelivered []uint64
		dead        uint64 // events dead-lettered
	}{
		{
			name: "retry backoff",
			opts: func(t *testing.T) []mainbus.Option {
				return []mainbus.Option{mainbus.WithRetry(2, time.Hour, time.Hour)}
			},
			stuck: func(t *testing.T, reports *policyErrors) {
				pollUntil(t, func() bool {
					return len(reports.list()) == 1
				})
			},
			undelivered: []uint64{1, 2, 3},
		},
		{
			name: "dead-letter bus full",
			opts: func(t *testing.T) []mainbus.Option {
				// The dead-letter bus has one conveyor without a buffer,
				// and its handler holds the first letter, so the second
				// one waits.
				g := newPolicyGate()
				dl := newPolicyBus(t, "iron-dead",
					func(ctx context.Context, _ int, _ mainbus.Event[mainbus.DeadLetter[int]]) error {
						select {
						case <-g.release:
						case <-ctx.Done():
						}
						return nil
					}, g.open, mainbus.WithConveyors(1), mainbus.WithExactConveyors(),
					mainbus.WithBuffer(0))
				return []mainbus.Option{mainbus.WithDeadLetter(dl)}
			},
			stuck: func(t *testing.T, reports *policyErrors) {
				pollUntil(t, func() bool { return len(reports.list()) == 2 })
			},
			undelivered: []uint64{2, 3},
			dead:        1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var handled policyLog
			var reports policyErrors
			h := func(_ context.Context, _ int, ev mainbus.Event[int]) error {
				if ev.ID <= 2 {
					return errSmelt
				}
				handled.add(ev)
				return nil
			}
			opts := append(tc.opts(t), mainbus.WithConveyors(2), mainbus.WithExactConveyors(),
				mainbus.WithBalancer(byKey), mainbus.WithErrorHandler(reports.add))
			b := newPolicyBus(t, "iron", h, nil, opts...)

			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			var accepted []uint64
			for id := uint64(1); id <= 8; id++ {
				ev := policyEvent(id)
				if id <= 3 {
					ev.Key = "stuck"
				}
				if err := b.Produce(ctx, ev); err != nil {
					t.Fatalf("Produce(%d): %v", id, err)
				}
				accepted = append(accepted, id)
			}
			tc.stuck(t, &reports)
			// L1 goes on while L0 is stuck.
			pollUntil(t, func() bool { return len(handled.ids()) == 5 })

			short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancelShort()
			err := b.Close(short)
			var de *mainbus.DrainError[int]
			if !errors.As(err, &de) {
				t.Fatalf("Close: %v; want a *mainbus.DrainError[int]", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) || de.Resource != "iron" {
				t.Errorf("DrainError %v of %s; want iron, wrapping DeadlineExceeded",
					err, de.Resource)
			}
			var back []uint64
			for _, ev := range de.Undelivered {
				back = append(back, ev.ID)
				if ev.Value != int(ev.ID)*10 || ev.Key != "stuck" {
					t.Errorf("handed back %+v; want the event as produced", ev)
				}
			}
			checkIDs(t, "undelivered", back, tc.undelivered)
			checkIDs(t, "handled", handled.ids(), policyIDs(4, 8))

			tot := b.Stats().Total()
			n := uint64(len(handled.ids())+len(back)) + tot.DeadLettered
			if n != uint64(len(accepted)) || tot.DeadLettered != tc.dead {
				t.Errorf("handled %d + handed back %d + dead-lettered %d; want %d, %d dead-lettered",
					len(handled.ids()), len(back), tot.DeadLettered, len(accepted), tc.dead)
			}
			// Consumed counts the events the bus is done with; those
			// handed back are not done with.
			if tot.Consumed+uint64(len(back)) != tot.Produced {
				t.Errorf("stats consumed %d + handed back %d != produced %d",
					tot.Consumed, len(back), tot.Produced)
			}
		})
	}
}

// TestFailureOptions checks that New refuses bad retry and dead-letter
// options, saying what it accepts, and takes the edge values it should.
func TestFailureOptions(t *testing.T) {
	t.Parallel()
	h := func(context.Context, int, mainbus.Event[int]) error { return nil }
	other := newPolicyBus(t, "copper-dead",
		func(context.Context, int, mainbus.Event[mainbus.DeadLetter[string]]) error {
			return nil
		}, nil)

	for _, tc := range []struct {
		name string
		opt  mainbus.Option
		want string // "" if New accepts the option
	}{
		{"zero attempts", mainbus.WithRetry(0, time.Millisecond, time.Second), "want 1 or more"},
		{"negative attempts", mainbus.WithRetry(-1, time.Millisecond, time.Second), "want 1 or more"},
		{"zero backoff", mainbus.WithRetry(3, 0, 0), "want 0 < base <= max"},
		{"max below base", mainbus.WithRetry(3, time.Second, time.Millisecond),
			"want 0 < base <= max"},
		{"nil dead-letter bus", mainbus.WithDeadLetter[int](nil),
			"want a *mainbus.Bus[mainbus.DeadLetter[int]]"},
		{"dead-letter bus of another payload", mainbus.WithDeadLetter(other),
			"want a *mainbus.Bus[mainbus.DeadLetter[int]]"},
		{"one attempt without backoff", mainbus.WithRetry(1, 0, 0), ""},
		{"base equal to max", mainbus.WithRetry(3, time.Second, time.Second), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.want != "" {
				checkInvalid(t, h, tc.opt, tc.want)
				return
			}
			b, err := mainbus.New("iron", h, tc.opt)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			policyClose(t, b)
		})
	}
}
