package mainbus_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
)

// TestErrorHandlerCannotStopConveyor checks that an error handler that
// panics or calls runtime.Goexit (as t.FailNow does) neither loses events
// nor stops the conveyor.
func TestErrorHandlerCannotStopConveyor(t *testing.T) {
	hooks := map[string]func(){
		"panic":  func() { panic("hook panics") },
		"goexit": runtime.Goexit,
	}
	for name, hook := range hooks {
		t.Run(name, func(t *testing.T) {
			var handled, reports atomic.Int64
			bus := newBus(t, func(_ context.Context, _ int, ev mainbus.Event[int]) error {
				handled.Add(1)
				if ev.ID%2 == 0 {
					return errors.New("even events fail")
				}
				return nil
			}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(10),
				mainbus.WithErrorHandler(func(error) {
					reports.Add(1)
					hook()
				}))
			for id := range 10 {
				if err := bus.Produce(context.Background(), mainbus.Event[int]{ID: uint64(id)}); err != nil {
					t.Fatal(err)
				}
			}
			if err := bus.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if handled.Load() != 10 || reports.Load() != 5 {
				t.Errorf("handled %d, reported %d; want 10 and 5", handled.Load(), reports.Load())
			}
			if s := bus.Stats().Total(); s.Consumed != 10 || s.Failed != 5 || s.Depth != 0 {
				t.Errorf("stats %+v; want 10 consumed, 5 failed, none waiting", s)
			}
		})
	}
}

// TestCloseFromDropHandler checks that a drop handler may close the bus:
// it runs after the producer has left, so Close does not wait on it.
func TestCloseFromDropHandler(t *testing.T) {
	gate, open := newGate(t)
	var bus *mainbus.Bus[int]
	closed := make(chan error, 1)
	var once sync.Once
	bus = newBus(t, func(ctx context.Context, _ int, _ mainbus.Event[int]) error {
		hold(ctx, gate)
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(1),
		mainbus.WithOverflow(mainbus.DropNewest),
		mainbus.WithDropHandler(func(mainbus.Event[int]) {
			once.Do(func() {
				go open() // let the drain finish while Close waits
				closed <- bus.Close(context.Background())
			})
		}))
	for id := range 5 {
		err := bus.Produce(context.Background(), mainbus.Event[int]{ID: uint64(id)})
		if err != nil && !errors.Is(err, mainbus.ErrClosed) {
			t.Fatalf("Produce %d: %v", id, err)
		}
	}
	if err := recv(t, closed, "Close from the drop handler"); err != nil {
		t.Fatalf("Close from the drop handler: %v", err)
	}
}

func TestSizeLimits(t *testing.T) {
	h := func(context.Context, int, mainbus.Event[int]) error { return nil }
	bad := map[string][]mainbus.Option{
		"huge buffer":        {mainbus.WithBuffer(1 << 62)},
		"buffer over limit":  {mainbus.WithBuffer(1<<20 + 1)},
		"too many slots":     {mainbus.WithConveyors(1 << 16), mainbus.WithBuffer(1 << 10)},
		"nil BalancerFunc":   {mainbus.WithBalancer(mainbus.BalancerFunc(nil))},
		"nil balancer value": {mainbus.WithBalancer(nil)},
	}
	for name, opts := range bad {
		t.Run(name, func(t *testing.T) {
			b, err := mainbus.New("iron", h, opts...)
			if !errors.Is(err, mainbus.ErrInvalidOption) || b != nil {
				t.Fatalf("New = %v, %v; want no bus and ErrInvalidOption", b, err)
			}
		})
	}
	bus := newBus(t, h, mainbus.WithBuffer(1<<20))
	if err := bus.Resize(context.Background(), 64); !errors.Is(err, mainbus.ErrInvalidOption) {
		t.Errorf("Resize past the slot limit = %v, want ErrInvalidOption", err)
	}
}

// TestResizeOneAtATime checks that a bus whose handler is stuck never holds
// more than two sets of conveyors, however often it is resized.
func TestResizeOneAtATime(t *testing.T) {
	gate, open := newGate(t)
	started := make(chan struct{}, 1)
	bus := newBus(t, func(ctx context.Context, _ int, _ mainbus.Event[int]) error {
		select {
		case started <- struct{}{}:
		default:
		}
		hold(ctx, gate)
		return nil
	}, mainbus.WithConveyors(2), mainbus.WithBuffer(4))
	ctx := context.Background()
	fill := func() {
		for {
			if err := bus.TryProduce(mainbus.Event[int]{}); err != nil {
				return
			}
		}
	}
	fill()
	recv(t, started, "the first event in the handler")

	go bus.Resize(ctx, 4) // waits for the stuck old conveyors
	pollUntil(t, func() bool { return bus.Conveyors() == 4 })
	fill()
	goroutines := runtime.NumGoroutine()

	for range 20 {
		short, cancel := context.WithTimeout(ctx, time.Millisecond)
		err := bus.Resize(short, 6)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Resize while an earlier one drains = %v, want DeadlineExceeded", err)
		}
		fill()
	}
	if bus.Conveyors() != 4 {
		t.Errorf("Conveyors() = %d, want 4: no resize may start while one drains", bus.Conveyors())
	}
	// Goroutines of the runtime or of earlier tests may come and go; a
	// leak per refused Resize would stay.
	deadline := time.Now().Add(waitLimit)
	for n := runtime.NumGoroutine(); n > goroutines+2; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			t.Errorf("goroutines grew from %d to %d", goroutines, n)
			break
		}
		runtime.Gosched()
	}
	s := bus.Stats()
	if held := s.Total().Depth + s.Draining; held > 2*4+4*4+1 {
		t.Errorf("bus holds %d events, more than its two sets of conveyors", held)
	}
	if s.Draining == 0 {
		t.Error("Stats.Draining is 0 while the old conveyors hold events")
	}
	open()
}

// TestComplexClosesDeadLetterBusLast checks that a bus's dead-letter bus
// stays open until the bus has drained, so the last failures reach it.
func TestComplexClosesDeadLetterBusLast(t *testing.T) {
	var buried atomic.Int64
	dead, err := mainbus.New("dead", func(context.Context, int, mainbus.Event[mainbus.DeadLetter[int]]) error {
		buried.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	orders, err := mainbus.New("orders", func(context.Context, int, mainbus.Event[int]) error {
		return errors.New("always fails")
	}, mainbus.WithDeadLetter(dead))
	if err != nil {
		t.Fatal(err)
	}
	var x mainbus.Complex
	for _, m := range []mainbus.Member{dead, orders} {
		if err := x.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	for id := range 100 {
		if err := orders.Produce(context.Background(), mainbus.Event[int]{ID: uint64(id)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := orders.Stats().Total(); buried.Load() != 100 || s.DeadLettered != 100 || s.DeadLetterFailed != 0 {
		t.Errorf("buried %d, stats %+v; want all 100 dead-lettered", buried.Load(), s)
	}
}

func TestNilComplexInputs(t *testing.T) {
	if _, err := mainbus.Lookup[int](nil, "iron"); !errors.Is(err, mainbus.ErrUnknownResource) {
		t.Errorf("Lookup in a nil complex = %v, want ErrUnknownResource", err)
	}
	var x mainbus.Complex
	bus := newBus(t, func(context.Context, int, mainbus.Event[int]) error { return nil })
	if err := x.Add(bus); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(nil); err != nil {
		t.Fatal(err)
	}
	if err := x.Wait(nil); err != nil {
		t.Errorf("Wait(nil) = %v", err)
	}
}
