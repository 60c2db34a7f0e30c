package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// workerLine is the worker's line format with --name: the demo's, then
// the worker's name.
var workerLine = regexp.MustCompile(`^\[Consumer-iron-L([01])\] ID:(\d+) ` +
	`Value:Iron Plate Time:\d\d:\d\d:\d\d Worker:([ab])$`)

// handled returns how often each event ID appears in the lines of the
// workers, and when each worker's line of each ID was read. It runs with
// the board locked.
func handled(t *testing.T, workers ...*proc) (count map[int]int, at map[int]time.Time) {
	count, at = map[int]int{}, map[int]time.Time{}
	for _, w := range workers {
		for _, l := range w.out {
			m := workerLine.FindStringSubmatch(l.text)
			if m == nil {
				t.Errorf("worker line %q does not match %s", l.text, workerLine)
				continue
			}
			id, _ := strconv.Atoi(m[2])
			count[id]++
			at[id] = l.at
		}
	}
	return count, at
}

// allSeen tells whether count holds each ID from 1 to n.
func allSeen(count map[int]int, n int) bool {
	for id := 1; id <= n; id++ {
		if count[id] == 0 {
			return false
		}
	}
	return true
}

// Two worker processes share the conveyors of a bus; when the one that
// owns them is killed, the other takes them over within the pin TTL,
// and every event is handled once.
func TestWorkerTakeover(t *testing.T) {
	const (
		pinTTL = 2 * time.Second
		batch  = 20
	)
	srv := startNATS(t)
	b := newBoard()
	worker := func(name string) *proc {
		p := b.start(t, "worker", "--nats", srv.URL(), "--bus", "iron=2",
			"--pin-ttl", pinTTL.String(), "--ack-wait", "2s", "--name", name)
		b.waitFor(t, 10*time.Second, "worker "+name+" ready", func() bool {
			return len(p.errOut) > 0 &&
				strings.HasPrefix(p.errOut[0].text, "mainbus worker: handling iron (2 conveyors)")
		}, p)
		return p
	}
	a := worker("a")
	wb := worker("b")
	produce := func(first int) {
		t.Helper()
		out, errOut, code, _ := runBinary(t, 15*time.Second, "demo", "--nats", srv.URL(),
			"--produce-only", "--bus", "iron=2", "--events", strconv.Itoa(batch))
		want := "Produced 20 events on iron, IDs " + strconv.Itoa(first) + " to " +
			strconv.Itoa(first+batch-1) + ".\n"
		if code != exitOK || out != want || errOut != "" {
			t.Fatalf("produce: exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
		}
	}

	produce(1)
	b.waitFor(t, 10*time.Second, "the first events handled", func() bool {
		count, _ := handled(t, a, wb)
		return allSeen(count, batch)
	}, a, wb)

	// Kill the worker that owns the conveyors, or most of them.
	b.mu.Lock()
	owner, standby := a, wb
	if len(wb.out) > len(a.out) {
		owner, standby = wb, a
	}
	b.mu.Unlock()
	if err := owner.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	b.waitFor(t, 5*time.Second, "the killed worker gone", func() bool { return owner.exited },
		owner)
	killed := time.Now()

	produce(batch + 1)
	b.waitFor(t, pinTTL+8*time.Second, "every event handled after the kill", func() bool {
		count, _ := handled(t, a, wb)
		return allSeen(count, 2*batch)
	}, a, wb)

	b.mu.Lock()
	count, _ := handled(t, a, wb)
	_, at := handled(t, standby)
	b.mu.Unlock()
	for id, n := range count {
		if n != 1 || id < 1 || id > 2*batch {
			t.Errorf("event %d handled %d times; want each of 1 to %d once", id, n, 2*batch)
		}
	}
	var first time.Time
	for id := batch + 1; id <= 2*batch; id++ {
		if at[id].IsZero() {
			t.Errorf("event %d not handled by the standby worker", id)
		} else if first.IsZero() || at[id].Before(first) {
			first = at[id]
		}
	}
	took := first.Sub(killed)
	if took > pinTTL+3*time.Second {
		t.Errorf("the standby took its first event %v after the kill; want within the "+
			"pin TTL %v and some", took, pinTTL)
	}
	t.Logf("the standby took over %v after the kill", took)

	if code := standby.stop(t, syscall.SIGTERM, 10*time.Second); code != exitOK {
		t.Errorf("worker exited %d on SIGTERM, want %d", code, exitOK)
	}
	b.mu.Lock()
	last := standby.errOut[len(standby.errOut)-1].text
	b.mu.Unlock()
	if !strings.HasPrefix(last, "mainbus worker: stopped after handling ") {
		t.Errorf("last stderr line of the worker %q, want that it stopped", last)
	}
}

// A worker stopped with Ctrl-C and nothing to do exits 0 at once.
func TestWorkerInterrupt(t *testing.T) {
	srv := startNATS(t)
	b := newBoard()
	p := b.start(t, "worker", "--nats", srv.URL(), "--bus", "gears=1", "--mode", "throughput")
	b.waitFor(t, 10*time.Second, "worker ready", func() bool { return len(p.errOut) > 0 }, p)
	if code := p.stop(t, os.Interrupt, 10*time.Second); code != exitOK {
		t.Errorf("exit %d, want %d%s", code, exitOK, b.dump([]*proc{p}))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var got []string
	for _, l := range p.errOut {
		got = append(got, l.text)
	}
	want := []string{
		"mainbus worker: handling gears (2 conveyors) from " + srv.URL() + "; Ctrl-C to stop",
		"mainbus worker: stopping: finishing the events in hand",
		"mainbus worker: stopped after handling 0 events",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || len(p.out) != 0 {
		t.Errorf("stderr\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
