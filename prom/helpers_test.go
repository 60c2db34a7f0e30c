package prom_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mainbus-go/mainbus"
)

// waitLimit bounds every wait in these tests, so that a broken promise
// fails a test instead of hanging it.
const waitLimit = 10 * time.Second

// conveyorSeries lists the counters and gauges every conveyor has, with
// the number of [mainbus.ConveyorStats] each must show. It is written
// apart from the collector's own list, so that a renamed metric or a
// field read into the wrong metric fails the tests.
var conveyorSeries = []struct {
	name  string
	kind  dto.MetricType
	value func(mainbus.ConveyorStats) float64
}{
	{"mainbus_events_produced_total", dto.MetricType_COUNTER,
		func(s mainbus.ConveyorStats) float64 { return float64(s.Produced) }},
	{"mainbus_events_consumed_total", dto.MetricType_COUNTER,
		func(s mainbus.ConveyorStats) float64 { return float64(s.Consumed) }},
	{"mainbus_events_dropped_total", dto.MetricType_COUNTER,
		func(s mainbus.ConveyorStats) float64 { return float64(s.Dropped) }},
	{"mainbus_events_rejected_total", dto.MetricType_COUNTER,
		func(s mainbus.ConveyorStats) float64 { return float64(s.Rejected) }},
	{"mainbus_handler_failures_total", dto.MetricType_COUNTER,
		func(s mainbus.ConveyorStats) float64 { return float64(s.Failed) }},
	{"mainbus_handler_panics_total", dto.MetricType_COUNTER,
		func(s mainbus.ConveyorStats) float64 { return float64(s.Panicked) }},
	{"mainbus_handler_retries_total", dto.MetricType_COUNTER,
		func(s mainbus.ConveyorStats) float64 { return float64(s.Retried) }},
	{"mainbus_events_dead_lettered_total", dto.MetricType_COUNTER,
		func(s mainbus.ConveyorStats) float64 { return float64(s.DeadLettered) }},
	{"mainbus_dead_letter_failures_total", dto.MetricType_COUNTER,
		func(s mainbus.ConveyorStats) float64 { return float64(s.DeadLetterFailed) }},
	{"mainbus_conveyor_depth", dto.MetricType_GAUGE,
		func(s mainbus.ConveyorStats) float64 { return float64(s.Depth) }},
	{"mainbus_conveyor_capacity", dto.MetricType_GAUGE,
		func(s mainbus.ConveyorStats) float64 { return float64(s.Capacity) }},
	{"mainbus_producers_blocked", dto.MetricType_GAUGE,
		func(s mainbus.ConveyorStats) float64 { return float64(s.Blocked) }},
	{"mainbus_producer_blocks_total", dto.MetricType_COUNTER,
		func(s mainbus.ConveyorStats) float64 { return float64(s.Blocks) }},
	{"mainbus_producer_blocked_seconds_total", dto.MetricType_COUNTER,
		func(s mainbus.ConveyorStats) float64 { return s.BlockedTime.Seconds() }},
}

// histogramSeries lists the histograms every conveyor has.
var histogramSeries = []struct {
	name  string
	value func(mainbus.ConveyorStats) mainbus.Histogram
}{
	{"mainbus_queue_seconds",
		func(s mainbus.ConveyorStats) mainbus.Histogram { return s.QueueTime }},
	{"mainbus_handler_seconds",
		func(s mainbus.ConveyorStats) mainbus.Histogram { return s.HandlerTime }},
}

// busSeries lists the gauges every bus has.
var busSeries = []struct {
	name  string
	value func(mainbus.Stats) float64
}{
	{"mainbus_bus_conveyors", func(s mainbus.Stats) float64 { return float64(s.Active) }},
	{"mainbus_bus_draining_slots", func(s mainbus.Stats) float64 { return float64(s.Draining) }},
}

// newBus builds a bus and closes it when the test ends.
func newBus[T any](t *testing.T, resource string, h mainbus.Handler[T],
	opts ...mainbus.Option) *mainbus.Bus[T] {
	t.Helper()
	b, err := mainbus.New(resource, h, opts...)
	if err != nil {
		t.Fatalf("New(%s): %v", resource, err)
	}
	t.Cleanup(func() { closeBus(t, b) })
	return b
}

// closeBus closes b, cutting the drain short after waitLimit. Handlers of
// these tests watch their context, so it returns.
func closeBus(t *testing.T, b mainbus.Member) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Errorf("close %s: %v", b.Resource(), err)
	}
}

// produce puts the event id with key on b and fails the test if b does
// not accept it.
func produce[T any](t *testing.T, b *mainbus.Bus[T], id int, key string) {
	t.Helper()
	ev := mainbus.Event[T]{ID: uint64(id), Key: key}
	if err := b.Produce(context.Background(), ev); err != nil {
		t.Fatalf("produce %d to %s: %v", id, b.Resource(), err)
	}
}

// hold keeps a handler until gate is closed or its context ends.
func hold(ctx context.Context, gate <-chan struct{}) {
	select {
	case <-gate:
	case <-ctx.Done():
	}
}

// wait waits for ch to be closed or to send, failing the test after
// waitLimit.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("%s did not happen within %v", what, waitLimit)
		var zero T
		return zero
	}
}

// pollUntil waits for cond, failing the test after waitLimit.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %v", what, waitLimit)
		}
		runtime.Gosched()
	}
}

// serve registers c in a fresh registry and serves the registry's
// metrics on 127.0.0.1 until the test ends.
func serve(t *testing.T, c prometheus.Collector, opts promhttp.HandlerOpts) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatalf("register: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, opts))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	// Close also closes the idle connections of srv.Client, whose
	// goroutines would otherwise outlive the test.
	t.Cleanup(srv.Close)
	return srv
}

// scrape gets /metrics from srv and fails the test if that fails.
func scrape(t *testing.T, srv *httptest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := get(srv)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// get gets /metrics from srv and parses the text format it answers. It is
// safe to call from any goroutine.
func get(srv *httptest.Server) (map[string]*dto.MetricFamily, error) {
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET /metrics: %s: %s", resp.Status, body)
	}
	if f := expfmt.ResponseFormat(resp.Header); f.FormatType() != expfmt.TypeTextPlain {
		return nil, fmt.Errorf("GET /metrics answered %q; want the text format", f)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	return fams, nil
}

// stableScrape scrapes srv between two snapshots of stats until the two
// are equal, and returns the scrape and the snapshot. Counters only grow
// and every gauge moves with one, so the scrape, read between two equal
// snapshots, must show exactly their numbers.
func stableScrape(t *testing.T, srv *httptest.Server,
	stats func() []mainbus.Stats) (map[string]*dto.MetricFamily, []mainbus.Stats) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		before := stats()
		fams := scrape(t, srv)
		if after := stats(); reflect.DeepEqual(before, after) {
			return fams, after
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats kept changing for %v", waitLimit)
		}
	}
}

// checkStats fails the test unless fams holds exactly the series of
// stats, each with the value stats gives for it.
func checkStats(t *testing.T, fams map[string]*dto.MetricFamily, stats []mainbus.Stats) {
	t.Helper()
	conveyors := 0
	for _, s := range stats {
		conveyors += len(s.Conveyors)
	}
	for _, m := range conveyorSeries {
		got := series(t, fams, m.name, m.kind, conveyors, false)
		eachConveyor(stats, func(key string, cs mainbus.ConveyorStats) {
			if v, want := value(got[key]), m.value(cs); v != want {
				t.Errorf("%s{%s} = %v; stats say %v", m.name, key, v, want)
			}
		})
	}
	for _, m := range histogramSeries {
		got := series(t, fams, m.name, dto.MetricType_HISTOGRAM, conveyors, false)
		eachConveyor(stats, func(key string, cs mainbus.ConveyorStats) {
			checkHistogram(t, m.name+"{"+key+"}", got[key], m.value(cs))
		})
	}
	for _, m := range busSeries {
		got := series(t, fams, m.name, dto.MetricType_GAUGE, len(stats), true)
		for _, s := range stats {
			if v, want := value(got[s.Resource]), m.value(s); v != want {
				t.Errorf("%s{%s} = %v; stats say %v", m.name, s.Resource, v, want)
			}
		}
	}
	if want := len(conveyorSeries) + len(histogramSeries) + len(busSeries); len(stats) > 0 &&
		len(fams) != want {
		t.Errorf("scrape has %d metric families; want %d", len(fams), want)
	}
}

// eachConveyor calls f with every conveyor of stats and its series key.
func eachConveyor(stats []mainbus.Stats, f func(key string, cs mainbus.ConveyorStats)) {
	for _, s := range stats {
		for _, cs := range s.Conveyors {
			f(s.Resource+"/"+strconv.Itoa(cs.Conveyor), cs)
		}
	}
}

// series checks that the family name has the type kind, a help text and
// n series, each labelled resource and conveyor, or resource alone if
// whole (a metric of a whole bus), and returns them by [keyOf]. A missing
// series reads as NaN in [value], so it fails any comparison.
func series(t *testing.T, fams map[string]*dto.MetricFamily, name string,
	kind dto.MetricType, n int, whole bool) map[string]*dto.Metric {
	t.Helper()
	byKey := map[string]*dto.Metric{}
	f := fams[name]
	if f == nil {
		if n > 0 {
			t.Errorf("scrape has no %s", name)
		}
		return byKey
	}
	if f.GetType() != kind || f.GetHelp() == "" {
		t.Errorf("%s has type %v and help %q; want %v and a help text",
			name, f.GetType(), f.GetHelp(), kind)
	}
	want := []string{"conveyor", "resource"}
	if whole {
		want = []string{"resource"}
	}
	for _, m := range f.GetMetric() {
		var names []string
		for _, l := range m.GetLabel() {
			names = append(names, l.GetName())
		}
		if slices.Sort(names); !slices.Equal(names, want) {
			t.Errorf("%s has labels %v; want %v", name, names, want)
		}
		byKey[keyOf(m)] = m
	}
	if len(byKey) != n || len(f.GetMetric()) != n {
		t.Errorf("%s has %d series (%d keys); want %d",
			name, len(f.GetMetric()), len(byKey), n)
	}
	return byKey
}

// keyOf returns the key of a series: "resource/conveyor", or "resource"
// for a series of a whole bus.
func keyOf(m *dto.Metric) string {
	resource, conveyor := "", ""
	for _, l := range m.GetLabel() {
		switch l.GetName() {
		case "resource":
			resource = l.GetValue()
		case "conveyor":
			conveyor = "/" + l.GetValue()
		}
	}
	return resource + conveyor
}

// value returns the number of a counter or gauge series, or NaN if there
// is none.
func value(m *dto.Metric) float64 {
	switch {
	case m == nil:
		return math.NaN()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	return math.NaN()
}

// checkHistogram fails the test unless m is the Prometheus form of h:
// cumulative buckets up to each bound in seconds, the last one +Inf.
func checkHistogram(t *testing.T, name string, m *dto.Metric, h mainbus.Histogram) {
	t.Helper()
	got := m.GetHistogram()
	if got == nil {
		t.Errorf("%s is missing or not a histogram", name)
		return
	}
	if got.GetSampleCount() != h.Count || got.GetSampleSum() != h.Sum.Seconds() {
		t.Errorf("%s has count %d, sum %v; stats say %d, %v",
			name, got.GetSampleCount(), got.GetSampleSum(), h.Count, h.Sum.Seconds())
	}
	buckets := got.GetBucket()
	if len(buckets) != mainbus.HistogramBuckets {
		t.Errorf("%s has %d buckets; want %d", name, len(buckets), mainbus.HistogramBuckets)
		return
	}
	var below uint64
	for i, b := range buckets {
		below += h.Buckets[i]
		bound := mainbus.HistogramBound(i).Seconds()
		if i == mainbus.HistogramBuckets-1 {
			bound = math.Inf(1)
		}
		if b.GetUpperBound() != bound || b.GetCumulativeCount() != below {
			t.Errorf("%s bucket %d is le=%v: %d; want le=%v: %d",
				name, i, b.GetUpperBound(), b.GetCumulativeCount(), bound, below)
		}
	}
}

// sum adds up the series of the family name whose resource is resource,
// or all its series for "", counters and gauges by value and histograms
// by count.
func sum(fams map[string]*dto.MetricFamily, name, resource string) float64 {
	total := 0.0
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() != "resource" || resource != "" && l.GetValue() != resource {
				continue
			}
			if h := m.GetHistogram(); h != nil {
				total += float64(h.GetSampleCount())
			} else {
				total += value(m)
			}
		}
	}
	return total
}

// get1 returns the value of the counter or gauge name for key (see
// [keyOf]), or NaN if the scrape has no such series.
// A wantValue is the value one series should have: key is as keyOf
// makes it, "resource/conveyor" or "resource".
type wantValue struct {
	name, key string
	want      float64
}

// checkValues checks each value in fams; when says when it was scraped.
func checkValues(t *testing.T, fams map[string]*dto.MetricFamily, when string,
	wants []wantValue) {
	t.Helper()
	for _, w := range wants {
		if got := get1(fams, w.name, w.key); got != w.want {
			t.Errorf("%s: %s{%s} = %v; want %v", when, w.name, w.key, got, w.want)
		}
	}
}

func get1(fams map[string]*dto.MetricFamily, name, key string) float64 {
	for _, m := range fams[name].GetMetric() {
		if keyOf(m) == key {
			return value(m)
		}
	}
	return math.NaN()
}
