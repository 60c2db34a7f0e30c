package embedded_test

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus/jetbus/embedded"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// A server listens on the host given, 127.0.0.1 by default, under the
// name given, and clients reach it at its URL.
func TestStartHost(t *testing.T) {
	cases := []struct {
		name string
		opts []embedded.Option
		url  string
		who  string
	}{
		{"default", nil, "nats://127.0.0.1:", "mainbus-embedded"},
		{"empty host", []embedded.Option{embedded.WithHost("")}, "nats://127.0.0.1:",
			"mainbus-embedded"},
		{"named", []embedded.Option{embedded.WithHost("localhost"), embedded.WithName("smelter")},
			"nats://localhost:", "smelter"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := embedded.Start("", 0, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown()
			if !strings.HasPrefix(srv.URL(), tc.url) || srv.Port() == 0 {
				t.Errorf("URL %s, port %d; want %sPORT", srv.URL(), srv.Port(), tc.url)
			}
			nc, err := nats.Connect(srv.URL(), nats.Timeout(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if got := nc.ConnectedServerName(); got != tc.who {
				t.Errorf("server name %q; want %q", got, tc.who)
			}
		})
	}
}

// A port in use gives an error at once, not after the wait for a server
// that cannot listen.
func TestStartPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := time.Now()
	srv, err := embedded.Start("", ln.Addr().(*net.TCPAddr).Port)
	if err == nil {
		srv.Shutdown()
		t.Fatal("Start on a port in use succeeded")
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Start: %v; want it to wrap EADDRINUSE", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Start took %v to fail; want an answer at once", d)
	}
}
