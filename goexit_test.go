package mainbus_test

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/mainbus-go/mainbus"
)

func TestGoexitKeepsConveyor(t *testing.T) {
	var n atomic.Int64
	var reported atomic.Int64
	b, err := mainbus.New("iron", func(ctx context.Context, c int, ev mainbus.Event[int]) error {
		if ev.ID%3 == 0 {
			runtime.Goexit()
		}
		n.Add(1)
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(),
		mainbus.WithErrorHandler(func(err error) {
			var he *mainbus.HandlerError
			if errors.As(err, &he) && he.Panic != nil {
				reported.Add(1)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if err := b.Produce(context.Background(), mainbus.Event[int]{ID: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 20 || reported.Load() != 10 {
		t.Fatalf("handled %d, reported %d; want 20 and 10", n.Load(), reported.Load())
	}
	if s := b.Stats().Total(); s.Consumed != 30 || s.Panicked != 10 {
		t.Fatalf("stats %+v", s)
	}
}
