package workload_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.uber.org/goleak"

	"github.com/mainbus-go/mainbus/internal/workload"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestCases runs every case with counts that do and do not divide among
// the producers and the batch size; each run checks its own sum.
func TestCases(t *testing.T) {
	for _, c := range workload.Cases() {
		for _, p := range workload.Producers() {
			for _, n := range []int{0, 1, 7, workload.Batch + 1, 5000} {
				t.Run(fmt.Sprintf("%s/p%d/n%d", c.Name, p, n), func(t *testing.T) {
					run, err := c.Setup(p)
					if err != nil {
						t.Fatal(err)
					}
					if err := run(context.Background(), n); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}

// TestCanceled checks that a run whose context has ended stops early,
// says why, and still stops every goroutine (goleak checks that).
func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range workload.Cases() {
		run, err := c.Setup(8)
		if err != nil {
			t.Fatal(err)
		}
		if err := run(ctx, 1_000_000); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: error %v, want context.Canceled", c.Name, err)
		}
	}
}
