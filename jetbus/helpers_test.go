package jetbus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/mainbus-go/mainbus/jetbus/embedded"
	"github.com/nats-io/nats.go"
)

// startServer starts an embedded server for the test, in dir or a
// temporary directory, and shuts it down when the test ends.
func startServer(t *testing.T, dir string, port int) *embedded.Server {
	t.Helper()
	srv, err := embedded.Start(dir, port)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// connect connects to srv and closes the connection when the test ends.
func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := jetbus.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// newBus builds a bus and closes it when the test ends.
func newBus[T any](t *testing.T, nc *nats.Conn, resource string, h mainbus.Handler[T],
	opts ...jetbus.Option) *jetbus.Bus[T] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := jetbus.New(ctx, nc, resource, h, opts...)
	if err != nil {
		t.Fatalf("new bus %s: %v", resource, err)
	}
	t.Cleanup(func() { closeBus(t, b) })
	return b
}

func closeBus[T any](t *testing.T, b *jetbus.Bus[T]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Errorf("close %s: %v", b.Resource(), err)
	}
}

// eventually polls cond every 10ms until it holds or d has passed.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // polling, not synchronisation
	}
}

// tally records which events a handler saw, in order per key.
type tally struct {
	mu     sync.Mutex
	count  map[uint64]int
	byKey  map[string][]uint64
	total  int
	failed []error
}

func newTally() *tally {
	return &tally{count: map[uint64]int{}, byKey: map[string][]uint64{}}
}

func (ty *tally) add(ev mainbus.Event[int]) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	ty.count[ev.ID]++
	ty.byKey[ev.Key] = append(ty.byKey[ev.Key], ev.ID)
	ty.total++
}

func (ty *tally) handler() mainbus.Handler[int] {
	return func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		ty.add(ev)
		return nil
	}
}

// checkOnceInOrder fails t unless total events were handled, each once,
// and the events of each key other than "" in the order of their IDs.
func (ty *tally) checkOnceInOrder(t *testing.T, total int) {
	t.Helper()
	ty.mu.Lock()
	defer ty.mu.Unlock()
	if ty.total != total || len(ty.count) != total {
		t.Errorf("handled %d times for %d events; want %d, exactly once each",
			ty.total, len(ty.count), total)
	}
	for key, ids := range ty.byKey {
		for i := 1; key != "" && i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Errorf("key %s: event %d handled after %d", key, ids[i], ids[i-1])
				break
			}
		}
	}
}

// distinct returns the number of different events seen.
func (ty *tally) distinct() int {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	return len(ty.count)
}

func (ty *tally) seen(id uint64) int {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	return ty.count[id]
}

// errs collects the errors reported to an error handler.
type errs struct {
	mu   sync.Mutex
	list []error
}

func (e *errs) handler() func(error) {
	return func(err error) {
		e.mu.Lock()
		e.list = append(e.list, err)
		e.mu.Unlock()
	}
}

func (e *errs) all() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.list...)
}

func embeddedStart() (*embedded.Server, error) { return embedded.Start("", 0) }
