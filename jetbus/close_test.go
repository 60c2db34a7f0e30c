package jetbus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
)

// Close called from a handler with a context of its own, not the
// handler's, begins the shutdown and returns nil at once instead of
// waiting for the handler that called it.
func TestCloseFromHandlerOwnContext(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	var b *jetbus.Bus[int]
	ready := make(chan struct{})
	result := make(chan error, 1)
	b = newBus(t, nc, "ownctx", func(context.Context, int, mainbus.Event[int]) error {
		<-ready
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		err := b.Close(ctx)
		if d := time.Since(start); d > time.Second {
			err = errors.Join(err, errors.New("Close took "+d.String()))
		}
		result <- err
		return nil
	}, jetbus.WithConveyors(1), jetbus.WithExactConveyors(), jetbus.WithMemoryStorage())
	close(ready)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Produce(ctx, mainbus.Event[int]{ID: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-result:
		if err != nil {
			t.Errorf("Close from a handler: %v; want nil at once", err)
		}
	case <-ctx.Done():
		t.Fatal("Close from a handler never returned")
	}
	select {
	case <-b.Done():
	case <-ctx.Done():
		t.Fatal("the shutdown begun from a handler never finished")
	}
}

// A Close whose context ends returns an error wrapping the context's,
// even while a handler ignores its own context; so does a second Close
// while the first one waits without limit. Done closes once the handler
// has returned.
func TestCloseContextEnds(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	entered := make(chan struct{})
	ended := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Not newBus: its cleanup wants a Close without error.
	b, err := jetbus.New(ctx, nc, "slow", func(hctx context.Context, _ int,
		_ mainbus.Event[int]) error {
		close(entered)
		<-hctx.Done() // a long handler that watches its context
		ended <- hctx.Err()
		return hctx.Err()
	}, jetbus.WithConveyors(1), jetbus.WithExactConveyors(), jetbus.WithMemoryStorage())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close(nil) }() // after a failure too, for the leak check
	if err := b.Produce(ctx, mainbus.Event[int]{ID: 1}); err != nil {
		t.Fatal(err)
	}
	<-entered

	unlimited := make(chan error, 1)
	go func() { unlimited <- b.Close(nil) }()
	short, stop := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err = b.Close(short)
	stop()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a short context: %v; want DeadlineExceeded", err)
	}
	// Close returned: the handler has seen its context end and returned,
	// and nothing of the bus runs any more.
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the handler's context ended with %v; want Canceled", err)
		}
	default:
		t.Error("Close returned before the handler did")
	}
	select {
	case <-b.Done():
	default:
		t.Error("Done is open after Close returned")
	}
	select {
	case err := <-unlimited:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close(nil) after an aborted shutdown: %v; want its cause", err)
		}
	case <-ctx.Done():
		t.Fatal("Close(nil) never returned")
	}
}

// Close with a nil context waits without limit, as on the in-process bus,
// and delivers what was accepted.
func TestCloseNilContext(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	ty := newTally()
	b := newBus(t, nc, "nilclose", ty.handler(), jetbus.WithMemoryStorage())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Produce(ctx, mainbus.Event[int]{ID: 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the event handled", func() bool { return ty.seen(1) == 1 })
	if err := b.Close(nil); err != nil {
		t.Errorf("Close(nil): %v; want nil", err)
	}
}
