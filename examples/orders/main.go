// Orders shows per-customer order with parallelism: every order of one
// customer goes to the same conveyor, so each customer's orders are
// handled in the order placed, while different customers are handled in
// parallel on four conveyors.
package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/mainbus-go/mainbus"
)

// Order is the payload of the orders bus.
type Order struct {
	Customer string
	Item     string
}

func main() {
	var mu sync.Mutex
	handled := map[string][]string{}

	orders, err := mainbus.New("orders",
		func(ctx context.Context, conveyor int, ev mainbus.Event[Order]) error {
			mu.Lock()
			defer mu.Unlock()
			handled[ev.Key] = append(handled[ev.Key], ev.Value.Item)
			return nil
		},
		mainbus.WithConveyors(4),
		mainbus.WithBalancer(mainbus.KeyHash()),
	)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	for i, item := range []string{"bolt", "gear", "plate", "wire", "pipe", "rail"} {
		for _, customer := range []string{"ada", "grace", "linus"} {
			ev := mainbus.Event[Order]{ID: uint64(i), Key: customer, Value: Order{customer, item}}
			if err := orders.Produce(ctx, ev); err != nil {
				log.Fatal(err)
			}
		}
	}

	// Close delivers every accepted order before it returns.
	closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := orders.Close(closeCtx); err != nil {
		log.Fatal(err)
	}
	for _, customer := range []string{"ada", "grace", "linus"} {
		fmt.Println(customer, handled[customer])
	}
}
