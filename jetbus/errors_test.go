package jetbus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/internal/natstest"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/mainbus-go/mainbus/jetbus/embedded"
)

// Connect says clearly, and within a few seconds, what is wrong with a
// URL or a server.
func TestConnectErrors(t *testing.T) {
	down, err := embedded.Start("", 0)
	if err != nil {
		t.Fatal(err)
	}
	downURL := down.URL()
	down.Shutdown() // nothing listens there now

	plain := natstest.NoJetStream(t)

	cases := []struct {
		name, url, want string
		is              error
	}{
		{"empty", "", "empty server URL", nil},
		{"scheme", "http://127.0.0.1:4222", `scheme "http"`, nil},
		{"no host", "nats://:4222", "has no host", nil},
		{"server down", downURL, "want the URL of a running NATS server", nil},
		{"no JetStream", plain, "without JetStream", jetbus.ErrNoJetStream},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			nc, err := jetbus.Connect(ctx, tc.url)
			if err == nil {
				nc.Close()
				t.Fatalf("Connect(%q) succeeded", tc.url)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Connect(%q): %v; want it to say %q", tc.url, err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Connect(%q): %v; want it to wrap %v", tc.url, err, tc.is)
			}
			if d := time.Since(start); d > 6*time.Second {
				t.Errorf("Connect(%q) took %v; want at most a few seconds", tc.url, d)
			}
		})
	}
}

// Bad options, resource names and a conveyor count that disagrees with
// the stream's give errors wrapping ErrInvalidOption.
func TestInvalidOptions(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	newBus(t, nc, "copper", func(context.Context, int, mainbus.Event[int]) error { return nil },
		jetbus.WithConveyors(4), jetbus.WithMemoryStorage())

	cases := []struct {
		name     string
		resource string
		opts     []jetbus.Option
		want     string
	}{
		{"drop policy", "a", []jetbus.Option{jetbus.WithOverflow(mainbus.DropNewest)},
			"never discards"},
		{"no conveyors", "a", []jetbus.Option{jetbus.WithConveyors(0)}, "want 1 to 1024"},
		{"short pin TTL", "a", []jetbus.Option{jetbus.WithPinTTL(time.Second)}, "2s or more"},
		{"nil balancer", "a", []jetbus.Option{jetbus.WithBalancer(nil)}, "balancer is nil"},
		{"nil option", "a", []jetbus.Option{nil}, "option 0"},
		{"bad resource", "a.b", nil, "resource name"},
		{"other count", "copper", []jetbus.Option{jetbus.WithConveyors(8),
			jetbus.WithMemoryStorage()}, "has 4 conveyors"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			b, err := jetbus.New[int](ctx, nc, tc.resource, nil, tc.opts...)
			if err == nil {
				_ = b.Close(ctx)
				t.Fatal("New succeeded")
			}
			ok := errors.Is(err, mainbus.ErrInvalidOption)
			if !ok || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v; want ErrInvalidOption saying %q", err, tc.want)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := jetbus.New[int](ctx, nil, "a", nil); !errors.Is(err, mainbus.ErrInvalidOption) {
		t.Errorf("New with a nil connection: %v; want ErrInvalidOption", err)
	}
}

// New and Connect refuse a nil context with an error wrapping
// ErrInvalidOption instead of panicking.
func TestNilContext(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	_, err := jetbus.New[int](nil, nc, "nilctx", nil) //nolint:staticcheck // the nil is tested
	if !errors.Is(err, mainbus.ErrInvalidOption) {
		t.Errorf("New with a nil context: %v; want ErrInvalidOption", err)
	}
	c, err := jetbus.Connect(nil, srv.URL()) //nolint:staticcheck // the nil is tested
	if !errors.Is(err, mainbus.ErrInvalidOption) {
		t.Errorf("Connect with a nil context: %v; want ErrInvalidOption", err)
	}
	if c != nil {
		c.Close()
	}
}

// A stream of more replicas than the server can hold is refused with a
// message that says what to do.
func TestReplicasError(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := jetbus.New[int](ctx, nc, "replicas", nil, jetbus.WithReplicas(3))
	if err == nil {
		t.Fatal("a stream of 3 replicas on one server was accepted")
	}
	for _, want := range []string{"3 replicas", "WithReplicas(1)", "cluster of 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
