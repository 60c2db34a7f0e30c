package prom_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/prom"
)

// byKey sends each event to the conveyor its key names: "0", "1", …
var byKey = mainbus.BalancerFunc(func(key string, c mainbus.Conveyors) int {
	n, _ := strconv.Atoi(key)
	return n % c.Len()
})

// The scrape shows every number of the buses' own Stats: while a
// conveyor is held with a producer waiting, while a resize drains, and
// after the buses have closed.
func TestScrapeMatchesStats(t *testing.T) {
	gate := make(chan struct{})
	ironBusy := make(chan struct{})
	gravelBusy := make(chan struct{})

	// iron fails events 5, 10, … and panics on 7, 14, … on every attempt,
	// and holds event 1 on conveyor 0 until the gate opens.
	ironDead := newBus(t, "iron-dead",
		func(context.Context, int, mainbus.Event[mainbus.DeadLetter[int]]) error { return nil },
		mainbus.WithConveyors(1), mainbus.WithExactConveyors())
	iron := newBus(t, "iron", func(ctx context.Context, _ int, ev mainbus.Event[int]) error {
		switch {
		case ev.ID == 1:
			close(ironBusy)
			hold(ctx, gate)
		case ev.ID%5 == 0:
			return errors.New("no ore")
		case ev.ID%7 == 0:
			panic("furnace jammed")
		}
		return nil
	}, mainbus.WithConveyors(3), mainbus.WithExactConveyors(), mainbus.WithBuffer(2),
		mainbus.WithBalancer(byKey), mainbus.WithRetry(2, time.Microsecond, 10*time.Microsecond),
		mainbus.WithDeadLetter(ironDead))
	gravel := newBus(t, "gravel", func(ctx context.Context, _ int, ev mainbus.Event[string]) error {
		if ev.ID == 1 {
			close(gravelBusy)
			hold(ctx, gate)
		}
		return nil
	}, mainbus.WithConveyors(1), mainbus.WithExactConveyors(), mainbus.WithBuffer(1),
		mainbus.WithOverflow(mainbus.DropNewest))
	open := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(open) // runs before the buses close

	stats := mainbus.StatsOf(iron, ironDead, gravel)
	srv := serve(t, prom.NewCollector(stats), promhttp.HandlerOpts{})

	// Event 1 holds iron's conveyor 0, 2 and 3 fill it, and 4 waits for
	// room; 5 to 40 go to conveyors 1 and 2.
	produce(t, iron, 1, "0")
	wait(t, ironBusy, "iron handling event 1")
	produce(t, iron, 2, "0")
	produce(t, iron, 3, "0")
	blocked := make(chan error, 1)
	go func() {
		blocked <- iron.Produce(context.Background(), mainbus.Event[int]{ID: 4, Key: "0"})
	}()
	for id := 5; id <= 40; id++ {
		produce(t, iron, id, strconv.Itoa(1+id%2))
	}
	// gravel holds event 1, keeps 2 in its one slot and drops 3 and 4.
	produce(t, gravel, 1, "")
	wait(t, gravelBusy, "gravel handling event 1")
	for id := 2; id <= 4; id++ {
		produce(t, gravel, id, "")
	}
	pollUntil(t, "iron and gravel settling", func() bool {
		s := stats()
		i, d, g := s[0].Conveyors, s[1].Conveyors, s[2].Conveyors
		return i[0].Blocked == 1 && idle(i[1]) && idle(i[2]) &&
			idle(d[0]) && d[0].Consumed == s[0].Total().DeadLettered &&
			g[0].Dropped == 2 && g[0].Depth == 1
	})

	fams, snap := stableScrape(t, srv, stats)
	checkStats(t, fams, snap)
	checkValues(t, fams, "while held", []wantValue{
		{"mainbus_conveyor_depth", "iron/0", 2},
		{"mainbus_conveyor_capacity", "iron/0", 2},
		{"mainbus_producers_blocked", "iron/0", 1},
		{"mainbus_producer_blocks_total", "iron/0", 1},
		{"mainbus_bus_conveyors", "iron", 3},
		{"mainbus_events_dropped_total", "gravel/0", 2},
		{"mainbus_conveyor_depth", "gravel/0", 1},
	})

	// Going to two conveyors moves the waiting producer to the new
	// conveyor 0, leaves events 2 and 3 draining on the old one, and makes
	// conveyor 2 a removed one.
	resized := make(chan error, 1)
	go func() { resized <- iron.Resize(context.Background(), 2) }()
	if err := wait(t, blocked, "the waiting producer's event being accepted"); err != nil {
		t.Fatalf("produce 4: %v", err)
	}
	pollUntil(t, "iron resizing", func() bool {
		s := iron.Stats()
		return s.Active == 2 && s.Draining == 2 && s.Conveyors[0].Depth == 1
	})
	fams, snap = stableScrape(t, srv, stats)
	checkStats(t, fams, snap)
	checkValues(t, fams, "while draining", []wantValue{
		{"mainbus_bus_conveyors", "iron", 2},
		{"mainbus_bus_draining_slots", "iron", 2},
		{"mainbus_producers_blocked", "iron/0", 0},
		{"mainbus_conveyor_capacity", "iron/2", 0},
	})
	if got := get1(fams, "mainbus_producer_blocked_seconds_total", "iron/0"); !(got > 0) {
		t.Errorf("mainbus_producer_blocked_seconds_total{iron/0} = %v; want > 0", got)
	}

	open()
	if err := wait(t, resized, "the resize"); err != nil {
		t.Fatalf("resize: %v", err)
	}
	closeBus(t, iron) // before its dead-letter bus
	closeBus(t, ironDead)
	closeBus(t, gravel)
	fams, snap = stableScrape(t, srv, stats)
	checkStats(t, fams, snap)

	// 8 events fail and 4 panic, on both attempts; 28 pass at once. Only
	// attempts that returned are timed.
	for _, c := range []struct {
		name, resource string
		want           float64
	}{
		{"mainbus_events_produced_total", "iron", 40},
		{"mainbus_events_consumed_total", "iron", 40},
		{"mainbus_handler_failures_total", "iron", 16},
		{"mainbus_handler_panics_total", "iron", 8},
		{"mainbus_handler_retries_total", "iron", 12},
		{"mainbus_events_dead_lettered_total", "iron", 12},
		{"mainbus_dead_letter_failures_total", "iron", 0},
		{"mainbus_queue_seconds", "iron", 40},
		{"mainbus_handler_seconds", "iron", 28 + 16},
		{"mainbus_events_consumed_total", "iron-dead", 12},
		{"mainbus_events_produced_total", "gravel", 2},
		{"mainbus_events_consumed_total", "gravel", 2},
		{"mainbus_events_dropped_total", "gravel", 2},
	} {
		if got := sum(fams, c.name, c.resource); got != c.want {
			t.Errorf("after close: %s{resource=%s} sums to %v; want %v",
				c.name, c.resource, got, c.want)
		}
	}
}

// idle says whether a conveyor is empty, done with every event put on it
// and has published their times.
func idle(c mainbus.ConveyorStats) bool {
	return c.Depth == 0 && c.Blocked == 0 && c.Consumed == c.Produced &&
		c.QueueTime.Count == c.Consumed
}

// The metrics pass the Prometheus linter and the pedantic registry's
// checks that what is collected matches what is described.
func TestLint(t *testing.T) {
	iron := newBus(t, "iron", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		if ev.ID%3 == 0 {
			return errors.New("no ore")
		}
		return nil
	}, mainbus.WithConveyors(2))
	for id := 1; id <= 10; id++ {
		produce(t, iron, id, "")
	}
	closeBus(t, iron)

	for _, c := range []struct {
		name      string
		collector *prom.Collector
		series    int
	}{
		// 13 counters and gauges and 2 histograms per conveyor, 2 gauges
		// per bus.
		{"one bus", prom.NewCollector(mainbus.StatsOf(iron)), 2*16 + 2},
		{"nil stats", prom.NewCollector(nil), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			problems, err := testutil.CollectAndLint(c.collector)
			if err != nil {
				t.Fatalf("CollectAndLint: %v", err)
			}
			for _, p := range problems {
				t.Errorf("lint: %s: %s", p.Metric, p.Text)
			}
			if n := testutil.CollectAndCount(c.collector); n != c.series {
				t.Errorf("collected %d series; want %d", n, c.series)
			}
		})
	}
}

// A collector of a Complex's stats exports buses of any payload type,
// and a bus added after the collector was made from the next scrape on.
func TestComplex(t *testing.T) {
	var factory mainbus.Complex
	iron := newBus(t, "iron",
		func(context.Context, int, mainbus.Event[string]) error { return nil },
		mainbus.WithConveyors(2))
	copper := newBus(t, "copper",
		func(context.Context, int, mainbus.Event[int]) error { return nil },
		mainbus.WithConveyors(4))
	type circuit struct{ Wires, Plates int }
	circuits := newBus(t, "circuits",
		func(context.Context, int, mainbus.Event[circuit]) error { return nil },
		mainbus.WithConveyors(1), mainbus.WithExactConveyors())
	srv := serve(t, prom.NewCollector(factory.Stats), promhttp.HandlerOpts{})

	// An empty complex exports nothing, and that is no error.
	if fams := scrape(t, srv); len(fams) != 0 {
		t.Errorf("empty complex: scrape has %d metric families; want 0", len(fams))
	}

	if err := factory.Add(iron); err != nil {
		t.Fatal(err)
	}
	for id := 1; id <= 10; id++ {
		produce(t, iron, id, "")
	}
	fams, snap := stableScrape(t, srv, factory.Stats)
	checkStats(t, fams, snap)
	if len(snap) != 1 {
		t.Fatalf("complex has %d buses; want 1", len(snap))
	}

	for _, b := range []mainbus.Member{copper, circuits} {
		if err := factory.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	for id := 1; id <= 20; id++ {
		produce(t, copper, id, "")
		produce(t, circuits, id, "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := factory.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	fams, snap = stableScrape(t, srv, factory.Stats)
	checkStats(t, fams, snap)
	for _, c := range []struct {
		name, resource string
		want           float64
	}{
		{"mainbus_events_consumed_total", "iron", 10},
		{"mainbus_events_consumed_total", "copper", 20},
		{"mainbus_events_consumed_total", "circuits", 20},
		{"mainbus_bus_conveyors", "copper", 4},
	} {
		if got := sum(fams, c.name, c.resource); got != c.want {
			t.Errorf("%s{resource=%s} sums to %v; want %v", c.name, c.resource, got, c.want)
		}
	}
}

// Scrapes run concurrently with each other and with producers; each
// sees counters that never go down, and the last one, after close, the
// final stats.
func TestConcurrentScrapes(t *testing.T) {
	var factory mainbus.Complex
	iron := newBus(t, "iron",
		func(context.Context, int, mainbus.Event[string]) error { return nil },
		mainbus.WithConveyors(4), mainbus.WithBuffer(4))
	copper := newBus(t, "copper", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
		if ev.ID%10 == 0 {
			return errors.New("no ore")
		}
		return nil
	}, mainbus.WithConveyors(2), mainbus.WithBuffer(1), mainbus.WithBalancer(mainbus.LeastLoaded()))
	for _, b := range []mainbus.Member{iron, copper} {
		if err := factory.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	srv := serve(t, prom.NewCollector(factory.Stats), promhttp.HandlerOpts{})

	stop := make(chan struct{})
	var producers sync.WaitGroup
	for p := range 4 {
		producers.Go(func() {
			for id := 1; ; id++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if p%2 == 0 {
					err = iron.Produce(context.Background(), mainbus.Event[string]{ID: uint64(id)})
				} else {
					err = copper.Produce(context.Background(), mainbus.Event[int]{ID: uint64(id)})
				}
				if err != nil {
					t.Errorf("producer %d: %v", p, err)
					return
				}
			}
		})
	}
	// From here on, every number the scrapers follow is above zero.
	pollUntil(t, "both buses consuming", func() bool {
		i, c := iron.Stats().Total(), copper.Stats().Total()
		return min(i.Consumed, i.QueueTime.Count, i.HandlerTime.Count,
			c.Consumed, c.QueueTime.Count, c.HandlerTime.Count, c.Failed) > 0
	})

	var scrapers sync.WaitGroup
	for s := range 4 {
		scrapers.Go(func() {
			last := map[string]float64{}
			for range 25 {
				fams, err := get(srv)
				if err != nil {
					t.Errorf("scraper %d: %v", s, err)
					return
				}
				for _, name := range []string{
					"mainbus_events_produced_total", "mainbus_events_consumed_total",
					"mainbus_handler_failures_total", "mainbus_queue_seconds",
					"mainbus_handler_seconds",
				} {
					v := sum(fams, name, "")
					if v == 0 || v < last[name] {
						t.Errorf("scraper %d: %s went from %v to %v", s, name, last[name], v)
					}
					last[name] = v
				}
			}
		})
	}
	scrapers.Wait()
	close(stop)
	producers.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := factory.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	fams, snap := stableScrape(t, srv, factory.Stats)
	checkStats(t, fams, snap)
}

// A collector without stats, and the zero Collector, register and
// export nothing.
func TestNoStats(t *testing.T) {
	for _, c := range []struct {
		name      string
		collector *prom.Collector
		described int
	}{
		{"nil stats", prom.NewCollector(nil), 18},
		{"zero value", new(prom.Collector), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			if err := reg.Register(c.collector); err != nil {
				t.Fatalf("register: %v", err)
			}
			fams, err := reg.Gather()
			if err != nil || len(fams) != 0 {
				t.Errorf("Gather = %d families, %v; want none, no error", len(fams), err)
			}

			descs := make(chan *prometheus.Desc, 32)
			c.collector.Describe(descs)
			close(descs)
			if len(descs) != c.described {
				t.Errorf("Describe sent %d descriptors; want %d", len(descs), c.described)
			}
		})
	}
}

// Two buses of one resource fail the scrape with an error naming it; a
// handler that continues on errors still serves the first bus.
func TestDuplicateResource(t *testing.T) {
	nop := func(context.Context, int, mainbus.Event[int]) error { return nil }
	first := newBus(t, "iron", nop, mainbus.WithConveyors(2))
	second := newBus(t, "iron", nop, mainbus.WithConveyors(4))
	c := prom.NewCollector(mainbus.StatsOf(first, second))

	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	_, err := reg.Gather()
	if err == nil || !strings.Contains(err.Error(), `resource "iron" has more than one bus`) {
		t.Errorf("Gather error = %v; want one naming resource iron", err)
	}

	srv := serve(t, c, promhttp.HandlerOpts{})
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("GET /metrics: %s; want %d", resp.Status, http.StatusInternalServerError)
	}

	srv = serve(t, c, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	fams := scrape(t, srv)
	checkStats(t, fams, []mainbus.Stats{first.Stats()})
}
