package natsload_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mainbus-go/mainbus/internal/natsload"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/mainbus-go/mainbus/jetbus/embedded"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestCompare runs every work on both sides, briefly, on both storages.
func TestCompare(t *testing.T) {
	srv, err := embedded.Start("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := jetbus.Connect(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, work := range []natsload.Work{natsload.Publish, natsload.ConsumeOrdered,
		natsload.ConsumeThroughput} {
		for _, memory := range []bool{true, false} {
			cfg := natsload.Config{Work: work, Memory: memory, Events: 500, Conveyors: 3}
			t.Run(string(work)+"/"+cfg.Storage(), func(t *testing.T) {
				p, err := natsload.Compare(ctx, nc, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if p.Plain.Events != 500 || p.Jetbus.Events != 500 || p.Ratio() <= 0 {
					t.Errorf("pair %+v, ratio %v; want 500 events each, a ratio above 0",
						p, p.Ratio())
				}
				t.Logf("plain %.0f/s, jetbus %.0f/s, %.2f×", p.Plain.PerSec(),
					p.Jetbus.PerSec(), p.Ratio())
			})
		}
	}
}
