package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/dashboard"
)

// frame is the part of the JSON frame the tests read.
type frame struct {
	Title    string  `json:"title"`
	Interval float64 `json:"interval"`
	Buses    []struct {
		Resource  string `json:"resource"`
		Active    int    `json:"active"`
		Total     lane   `json:"total"`
		Conveyors []lane `json:"conveyors"`
	} `json:"buses"`
	Knobs []struct {
		Name  string   `json:"name"`
		Unit  string   `json:"unit"`
		Min   float64  `json:"min"`
		Max   float64  `json:"max"`
		Value *float64 `json:"value"`
	} `json:"knobs"`
}

type lane struct {
	Conveyor int    `json:"conveyor"`
	Active   bool   `json:"active"`
	Produced uint64 `json:"produced"`
	Consumed uint64 `json:"consumed"`
	Dropped  uint64 `json:"dropped"`
	Depth    int    `json:"depth"`
	Capacity int    `json:"capacity"`
	Blocked  int    `json:"blocked"`
	Rate     struct {
		Produced float64 `json:"produced"`
		Consumed float64 `json:"consumed"`
		Dropped  float64 `json:"dropped"`
	} `json:"rate"`
	QueueTime struct {
		Last struct {
			Count uint64  `json:"count"`
			P50   float64 `json:"p50"`
			P99   float64 `json:"p99"`
		} `json:"last"`
		All struct {
			Count uint64  `json:"count"`
			P99   float64 `json:"p99"`
		} `json:"all"`
	} `json:"queueTime"`
	HandlerTime struct {
		Last struct {
			Count uint64  `json:"count"`
			P50   float64 `json:"p50"`
		} `json:"last"`
	} `json:"handlerTime"`
}

// newBus returns a running bus of n conveyors that counts what it handles,
// closed when the test ends.
func newBus(t *testing.T, resource string, n int, opts ...mainbus.Option) *mainbus.Bus[int] {
	t.Helper()
	opts = append([]mainbus.Option{mainbus.WithConveyors(n)}, opts...)
	b, err := mainbus.New(resource, func(context.Context, int, mainbus.Event[int]) error {
		return nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

func produce(t *testing.T, b *mainbus.Bus[int], n int) {
	t.Helper()
	for i := range n {
		if err := b.Produce(context.Background(), mainbus.Event[int]{Value: i}); err != nil {
			t.Fatal(err)
		}
	}
}

// serve starts a test server of h on 127.0.0.1.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func getFrame(t *testing.T, url string) frame {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %s: %s", url, res.Status, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var f frame
	if err := json.NewDecoder(res.Body).Decode(&f); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNewHandlerRejectsBadOptions(t *testing.T) {
	stats := mainbus.StatsOf()
	get := func() float64 { return 1 }
	set := func(float64) error { return nil }
	ok := dashboard.Knob{Name: "rate", Min: 0, Max: 10, Step: 1, Get: get, Set: set}
	with := func(edit func(*dashboard.Knob)) dashboard.Knob {
		k := ok
		edit(&k)
		return k
	}
	tests := []struct {
		name  string
		stats func() []mainbus.Stats
		opt   dashboard.Option
		want  string
	}{
		{"nil stats", nil, dashboard.WithTitle("x"), "stats function is nil"},
		{"nil option", stats, nil, "option 0 is nil"},
		{"short interval", stats, dashboard.WithInterval(time.Millisecond),
			"interval is 1ms; want 10ms to 1m0s"},
		{"long interval", stats, dashboard.WithInterval(time.Hour), "want 10ms to 1m0s"},
		{"negative interval", stats, dashboard.WithInterval(-time.Second), "want 10ms"},
		{"no name", stats, dashboard.WithKnobs(with(func(k *dashboard.Knob) { k.Name = "" })),
			"knob has no name"},
		{"empty range", stats, dashboard.WithKnobs(with(func(k *dashboard.Knob) { k.Max = 0 })),
			`knob "rate" ranges from 0 to 0; want finite Min < Max`},
		{"NaN", stats, dashboard.WithKnobs(with(func(k *dashboard.Knob) { k.Min = math.NaN() })),
			"want finite Min < Max"},
		{"zero step", stats, dashboard.WithKnobs(with(func(k *dashboard.Knob) { k.Step = 0 })),
			`knob "rate" has step 0; want above 0`},
		{"huge step", stats, dashboard.WithKnobs(with(func(k *dashboard.Knob) { k.Step = 11 })),
			"at most Max-Min (10)"},
		{"no get", stats, dashboard.WithKnobs(with(func(k *dashboard.Knob) { k.Get = nil })),
			"needs both Get and Set"},
		{"no set", stats, dashboard.WithKnobs(with(func(k *dashboard.Knob) { k.Set = nil })),
			"needs both Get and Set"},
		{"twice", stats, dashboard.WithKnobs(ok, ok), `knob "rate" is given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := dashboard.NewHandler(tt.stats, tt.opt)
			if h != nil || !errors.Is(err, mainbus.ErrInvalidOption) {
				t.Fatalf("NewHandler = %v, %v; want an error wrapping ErrInvalidOption", h, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), tt.want) {
					t.Errorf("Handler panicked with %v, want a message saying %q", r, tt.want)
				}
			}()
			dashboard.MustHandler(tt.stats, tt.opt)
		})
	}
}

func TestSnapshot(t *testing.T) {
	iron, copper := newBus(t, "iron", 4), newBus(t, "copper", 2)
	produce(t, iron, 100)
	h := dashboard.MustHandler(mainbus.StatsOf(iron, copper),
		dashboard.WithInterval(50*time.Millisecond), dashboard.WithTitle("Smelter"))
	srv := serve(t, h)

	// Events produced while the snapshot waits its interval show as rates.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			copper.Produce(context.Background(), mainbus.Event[int]{Value: i})
			time.Sleep(time.Millisecond) // a steady producer, not synchronisation
		}
	}()
	f := getFrame(t, srv.URL+"/snapshot")
	<-done

	if f.Title != "Smelter" || f.Interval < 0.05 || len(f.Buses) != 2 {
		t.Fatalf("title %q, interval %v, %d buses; want Smelter, >= 0.05, 2",
			f.Title, f.Interval, len(f.Buses))
	}
	fe, fc := f.Buses[0], f.Buses[1]
	if fe.Resource != "iron" || fe.Active != 4 || len(fe.Conveyors) != 4 {
		t.Errorf("bus 0: %s with %d of %d conveyors, want iron with 4",
			fe.Resource, fe.Active, len(fe.Conveyors))
	}
	if fe.Total.Produced != 100 || fe.Total.Capacity != 4*mainbus.DefaultBuffer {
		t.Errorf("iron produced %d, capacity %d; want 100 and %d",
			fe.Total.Produced, fe.Total.Capacity, 4*mainbus.DefaultBuffer)
	}
	if fe.Total.QueueTime.All.Count == 0 && fe.Total.Consumed > 0 {
		// Timings may lag the counters by up to 64 events per conveyor,
		// but an idle conveyor has published them.
		t.Logf("iron queue time not yet published: %+v", fe.Total.QueueTime)
	}
	if fc.Resource != "copper" || fc.Total.Rate.Produced <= 0 {
		t.Errorf("copper: produced rate %v over the interval, want above 0",
			fc.Total.Rate.Produced)
	}
	if fe.Total.Rate.Produced != 0 {
		t.Errorf("iron: produced rate %v, want 0: nothing was produced in the interval",
			fe.Total.Rate.Produced)
	}
	var sum float64
	for _, c := range fc.Conveyors {
		if !c.Active {
			t.Errorf("copper L%d is not active", c.Conveyor)
		}
		sum += c.Rate.Produced
	}
	if math.Abs(sum-fc.Total.Rate.Produced) > 1e-6 {
		t.Errorf("conveyor rates add up to %v, total is %v", sum, fc.Total.Rate.Produced)
	}
}

// readFrames reads n frames from an /events stream.
func readFrames(t *testing.T, body io.Reader, n int) []frame {
	t.Helper()
	var frames []frame
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<22)
	for len(frames) < n && sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var f frame
		if err := json.Unmarshal([]byte(data), &f); err != nil {
			t.Fatalf("frame %q: %v", data, err)
		}
		frames = append(frames, f)
	}
	if len(frames) < n {
		t.Fatalf("stream ended after %d frames (%v), want %d", len(frames), sc.Err(), n)
	}
	return frames
}

func TestEventsStream(t *testing.T) {
	iron := newBus(t, "iron", 2)
	var rate atomic.Int64
	rate.Store(7)
	knob := dashboard.Knob{Name: "iron rate", Unit: "events/s", Min: 0, Max: 100, Step: 1,
		Get: func() float64 { return float64(rate.Load()) },
		Set: func(v float64) error { rate.Store(int64(v)); return nil }}
	srv := serve(t, dashboard.MustHandler(mainbus.StatsOf(iron),
		dashboard.WithInterval(20*time.Millisecond), dashboard.WithKnobs(knob)))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q, want text/event-stream", ct)
	}

	first := readFrames(t, res.Body, 1)[0]
	if first.Interval != 0 || first.Buses[0].Total.Rate.Consumed != 0 {
		t.Errorf("first frame: interval %v, rate %v; want no rates yet",
			first.Interval, first.Buses[0].Total.Rate.Consumed)
	}
	if len(first.Knobs) != 1 || *first.Knobs[0].Value != 7 || first.Knobs[0].Unit != "events/s" {
		t.Errorf("knobs %+v, want iron rate at 7 events/s", first.Knobs)
	}

	// Frames follow without polling; the numbers move as events flow.
	produce(t, iron, 50)
	deadline := time.Now().Add(5 * time.Second)
	for {
		f := readFrames(t, res.Body, 1)[0]
		if f.Buses[0].Total.Consumed == 50 {
			if f.Interval <= 0 {
				t.Errorf("later frame has interval %v, want above 0", f.Interval)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d after 5s, want 50", f.Buses[0].Total.Consumed)
		}
	}

	// A knob set elsewhere shows in the next frames.
	rate.Store(42)
	for f := range readFramesUntil(t, res.Body, 5*time.Second) {
		if f.Knobs[0].Value != nil && *f.Knobs[0].Value == 42 {
			break
		}
	}
	// Leaving ends the stream's goroutine; goleak checks that at exit.
	cancel()
}

// readFramesUntil yields frames from the stream until the caller stops or
// the deadline passes, which fails the test.
func readFramesUntil(t *testing.T, body io.Reader, d time.Duration) func(func(frame) bool) {
	return func(yield func(frame) bool) {
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			if !yield(readFrames(t, body, 1)[0]) {
				return
			}
		}
		t.Fatalf("no wanted frame within %v", d)
	}
}

// TestEventsEndWithContext checks that a stream ends when its request's
// context ends, as when the server shuts down with a base context.
func TestEventsEndWithContext(t *testing.T) {
	h := dashboard.MustHandler(mainbus.StatsOf(), dashboard.WithInterval(10*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, "GET", "/events", nil)
	w := &flushRecorder{ResponseRecorder: httptest.NewRecorder(), flushed: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(w, req)
	}()
	<-w.flushed
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end within 5s of its context")
	}
	if !strings.HasPrefix(w.Body.String(), "retry: 1000\n\ndata: {") {
		t.Errorf("stream starts %.40q, want a retry line and a frame", w.Body.String())
	}
}

// flushRecorder tells of each flush. Its body is read only after the
// handler returned.
type flushRecorder struct {
	*httptest.ResponseRecorder
	flushed chan struct{}
}

func (r *flushRecorder) Flush() {
	r.ResponseRecorder.Flush()
	select {
	case r.flushed <- struct{}{}:
	default:
	}
}

// TestShutdownEndsStreams checks that a server whose base context ends
// ends its streams, so that Shutdown can finish.
func TestShutdownEndsStreams(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewUnstartedServer(dashboard.MustHandler(mainbus.StatsOf(),
		dashboard.WithInterval(10*time.Millisecond)))
	srv.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	srv.Start()
	defer srv.Close()
	res, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	readFrames(t, res.Body, 2)

	cancel()
	// The stream ends: the body reaches its end instead of the next frame.
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Errorf("the stream ended with %v, want a clean end", err)
	}
}
