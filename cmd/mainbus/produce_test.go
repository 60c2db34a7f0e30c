package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/nats-io/nats.go/jetstream"
)

// An ackCutter is a TCP proxy on 127.0.0.1 in front of a NATS server.
// The first time the server acknowledges the publish it stored at stream
// sequence seq, the proxy closes that connection instead of passing the
// acknowledgement on: the client reconnects, through the proxy again,
// and sends the event once more, as after a server restart.
type ackCutter struct {
	ln     net.Listener
	server string // host:port of the server
	acks   [][]byte
	cut    chan struct{} // closed at the cut
	once   sync.Once

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newAckCutter(t *testing.T, serverURL string, seq uint64) *ackCutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := `"seq":` + strconv.FormatUint(seq, 10)
	p := &ackCutter{ln: ln, server: strings.TrimPrefix(serverURL, "nats://"),
		acks: [][]byte{[]byte(s + "}"), []byte(s + ",")}, cut: make(chan struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *ackCutter) url() string { return "nats://" + p.ln.Addr().String() }

func (p *ackCutter) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.server)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		p.wg.Go(func() {
			_, _ = io.Copy(server, client)
			server.Close()
		})
		p.wg.Go(func() { p.toClient(client, server) })
	}
}

// toClient copies what the server sends to the client, up to the
// acknowledgement to cut.
func (p *ackCutter) toClient(client, server net.Conn) {
	defer client.Close()
	defer server.Close()
	var tail []byte // the end of the last read, for an ack split across reads
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			seen := append(tail, buf[:n]...)
			if p.hasAck(seen) {
				return
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
			tail = append([]byte(nil), seen[max(0, len(seen)-32):]...)
		}
		if err != nil {
			return
		}
	}
}

// hasAck tells whether b holds the acknowledgement to cut, the first
// time only.
func (p *ackCutter) hasAck(b []byte) bool {
	found := false
	for _, a := range p.acks {
		found = found || bytes.Contains(b, a)
	}
	if !found {
		return false
	}
	first := false
	p.once.Do(func() { first = true; close(p.cut) })
	return first
}

// A publish sent again after a lost connection is the producer's own
// retry: the server stores the event once and acknowledges the copy as
// a duplicate, and --produce-only must not take that for another
// producer using the same IDs.
func TestProduceOnlyRetryAfterLostAck(t *testing.T) {
	srv := startNATS(t)
	proxy := newAckCutter(t, srv.URL(), 100)

	out, errOut, code, _ := runBinary(t, 60*time.Second, "demo", "--nats", proxy.url(),
		"--produce-only", "--bus", "iron=2", "--events", "200")
	select {
	case <-proxy.cut:
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
