package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
)

// serve-nats prints its URL, clients use it, and Ctrl-C stops it.
func TestServeNATS(t *testing.T) {
	dir := t.TempDir()
	b := newBoard()
	p := b.start(t, "serve-nats", "--addr", "127.0.0.1:0", "--dir", dir)
	b.waitFor(t, 10*time.Second, "the URL on stdout", func() bool { return len(p.out) > 0 }, p)
	b.mu.Lock()
	first := p.out[0].text
	b.mu.Unlock()
	url, ok := strings.CutPrefix(first, "nats: nats://127.0.0.1:")
	if !ok {
		t.Fatalf("first line %q, want nats: nats://127.0.0.1:PORT", first)
	}
	url = "nats://127.0.0.1:" + url

	// A client of package jetbus.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := jetbus.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	bus, err := jetbus.New(ctx, nc, "ore", func(_ context.Context, _ int,
		ev mainbus.Event[string]) error {
		got <- ev.Value
		return nil
	}, jetbus.WithConveyors(1), jetbus.WithExactConveyors())
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Produce(ctx, mainbus.Event[string]{ID: 1, Value: "copper ore"}); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "copper ore" {
			t.Errorf("handled %q, want copper ore", v)
		}
	case <-ctx.Done():
		t.Fatal("the event produced never reached the handler")
	}
	if err := bus.Close(ctx); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	// And the demo.
	out, errOut, code, _ := runBinary(t, 15*time.Second, "demo", "--nats", url, "--events", "5")
	if code != exitOK || errOut != "" {
		t.Fatalf("demo: exit %d, stderr %q", code, errOut)
	}
	checkOnce(t, out, 5, "iron", "copper")

	if code := p.stop(t, os.Interrupt, 10*time.Second); code != exitOK {
		t.Errorf("exit %d on Ctrl-C, want %d%s", code, exitOK, b.dump([]*proc{p}))
	}
	b.mu.Lock()
	last := p.errOut[len(p.errOut)-1].text
	b.mu.Unlock()
	if last != "mainbus serve-nats: stopped" {
		t.Errorf("last line on stderr %q, want mainbus serve-nats: stopped", last)
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		t.Errorf("storage in --dir: %v", err)
	}
}

// serve-nats on a port in use says so and exits 1 at once.
func TestServeNATSPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, errOut, code, took := runBinary(t, 15*time.Second,
		"serve-nats", "--addr", ln.Addr().String())
	if code != exitFailure || out != "" || strings.Count(errOut, "\n") != 1 ||
		!strings.Contains(errOut, "address already in use") {
		t.Errorf("exit %d, stdout %q, stderr %q; want %d and one line saying the address "+
			"is in use", code, out, errOut, exitFailure)
	}
	if took > 3*time.Second {
		t.Errorf("took %v, want an answer at once", took)
	}
}
