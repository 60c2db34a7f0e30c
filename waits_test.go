package mainbus_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/mainbus-go/mainbus"
)

// TestHandlersFeedingEachOther checks that two buses whose handlers
// produce into each other cannot deadlock: when the handlers would end up
// waiting on each other's full conveyors, one of them gets ErrWouldBlock.
func TestHandlersFeedingEachOther(t *testing.T) {
	var (
		a, b       *mainbus.Bus[int]
		mu         sync.Mutex
		wouldBlock int
	)
	forward := func(to **mainbus.Bus[int]) mainbus.Handler[int] {
		return func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
			if ev.Value == 0 {
				return nil
			}
			// Pass the event on with one hop less, using the handler's
			// context as the package documents.
			err := (*to).Produce(ctx, mainbus.Event[int]{ID: ev.ID, Value: ev.Value - 1})
			if errors.Is(err, mainbus.ErrWouldBlock) {
				mu.Lock()
				wouldBlock++
				mu.Unlock()
				return nil
			}
			return err
		}
	}
	opts := []mainbus.Option{mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(1)}
	var err error
	if a, err = mainbus.New("a", forward(&b), opts...); err != nil {
		t.Fatal(err)
	}
	if b, err = mainbus.New("b", forward(&a), opts...); err != nil {
		t.Fatal(err)
	}
	var x mainbus.Complex
	x.Add(a)
	x.Add(b)

	// Many events bouncing 20 times between two one-slot buses fill both
	// conveyors while both handlers produce.
	produced := make(chan error, 1)
	go func() {
		for id := range 50 {
			err := a.Produce(context.Background(), mainbus.Event[int]{ID: uint64(id), Value: 20})
			if err != nil {
				produced <- err
				return
			}
		}
		produced <- nil
	}()
	if err := recv(t, produced, "the 50 events produced"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- x.Close(context.Background()) }()
	if err := recv(t, done, "Close of two buses feeding each other"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d produces refused with ErrWouldBlock", wouldBlock)
}

// TestWouldBlockFromHelperGoroutine checks that a handler that hands its
// Produce to another goroutine, with its context, and waits for it, still
// gets ErrWouldBlock instead of waiting on itself.
func TestWouldBlockFromHelperGoroutine(t *testing.T) {
	results := make(chan error, 4)
	var bus *mainbus.Bus[int]
	bus = newBus(t, func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
		if ev.ID != 0 {
			return nil
		}
		for range 3 { // the second fills the one slot, the third would wait
			done := make(chan error)
			go func() { done <- bus.Produce(ctx, mainbus.Event[int]{ID: 1}) }()
			results <- <-done
		}
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(1))
	if err := bus.Produce(context.Background(), mainbus.Event[int]{ID: 0}); err != nil {
		t.Fatal(err)
	}
	var got []error
	for range 3 {
		got = append(got, recv(t, results, "a helper goroutine's Produce"))
	}
	if got[0] != nil || !errors.Is(got[2], mainbus.ErrWouldBlock) {
		t.Errorf("helper goroutine produces returned %v; want nil first and ErrWouldBlock last", got)
	}
}
