package mainbus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mainbus-go/mainbus"
)

// A batch goes on the bus in stacks, one channel operation per stack;
// each event still reaches the handler once. A batch the bus cannot take
// comes back in a BatchError.
func ExampleBus_ProduceBatch() {
	var (
		mu  sync.Mutex
		sum int
	)
	ore, err := mainbus.New("ore", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
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
	batch := make([]mainbus.Event[int], 100)
	for i := range batch {
		batch[i] = mainbus.Event[int]{ID: uint64(i + 1), Value: i + 1}
	}
	if err := ore.ProduceBatch(ctx, batch); err != nil {
		fmt.Println(err)
	}
	if err := ore.Close(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("sum:", sum)

	// A closed bus accepts nothing: the whole batch comes back.
	err = ore.ProduceBatch(ctx, batch[:3])
	var be *mainbus.BatchError[int]
	if errors.As(err, &be) {
		closed := errors.Is(err, mainbus.ErrClosed)
		fmt.Println("handed back:", len(be.Rejected), "events; closed:", closed)
	}
	// Output:
	// sum: 5050
	// handed back: 3 events; closed: true
}

// A stacked bus hands its handler a slot's whole stack in one call: a
// batch of 150 on one conveyor comes in stacks of 64, 64 and 22, in
// order.
func ExampleNewStacked() {
	telemetry, err := mainbus.NewStacked("telemetry",
		func(_ context.Context, conveyor int, evs []mainbus.Event[string]) error {
			first, last := evs[0].ID, evs[len(evs)-1].ID
			fmt.Printf("L%d: %d events, %d to %d\n", conveyor, len(evs), first, last)
			return nil
		}, mainbus.WithConveyors(1), mainbus.WithExactConveyors())
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	batch := make([]mainbus.Event[string], 150)
	for i := range batch {
		batch[i] = mainbus.Event[string]{ID: uint64(i + 1), Value: "sample"}
	}
	if err := telemetry.ProduceBatch(ctx, batch); err != nil {
		fmt.Println(err)
	}
	if err := telemetry.Close(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// L0: 64 events, 1 to 64
	// L0: 64 events, 65 to 128
	// L0: 22 events, 129 to 150
}
