// Package natstest holds the NATS parts that the tests of several
// packages start on 127.0.0.1: a proxy that loses one acknowledgement,
// and a server without JetStream.
package natstest

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// A Proxy is a TCP proxy on 127.0.0.1 in front of a NATS server. The
// first time the server sends bytes holding one of its marks, the proxy
// loses them: if it cuts, it closes that connection, so the client
// reconnects through the proxy; otherwise it stops passing anything to
// that client and keeps the connection open.
type Proxy struct {
	ln     net.Listener
	server string // host:port of the server
	marks  [][]byte
	cut    bool
	lost   chan struct{}
	once   sync.Once

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

// NewProxy starts a proxy for the server at serverURL (nats://HOST:PORT) that
// loses the first message holding any of marks, such as `"seq":50,`. It
// stops when the test ends.
func NewProxy(t testing.TB, serverURL string, cut bool, marks ...string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, server: strings.TrimPrefix(serverURL, "nats://"), cut: cut,
		lost: make(chan struct{})}
	for _, m := range marks {
		p.marks = append(p.marks, []byte(m))
	}
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

// URL is where clients connect to reach the server through the proxy.
func (p *Proxy) URL() string { return "nats://" + p.ln.Addr().String() }

// Lost is closed once the proxy has lost the marked message.
func (p *Proxy) Lost() <-chan struct{} { return p.lost }

func (p *Proxy) accept() {
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

// toClient copies what the server sends to the client until the marked
// message; after it, unless the proxy cuts, it reads on and passes
// nothing.
func (p *Proxy) toClient(client, server net.Conn) {
	defer client.Close()
	defer server.Close()
	var tail []byte // the end of the last read, for a mark split across reads
	held := false
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 && !held {
			seen := append(tail, buf[:n]...)
			if p.marked(seen) {
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

// marked tells whether b holds a mark, the first time only.
func (p *Proxy) marked(b []byte) bool {
	found := false
	for _, m := range p.marks {
		found = found || bytes.Contains(b, m)
	}
	if !found {
		return false
	}
	first := false
	p.once.Do(func() { first = true; close(p.lost) })
	return first
}
