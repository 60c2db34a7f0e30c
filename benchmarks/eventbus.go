package main

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/mainbus-go/mainbus/internal/workload"

	EventBus "github.com/asaskevich/EventBus"
)

// runEventBus subscribes one asynchronous, transactional handler to each
// of 4 topics, one topic per conveyor, and publishes each event to a topic
// in turn. Transactional handlers run one call at a time, as a conveyor's
// consumer does; EventBus starts a goroutine per call and has no buffer:
// Publish waits while the topic's previous call runs. WaitAsync waits for
// every call.
func runEventBus(b *testing.B, producers int) error {
	var sum atomic.Int64
	bus := EventBus.New()
	topics := make([]string, conveyors)
	for i := range topics {
		topics[i] = fmt.Sprintf("iron-L%d", i)
		err := bus.SubscribeAsync(topics[i], func(v int) { sum.Add(int64(v)) }, true)
		if err != nil {
			return err
		}
	}

	b.ResetTimer()
	_ = workload.Split(b.N, producers, func(count int) error {
		for i := range count {
			bus.Publish(topics[i%conveyors], 1)
		}
		return nil
	})
	bus.WaitAsync()
	b.StopTimer()
	return workload.CheckSum(sum.Load(), b.N)
}
