package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchCases are the rows bench must print, in order.
var benchCases = []string{
	"raw-channels p1", "single p1", "stacked p1",
	"raw-channels p8", "single p8", "stacked p8",
}

// checkProgress checks bench's stderr when it is not a terminal: one
// plain line per case and latency run, nothing redrawn.
func checkProgress(t *testing.T, errOut string) {
	t.Helper()
	if strings.ContainsAny(errOut, "\r\x1b") {
		t.Errorf("stderr has carriage returns or escapes though it is no terminal: %q", errOut)
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	want := append(slices.Clone(benchCases), "latency single", "latency stacked")
	if len(lines) != len(want) {
		t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), len(want), errOut)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], "bench: "+w) {
			t.Errorf("stderr line %d is %q, want it to start with %q", i+1, lines[i], "bench: "+w)
		}
	}
}

// positive parses s as a number and fails unless it is above 0, or at
// least 0 if zero is allowed.
func positive(t *testing.T, what, s string, zero bool) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v == 0 && !zero {
		t.Errorf("%s is %q, want a number above 0", what, s)
	}
	return v
}

func TestBenchTable(t *testing.T) {
	out, errOut, code := runCLI(t, "bench", "--duration", "20ms")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	checkProgress(t, errOut)

	throughput, latency, ok := strings.Cut(out, "\n\n")
	if !ok {
		t.Fatalf("no blank line between the tables:\n%s", out)
	}
	rows := strings.Split(throughput, "\n")
	if want := "case producers ns/event events/s allocs/event vs raw"; strings.Join(strings.Fields(rows[0]), " ") != want {
		t.Errorf("header %q, want the columns %q", rows[0], want)
	}
	rows = rows[1:]
	if len(rows) != len(benchCases) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(benchCases), out)
	}
	for i, row := range rows {
		f := strings.Fields(row)
		if len(f) != 6 {
			t.Fatalf("row %q has %d columns, want 6", row, len(f))
		}
		if got := f[0] + " p" + f[1]; got != benchCases[i] {
			t.Errorf("row %d is %s, want %s", i+1, got, benchCases[i])
		}
		positive(t, row+": ns/event", f[2], false)
		positive(t, row+": events/s", f[3], false)
		positive(t, row+": allocs/event", f[4], true)
		positive(t, row+": vs raw", f[5], false)
		if f[0] == "raw-channels" && f[5] != "1.00" {
			t.Errorf("row %q: raw channels are %s× raw channels, want 1.00", row, f[5])
		}
	}

	lines := strings.Split(strings.TrimSuffix(latency, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("latency table has %d lines, want a title, a header and 2 rows:\n%s", len(lines), latency)
	}
	for i, row := range lines[2:] {
		f := strings.Fields(row)
		if len(f) != 5 || f[0] != []string{"single", "stacked"}[i] {
			t.Fatalf("latency row %q, want case, events/s, events, p50, p99 of single and stacked", row)
		}
		positive(t, row+": events/s", f[1], false)
		positive(t, row+": events", f[2], false)
		p50, err50 := time.ParseDuration(f[3])
		p99, err99 := time.ParseDuration(f[4])
		if err50 != nil || err99 != nil || p99 <= 0 || p50 > p99 {
			t.Errorf("latency row %q: want durations with 0 ≤ p50 ≤ p99 and p99 above 0", row)
		}
	}
}

func TestBenchJSON(t *testing.T) {
	out, errOut, code := runCLI(t, "bench", "--duration", "20ms", "--json")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	checkProgress(t, errOut)

	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, out)
	}
	help, _, _ := runCLI(t, "bench", "--help")
	documented := func(key string) {
		t.Helper()
		if !strings.Contains(help, "  "+key) && !strings.Contains(help, ", "+key) {
			t.Errorf("field %q is not documented in bench --help", key)
		}
	}

	top := []string{"duration_ns", "go_version", "gomaxprocs", "conveyors", "buffer", "batch", "cases", "latency"}
	for _, k := range top {
		if _, ok := doc[k]; !ok {
			t.Errorf("no field %q in %s", k, out)
		}
	}
	for k := range doc {
		documented(k)
	}
	if doc["duration_ns"] != float64(20*time.Millisecond) {
		t.Errorf("duration_ns is %v, want %d", doc["duration_ns"], 20*time.Millisecond)
	}

	// objects checks a list of objects: their names and positive numbers.
	objects := func(key string, names []string, fields []string) {
		t.Helper()
		list, _ := doc[key].([]any)
		if len(list) != len(names) {
			t.Fatalf("%s has %d entries, want %d", key, len(list), len(names))
		}
		for i, e := range list {
			obj, _ := e.(map[string]any)
			name := obj["case"].(string) + " p" + strconv.FormatFloat(obj["producers"].(float64), 'f', -1, 64)
			if name != names[i] {
				t.Errorf("%s[%d] is %s, want %s", key, i, name, names[i])
			}
			if len(obj) != len(fields)+2 {
				t.Errorf("%s[%d] has fields %v, want case, producers and %v", key, i, obj, fields)
			}
			for k := range obj {
				documented(k)
			}
			for _, f := range fields {
				v, ok := obj[f].(float64)
				if !ok || v < 0 || v == 0 && f != "allocs_per_event" {
					t.Errorf("%s[%d].%s is %v, want a number above 0", key, i, f, obj[f])
				}
			}
			if obj["case"] == "raw-channels" && obj["vs_raw"] != 1.0 {
				t.Errorf("%s[%d].vs_raw is %v, want 1", key, i, obj["vs_raw"])
			}
		}
	}
	objects("cases", benchCases, []string{"events", "elapsed_ns", "ns_per_event",
		"events_per_sec", "allocs_per_event", "vs_raw"})
	objects("latency", []string{"single p1", "stacked p1"}, []string{"target_events_per_sec",
		"events_per_sec", "events", "p50_ns", "p99_ns"})
}

func TestBenchBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"zero", []string{"--duration", "0"}, "0s is not above 0; want a duration above 0 and at most 10m"},
		{"negative", []string{"--duration", "-1s"}, "-1s is not above 0"},
		{"too long", []string{"--duration", "10m1s"}, "10m1s is more than 10m"},
		{"hours", []string{"--duration", "2h"}, "2h0m0s is more than 10m"},
		{"no unit", []string{"--duration", "5"}, "not a duration; want a duration above 0 and at most 10m, such as 200ms or 2s"},
		{"words", []string{"--duration", "long"}, "not a duration"},
		{"empty", []string{"--duration", ""}, "not a duration"},
		{"no value", []string{"--duration"}, "flag needs an argument: --duration"},
		{"unknown flag", []string{"--producers", "4"}, "the flags of bench are --duration, --json"},
		{"stray argument", []string{"fast"}, `mainbus bench: unexpected argument "fast"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkUsageError(t, append([]string{"bench"}, tt.args...), tt.want)
		})
	}
}

func TestBenchHelp(t *testing.T) {
	for _, args := range [][]string{{"bench", "--help"}, {"help", "bench"}} {
		out, errOut, code := runCLI(t, args...)
		if code != exitOK || errOut != "" || !strings.HasPrefix(out, "Usage: mainbus bench") ||
			!strings.Contains(out, "-duration") || !strings.Contains(out, "p99_ns") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	out, _, _ := runCLI(t, "help")
	if !strings.Contains(out, "bench") {
		t.Errorf("mainbus help does not list bench:\n%s", out)
	}
}

// TestBenchInterrupted checks that bench stops when its context ends (as
// on Ctrl-C) and says so, leaving no goroutine behind.
func TestBenchInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"bench", "--duration", "10m"}, &out, &errOut)
	if code != exitFailure || errOut.String() != "mainbus bench: interrupted\n" || out.Len() != 0 {
		t.Errorf("exit %d, stdout %q, stderr %q; want %d and only \"mainbus bench: interrupted\"",
			code, out.String(), errOut.String(), exitFailure)
	}
}

// TestProgressLive checks the live line drawn on a terminal: drawn at
// once, then blanked with spaces, never with escape sequences.
func TestProgressLive(t *testing.T) {
	var w bytes.Buffer
	p := &progress{w: &w, live: true}
	p.start("single p8")
	p.stop()
	p.done("single p8: done")
	got := w.String()
	first := "\rbench: single p8 | 0.0s"
	blank := "\r" + strings.Repeat(" ", len(first)-1) + "\r"
	if !strings.HasPrefix(got, first) || !strings.HasSuffix(got, blank+"bench: single p8: done\n") {
		t.Errorf("progress wrote %q, want %q, redraws, %q and the done line", got, first, blank)
	}
	if strings.Contains(got, "\x1b") {
		t.Errorf("progress wrote an escape sequence: %q", got)
	}
	if isTerminal(&w) {
		t.Error("a bytes.Buffer is taken for a terminal")
	}
}

func TestWeightedPercentile(t *testing.T) {
	var each []latencySample
	for i := 1; i <= 100; i++ {
		each = append(each, latencySample{time.Duration(i), 1})
	}
	stacks := []latencySample{{10, 64}, {20, 34}, {500, 2}}
	tests := []struct {
		name    string
		samples []latencySample
		p       int
		want    time.Duration
	}{
		{"p50 of 1..100", each, 50, 50},
		{"p99 of 1..100", each, 99, 99},
		{"p100 of 1..100", each, 100, 100},
		{"p50 of stacks", stacks, 50, 10},
		{"p65 of stacks", stacks, 65, 20},
		{"p99 of stacks", stacks, 99, 500},
		{"one event", []latencySample{{7, 1}}, 99, 7},
	}
	for _, tt := range tests {
		n := 0
		for _, s := range tt.samples {
			n += s.events
		}
		if got := weightedPercentile(tt.samples, n, tt.p); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestBenchNATS runs bench --nats briefly on an embedded server, as a
// table and as JSON, and checks that an unreachable server fails fast.
func TestBenchNATS(t *testing.T) {
	works := []string{"publish memory", "publish file", "consume-ordered memory",
		"consume-throughput memory"}
	t.Run("table", func(t *testing.T) {
		out, errOut, code := runCLI(t, "bench", "--nats", "embedded", "--duration", "20ms")
		if code != exitOK {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
		rows := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(rows) != len(works)+1 {
			t.Fatalf("%d lines, want a header and %d rows:\n%s", len(rows), len(works), out)
		}
		for i, row := range rows[1:] {
			f := strings.Fields(row)
			if len(f) != 8 || f[0]+" "+f[1] != works[i] {
				t.Fatalf("row %q; want 8 columns starting with %s", row, works[i])
			}
			positive(t, row+": plain/s", f[3], false)
			positive(t, row+": mainbus/s", f[5], false)
			positive(t, row+": ratio", f[6], false)
		}
	})
	t.Run("json", func(t *testing.T) {
		out, errOut, code := runCLI(t, "bench", "--nats", "embedded", "--duration", "20ms",
			"--json")
		if code != exitOK {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
		var rep natsReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, out)
		}
		if rep.Server != "embedded" || len(rep.Cases) != len(works) {
			t.Fatalf("report %+v; want server embedded and %d cases", rep, len(works))
		}
		for i, c := range rep.Cases {
			if c.Work+" "+c.Storage != works[i] || c.Ratio <= 0 || c.Events < 1 {
				t.Errorf("case %d is %+v; want %s with events and a ratio", i, c, works[i])
			}
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		start := time.Now()
		_, errOut, code := runCLI(t, "bench", "--nats", "nats://127.0.0.1:1")
		if code != exitFailure || !strings.Contains(errOut, "nats://127.0.0.1:1") {
			t.Errorf("exit %d, stderr %q; want exit 1 naming the URL", code, errOut)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("took %v to fail; want a few seconds", d)
		}
	})
}
