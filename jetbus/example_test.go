package jetbus_test

import (
	"context"
	"fmt"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/mainbus-go/mainbus/jetbus/embedded"
)

// A bus over an embedded NATS server: the handler and Produce are those
// of the in-process bus.
func Example() {
	srv, err := embedded.Start("", 0) // temporary storage on 127.0.0.1, a free port
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := jetbus.Connect(ctx, srv.URL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()

	done := make(chan struct{})
	smelt := func(ctx context.Context, conveyor int, ev mainbus.Event[string]) error {
		fmt.Printf("L%d: %s %s\n", conveyor, ev.Key, ev.Value)
		close(done)
		return nil
	}
	iron, err := jetbus.New(ctx, nc, "iron", smelt,
		jetbus.WithConveyors(2), jetbus.WithBalancer(mainbus.KeyHash()))
	if err != nil {
		panic(err)
	}
	err = iron.Produce(ctx, mainbus.Event[string]{ID: 1, Key: "furnace-7", Value: "plate"})
	if err != nil {
		panic(err)
	}
	<-done
	if err := iron.Close(ctx); err != nil {
		panic(err)
	}
	// Output: L1: furnace-7 plate
}

// A full conveyor under Reject: TryProduce says so at once.
func ExampleBus_TryProduce() {
	srv, err := embedded.Start("", 0)
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := jetbus.Connect(ctx, srv.URL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()

	// A producer-only bus: the events wait on the server for workers.
	orders, err := jetbus.New[string](ctx, nc, "orders", nil, jetbus.WithConveyors(1),
		jetbus.WithExactConveyors(), jetbus.WithCapacity(2),
		jetbus.WithOverflow(mainbus.Reject))
	if err != nil {
		panic(err)
	}
	defer orders.Close(ctx)
	for id := uint64(1); id <= 3; id++ {
		err := orders.TryProduce(mainbus.Event[string]{ID: id, Value: "order"})
		fmt.Printf("event %d: %v\n", id, err)
	}
	// Output:
	// event 1: <nil>
	// event 2: <nil>
	// event 3: mainbus: produce to orders L0: mainbus: conveyor full
}
