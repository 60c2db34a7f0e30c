package mainbus_test

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/mainbus-go/mainbus"
)

// A bus grows from 2 to 8 conveyors while it runs. Every event is handled
// once, and each key's events in the order produced, before and after.
func ExampleBus_Resize() {
	var mu sync.Mutex
	seen := map[string][]int{}
	bus, err := mainbus.New("orders", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		mu.Lock()
		seen[ev.Key] = append(seen[ev.Key], ev.Value)
		mu.Unlock()
		return nil
	}, mainbus.WithConveyors(2), mainbus.WithBalancer(mainbus.KeyHash()))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			for _, key := range []string{"ada", "grace"} {
				bus.Produce(ctx, mainbus.Event[int]{Key: key, Value: i})
			}
		}
	}
	produce(0, 3)
	if err := bus.Resize(ctx, 8); err != nil {
		panic(err)
	}
	produce(3, 6)
	bus.Close(ctx)

	fmt.Println("conveyors:", bus.Conveyors())
	for _, key := range []string{"ada", "grace"} {
		fmt.Println(key, seen[key], slices.IsSorted(seen[key]))
	}
	// Output:
	// conveyors: 8
	// ada [0 1 2 3 4 5] true
	// grace [0 1 2 3 4 5] true
}

// JumpHash moves few keys when a bus grows: here, from 8 to 9 conveyors,
// only the keys that land on the new conveyor L8 move.
func ExampleJumpHash() {
	jh := mainbus.JumpHash()
	moved := 0
	for k := range 900 {
		key := fmt.Sprint("customer-", k)
		if jh.Pick(key, fixedLanes(8)) != jh.Pick(key, fixedLanes(9)) {
			moved++
		}
	}
	fmt.Println("about one in nine moved:", moved > 50 && moved < 150)
	// Output: about one in nine moved: true
}
