package mainbus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mainbus-go/mainbus"
)

// A bus of one conveyor hands events to its handler in the order they
// were produced.
func ExampleNew() {
	iron, err := mainbus.New("iron", func(_ context.Context, conveyor int, ev mainbus.Event[string]) error {
		fmt.Printf("L%d got %s from %s\n", conveyor, ev.Value, ev.Key)
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors())
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	for i, v := range []string{"ore", "plate", "gear"} {
		ev := mainbus.Event[string]{ID: uint64(i + 1), Key: "furnace-1", Value: v}
		if err := iron.Produce(ctx, ev); err != nil {
			fmt.Println(err)
		}
	}

	// Close delivers everything accepted before it returns.
	if err := iron.Close(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("handled:", iron.Stats().Total().Consumed)
	// Output:
	// L0 got ore from furnace-1
	// L0 got plate from furnace-1
	// L0 got gear from furnace-1
	// handled: 3
}

// Conveyor counts are rounded up to an even number unless the caller
// opts out.
func ExampleWithExactConveyors() {
	nop := func(context.Context, int, mainbus.Event[int]) error { return nil }
	even, _ := mainbus.New("iron", nop, mainbus.WithConveyors(3))
	exact, _ := mainbus.New("copper", nop, mainbus.WithConveyors(3), mainbus.WithExactConveyors())
	fmt.Println(even.Resource(), even.Conveyors())
	fmt.Println(exact.Resource(), exact.Conveyors())
	_ = even.Close(context.Background())
	_ = exact.Close(context.Background())
	// Output:
	// iron 4
	// copper 3
}

func ExampleBus_Close() {
	var (
		mu  sync.Mutex
		sum int
	)
	copper, err := mainbus.New("copper", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		mu.Lock()
		sum += ev.Value
		mu.Unlock()
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	for i := 1; i <= 100; i++ {
		if err := copper.Produce(ctx, mainbus.Event[int]{ID: uint64(i), Value: i}); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println("close:", copper.Close(ctx))

	// Every accepted event was handled, on whichever conveyor, and the
	// bus takes no more.
	mu.Lock()
	fmt.Println("sum:", sum)
	mu.Unlock()
	err = copper.Produce(ctx, mainbus.Event[int]{ID: 101, Value: 101})
	fmt.Println("produce after close:", err, errors.Is(err, mainbus.ErrClosed))
	<-copper.Done()
	fmt.Println("closing again:", copper.Close(ctx))
	// Output:
	// close: <nil>
	// sum: 5050
	// produce after close: mainbus: closed true
	// closing again: <nil>
}

// A Close whose context ends before the drain is over hands back the
// events it did not deliver.
func ExampleDrainError() {
	started := make(chan struct{})
	iron, err := mainbus.New("iron", func(ctx context.Context, _ int, ev mainbus.Event[string]) error {
		if ev.ID == 1 {
			close(started)
			<-ctx.Done() // a slow handler that watches its context
		}
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors())
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, v := range []string{"ore", "plate", "gear"} {
		_ = iron.Produce(context.Background(), mainbus.Event[string]{ID: uint64(i + 1), Value: v})
	}
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = iron.Close(ctx)
	var de *mainbus.DrainError[string]
	if errors.As(err, &de) {
		fmt.Println(err)
		for _, ev := range de.Undelivered {
			fmt.Println("undelivered:", ev.ID, ev.Value)
		}
	}
	// Output:
	// mainbus: close of iron left 2 events undelivered: context deadline exceeded
	// undelivered: 2 plate
	// undelivered: 3 gear
}

func ExampleBus_TryProduce() {
	busy := make(chan struct{})
	release := make(chan struct{})
	iron, err := mainbus.New("iron", func(ctx context.Context, _ int, ev mainbus.Event[string]) error {
		if ev.ID == 1 {
			close(busy)
			<-release
		}
		fmt.Println("handled", ev.ID)
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(1))
	if err != nil {
		fmt.Println(err)
		return
	}

	// Event 1 keeps the handler busy; event 2 fills the buffer of one.
	fmt.Println("1:", iron.TryProduce(mainbus.Event[string]{ID: 1}))
	<-busy
	fmt.Println("2:", iron.TryProduce(mainbus.Event[string]{ID: 2}))

	// There is no room for event 3, and TryProduce does not wait.
	err = iron.TryProduce(mainbus.Event[string]{ID: 3})
	fmt.Println("3:", err)
	fmt.Println("full:", errors.Is(err, mainbus.ErrFull))

	close(release)
	if err := iron.Close(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 1: <nil>
	// 2: <nil>
	// 3: mainbus: produce to iron L0: mainbus: conveyor full
	// full: true
	// handled 1
	// handled 2
}

// Every event with the same key goes to the same conveyor: the FNV-1a
// hash of the key modulo the conveyor count.
func ExampleKeyHash() {
	var (
		mu    sync.Mutex
		lanes = map[string][]int{}
	)
	iron, err := mainbus.New("iron", func(_ context.Context, conveyor int, ev mainbus.Event[int]) error {
		mu.Lock()
		lanes[ev.Key] = append(lanes[ev.Key], conveyor)
		mu.Unlock()
		return nil
	}, mainbus.WithConveyors(4), mainbus.WithBalancer(mainbus.KeyHash()))
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	keys := []string{"furnace-1", "furnace-2", "furnace-3", "furnace-4"}
	for round := range 3 {
		for _, k := range keys {
			_ = iron.Produce(ctx, mainbus.Event[int]{Key: k, Value: round})
		}
	}
	if err := iron.Close(ctx); err != nil {
		fmt.Println(err)
	}

	for _, k := range keys {
		fmt.Println(k, "went to", lanes[k])
	}
	// Output:
	// furnace-1 went to [1 1 1]
	// furnace-2 went to [0 0 0]
	// furnace-3 went to [3 3 3]
	// furnace-4 went to [2 2 2]
}

// A Complex holds the buses of a program, whatever they carry, and
// closes them together.
func ExampleComplex() {
	var (
		mu   sync.Mutex
		seen []string
	)
	record := func(s string) {
		mu.Lock()
		seen = append(seen, s)
		mu.Unlock()
	}
	iron, err := mainbus.New("iron", func(_ context.Context, _ int, ev mainbus.Event[string]) error {
		record("iron " + ev.Value)
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	copper, err := mainbus.New("copper", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		record(fmt.Sprint("copper ", ev.Value))
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// The zero value is ready to use.
	var factory mainbus.Complex
	for _, bus := range []mainbus.Member{iron, copper} {
		if err := factory.Add(bus); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println("resources:", factory.Resources())

	ctx := context.Background()
	_ = iron.Produce(ctx, mainbus.Event[string]{Value: "plate"})
	_ = iron.Produce(ctx, mainbus.Event[string]{Value: "gear"})
	_ = copper.Produce(ctx, mainbus.Event[int]{Value: 7})

	if err := factory.Close(ctx); err != nil {
		fmt.Println(err)
	}
	for _, s := range factory.Stats() {
		fmt.Println(s.Resource, "handled", s.Total().Consumed)
	}
	// Buses handle events in parallel; sort for a stable listing.
	slices.Sort(seen)
	fmt.Println(seen)
	fmt.Println("add after close:", factory.Add(iron))
	// Output:
	// resources: [iron copper]
	// iron handled 2
	// copper handled 1
	// [copper 7 iron gear iron plate]
	// add after close: mainbus: closed
}

func ExampleLookup() {
	copper, err := mainbus.New("copper", func(context.Context, int, mainbus.Event[int]) error {
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var factory mainbus.Complex
	if err := factory.Add(copper); err != nil {
		fmt.Println(err)
	}
	defer factory.Close(context.Background())

	// The right name and payload type give back the bus itself.
	bus, err := mainbus.Lookup[int](&factory, "copper")
	fmt.Println(bus == copper, err)

	// Another payload type, or an unknown name, is an unknown resource.
	_, err = mainbus.Lookup[string](&factory, "copper")
	fmt.Println(errors.Is(err, mainbus.ErrUnknownResource))
	_, err = mainbus.Lookup[int](&factory, "steel")
	fmt.Println(err)
	// Output:
	// true <nil>
	// true
	// mainbus: unknown resource: "steel"; this complex has [copper]
}
