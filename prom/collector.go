// Package prom exports the stats of mainbus buses as Prometheus metrics.
//
// A [Collector] reads a snapshot of every bus at each scrape and turns it
// into const metrics, so the buses keep counting with their own atomics
// and pay nothing between scrapes:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(prom.NewCollector(factory.Stats)) // factory is a *mainbus.Complex
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Every metric is named mainbus_*, and carries the labels resource and
// conveyor (the conveyor number as a decimal string, "0", "1", …), except
// mainbus_bus_conveyors and mainbus_bus_draining_slots, which describe a
// whole bus and carry resource only. Durations are in seconds; the two
// histograms have the bucket bounds of [mainbus.HistogramBound].
package prom

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mainbus-go/mainbus"
)

// A Collector is a [prometheus.Collector] for the buses whose stats a
// function returns. Register it with a [prometheus.Registerer]; it
// describes its metrics at registration and reads the stats once at every
// scrape.
//
// The stats must hold at most one bus per resource, as those of a
// [mainbus.Complex] always do; [mainbus.StatsOf] does not check it. Each
// further bus of a resource already seen is reported as an invalid
// metric instead of its series, so the scrape fails with an error naming
// the resource; a promhttp handler with promhttp.ContinueOnError still
// serves the series of every other bus.
//
// Create a Collector with [NewCollector]. The zero value describes and
// collects nothing. A Collector is safe for concurrent use: concurrent
// scrapes each read their own snapshot.
type Collector struct {
	stats func() []mainbus.Stats

	conveyor     []conveyorMetric
	queue        *prometheus.Desc
	handler      *prometheus.Desc
	busConveyors *prometheus.Desc
	busDraining  *prometheus.Desc
	bounds       [mainbus.HistogramBuckets - 1]float64
	described    []*prometheus.Desc
}

// A conveyorMetric is one number of [mainbus.ConveyorStats] exported as a
// counter or a gauge.
type conveyorMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(mainbus.ConveyorStats) float64
}

// NewCollector returns a Collector that calls stats at each scrape, such
// as [mainbus.Complex.Stats] or the function [mainbus.StatsOf] returns.
// stats is called from the goroutine of the scrape, one call per scrape,
// and must be safe for concurrent use when scrapes may overlap; both of
// those are.
//
// A nil stats stands for no buses: the collector describes its metrics
// and exports none.
func NewCollector(stats func() []mainbus.Stats) *Collector {
	c := &Collector{
		stats:    stats,
		conveyor: conveyorMetrics(),
		queue: conveyorDesc("mainbus_queue_seconds",
			"Time events waited on the conveyor, from Produce until the consumer "+
				"took their slot."),
		handler: conveyorDesc("mainbus_handler_seconds",
			"Time the handler took per event and attempt, for attempts that "+
				"returned; an event of a stack counts as the stack's mean."),
		busConveyors: prometheus.NewDesc("mainbus_bus_conveyors",
			"Conveyors the producers of the bus use now.",
			[]string{"resource"}, nil),
		busDraining: prometheus.NewDesc("mainbus_bus_draining_slots",
			"Slots still taken on conveyors a resize replaced; they are handled "+
				"before any event on the new conveyors.",
			[]string{"resource"}, nil),
	}
	for i := range c.bounds {
		c.bounds[i] = mainbus.HistogramBound(i).Seconds()
	}
	for _, m := range c.conveyor {
		c.described = append(c.described, m.desc)
	}
	c.described = append(c.described, c.queue, c.handler, c.busConveyors, c.busDraining)
	return c
}

// conveyorDesc describes a metric with the labels resource and conveyor.
func conveyorDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, []string{"resource", "conveyor"}, nil)
}

// conveyorMetrics lists the counters and gauges of a conveyor, in the
// order of [mainbus.ConveyorStats].
func conveyorMetrics() []conveyorMetric {
	counter := func(name, help string, v func(mainbus.ConveyorStats) uint64) conveyorMetric {
		return conveyorMetric{conveyorDesc(name, help), prometheus.CounterValue,
			func(s mainbus.ConveyorStats) float64 { return float64(v(s)) }}
	}
	gauge := func(name, help string, v func(mainbus.ConveyorStats) int) conveyorMetric {
		return conveyorMetric{conveyorDesc(name, help), prometheus.GaugeValue,
			func(s mainbus.ConveyorStats) float64 { return float64(v(s)) }}
	}
	return []conveyorMetric{
		counter("mainbus_events_produced_total",
			"Events put on the conveyor; a drop-oldest overflow policy may discard "+
				"some of them later.",
			func(s mainbus.ConveyorStats) uint64 { return s.Produced }),
		counter("mainbus_events_consumed_total",
			"Events the consumer of the conveyor is done with: handled, or failed "+
				"on the last attempt.",
			func(s mainbus.ConveyorStats) uint64 { return s.Consumed }),
		counter("mainbus_handler_failures_total",
			"Handler attempts that returned an error.",
			func(s mainbus.ConveyorStats) uint64 { return s.Failed }),
		counter("mainbus_handler_panics_total",
			"Handler attempts that panicked.",
			func(s mainbus.ConveyorStats) uint64 { return s.Panicked }),
		counter("mainbus_handler_retries_total",
			"Handler attempts that were followed by another attempt.",
			func(s mainbus.ConveyorStats) uint64 { return s.Retried }),
		counter("mainbus_events_dead_lettered_total",
			"Events handed to the dead-letter bus after their last attempt failed.",
			func(s mainbus.ConveyorStats) uint64 { return s.DeadLettered }),
		counter("mainbus_dead_letter_failures_total",
			"Events the dead-letter bus refused; each was reported to the error "+
				"handler.",
			func(s mainbus.ConveyorStats) uint64 { return s.DeadLetterFailed }),
		counter("mainbus_events_dropped_total",
			"Events discarded by a dropping overflow policy (drop-newest or "+
				"drop-oldest).",
			func(s mainbus.ConveyorStats) uint64 { return s.Dropped }),
		counter("mainbus_events_rejected_total",
			"Events refused for want of room (ErrFull) and handed back to the "+
				"producer; never accepted.",
			func(s mainbus.ConveyorStats) uint64 { return s.Rejected }),
		gauge("mainbus_producers_blocked",
			"Producers waiting now for room on the full conveyor.",
			func(s mainbus.ConveyorStats) int { return s.Blocked }),
		counter("mainbus_producer_blocks_total",
			"Waits for room begun by producers that found the conveyor full.",
			func(s mainbus.ConveyorStats) uint64 { return s.Blocks }),
		{conveyorDesc("mainbus_producer_blocked_seconds_total",
			"Time producers spent waiting for room on the conveyor, in waits that "+
				"have ended."),
			prometheus.CounterValue,
			func(s mainbus.ConveyorStats) float64 { return s.BlockedTime.Seconds() }},
		gauge("mainbus_conveyor_depth",
			"Slots of the conveyor taken now (a stack of events takes one); 0 for "+
				"a conveyor a resize removed.",
			func(s mainbus.ConveyorStats) int { return s.Depth }),
		gauge("mainbus_conveyor_capacity",
			"Slots the conveyor has before it is full; 0 for a conveyor a resize "+
				"removed.",
			func(s mainbus.ConveyorStats) int { return s.Capacity }),
	}
}

// Describe sends the descriptors of every metric the collector exports,
// whether or not a bus is there to fill them.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.described {
		ch <- d
	}
}

// Collect takes one snapshot of the stats and sends their metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.stats == nil {
		return
	}
	seen := make(map[string]bool)
	for _, s := range c.stats() {
		if seen[s.Resource] {
			ch <- prometheus.NewInvalidMetric(c.busConveyors, fmt.Errorf(
				"mainbus/prom: resource %q has more than one bus in the stats; "+
					"want one bus per resource", s.Resource))
			continue
		}
		seen[s.Resource] = true
		c.collectBus(ch, s)
	}
}

// collectBus sends the metrics of one bus.
func (c *Collector) collectBus(ch chan<- prometheus.Metric, s mainbus.Stats) {
	send(ch, c.busConveyors, prometheus.GaugeValue, float64(s.Active), s.Resource)
	send(ch, c.busDraining, prometheus.GaugeValue, float64(s.Draining), s.Resource)
	for _, cs := range s.Conveyors {
		conveyor := strconv.Itoa(cs.Conveyor)
		for _, m := range c.conveyor {
			send(ch, m.desc, m.kind, m.value(cs), s.Resource, conveyor)
		}
		c.sendHistogram(ch, c.queue, cs.QueueTime, s.Resource, conveyor)
		c.sendHistogram(ch, c.handler, cs.HandlerTime, s.Resource, conveyor)
	}
}

// send sends a const counter or gauge, or, if the labels are not valid
// (a resource name that is not UTF-8), an invalid metric saying why, so
// that the scrape reports the error.
func send(ch chan<- prometheus.Metric, d *prometheus.Desc, kind prometheus.ValueType,
	v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, kind, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}

// sendHistogram sends h as a const histogram. Prometheus buckets are
// cumulative and the +Inf bucket is implied by the count, so the 30 finite
// buckets of h are summed up to each bound and its last one is left to
// the count.
func (c *Collector) sendHistogram(ch chan<- prometheus.Metric, d *prometheus.Desc,
	h mainbus.Histogram, labels ...string) {
	buckets := make(map[float64]uint64, len(c.bounds))
	var below uint64
	for i, bound := range c.bounds {
		below += h.Buckets[i]
		buckets[bound] = below
	}
	m, err := prometheus.NewConstHistogram(d, h.Count, h.Sum.Seconds(), buckets, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}
