package prom_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/prom"
)

// A program registers one collector for all its buses and serves the
// registry on /metrics.
func ExampleNewCollector() {
	iron, err := mainbus.New("iron", func(context.Context, int, mainbus.Event[string]) error {
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors())
	if err != nil {
		fmt.Println(err)
		return
	}
	var factory mainbus.Complex
	if err := factory.Add(iron); err != nil {
		fmt.Println(err)
		return
	}

	// The collector reads the complex's stats at every scrape, so buses
	// added later are exported too.
	reg := prometheus.NewRegistry()
	reg.MustRegister(prom.NewCollector(factory.Stats))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// A program serves mux with http.ListenAndServe or an http.Server;
	// here one scrape is answered in process.

	ctx := context.Background()
	for _, v := range []string{"ore", "plate", "gear"} {
		_ = iron.Produce(ctx, mainbus.Event[string]{Value: v})
	}
	if err := factory.Close(ctx); err != nil {
		fmt.Println(err)
	}

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "mainbus_events_") ||
			strings.HasPrefix(line, "mainbus_bus_conveyors") {
			fmt.Print(line)
		}
	}
	// Output:
	// mainbus_bus_conveyors{resource="iron"} 1
	// mainbus_events_consumed_total{conveyor="0",resource="iron"} 3
	// mainbus_events_dead_lettered_total{conveyor="0",resource="iron"} 0
	// mainbus_events_dropped_total{conveyor="0",resource="iron"} 0
	// mainbus_events_produced_total{conveyor="0",resource="iron"} 3
	// mainbus_events_rejected_total{conveyor="0",resource="iron"} 0
}
