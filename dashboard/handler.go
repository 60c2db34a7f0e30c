package dashboard

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/mainbus-go/mainbus"
)

//go:embed static
var static embed.FS

// page is the template of the page; the rest of static is served as is.
var page = template.Must(template.ParseFS(static, "static/index.html"))

// writeTimeout bounds each write to a client, so that a client that stops
// reading without going away does not hold its stream forever.
const writeTimeout = 10 * time.Second

// A handler serves one dashboard. It keeps no state between requests
// other than its configuration.
type handler struct {
	cfg   config
	stats func() []mainbus.Stats
	knobs map[string]Knob
	page  []byte
	mux   *http.ServeMux
}

// MustHandler serves the dashboard of the buses whose stats the function
// returns: the page at its root, and the live updates it reads. Mount it
// anywhere, e.g.
//
//	mux.Handle("/belts/", http.StripPrefix("/belts", dashboard.MustHandler(complex.Stats)))
//
// stats is called once per frame per client, from the goroutines of the
// requests; [mainbus.StatsOf] and [mainbus.Complex.Stats] fit.
//
// MustHandler panics if stats is nil or an option is invalid, as
// template.Must does: both are fixed in the program, not given by its
// users. Use [NewHandler] to get an error instead.
func MustHandler(stats func() []mainbus.Stats, opts ...Option) http.Handler {
	h, err := NewHandler(stats, opts...)
	if err != nil {
		panic(err.Error())
	}
	return h
}

// NewHandler is [MustHandler] returning an error, wrapping
// [mainbus.ErrInvalidOption], for a nil stats function or an invalid
// option, such as an interval out of range or two knobs of one name.
func NewHandler(stats func() []mainbus.Stats, opts ...Option) (http.Handler, error) {
	cfg := config{interval: DefaultInterval, title: "mainbus"}
	for i, o := range opts {
		if o == nil {
			return nil, invalid("option %d is nil; want one from a dashboard With… function", i)
		}
		o.apply(&cfg)
	}
	if stats == nil {
		return nil, invalid("the stats function is nil; want one such as mainbus.StatsOf(buses...)")
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}

	h := &handler{cfg: cfg, stats: stats, knobs: make(map[string]Knob, len(cfg.knobs))}
	for _, k := range cfg.knobs {
		h.knobs[k.Name] = k
	}
	var buf bytes.Buffer
	err := page.Execute(&buf, struct {
		Title    string
		Interval int64
	}{cfg.title, cfg.interval.Milliseconds()})
	if err != nil {
		return nil, fmt.Errorf("dashboard: the page: %w", err)
	}
	h.page = buf.Bytes()

	assets, _ := fs.Sub(static, "static")
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /{$}", h.servePage)
	h.mux.Handle("GET /static/", http.StripPrefix("/static", http.FileServerFS(assets)))
	h.mux.HandleFunc("GET /events", h.serveEvents)
	h.mux.HandleFunc("GET /snapshot", h.serveSnapshot)
	h.mux.Handle("POST /knobs", http.NewCrossOriginProtection().Handler(
		http.HandlerFunc(h.serveKnob)))
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Mounted with http.StripPrefix, the root arrives as "".
	if r.URL.Path == "" {
		r2 := *r
		u := *r.URL
		u.Path = "/"
		r2.URL = &u
		r = &r2
	}
	h.mux.ServeHTTP(w, r)
}

func (h *handler) servePage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	// The page loads nothing from any other origin.
	w.Header().Set("Content-Security-Policy",
		"default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'")
	w.Write(h.page)
}

func (h *handler) sampler() *sampler {
	return &sampler{cfg: &h.cfg, stats: h.stats}
}

// serveEvents streams one frame per interval until the request's context
// ends: the client went away or the server is stopping. The first frame
// goes out at once, without rates.
func (h *handler) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	s := h.sampler()
	tick := time.NewTicker(h.cfg.interval)
	defer tick.Stop()
	// A client that lost the stream tries again after one second.
	msg := []byte("retry: 1000\n\n")
	for {
		b, err := json.Marshal(s.next())
		if err != nil {
			return
		}
		msg = append(msg, "data: "...)
		msg = append(append(msg, b...), "\n\n"...)
		if !send(rc, w, msg) {
			return
		}
		msg = msg[:0]
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// send writes msg and flushes it, and reports whether both worked.
func send(rc *http.ResponseController, w http.ResponseWriter, msg []byte) bool {
	err := rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err != nil && !errors.Is(err, http.ErrNotSupported) {
		return false
	}
	if _, err := w.Write(msg); err != nil {
		return false
	}
	return rc.Flush() == nil
}

// serveSnapshot answers with one frame, taken one interval after a first
// snapshot, so that it has rates.
func (h *handler) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	s := h.sampler()
	s.next()
	t := time.NewTimer(h.cfg.interval)
	defer t.Stop()
	select {
	case <-r.Context().Done():
		return
	case <-t.C:
	}
	writeJSON(w, http.StatusOK, s.next())
}

// knobRequest is the body of POST /knobs.
type knobRequest struct {
	Name  string   `json:"name"`
	Value *float64 `json:"value"`
}

// serveKnob sets one knob and answers with its value after the change.
func (h *handler) serveKnob(w http.ResponseWriter, r *http.Request) {
	var req knobRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err != nil {
		http.Error(w, fmt.Sprintf(`the body is not a knob setting (%v); `+
			`want JSON such as {"name": "iron rate", "value": 3000}`, err),
			http.StatusBadRequest)
		return
	}
	k, ok := h.knobs[req.Name]
	switch {
	case !ok:
		http.Error(w, fmt.Sprintf("unknown knob %q; %s", req.Name, h.knobNames()),
			http.StatusBadRequest)
		return
	case req.Value == nil:
		http.Error(w, fmt.Sprintf("knob %q: no value; want a number from %v to %v",
			k.Name, k.Min, k.Max), http.StatusBadRequest)
		return
	case math.IsNaN(*req.Value) || *req.Value < k.Min || *req.Value > k.Max:
		http.Error(w, fmt.Sprintf("knob %q: %v is out of range; want %v to %v",
			k.Name, *req.Value, k.Min, k.Max), http.StatusBadRequest)
		return
	}
	if err := setKnob(k, *req.Value); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, mainbus.ErrInvalidOption) {
			code = http.StatusBadRequest
		}
		http.Error(w, fmt.Sprintf("knob %q: %v", k.Name, err), code)
		return
	}
	writeJSON(w, http.StatusOK, knobFrames([]Knob{k})[0])
}

// setKnob calls k.Set, turning a panic in it into an error.
func setKnob(k Knob, v float64) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the knob's Set panicked: %v", p)
		}
	}()
	return k.Set(v)
}

// knobNames says which knob names are accepted.
func (h *handler) knobNames() string {
	if len(h.cfg.knobs) == 0 {
		return "this dashboard has no knobs"
	}
	names := make([]string, len(h.cfg.knobs))
	for i, k := range h.cfg.knobs {
		names[i] = fmt.Sprintf("%q", k.Name)
	}
	return "want one of " + strings.Join(names, ", ")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "dashboard: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
