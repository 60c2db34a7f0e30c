// Package embedded runs a NATS server with JetStream inside the calling
// process, listening on 127.0.0.1 unless told otherwise. The jetbus
// tests, the demo, "mainbus serve-nats" and single-machine deployments
// use it; a cluster of real servers needs nothing from it.
//
//	srv, err := embedded.Start("", 0) // temporary storage, a free port
//	if err != nil { … }
//	defer srv.Shutdown()
//	nc, err := jetbus.Connect(ctx, srv.URL())
//
// The server has no authentication and no TLS: listen on another host
// ([WithHost]) only on a network that is yours.
package embedded

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// readyTimeout bounds how long Start waits for the server to accept
// clients.
const readyTimeout = 10 * time.Second

// A Server is a NATS server with JetStream running in this process. It
// is safe for concurrent use.
type Server struct {
	srv  *server.Server
	dir  string
	temp bool // dir was made by Start and is removed by Shutdown
	once sync.Once
}

// An Option configures a Server.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	host string
	name string
}

// WithHost sets the host or IP address the server listens on. The
// default, also for an empty host, is 127.0.0.1; "0.0.0.0" is every
// interface.
func WithHost(host string) Option {
	return optionFunc(func(c *config) {
		if host != "" {
			c.host = host
		}
	})
}

// WithName sets the server name that clients see. The default is
// "mainbus-embedded".
func WithName(name string) Option {
	return optionFunc(func(c *config) {
		if name != "" {
			c.name = name
		}
	})
}

// Start starts a NATS server with JetStream on 127.0.0.1, or the host of
// [WithHost], and waits until it accepts clients.
//
// dir is where JetStream keeps its file storage; streams in it survive a
// restart of the server on the same dir. An empty dir makes a temporary
// directory that Shutdown removes. port 0 picks a free port; give the
// port of an earlier Server to restart it at the same URL. A port that is
// taken gives an error at once, wrapping the listener's.
func Start(dir string, port int, opts ...Option) (*Server, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("embedded: port %d; want 0 (any free port) to 65535", port)
	}
	cfg := config{host: "127.0.0.1", name: "mainbus-embedded"}
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	addr := net.JoinHostPort(cfg.host, strconv.Itoa(port))
	// The server only logs a port it cannot listen on, and this one logs
	// nothing; trying the port first turns that into an error.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	ln.Close()

	s := &Server{dir: dir}
	if dir == "" {
		d, err := os.MkdirTemp("", "mainbus-nats-")
		if err != nil {
			return nil, fmt.Errorf("embedded: storage directory: %w", err)
		}
		s.dir, s.temp = d, true
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: cfg.name,
		Host:       cfg.host,
		Port:       port,
		JetStream:  true,
		StoreDir:   s.dir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		s.removeTemp()
		return nil, fmt.Errorf("embedded: %w", err)
	}
	s.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded: server on %s not ready after %v", addr, readyTimeout)
	}
	return s, nil
}

// URL returns the URL clients connect to, nats://HOST:PORT.
func (s *Server) URL() string { return s.srv.ClientURL() }

// Port returns the port the server listens on.
func (s *Server) Port() int {
	if a, ok := s.srv.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// Dir returns the directory of the server's file storage.
func (s *Server) Dir() string { return s.dir }

// Shutdown stops the server, closing every client connection, and
// returns once it has stopped. A temporary storage directory made by
// Start is removed. Shutdown is idempotent.
func (s *Server) Shutdown() {
	s.once.Do(func() {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.removeTemp()
	})
}

func (s *Server) removeTemp() {
	if s.temp {
		// Best effort: a temporary directory left behind is not an error
		// the caller can act on.
		_ = os.RemoveAll(s.dir)
	}
}
