package natsload

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runPlain does the work of cfg with nats.go alone, as a user of
// JetStream without mainbus would.
func runPlain(ctx context.Context, nc *nats.Conn, cfg Config) (Rate, error) {
	var failed atomic.Int64
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.Pending),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) {
			failed.Add(1)
		}))
	if err != nil {
		return Rate{}, err
	}
	stream := name("natsload-")
	subjects := make([]string, cfg.Conveyors)
	for i := range subjects {
		subjects[i] = stream + "." + strconv.Itoa(i)
	}
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: stream, Subjects: subjects, Retention: jetstream.WorkQueuePolicy,
		Storage: storage,
	})
	if err != nil {
		return Rate{}, fmt.Errorf("create stream: %w", err)
	}
	defer deleteStream(js, stream)

	start := time.Now()
	if err := publishPlain(ctx, js, subjects, cfg, &failed); err != nil {
		return Rate{}, err
	}
	if cfg.Work == Publish {
		return Rate{Events: cfg.Events, Elapsed: time.Since(start)}, nil
	}
	start = time.Now()
	if err := consumePlain(ctx, s, subjects, cfg); err != nil {
		return Rate{}, err
	}
	return Rate{Events: cfg.Events, Elapsed: time.Since(start)}, nil
}

// publishPlain publishes cfg.Events messages round robin on subjects
// and waits until the server has acknowledged them all.
func publishPlain(ctx context.Context, js jetstream.JetStream, subjects []string, cfg Config,
	failed *atomic.Int64) error {
	data := body(cfg)
	for i := range cfg.Events {
		msg := &nats.Msg{Subject: subjects[i%len(subjects)], Data: data}
		if cfg.MsgIDs {
			msg.Header = nats.Header{jetstream.MsgIDHeader: {strconv.Itoa(i + 1)}}
		}
		if _, err := js.PublishMsgAsync(msg); err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d publishes failed", n)
	}
	return nil
}

// consumePlain takes every message of the stream with one pull consumer
// per subject and acknowledges each: confirmed, one at a time, for
// ConsumeOrdered; unconfirmed, MaxInFlight at a time, otherwise.
func consumePlain(ctx context.Context, s jetstream.Stream, subjects []string,
	cfg Config) error {
	ordered := cfg.Work == ConsumeOrdered
	inFlight, batch := cfg.MaxInFlight, cfg.MaxInFlight
	if ordered {
		inFlight, batch = 1, 64 // as jetbus pulls in Ordered mode
	}
	var (
		left = atomic.Int64{}
		done = make(chan struct{})
		wg   sync.WaitGroup
		errs = make([]error, len(subjects))
	)
	left.Store(int64(cfg.Events))
	its := make([]jetstream.MessagesContext, len(subjects))
	defer func() {
		for _, it := range its {
			if it != nil {
				it.Stop()
			}
		}
		wg.Wait()
	}()
	for i, subj := range subjects {
		cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: "C" + strconv.Itoa(i), FilterSubject: subj,
			AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: inFlight,
		})
		if err != nil {
			return fmt.Errorf("create consumer: %w", err)
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(batch))
		if err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		its[i] = it
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = takePlain(ctx, it, ordered, &left, done)
		}()
	}
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, it := range its {
		it.Stop()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// takePlain acknowledges the messages of it until the iterator stops,
// closing done when left reaches zero.
func takePlain(ctx context.Context, it jetstream.MessagesContext, ordered bool,
	left *atomic.Int64, done chan struct{}) error {
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		if ordered {
			err = msg.DoubleAck(ctx)
		} else {
			err = msg.Ack()
		}
		if err != nil {
			return fmt.Errorf("ack: %w", err)
		}
		if left.Add(-1) == 0 {
			close(done)
		}
	}
}
