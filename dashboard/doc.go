// Package dashboard serves a live web page of mainbus buses: each bus is
// drawn as a corridor of parallel belts, one per conveyor, with items
// moving at the speed of its throughput, its fill level, backpressure and
// drops, a minute of throughput history, and sliders for live controls.
//
// The page is one [http.Handler], mounted anywhere:
//
//	h := dashboard.MustHandler(factory.Stats, dashboard.WithTitle("Smelter"))
//	mux.Handle("/belts/", http.StripPrefix("/belts", h))
//
// Relative to where it is mounted, the handler serves:
//
//	GET  /          the page; its scripts and styles are embedded
//	GET  /events    a Server-Sent Events stream, one JSON frame per interval
//	GET  /snapshot  one JSON frame, with the rates over one interval
//	POST /knobs     set a knob: {"name": "iron rate", "value": 3000}
//
// A frame holds, per bus and per conveyor, the counters of
// [mainbus.ConveyorStats], the rates in events per second since the
// previous frame (produced, consumed, dropped, rejected), depth and capacity, the
// producers blocked now, and the 50th and 99th percentiles of queue and
// handler time over the last interval and since the bus started. Rates
// and quantiles are computed on the server, from the difference between
// two snapshots; the page only draws.
//
// Each /events client is served by the goroutine of its request, and
// nothing else: the stream ends when the client goes away or the
// request's context ends. [http.Server.Shutdown] does not end requests
// in flight, so a server that shuts down with streams open should give
// its requests a context that it cancels first (http.Server.BaseContext).
package dashboard
