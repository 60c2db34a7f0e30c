package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mainbus-go/mainbus/jetbus"
	"github.com/mainbus-go/mainbus/jetbus/embedded"
	"github.com/nats-io/nats.go"
)

// embeddedServer is the value of --nats that starts a server in the
// process instead of connecting to one.
const embeddedServer = "embedded"

// defaultNATS is the URL of the server "mainbus serve-nats" starts by
// default, and the server a worker connects to without --nats.
const defaultNATS = "nats://127.0.0.1:4222"

// Time limits of the commands that use NATS. Connecting is bounded by
// jetbus.Connect (5 s); setup covers the streams and consumers of every
// bus; closeWait bounds the drain of the buses at the end.
const (
	setupWait = 10 * time.Second
	closeWait = 10 * time.Second
)

// A natsConn is a connection to the server of a command, and the server
// itself when the command started it.
type natsConn struct {
	url string
	nc  *nats.Conn
	srv *embedded.Server // nil for a server at a URL
}

// dialNATS connects to server, a URL or "embedded", under the connection
// name name. For "embedded" it first starts a server on 127.0.0.1 with
// storage in a temporary directory.
func dialNATS(ctx context.Context, server, name string) (*natsConn, error) {
	c := &natsConn{url: server}
	if server == embeddedServer {
		srv, err := embedded.Start("", 0)
		if err != nil {
			return nil, err
		}
		c.srv, c.url = srv, srv.URL()
	}
	nc, err := jetbus.Connect(ctx, c.url, nats.Name(name))
	if err != nil {
		c.close()
		return nil, err
	}
	c.nc = nc
	return c, nil
}

// close closes the connection, then stops the embedded server, if any.
// The buses on the connection must be closed first.
func (c *natsConn) close() {
	if c.nc != nil {
		c.nc.Close()
	}
	if c.srv != nil {
		c.srv.Shutdown()
	}
}

// errorPrinter returns the error handler of the buses of a command: one
// line on stderr per failure, stall or lost acknowledgement, so the user
// sees why events are late.
func errorPrinter(errOut *lineWriter, cmd string) func(error) {
	return func(err error) { errOut.printf("mainbus %s: %s\n", cmd, oneLine(err)) }
}

// oneLine returns the message of err on one line: the errors joined by
// errors.Join, one per line, separated by "; " instead.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// modeFlag is the --mode flag of the worker.
type modeFlag jetbus.Mode

func (f *modeFlag) String() string { return jetbus.Mode(*f).String() }

func (f *modeFlag) Set(v string) error {
	for _, m := range []jetbus.Mode{jetbus.Ordered, jetbus.Throughput} {
		if v == m.String() {
			*f = modeFlag(m)
			return nil
		}
	}
	return fmt.Errorf("unknown mode; want ordered or throughput")
}

// natsURLFlag checks the value of a --nats flag that must name a server
// at a URL: the worker's, or the demo's with --produce-only or --reset.
func natsURLFlag(v, why string) error {
	switch strings.TrimSpace(v) {
	case "":
		return fmt.Errorf("%s needs --nats URL, as in --nats %s", why, defaultNATS)
	case embeddedServer:
		return fmt.Errorf("%s needs a server that outlives this process: "+
			"--nats URL, such as one started by \"mainbus serve-nats\", not %q",
			why, embeddedServer)
	}
	return nil
}
