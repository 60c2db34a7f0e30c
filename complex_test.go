package mainbus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
)

// cxNewBus builds a bus and makes sure it is closed when the test ends.
func cxNewBus[T any](t *testing.T, resource string, h mainbus.Handler[T],
	opts ...mainbus.Option) *mainbus.Bus[T] {
	t.Helper()
	b, err := mainbus.New(resource, h, opts...)
	if err != nil {
		t.Fatalf("New(%q): %v", resource, err)
	}
	t.Cleanup(func() {
		// Handlers of these tests watch their context, so a bounded
		// Close always ends.
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// cxCounter is a handler that counts its events per ID and tells seen.
type cxCounter[T any] struct {
	mu   sync.Mutex
	seen map[uint64]int
	each chan uint64 // receives every handled ID, if not nil
}

func (c *cxCounter[T]) handle(_ context.Context, _ int, ev mainbus.Event[T]) error {
	c.mu.Lock()
	if c.seen == nil {
		c.seen = map[uint64]int{}
	}
	c.seen[ev.ID]++
	c.mu.Unlock()
	if c.each != nil {
		c.each <- ev.ID
	}
	return nil
}

// check fails t unless IDs 1..n were each handled exactly once.
func (c *cxCounter[T]) check(t *testing.T, name string, n int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) != n {
		t.Errorf("%s: handled %d distinct events, want %d", name, len(c.seen), n)
	}
	for id := uint64(1); id <= uint64(n); id++ {
		if c.seen[id] != 1 {
			t.Errorf("%s: event %d handled %d times, want 1", name, id, c.seen[id])
		}
	}
}

// cxClosed reports whether ch is closed, without waiting.
func cxClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// cxNoPanic runs f and turns a panic into a test failure, so that one
// broken promise does not take the whole test binary down. It reports
// whether f returned normally.
func cxNoPanic(t *testing.T, what string, f func()) (ok bool) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("%s panicked: %v; want an error", what, p)
		}
	}()
	f()
	return true
}

func TestComplexZeroValueMixedTypes(t *testing.T) {
	t.Parallel()
	var x mainbus.Complex
	var irons cxCounter[string]
	var coppers cxCounter[int]
	iron := cxNewBus(t, "iron", irons.handle)
	copper := cxNewBus(t, "copper", coppers.handle, mainbus.WithConveyors(2))
	if err := x.Add(iron); err != nil {
		t.Fatalf("Add(iron) on a zero Complex: %v", err)
	}
	if err := x.Add(copper); err != nil {
		t.Fatalf("Add(copper): %v", err)
	}

	gotIron, err := mainbus.Lookup[string](&x, "iron")
	if err != nil || gotIron != iron {
		t.Fatalf("Lookup[string](iron) = %p, %v; want %p, nil", gotIron, err, iron)
	}
	gotCopper, err := mainbus.Lookup[int](&x, "copper")
	if err != nil || gotCopper != copper {
		t.Fatalf("Lookup[int](copper) = %p, %v; want %p, nil", gotCopper, err, copper)
	}
	ctx := context.Background()
	for i := 1; i <= 100; i++ {
		if err := gotIron.Produce(ctx, mainbus.Event[string]{ID: uint64(i), Value: "plate"}); err != nil {
			t.Fatalf("Produce on iron: %v", err)
		}
		if err := gotCopper.Produce(ctx, mainbus.Event[int]{ID: uint64(i), Value: i}); err != nil {
			t.Fatalf("Produce on copper: %v", err)
		}
	}
	if err := x.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	irons.check(t, "iron", 100)
	coppers.check(t, "copper", 100)
}

func TestComplexZeroValueEmpty(t *testing.T) {
	t.Parallel()
	var x mainbus.Complex
	if got := x.Resources(); len(got) != 0 {
		t.Errorf("Resources of a zero Complex = %v, want none", got)
	}
	if got := x.Stats(); len(got) != 0 {
		t.Errorf("Stats of a zero Complex = %v, want none", got)
	}
	_, err := x.Bus("iron")
	if !errors.Is(err, mainbus.ErrUnknownResource) {
		t.Errorf("Bus(iron) on a zero Complex = %v, want ErrUnknownResource", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := x.Wait(ctx); err != nil {
		t.Errorf("Wait on a zero Complex = %v, want nil", err)
	}
	if err := x.Close(ctx); err != nil {
		t.Errorf("Close of a zero Complex = %v, want nil", err)
	}
}

func TestComplexAddErrors(t *testing.T) {
	t.Parallel()
	nop := func(context.Context, int, mainbus.Event[int]) error { return nil }
	tests := []struct {
		name string
		add  func(t *testing.T, x *mainbus.Complex, iron *mainbus.Bus[int]) error
		want error
	}{
		{"same bus twice", func(t *testing.T, x *mainbus.Complex, iron *mainbus.Bus[int]) error {
			return x.Add(iron)
		}, mainbus.ErrInvalidOption},
		{"another bus of the same resource", func(t *testing.T, x *mainbus.Complex, _ *mainbus.Bus[int]) error {
			return x.Add(cxNewBus(t, "iron", nop))
		}, mainbus.ErrInvalidOption},
		{"same resource, other payload type", func(t *testing.T, x *mainbus.Complex, _ *mainbus.Bus[int]) error {
			return x.Add(cxNewBus(t, "iron", func(context.Context, int, mainbus.Event[string]) error {
				return nil
			}))
		}, mainbus.ErrInvalidOption},
		{"nil interface", func(t *testing.T, x *mainbus.Complex, _ *mainbus.Bus[int]) error {
			return x.Add(nil)
		}, mainbus.ErrInvalidOption},
		{"nil *Bus", func(t *testing.T, x *mainbus.Complex, _ *mainbus.Bus[int]) error {
			// What a caller gets from a New that failed.
			var b *mainbus.Bus[int]
			return x.Add(b)
		}, mainbus.ErrInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var x mainbus.Complex
			iron := cxNewBus(t, "iron", nop)
			if err := x.Add(iron); err != nil {
				t.Fatalf("Add(iron): %v", err)
			}
			var err error
			ok := cxNoPanic(t, "Add", func() { err = tt.add(t, &x, iron) })
			if ok && !errors.Is(err, tt.want) {
				t.Errorf("Add = %v, want an error wrapping %v", err, tt.want)
			}
			if got := x.Resources(); !slices.Equal(got, []string{"iron"}) {
				t.Errorf("after the failed Add, Resources = %v, want [iron]", got)
			}
			if got, err := mainbus.Lookup[int](&x, "iron"); got != iron || err != nil {
				t.Errorf("after the failed Add, Lookup[int](iron) = %p, %v; want the first bus %p",
					got, err, iron)
			}
		})
	}
}

func TestComplexAddAfterClose(t *testing.T) {
	t.Parallel()
	var x mainbus.Complex
	nop := func(context.Context, int, mainbus.Event[int]) error { return nil }
	if err := x.Add(cxNewBus(t, "iron", nop)); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := x.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	copper := cxNewBus(t, "copper", nop)
	if err := x.Add(copper); !errors.Is(err, mainbus.ErrClosed) {
		t.Errorf("Add after Close = %v, want ErrClosed", err)
	}
	if got := x.Resources(); !slices.Equal(got, []string{"iron"}) {
		t.Errorf("Resources after a refused Add = %v, want [iron]", got)
	}
	// The refused bus is still the caller's, and still running.
	if err := copper.Produce(context.Background(), mainbus.Event[int]{ID: 1}); err != nil {
		t.Errorf("Produce on a bus a closed Complex refused = %v, want nil", err)
	}
}

func TestComplexLookup(t *testing.T) {
	t.Parallel()
	var x mainbus.Complex
	iron := cxNewBus(t, "iron", func(context.Context, int, mainbus.Event[string]) error { return nil })
	copper := cxNewBus(t, "copper", func(context.Context, int, mainbus.Event[int]) error { return nil })
	for _, b := range []mainbus.Member{iron, copper} {
		if err := x.Add(b); err != nil {
			t.Fatalf("Add(%s): %v", b.Resource(), err)
		}
	}

	t.Run("right type", func(t *testing.T) {
		t.Parallel()
		if got, err := mainbus.Lookup[string](&x, "iron"); got != iron || err != nil {
			t.Errorf("Lookup[string](iron) = %p, %v; want %p, nil", got, err, iron)
		}
		if got, err := mainbus.Lookup[int](&x, "copper"); got != copper || err != nil {
			t.Errorf("Lookup[int](copper) = %p, %v; want %p, nil", got, err, copper)
		}
		if m, err := x.Bus("copper"); m != copper || err != nil {
			t.Errorf("Bus(copper) = %v, %v; want the copper bus", m, err)
		}
	})
	tests := []struct {
		name     string
		lookup   func() (any, error)
		mentions []string
	}{
		{"unknown resource", func() (any, error) { return mainbus.Lookup[int](&x, "steel") },
			[]string{"steel", "iron", "copper"}},
		{"unknown resource via Bus", func() (any, error) { return x.Bus("steel") },
			[]string{"steel", "iron", "copper"}},
		{"empty name", func() (any, error) { return mainbus.Lookup[int](&x, "") },
			[]string{"iron", "copper"}},
		{"wrong type", func() (any, error) { return mainbus.Lookup[string](&x, "copper") },
			[]string{"copper"}},
		{"wrong type, pointer payload", func() (any, error) { return mainbus.Lookup[*int](&x, "copper") },
			[]string{"copper"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.lookup()
			if !errors.Is(err, mainbus.ErrUnknownResource) {
				t.Fatalf("lookup = %v, %v; want an error wrapping ErrUnknownResource", got, err)
			}
			for _, s := range tt.mentions {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestComplexResourcesAndStatsOrder(t *testing.T) {
	t.Parallel()
	var x mainbus.Complex
	names := []string{"steel", "copper", "iron", "coal"}
	var counters []*cxCounter[int]
	var buses []*mainbus.Bus[int]
	for i, name := range names {
		c := &cxCounter[int]{}
		// Bus i has 2(i+1) conveyors and gets 10(i+1) events, so a
		// snapshot in the wrong order or of the wrong bus shows.
		b := cxNewBus(t, name, c.handle, mainbus.WithConveyors(2*(i+1)))
		if err := x.Add(b); err != nil {
			t.Fatalf("Add(%s): %v", name, err)
		}
		counters = append(counters, c)
		buses = append(buses, b)
	}
	if got := x.Resources(); !slices.Equal(got, names) {
		t.Errorf("Resources = %v, want the order of Add %v", got, names)
	}
	for i, b := range buses {
		for id := 1; id <= 10*(i+1); id++ {
			if err := b.Produce(context.Background(), mainbus.Event[int]{ID: uint64(id)}); err != nil {
				t.Fatalf("Produce on %s: %v", names[i], err)
			}
		}
	}
	if err := x.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	stats := x.Stats()
	if len(stats) != len(names) {
		t.Fatalf("Stats has %d entries, want %d", len(stats), len(names))
	}
	for i, s := range stats {
		counters[i].check(t, names[i], 10*(i+1))
		if s.Resource != names[i] {
			t.Errorf("Stats[%d].Resource = %q, want %q", i, s.Resource, names[i])
		}
		if len(s.Conveyors) != 2*(i+1) {
			t.Errorf("Stats[%d] has %d conveyors, want %d", i, len(s.Conveyors), 2*(i+1))
		}
		total := s.Total()
		if want := uint64(10 * (i + 1)); total.Produced != want || total.Consumed != want {
			t.Errorf("Stats[%d] (%s) total produced %d consumed %d, want %d and %d",
				i, names[i], total.Produced, total.Consumed, want, want)
		}
		if total.Depth != 0 {
			t.Errorf("Stats[%d] (%s) depth %d after Close, want 0", i, names[i], total.Depth)
		}
	}
}

func TestComplexCloseClosesAll(t *testing.T) {
	t.Parallel()
	var x mainbus.Complex
	var irons cxCounter[string]
	var coppers cxCounter[int]
	iron := cxNewBus(t, "iron", irons.handle)
	copper := cxNewBus(t, "copper", coppers.handle)
	for _, b := range []mainbus.Member{iron, copper} {
		if err := x.Add(b); err != nil {
			t.Fatalf("Add(%s): %v", b.Resource(), err)
		}
	}
	ctx := context.Background()
	for i := 1; i <= 50; i++ {
		if err := iron.Produce(ctx, mainbus.Event[string]{ID: uint64(i)}); err != nil {
			t.Fatalf("Produce on iron: %v", err)
		}
		if err := copper.Produce(ctx, mainbus.Event[int]{ID: uint64(i)}); err != nil {
			t.Fatalf("Produce on copper: %v", err)
		}
	}

	// Several goroutines close at once; all see the same clean result.
	const closers = 4
	results := make(chan error, closers)
	for range closers {
		go func() { results <- x.Close(ctx) }()
	}
	for range closers {
		if err := recv(t, results, "Complex.Close"); err != nil {
			t.Errorf("Close = %v, want nil", err)
		}
	}
	irons.check(t, "iron", 50)
	coppers.check(t, "copper", 50)

	if !cxClosed(iron.Done()) || !cxClosed(copper.Done()) {
		t.Errorf("after Close, Done closed: iron %v, copper %v; want both",
			cxClosed(iron.Done()), cxClosed(copper.Done()))
	}
	if err := iron.Produce(ctx, mainbus.Event[string]{ID: 99}); !errors.Is(err, mainbus.ErrClosed) {
		t.Errorf("iron.Produce after Close = %v, want ErrClosed", err)
	}
	if err := copper.Produce(ctx, mainbus.Event[int]{ID: 99}); !errors.Is(err, mainbus.ErrClosed) {
		t.Errorf("copper.Produce after Close = %v, want ErrClosed", err)
	}
	if err := copper.TryProduce(mainbus.Event[int]{ID: 99}); !errors.Is(err, mainbus.ErrClosed) {
		t.Errorf("copper.TryProduce after Close = %v, want ErrClosed", err)
	}
	if err := x.Close(ctx); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	wctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	if err := x.Wait(wctx); err != nil {
		t.Errorf("Wait after Close = %v, want nil", err)
	}
	coal := cxNewBus(t, "coal", func(context.Context, int, mainbus.Event[int]) error { return nil })
	if err := x.Add(coal); !errors.Is(err, mainbus.ErrClosed) {
		t.Errorf("Add after Close = %v, want ErrClosed", err)
	}
}

func TestComplexWaitBeforeClose(t *testing.T) {
	t.Parallel()
	var x mainbus.Complex
	iron := cxNewBus(t, "iron", func(context.Context, int, mainbus.Event[int]) error { return nil })
	if err := x.Add(iron); err != nil {
		t.Fatalf("Add: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := x.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with an ended context on a running complex = %v, want context.Canceled", err)
	}
	// Wait closes nothing.
	if err := iron.Produce(context.Background(), mainbus.Event[int]{ID: 1}); err != nil {
		t.Errorf("Produce after Wait = %v, want nil", err)
	}
}

func TestComplexCloseDeadlineDrainError(t *testing.T) {
	t.Parallel()
	var x mainbus.Complex
	ironDone := make(chan uint64, 3)
	irons := cxCounter[string]{each: ironDone}
	iron := cxNewBus(t, "iron", irons.handle)

	// copper's single conveyor sticks on event 1 until its context ends;
	// events 2 and 3 wait behind it.
	started := make(chan struct{})
	var handled sync.Map
	copper := cxNewBus(t, "copper", func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
		handled.Store(ev.ID, true)
		if ev.ID == 1 {
			close(started)
			<-ctx.Done()
		}
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors())
	for _, b := range []mainbus.Member{iron, copper} {
		if err := x.Add(b); err != nil {
			t.Fatalf("Add(%s): %v", b.Resource(), err)
		}
	}
	bg := context.Background()
	for i := 1; i <= 3; i++ {
		if err := copper.Produce(bg, mainbus.Event[int]{ID: uint64(i), Value: 10 * i}); err != nil {
			t.Fatalf("Produce on copper: %v", err)
		}
		if err := iron.Produce(bg, mainbus.Event[string]{ID: uint64(i)}); err != nil {
			t.Fatalf("Produce on iron: %v", err)
		}
	}
	recv(t, started, "copper's handler to start")
	// iron has nothing left to drain, so only copper can miss the deadline.
	for range 3 {
		recv(t, ironDone, "iron's events")
	}

	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	err := x.Close(ctx)
	if err == nil {
		t.Fatal("Close with a stuck handler and a deadline = nil, want a *DrainError[int]")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want it to wrap context.DeadlineExceeded", err)
	}
	var de *mainbus.DrainError[int]
	if !errors.As(err, &de) {
		t.Fatalf("Close = %v (%T); errors.As finds no *DrainError[int]", err, err)
	}
	if de.Resource != "copper" {
		t.Errorf("DrainError.Resource = %q, want copper", de.Resource)
	}
	var ids []uint64
	for _, ev := range de.Undelivered {
		ids = append(ids, ev.ID)
		if ev.Value != 10*int(ev.ID) || ev.Resource != "copper" {
			t.Errorf("undelivered event %+v lost its value or resource", ev)
		}
		if _, ok := handled.Load(ev.ID); ok {
			t.Errorf("event %d is both handled and undelivered", ev.ID)
		}
	}
	if !slices.Equal(ids, []uint64{2, 3}) {
		t.Errorf("undelivered IDs = %v, want [2 3] in order", ids)
	}
	var ironDrain *mainbus.DrainError[string]
	if errors.As(err, &ironDrain) {
		t.Errorf("Close reports iron undelivered too: %v", ironDrain)
	}
	irons.check(t, "iron", 3)
	if !cxClosed(iron.Done()) || !cxClosed(copper.Done()) {
		t.Errorf("after Close, Done closed: iron %v, copper %v; want both",
			cxClosed(iron.Done()), cxClosed(copper.Done()))
	}
	// A later Close returns the same result.
	if again := x.Close(bg); again == nil {
		t.Errorf("second Close = nil, want the first result %v", err)
	}
}

func TestComplexCloseFromHandler(t *testing.T) {
	t.Parallel()
	var x mainbus.Complex
	closed := make(chan error, 1)
	gate := make(chan struct{})
	var irons cxCounter[int]
	iron := cxNewBus(t, "iron", func(ctx context.Context, c int, ev mainbus.Event[int]) error {
		if ev.ID == 1 {
			// Hold the conveyor until every iron event is in.
			select {
			case <-gate:
			case <-ctx.Done():
			}
		}
		if ev.ID == 5 {
			closed <- x.Close(context.Background())
		}
		return irons.handle(ctx, c, ev)
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors())
	var coppers cxCounter[string]
	copper := cxNewBus(t, "copper", coppers.handle)
	for _, b := range []mainbus.Member{iron, copper} {
		if err := x.Add(b); err != nil {
			t.Fatalf("Add(%s): %v", b.Resource(), err)
		}
	}
	bg := context.Background()
	for i := 1; i <= 10; i++ {
		if err := copper.Produce(bg, mainbus.Event[string]{ID: uint64(i)}); err != nil {
			t.Fatalf("Produce on copper: %v", err)
		}
	}
	// Every iron event goes in before the handler can reach event 5 and
	// close: the handler holds event 1 until the gate opens.
	for i := 1; i <= 10; i++ {
		if err := iron.Produce(bg, mainbus.Event[int]{ID: uint64(i)}); err != nil {
			t.Fatalf("Produce %d on iron: %v", i, err)
		}
	}
	close(gate)
	if err := recv(t, closed, "Complex.Close inside a handler to return"); err != nil {
		t.Errorf("Complex.Close inside a handler = %v, want nil", err)
	}
	ctx, cancel := context.WithTimeout(bg, waitLimit)
	defer cancel()
	if err := x.Wait(ctx); err != nil {
		t.Fatalf("Wait after Close from a handler = %v, want nil", err)
	}
	irons.check(t, "iron", 10)
	coppers.check(t, "copper", 10)
	if err := iron.Produce(bg, mainbus.Event[int]{ID: 11}); !errors.Is(err, mainbus.ErrClosed) {
		t.Errorf("Produce after Close from a handler = %v, want ErrClosed", err)
	}
	if err := x.Close(bg); err != nil {
		t.Errorf("Close after Close from a handler = %v, want nil", err)
	}
}

func TestComplexAddLeavesOthersUntouched(t *testing.T) {
	t.Parallel()
	var x mainbus.Complex
	ironDone := make(chan uint64, 200)
	irons := cxCounter[int]{each: ironDone}
	iron := cxNewBus(t, "iron", irons.handle, mainbus.WithConveyors(3))
	if err := x.Add(iron); err != nil {
		t.Fatalf("Add(iron): %v", err)
	}
	before := iron.Stats()
	bg := context.Background()
	for i := 1; i <= 100; i++ {
		if err := iron.Produce(bg, mainbus.Event[int]{ID: uint64(i)}); err != nil {
			t.Fatalf("Produce on iron: %v", err)
		}
	}
	for range 100 {
		recv(t, ironDone, "iron's first 100 events")
	}

	var coppers cxCounter[string]
	copper := cxNewBus(t, "copper", coppers.handle)
	if err := x.Add(copper); err != nil {
		t.Fatalf("Add(copper): %v", err)
	}
	if got, err := mainbus.Lookup[int](&x, "iron"); got != iron || err != nil {
		t.Errorf("after adding copper, Lookup[int](iron) = %p, %v; want %p", got, err, iron)
	}
	if got := iron.Conveyors(); got != len(before.Conveyors) {
		t.Errorf("after adding copper, iron has %d conveyors, want %d", got, len(before.Conveyors))
	}
	// iron goes on delivering, without a Close.
	for i := 101; i <= 200; i++ {
		if err := iron.Produce(bg, mainbus.Event[int]{ID: uint64(i)}); err != nil {
			t.Fatalf("Produce on iron after Add(copper): %v", err)
		}
		if err := copper.Produce(bg, mainbus.Event[string]{ID: uint64(i - 100)}); err != nil {
			t.Fatalf("Produce on copper: %v", err)
		}
	}
	for range 100 {
		recv(t, ironDone, "iron's events produced after Add(copper)")
	}
	if cxClosed(iron.Done()) {
		t.Error("adding copper stopped iron")
	}
	if err := x.Close(bg); err != nil {
		t.Fatalf("Close: %v", err)
	}
	irons.check(t, "iron", 200)
	coppers.check(t, "copper", 100)
	if got := iron.Stats().Total().Produced; got != 200 {
		t.Errorf("iron produced %d, want 200", got)
	}
}

// Compile-time check that the buses of every payload type are Members.
var (
	_ mainbus.Member = (*mainbus.Bus[int])(nil)
	_ mainbus.Member = (*mainbus.Bus[string])(nil)
	_ mainbus.Member = (*mainbus.Bus[fmt.Stringer])(nil)
)
