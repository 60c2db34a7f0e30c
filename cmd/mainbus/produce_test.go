package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus/internal/natstest"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/nats-io/nats.go/jetstream"
)

// A publish sent again after a lost connection is the producer's own
// retry: the server stores the event once and acknowledges the copy as
// a duplicate, and --produce-only must not take that for another
// producer using the same IDs.
func TestProduceOnlyRetryAfterLostAck(t *testing.T) {
	srv := startNATS(t)
	proxy := natstest.NewProxy(t, srv.URL(), true, `"seq":100}`, `"seq":100,`)

	out, errOut, code, _ := runBinary(t, 60*time.Second, "demo", "--nats", proxy.URL(),
		"--produce-only", "--bus", "iron=2", "--events", "200")
	select {
	case <-proxy.Lost():
	default:
		t.Fatalf("the acknowledgement of sequence 100 never passed the proxy; stderr:\n%s",
			errOut)
	}
	want := "Produced 200 events on iron, IDs 1 to 200.\n"
	if code != exitOK || out != want {
		t.Errorf("exit %d, stdout %q; want %d and %q; stderr:\n%s",
			code, out, exitOK, want, errOut)
	}
	if got := lastSeq(t, srv.URL(), "iron"); got != 200 {
		t.Errorf("stream holds sequences up to %d; want 200, each event stored once", got)
	}
}

// lastSeq returns the last sequence of the stream of resource on the
// server at url.
func lastSeq(t *testing.T, url, resource string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := jetbus.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err == nil {
		var s jetstream.Stream
		if s, err = js.Stream(ctx, jetbus.StreamName(resource)); err == nil {
			var info *jetstream.StreamInfo
			if info, err = s.Info(ctx); err == nil {
				return info.State.LastSeq
			}
		}
	}
	t.Fatalf("read stream of %s: %v", resource, errors.Unwrap(err))
	return 0
}

func TestCollided(t *testing.T) {
	tests := []struct {
		name                string
		n, stored, dup      uint64
		reconnected, wanted bool
	}{
		{"clean", 100, 100, 0, false, false},
		{"another producer's IDs", 100, 60, 40, false, true},
		{"own retry after a reconnection", 100, 100, 1, true, false},
		{"own retries after reconnections", 100, 100, 7, true, false},
		{"another producer stored more", 100, 140, 1, true, true},
		{"earlier IDs of another producer", 100, 99, 1, true, true},
		{"other IDs, no duplicates", 100, 150, 0, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := collided(tt.n, tt.stored, tt.dup, tt.reconnected); got != tt.wanted {
				t.Errorf("collided(%d, %d, %d, %v) = %v, want %v",
					tt.n, tt.stored, tt.dup, tt.reconnected, got, tt.wanted)
			}
		})
	}
}
