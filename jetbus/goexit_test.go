package jetbus_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
)

// A handler that calls runtime.Goexit is reported as a panic saying so,
// its attempt fails, and the conveyor goes on with the next events.
func TestHandlerGoexit(t *testing.T) {
	cases := []struct {
		name     string
		attempts int
		handled  int // distinct events the handler finished
	}{
		{"retried", 2, 4},
		{"last attempt", 1, 3},
	}
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ty := newTally()
			var e errs
			var mu sync.Mutex
			tried := 0
			b := newBus(t, nc, "goexit-"+strings.ReplaceAll(tc.name, " ", "-"),
				func(ctx context.Context, c int, ev mainbus.Event[int]) error {
					mu.Lock()
					tried++
					exit := ev.ID == 2 && tried == 2
					mu.Unlock()
					if exit {
						runtime.Goexit()
					}
					ty.add(ev)
					return nil
				}, jetbus.WithConveyors(1), jetbus.WithExactConveyors(),
				jetbus.WithMemoryStorage(), jetbus.WithErrorHandler(e.handler()),
				jetbus.WithRetry(tc.attempts, time.Millisecond, time.Millisecond))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for id := uint64(1); id <= 4; id++ {
				if err := b.Produce(ctx, mainbus.Event[int]{ID: id}); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, 10*time.Second, "every event consumed", func() bool {
				return b.Stats().Conveyors[0].Consumed == 4
			})

			if n := ty.distinct(); n != tc.handled || ty.seen(4) != 1 {
				t.Errorf("handled %d events, event 4 %d times; want %d, once",
					n, ty.seen(4), tc.handled)
			}
			cs := b.Stats().Conveyors[0]
			if cs.Panicked != 1 || cs.Failed != 0 || cs.Retried != uint64(tc.attempts-1) {
				t.Errorf("panicked %d, failed %d, retried %d; want 1, 0, %d",
					cs.Panicked, cs.Failed, cs.Retried, tc.attempts-1)
			}
			var he *mainbus.HandlerError
			reported := e.all()
			if len(reported) != 1 || !errors.As(reported[0], &he) {
				t.Fatalf("reported %v; want one *mainbus.HandlerError", reported)
			}
			if s, _ := he.Panic.(string); !strings.Contains(s, "runtime.Goexit") ||
				he.EventID != 2 || he.Attempt != 1 || he.Err != nil {
				t.Errorf("reported %+v; want event 2, attempt 1, a Panic naming runtime.Goexit",
					he)
			}
		})
	}
}
