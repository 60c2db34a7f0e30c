package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mainbus-go/mainbus/internal/workload"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

// runWatermill publishes each event as a message to one of 4 topics of a
// watermill GoChannel in turn; each topic has one subscriber with a
// 64-message output channel, which decodes, adds and acks. Publish does
// not wait for the subscriber (the default): it starts goroutines that
// wait for the ack, so the backlog is bounded by memory, not by the
// output channels. Messages carry no UUID, as mainbus events carry no ID
// here. Close discards what is not yet delivered, so the run first waits
// for the subscribers to have acked every message.
func runWatermill(b *testing.B, producers int) error {
	pubSub := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: buffer}, nil)
	var sum, left atomic.Int64
	left.Store(int64(b.N))
	all := make(chan struct{})
	if b.N == 0 {
		close(all)
	}
	topics := make([]string, conveyors)
	var consumers sync.WaitGroup
	for i := range topics {
		topics[i] = fmt.Sprintf("iron-L%d", i)
		msgs, err := pubSub.Subscribe(context.Background(), topics[i])
		if err != nil {
			return errors.Join(err, pubSub.Close())
		}
		consumers.Go(func() {
			for msg := range msgs {
				v, _ := binary.Varint(msg.Payload)
				sum.Add(v)
				msg.Ack()
				if left.Add(-1) == 0 {
					close(all)
				}
			}
		})
	}

	b.ResetTimer()
	perr := workload.Split(b.N, producers, func(count int) error {
		for i := range count {
			msg := message.NewMessage("", binary.AppendVarint(nil, 1))
			if err := pubSub.Publish(topics[i%conveyors], msg); err != nil {
				return err
			}
		}
		return nil
	})
	var werr error
	select {
	case <-all:
	case <-time.After(time.Minute):
		werr = fmt.Errorf("%d messages not acked after a minute", left.Load())
	}
	cerr := pubSub.Close()
	consumers.Wait()
	b.StopTimer()
	if err := errors.Join(perr, werr, cerr); err != nil {
		return err
	}
	return workload.CheckSum(sum.Load(), b.N)
}
