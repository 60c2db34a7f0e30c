package mainbus_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mainbus-go/mainbus"
)

// recorder is a handler that records the values it handles, in order.
type recorder struct {
	mu     sync.Mutex
	values []int
}

func (r *recorder) handle(_ context.Context, _ int, ev mainbus.Event[int]) error {
	r.mu.Lock()
	r.values = append(r.values, ev.Value)
	r.mu.Unlock()
	return nil
}

func (r *recorder) got() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.values)
}

func newStacker(t *testing.T, b *mainbus.Bus[int], size int, linger time.Duration) *mainbus.Stacker[int] {
	t.Helper()
	s, err := mainbus.NewStacker(b, size, linger)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStackerHandsOverBySize(t *testing.T) {
	var r recorder
	bus := newBus(t, r.handle, mainbus.WithConveyors(1), mainbus.WithExactConveyors())
	s := newStacker(t, bus, 4, time.Hour)
	ctx := context.Background()
	for v := range 9 {
		if err := s.Produce(ctx, mainbus.Event[int]{Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	// The 5th and 9th Produce found a full stack and handed it over.
	pollUntil(t, func() bool { return len(r.got()) == 8 })
	if st := bus.Stats().Total(); st.Produced != 8 {
		t.Errorf("bus accepted %d events, want the 8 of two full stacks", st.Produced)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(r.got(), want) {
		t.Errorf("handled %v, want %v", r.got(), want)
	}
	if err := s.Produce(ctx, mainbus.Event[int]{}); !errors.Is(err, mainbus.ErrClosed) {
		t.Errorf("Produce after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

// TestStackerLinger checks that a partial stack reaches the bus linger
// after its first event, with no further call.
func TestStackerLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r recorder
		bus, err := mainbus.New("iron", r.handle)
		if err != nil {
			t.Fatal(err)
		}
		s := newStacker(t, bus, 1000, 10*time.Millisecond)
		ctx := context.Background()
		for v := range 3 {
			if err := s.Produce(ctx, mainbus.Event[int]{Value: v}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(9 * time.Millisecond) // fake time: just short of linger
		synctest.Wait()
		if n := len(r.got()); n != 0 {
			t.Fatalf("%d events handed over before linger", n)
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		if n := len(r.got()); n != 3 {
			t.Fatalf("%d events handled after linger, want 3", n)
		}
		s.Close(ctx)
		bus.Close(ctx)
	})
}

// TestStackerRefusalComesBack checks that events the bus refuses in a
// handover after linger come back from the next call, with nothing lost.
func TestStackerRefusalComesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r recorder
		bus, err := mainbus.New("iron", r.handle)
		if err != nil {
			t.Fatal(err)
		}
		s := newStacker(t, bus, 100, time.Millisecond)
		ctx := context.Background()
		for v := range 3 {
			s.Produce(ctx, mainbus.Event[int]{Value: v})
		}
		bus.Close(ctx)
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()

		err = s.Produce(ctx, mainbus.Event[int]{Value: 9})
		var be *mainbus.BatchError[int]
		if !errors.As(err, &be) || !errors.Is(err, mainbus.ErrClosed) {
			t.Fatalf("Produce after a refused handover = %v, want a BatchError wrapping ErrClosed", err)
		}
		var values []int
		for _, ev := range be.Rejected {
			values = append(values, ev.Value)
		}
		if !slices.Equal(values, []int{0, 1, 2}) {
			t.Errorf("handed back %v, want [0 1 2]", values)
		}
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close of an empty stacker = %v", err)
		}
	})
}

// TestStackerCloseHandsBack checks that a Close whose context ends while
// the bus has no room hands every waiting event back.
func TestStackerCloseHandsBack(t *testing.T) {
	gate, open := newGate(t)
	bus := newBus(t, func(ctx context.Context, _ int, _ mainbus.Event[int]) error {
		hold(ctx, gate)
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(0))
	ctx := context.Background()
	if err := bus.Produce(ctx, mainbus.Event[int]{Value: -1}); err != nil { // held in the handler
		t.Fatal(err)
	}
	s := newStacker(t, bus, 10, time.Hour)
	for v := range 5 {
		if err := s.Produce(ctx, mainbus.Event[int]{Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	err := s.Close(short)
	var be *mainbus.BatchError[int]
	if !errors.As(err, &be) || !errors.Is(err, context.DeadlineExceeded) || len(be.Rejected) != 5 {
		t.Fatalf("Close = %v, want the 5 events back with DeadlineExceeded", err)
	}
	open()
}

func TestStackerKeepsKeyOrder(t *testing.T) {
	log := newSeqLog()
	bus := newBus(t, func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		log.add(ev)
		return nil
	}, mainbus.WithBalancer(mainbus.KeyHash()), mainbus.WithBuffer(2))
	ctx := context.Background()
	accepted := map[uint64]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p := range 8 {
		s := newStacker(t, bus, 16, time.Millisecond)
		wg.Go(func() {
			for i := range 500 {
				ev := mainbus.Event[int]{ID: uint64(p*1000 + i), Key: string(rune('a' + p)), Value: i}
				if err := s.Produce(ctx, ev); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				accepted[ev.ID] = true
				mu.Unlock()
			}
			if err := s.Close(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := bus.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := log.check(accepted); err != nil {
		t.Fatal(err)
	}
}

func TestStackerInput(t *testing.T) {
	bus := newBus(t, func(context.Context, int, mainbus.Event[int]) error { return nil })
	for _, tt := range []struct {
		name   string
		bus    *mainbus.Bus[int]
		size   int
		linger time.Duration
	}{
		{"nil bus", nil, 4, time.Millisecond},
		{"zero size", bus, 0, time.Millisecond},
		{"huge size", bus, 1 << 20, time.Millisecond},
		{"no linger", bus, 4, 0},
		{"negative linger", bus, 4, -time.Second},
	} {
		if s, err := mainbus.NewStacker(tt.bus, tt.size, tt.linger); !errors.Is(err, mainbus.ErrInvalidOption) || s != nil {
			t.Errorf("%s: NewStacker = %v, %v; want ErrInvalidOption", tt.name, s, err)
		}
	}
	s := newStacker(t, bus, 4, time.Millisecond)
	if err := s.Produce(nil, mainbus.Event[int]{}); !errors.Is(err, mainbus.ErrInvalidOption) {
		t.Errorf("Produce(nil ctx) = %v", err)
	}
	if err := s.Produce(context.Background(), mainbus.Event[int]{Resource: "copper"}); !errors.Is(err, mainbus.ErrUnknownResource) {
		t.Errorf("Produce of another resource's event = %v", err)
	}
	s.Close(context.Background())
}

// TestStackerInHandler checks that a handler feeding its own bus through
// a Stacker gets ErrWouldBlock instead of waiting on itself, also while a
// handover after linger is under way.
func TestStackerInHandler(t *testing.T) {
	done := make(chan []error, 1)
	var bus *mainbus.Bus[int]
	bus = newBus(t, func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
		if ev.ID != 0 {
			return nil
		}
		s, err := mainbus.NewStacker(bus, 3, time.Millisecond)
		if err != nil {
			return err
		}
		var errs []error
		for v := range 8 {
			if err := s.Produce(ctx, mainbus.Event[int]{ID: uint64(100 + v)}); err != nil {
				errs = append(errs, err)
			}
		}
		short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		defer cancel()
		errs = append(errs, s.Close(short))
		done <- errs
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(1))
	ctx := context.Background()
	for id := range 2 { // 0 to the handler, 1 fills the one slot
		if err := bus.Produce(ctx, mainbus.Event[int]{ID: uint64(id)}); err != nil {
			t.Fatal(err)
		}
	}
	errs := recv(t, done, "the handler's stacker calls")
	var sawWouldBlock bool
	for _, err := range errs {
		sawWouldBlock = sawWouldBlock || errors.Is(err, mainbus.ErrWouldBlock)
	}
	if !sawWouldBlock {
		t.Errorf("stacker calls from the handler returned %v; want an ErrWouldBlock among them", errs)
	}
}

// TestStackerCloseBehindFlush checks that Close keeps to its deadline
// while another goroutine's Flush waits for room.
func TestStackerCloseBehindFlush(t *testing.T) {
	gate, open := newGate(t)
	bus := newBus(t, func(ctx context.Context, _ int, _ mainbus.Event[int]) error {
		hold(ctx, gate)
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(0))
	ctx := context.Background()
	if err := bus.Produce(ctx, mainbus.Event[int]{}); err != nil { // held in the handler
		t.Fatal(err)
	}
	s := newStacker(t, bus, 10, time.Millisecond)
	if err := s.Produce(ctx, mainbus.Event[int]{Value: 1}); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- s.Flush(ctx) }() // waits: the bus has no room
	pollUntil(t, func() bool { return s.Produce(ctx, mainbus.Event[int]{Value: 2}) == nil })

	closed := make(chan error, 1)
	go func() {
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		closed <- s.Close(short)
	}()
	err := recv(t, closed, "Close with a 20ms deadline")
	var be *mainbus.BatchError[int]
	if !errors.As(err, &be) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want a BatchError with DeadlineExceeded", err)
	}
	open()
	recv(t, flushed, "the Flush, once the bus has room")
}
