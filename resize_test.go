package mainbus_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"pgregory.net/rapid"
)

// seqLog records, per key, the values handled, and counts every
// successful handling per event ID.
type seqLog struct {
	mu      sync.Mutex
	byKey   map[string][]int
	handled map[uint64]int
}

func newSeqLog() *seqLog {
	return &seqLog{byKey: map[string][]int{}, handled: map[uint64]int{}}
}

func (s *seqLog) add(ev mainbus.Event[int]) {
	s.mu.Lock()
	s.byKey[ev.Key] = append(s.byKey[ev.Key], ev.Value)
	s.handled[ev.ID]++
	s.mu.Unlock()
}

// check verifies that every accepted ID was handled exactly once, nothing
// else was handled, and each key's values were handled in increasing
// order.
func (s *seqLog) check(accepted map[uint64]bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range accepted {
		if n := s.handled[id]; n != 1 {
			return fmt.Errorf("event %d handled %d times, want once", id, n)
		}
	}
	for id := range s.handled {
		if !accepted[id] {
			return fmt.Errorf("event %d handled but never accepted", id)
		}
	}
	for key, seq := range s.byKey {
		for i := 1; i < len(seq); i++ {
			if seq[i] <= seq[i-1] {
				return fmt.Errorf("key %s: %d handled after %d", key, seq[i], seq[i-1])
			}
		}
	}
	return nil
}

// TestResizeProperty is the property of live resizing: under any sequence
// of resizes racing 8 or more producers, handlers that fail or panic on a
// first attempt, and possibly a Close, every accepted event is handled
// exactly once and each key's events in the order accepted.
func TestResizeProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		producers := rapid.IntRange(8, 12).Draw(rt, "producers")
		perProducer := rapid.IntRange(1, 120).Draw(rt, "perProducer")
		keysEach := rapid.IntRange(1, 4).Draw(rt, "keysEach")
		sizes := rapid.SliceOfN(rapid.IntRange(1, 9), 1, 5).Draw(rt, "sizes")
		buffer := rapid.IntRange(0, 8).Draw(rt, "buffer")
		exact := rapid.Bool().Draw(rt, "exact")
		jump := rapid.Bool().Draw(rt, "jump")
		failEvery := rapid.IntRange(0, 7).Draw(rt, "failEvery")
		closeEarly := rapid.Bool().Draw(rt, "closeEarly")

		balancer := mainbus.KeyHash()
		if jump {
			balancer = mainbus.JumpHash()
		}
		opts := []mainbus.Option{
			mainbus.WithBuffer(buffer), mainbus.WithBalancer(balancer),
			mainbus.WithRetry(2, time.Microsecond, 10*time.Microsecond),
		}
		if exact {
			opts = append(opts, mainbus.WithExactConveyors())
		}
		log := newSeqLog()
		var failedOnce sync.Map
		bus, err := mainbus.New("iron", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
			// Some events fail their first attempt, by error or panic;
			// their retry must still come before the key's later events.
			if failEvery > 0 && ev.ID%uint64(failEvery) == 0 {
				if _, again := failedOnce.LoadOrStore(ev.ID, true); !again {
					if ev.ID%2 == 0 {
						panic("first attempt panics")
					}
					return errors.New("first attempt fails")
				}
			}
			log.add(ev)
			return nil
		}, opts...)
		if err != nil {
			rt.Fatal(err)
		}

		var (
			mu       sync.Mutex
			accepted = map[uint64]bool{}
			wg       sync.WaitGroup
			started  = make(chan struct{})
		)
		for p := range producers {
			wg.Go(func() {
				<-started
				for i := range perProducer {
					ev := mainbus.Event[int]{
						ID:    uint64(p*perProducer + i),
						Key:   fmt.Sprintf("p%d-k%d", p, i%keysEach),
						Value: i,
					}
					err := bus.Produce(context.Background(), ev)
					switch {
					case err == nil:
						mu.Lock()
						accepted[ev.ID] = true
						mu.Unlock()
					case errors.Is(err, mainbus.ErrClosed) && closeEarly:
						return
					default:
						t.Errorf("Produce: %v", err)
						return
					}
				}
			})
		}
		wg.Go(func() {
			<-started
			for _, n := range sizes {
				err := bus.Resize(context.Background(), n)
				if err != nil && !(closeEarly && errors.Is(err, mainbus.ErrClosed)) {
					t.Errorf("Resize(%d): %v", n, err)
				}
			}
		})
		close(started)
		if closeEarly {
			if err := bus.Close(context.Background()); err != nil {
				rt.Fatalf("Close: %v", err)
			}
		}
		wg.Wait()
		if err := bus.Close(context.Background()); err != nil {
			rt.Fatalf("Close: %v", err)
		}
		if err := log.check(accepted); err != nil {
			rt.Fatal(err)
		}
		total := bus.Stats().Total()
		if total.Produced != uint64(len(accepted)) || total.Consumed != uint64(len(accepted)) {
			rt.Fatalf("stats produced %d, consumed %d; want %d each", total.Produced, total.Consumed, len(accepted))
		}
	})
}

// resizeGate is a handler that signals each event it starts on and then waits
// until released.
type resizeGate struct {
	started chan uint64
	release chan struct{}
}

func newResizeGate() *resizeGate {
	return &resizeGate{started: make(chan uint64, 1024), release: make(chan struct{})}
}

func (g *resizeGate) handle(ctx context.Context, _ int, ev mainbus.Event[int]) error {
	g.started <- ev.ID
	select {
	case <-g.release:
	case <-ctx.Done():
	}
	return nil
}

// TestResizeReleasesBlockedProducer checks that a producer waiting on a
// full conveyor moves to the new conveyors when a Resize adds room,
// without waiting for the old conveyor to drain.
func TestResizeReleasesBlockedProducer(t *testing.T) {
	g := newResizeGate()
	bus := newBus(t, g.handle, mainbus.WithConveyors(1), mainbus.WithExactConveyors(),
		mainbus.WithBuffer(1), mainbus.WithBalancer(mainbus.RoundRobin()))
	ctx := context.Background()
	for id := range 2 { // one in the handler, one in the buffer
		if err := bus.Produce(ctx, mainbus.Event[int]{ID: uint64(id)}); err != nil {
			t.Fatal(err)
		}
	}
	<-g.started

	blocked := make(chan error, 1)
	go func() { blocked <- bus.Produce(ctx, mainbus.Event[int]{ID: 2}) }()
	select {
	case err := <-blocked:
		t.Fatalf("Produce on a full conveyor returned %v before the resize", err)
	default:
	}

	resized := make(chan error, 1)
	go func() { resized <- bus.Resize(ctx, 3) }()
	if err := <-blocked; err != nil {
		t.Fatalf("blocked Produce after Resize: %v", err)
	}
	if got := bus.Conveyors(); got != 3 {
		t.Errorf("Conveyors() = %d after Resize(3) with exact counts, want 3", got)
	}
	select {
	case err := <-resized:
		t.Fatalf("Resize returned %v before the old conveyor drained", err)
	default:
	}
	close(g.release)
	if err := <-resized; err != nil {
		t.Fatalf("Resize: %v", err)
	}
}

// TestResizeWaitsForOldConveyors checks the order across a resize: an
// event produced after the resize is not handled before the events the
// old conveyors still hold.
func TestResizeWaitsForOldConveyors(t *testing.T) {
	g := newResizeGate()
	bus := newBus(t, g.handle, mainbus.WithConveyors(2), mainbus.WithBuffer(4),
		mainbus.WithBalancer(mainbus.KeyHash()))
	ctx := context.Background()
	for id := range 4 {
		if err := bus.Produce(ctx, mainbus.Event[int]{ID: uint64(id), Key: "k"}); err != nil {
			t.Fatal(err)
		}
	}
	if id := <-g.started; id != 0 {
		t.Fatalf("first handled %d, want 0", id)
	}
	resized := make(chan error, 1)
	go func() { resized <- bus.Resize(ctx, 8) }()
	pollUntil(t, func() bool { return bus.Conveyors() == 8 })
	if err := bus.Produce(ctx, mainbus.Event[int]{ID: 4, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	for want := uint64(1); want <= 4; want++ {
		if id := <-g.started; id != want {
			t.Fatalf("handled %d, want %d", id, want)
		}
	}
	if err := <-resized; err != nil {
		t.Fatal(err)
	}
}

func TestResizeInput(t *testing.T) {
	bus := newBus(t, func(context.Context, int, mainbus.Event[int]) error { return nil })
	ctx := context.Background()
	for _, n := range []int{0, -3, 1 << 20} {
		err := bus.Resize(ctx, n)
		if !errors.Is(err, mainbus.ErrInvalidOption) {
			t.Errorf("Resize(%d) = %v, want ErrInvalidOption", n, err)
		}
	}
	if bus.Conveyors() != 4 {
		t.Errorf("a refused resize changed the count to %d", bus.Conveyors())
	}
	if err := bus.Resize(ctx, 5); err != nil || bus.Conveyors() != 6 {
		t.Errorf("Resize(5) = %v with %d conveyors; want nil with 6 (even rule)", err, bus.Conveyors())
	}
	if err := bus.Resize(ctx, 6); err != nil {
		t.Errorf("Resize to the same count: %v", err)
	}
	if err := bus.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bus.Resize(ctx, 2); !errors.Is(err, mainbus.ErrClosed) {
		t.Errorf("Resize after Close = %v, want ErrClosed", err)
	}
}

// TestResizeFromHandler checks that a handler may resize its own bus
// without waiting on itself.
func TestResizeFromHandler(t *testing.T) {
	var resizes atomic.Int32
	errs := make(chan error, 1)
	var bus *mainbus.Bus[int]
	bus = newBus(t, func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
		if ev.ID == 3 && resizes.Add(1) == 1 {
			errs <- bus.Resize(context.Background(), 8)
		}
		return nil
	})
	for id := range 10 {
		if err := bus.Produce(context.Background(), mainbus.Event[int]{ID: uint64(id)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errs; err != nil {
		t.Fatalf("Resize from a handler: %v", err)
	}
	if err := bus.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := bus.Stats(); s.Active != 8 || s.Total().Consumed != 10 {
		t.Errorf("after close: %d active conveyors, %d consumed; want 8 and 10", s.Active, s.Total().Consumed)
	}
}

// TestStatsDuringResize polls Stats while a bus under load is resized and
// checks that no depth passes its capacity and no total goes down.
func TestStatsDuringResize(t *testing.T) {
	bus := newBus(t, func(context.Context, int, mainbus.Event[int]) error { return nil },
		mainbus.WithBuffer(4))
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for p := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := bus.Produce(ctx, mainbus.Event[int]{ID: uint64(p<<32 | i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		defer close(stop)
		for _, n := range []int{8, 2, 6, 4, 10, 4} {
			if err := bus.Resize(ctx, n); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var last mainbus.ConveyorStats
	for polls := 0; ; polls++ {
		s := bus.Stats()
		for _, c := range s.Conveyors {
			if c.Depth > c.Capacity || c.Depth < 0 {
				t.Fatalf("conveyor %d: depth %d, capacity %d", c.Conveyor, c.Depth, c.Capacity)
			}
			if c.Conveyor >= s.Active && (c.Depth != 0 || c.Capacity != 0) {
				t.Fatalf("removed conveyor %d shows depth %d, capacity %d", c.Conveyor, c.Depth, c.Capacity)
			}
		}
		total := s.Total()
		if total.Produced < last.Produced || total.Consumed < last.Consumed {
			t.Fatalf("totals went down: %+v then %+v", last, total)
		}
		last = total
		select {
		case <-stop:
			wg.Wait()
			return
		default:
		}
	}
}

// TestJumpHashMovesFewKeys checks the point of consistent hashing: growing
// from n to n+1 conveyors moves a key only onto the new conveyor, and
// about 1/(n+1) of the keys.
func TestJumpHashMovesFewKeys(t *testing.T) {
	jh := mainbus.JumpHash()
	for n := 1; n < 40; n++ {
		moved := 0
		const keys = 4000
		for k := range keys {
			key := fmt.Sprintf("customer-%d", k)
			before, after := jh.Pick(key, fixedLanes(n)), jh.Pick(key, fixedLanes(n+1))
			if before < 0 || before >= n || after < 0 || after > n {
				t.Fatalf("n=%d key %q: picks %d then %d out of range", n, key, before, after)
			}
			if before != after {
				if after != n {
					t.Fatalf("n=%d key %q moved from %d to old conveyor %d", n, key, before, after)
				}
				moved++
			}
		}
		want := keys / (n + 1)
		if moved < want/2 || moved > want*2 {
			t.Errorf("n=%d→%d moved %d of %d keys, want about %d", n, n+1, moved, keys, want)
		}
	}
}

// fixedLanes is a Conveyors view of n empty conveyors.
type fixedLanes int

func (l fixedLanes) Len() int    { return int(l) }
func (fixedLanes) Depth(int) int { return 0 }

// pollUntil waits for cond, failing the test after a generous deadline.
func pollUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		runtime.Gosched()
	}
}
