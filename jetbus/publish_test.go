package jetbus_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/nats-io/nats.go/jetstream"
)

// An ackProxy is a TCP proxy on 127.0.0.1 in front of a NATS server. The
// first time the server sends the acknowledgement that holds mark, the
// proxy loses it: under cut it closes that connection, so the client
// reconnects through the proxy; otherwise it stops passing anything to
// the client and keeps the connection open.
type ackProxy struct {
	ln     net.Listener
	server string
	mark   []byte
	cut    bool
	lost   chan struct{} // closed when the acknowledgement is lost
	once   sync.Once

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newAckProxy(t *testing.T, serverURL, mark string, cut bool) *ackProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ackProxy{ln: ln, server: strings.TrimPrefix(serverURL, "nats://"),
		mark: []byte(mark), cut: cut, lost: make(chan struct{})}
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

func (p *ackProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *ackProxy) accept() {
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

// toClient copies what the server sends to the client until the
// acknowledgement to lose; after it, under hold, it reads on and passes
// nothing.
func (p *ackProxy) toClient(client, server net.Conn) {
	defer client.Close()
	defer server.Close()
	var tail []byte // the end of the last read, for a mark split across reads
	held := false
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 && !held {
			seen := append(tail, buf[:n]...)
			if bytes.Contains(seen, p.mark) && p.first() {
				if p.cut {
					return
				}
				held = true
				continue
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

func (p *ackProxy) first() bool {
	first := false
	p.once.Do(func() { first = true; close(p.lost) })
	return first
}

// stored returns the number of messages in the stream of resource.
func stored(t *testing.T, url, resource string) uint64 {
	t.Helper()
	js, err := jetstream.New(connect(t, url))
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), jetbus.StreamName(resource))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestLostAck loses the connection with the acknowledgement of one
// publish in flight: the publishes awaiting an answer are sent again
// after the reconnect and the server stores each event once.
func TestLostAck(t *testing.T) {
	srv := startServer(t, "", 0)
	for _, batch := range []bool{false, true} {
		name := map[bool]string{false: "Produce", true: "ProduceBatch"}[batch]
		t.Run(name, func(t *testing.T) {
			proxy := newAckProxy(t, srv.URL(), `"seq":50`, true)
			resource := "lost" + name
			bus := newBus[int](t, connect(t, proxy.url()), resource, nil,
				jetbus.WithMemoryStorage())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			evs := make([]mainbus.Event[int], 200)
			for i := range evs {
				evs[i] = mainbus.Event[int]{ID: uint64(i + 1), Value: i}
			}
			if batch {
				if err := bus.ProduceBatch(ctx, evs); err != nil {
					t.Fatalf("ProduceBatch: %v", err)
				}
			} else {
				for _, ev := range evs {
					if err := bus.Produce(ctx, ev); err != nil {
						t.Fatalf("Produce %d: %v", ev.ID, err)
					}
				}
			}
			select {
			case <-proxy.lost:
			default:
				t.Fatal("no acknowledgement was lost")
			}
			if n := stored(t, srv.URL(), resource); n != uint64(len(evs)) {
				t.Errorf("stream holds %d messages, want %d", n, len(evs))
			}
			var dups uint64
			for _, c := range bus.Stats().Server {
				dups += c.Duplicates
			}
			if dups < 1 {
				t.Errorf("duplicates = %d, want the resent event counted", dups)
			}
		})
	}
}

// TestAckTimeout holds back every answer after the first lost one, the
// connection kept: each publish is sent again after the publish wait,
// and once ctx ends the events are in doubt.
func TestAckTimeout(t *testing.T) {
	srv := startServer(t, "", 0)
	for _, batch := range []bool{false, true} {
		name := map[bool]string{false: "Produce", true: "ProduceBatch"}[batch]
		t.Run(name, func(t *testing.T) {
			proxy := newAckProxy(t, srv.URL(), `"seq":1`, false)
			bus := newBus[int](t, connect(t, proxy.url()), "held"+name, nil,
				jetbus.WithMemoryStorage(), jetbus.WithPublishWait(20*time.Millisecond))
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			evs := []mainbus.Event[int]{{ID: 1}, {ID: 2, Key: "k"}, {ID: 3, Key: "k"}}
			var err error
			if batch {
				err = bus.ProduceBatch(ctx, evs)
				var be *mainbus.BatchError[int]
				if !errors.As(err, &be) || len(be.Rejected) != len(evs) {
					t.Fatalf("ProduceBatch: %v, want all %d events rejected", err, len(evs))
				}
			} else {
				err = bus.Produce(ctx, evs[0])
			}
			if !errors.Is(err, jetbus.ErrInDoubt) {
				t.Errorf("err = %v, want one wrapping ErrInDoubt", err)
			}
			<-proxy.lost
		})
	}
}
