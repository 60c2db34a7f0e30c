package mainbus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mainbus-go/mainbus"
)

// Under DropOldest a full conveyor discards its oldest waiting events to
// make room for new ones. The drop handler hears of every discarded
// event, and Stats counts them.
func Example_overflow() {
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	var handled []uint64 // written by the one consumer, read after Close

	bus, err := mainbus.New("iron", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		if ev.ID == 1 {
			close(started) // event 1 is in the handler: the conveyor is not taking events
			<-release
		}
		handled = append(handled, ev.ID)
		return nil
	},
		mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(2),
		mainbus.WithOverflow(mainbus.DropOldest),
		mainbus.WithDropHandler(func(ev mainbus.Event[int]) {
			fmt.Println("dropped", ev.ID)
		}))
	if err != nil {
		fmt.Println(err)
		return
	}

	_ = bus.Produce(ctx, mainbus.Event[int]{ID: 1})
	<-started
	// Events 2 and 3 fill the buffer; 4 and 5 push them out.
	for id := uint64(2); id <= 5; id++ {
		if err := bus.Produce(ctx, mainbus.Event[int]{ID: id}); err != nil {
			fmt.Println(err)
		}
	}
	close(release)

	if err := bus.Close(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("handled", handled)
	fmt.Println("dropped in all", bus.Stats().Total().Dropped)
	// Output:
	// dropped 2
	// dropped 3
	// handled [1 4 5]
	// dropped in all 2
}

// A handler that fails is called again, after a growing wait, up to the
// number of attempts given. Every failed attempt goes to the error
// handler.
func ExampleWithRetry() {
	ctx := context.Background()

	// The furnace warms up on its third try.
	tries := 0
	bus, err := mainbus.New("iron", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		tries++ // one conveyor: never called twice at once
		if tries < 3 {
			return errors.New("furnace cold")
		}
		fmt.Printf("smelted event %d on attempt %d\n", ev.ID, tries)
		return nil
	},
		mainbus.WithConveyors(1), mainbus.WithExactConveyors(),
		mainbus.WithRetry(3, time.Millisecond, 4*time.Millisecond),
		mainbus.WithErrorHandler(func(err error) {
			var he *mainbus.HandlerError
			if errors.As(err, &he) {
				fmt.Printf("attempt %d at event %d failed: %v\n", he.Attempt, he.EventID, he.Err)
			}
		}))
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = bus.Produce(ctx, mainbus.Event[int]{ID: 1})
	if err := bus.Close(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("retried", bus.Stats().Total().Retried)
	// Output:
	// attempt 1 at event 1 failed: furnace cold
	// attempt 2 at event 1 failed: furnace cold
	// smelted event 1 on attempt 3
	// retried 2
}

// An event whose every attempt fails goes to the dead-letter bus, once,
// with its last error and the number of attempts.
func ExampleWithDeadLetter() {
	ctx := context.Background()
	dead, err := mainbus.New("iron-dead",
		func(_ context.Context, _ int, ev mainbus.Event[mainbus.DeadLetter[int]]) error {
			letter := ev.Value
			fmt.Printf("dead letter: event %d after %d attempts: %v\n",
				letter.Event.ID, letter.Attempts, letter.Err)
			return nil
		})
	if err != nil {
		fmt.Println(err)
		return
	}

	bus, err := mainbus.New("iron", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		if ev.Value < 0 {
			return errors.New("negative ore")
		}
		return nil
	},
		mainbus.WithConveyors(1), mainbus.WithExactConveyors(),
		mainbus.WithRetry(2, time.Millisecond, time.Millisecond),
		mainbus.WithDeadLetter(dead))
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = bus.Produce(ctx, mainbus.Event[int]{ID: 1, Value: 10})
	_ = bus.Produce(ctx, mainbus.Event[int]{ID: 2, Value: -1})

	// Close the bus before its dead-letter bus, which it may still feed.
	if err := bus.Close(ctx); err != nil {
		fmt.Println(err)
	}
	if err := dead.Close(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("dead-lettered", bus.Stats().Total().DeadLettered)
	// Output:
	// dead letter: event 2 after 2 attempts: mainbus: handler of iron L0 failed on event 2 (attempt 2): negative ore
	// dead-lettered 1
}

// A handler may produce follow-up events into its own bus, but it must
// not wait there: the conveyor it would wait on may need this very
// handler to return first. Where Produce would wait, it returns an error
// wrapping ErrWouldBlock instead.
func ExampleErrWouldBlock() {
	ctx := context.Background()
	var bus *mainbus.Bus[int]
	var handled []uint64 // written by the one consumer, read after Close
	followed := make(chan struct{})

	bus, err := mainbus.New("iron", func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
		handled = append(handled, ev.ID)
		if ev.ID != 1 {
			return nil
		}
		// The conveyor holds one event: the first follow-up fits.
		for id := uint64(2); id <= 3; id++ {
			err := bus.Produce(ctx, mainbus.Event[int]{ID: id})
			fmt.Printf("follow-up %d: would block %v, err %v\n",
				id, errors.Is(err, mainbus.ErrWouldBlock), err)
		}
		close(followed)
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = bus.Produce(ctx, mainbus.Event[int]{ID: 1})

	// Once Close begins, Produce returns ErrClosed, also in handlers: let
	// the follow-ups in first.
	<-followed
	if err := bus.Close(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("handled", handled)
	// Output:
	// follow-up 2: would block false, err <nil>
	// follow-up 3: would block true, err mainbus: produce to iron L0: mainbus: a handler would wait on its own bus
	// handled [1 2]
}

// The error handler hears of every failure, even a panic; the conveyor
// goes on with the next event.
func ExampleWithErrorHandler() {
	var mu sync.Mutex
	var reports []string
	bus, err := mainbus.New("iron", func(_ context.Context, _ int, ev mainbus.Event[string]) error {
		switch ev.Value {
		case "cracked":
			return errors.New("cracked plate")
		case "molten":
			panic("too hot")
		}
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(),
		mainbus.WithErrorHandler(func(err error) {
			var he *mainbus.HandlerError
			if errors.As(err, &he) {
				mu.Lock()
				reports = append(reports, fmt.Sprintf("event %d: err=%v panic=%v", he.EventID, he.Err, he.Panic))
				mu.Unlock()
			}
		}))
	if err != nil {
		panic(err)
	}
	for id, v := range []string{"plate", "cracked", "molten", "plate"} {
		bus.Produce(context.Background(), mainbus.Event[string]{ID: uint64(id), Value: v})
	}
	bus.Close(context.Background())
	for _, r := range reports {
		fmt.Println(r)
	}
	fmt.Println("consumed:", bus.Stats().Total().Consumed)
	// Output:
	// event 1: err=cracked plate panic=<nil>
	// event 2: err=<nil> panic=too hot
	// consumed: 4
}
