package dashboard_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mainbus-go/mainbus"
	"github.com/mainbus-go/mainbus/dashboard"
)

func post(t *testing.T, url, body string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestKnobs(t *testing.T) {
	var value atomic.Int64
	value.Store(10)
	knob := func(name string, fail error) dashboard.Knob {
		return dashboard.Knob{Name: name, Unit: "ms", Min: 1, Max: 100, Step: 1,
			Get: func() float64 { return float64(value.Load()) },
			Set: func(v float64) error {
				if fail != nil {
					return fail
				}
				value.Store(int64(v))
				return nil
			}}
	}
	bad := fmt.Errorf("%w: conveyors is 0", mainbus.ErrInvalidOption)
	srv := serve(t, dashboard.MustHandler(mainbus.StatsOf(), dashboard.WithKnobs(
		knob("cost", nil), knob("picky", bad), knob("broken", errors.New("bus closed")),
		dashboard.Knob{Name: "wild", Min: 0, Max: 1, Step: 1, Get: func() float64 { return 0 },
			Set: func(float64) error { panic("wild knob") }})))
	url := srv.URL + "/knobs"

	code, body := post(t, url, `{"name": "cost", "value": 25}`)
	if code != http.StatusOK || value.Load() != 25 || !strings.Contains(body, `"value":25`) {
		t.Fatalf("set cost: %d %q, value %d; want 200 and 25", code, body, value.Load())
	}

	tests := []struct {
		name, body string
		code       int
		want       string
	}{
		{"unknown", `{"name": "speed", "value": 1}`, 400,
			`unknown knob "speed"; want one of "cost", "picky", "broken", "wild"`},
		{"too high", `{"name": "cost", "value": 101}`, 400,
			`knob "cost": 101 is out of range; want 1 to 100`},
		{"too low", `{"name": "cost", "value": 0.5}`, 400, "0.5 is out of range"},
		{"no value", `{"name": "cost"}`, 400, "no value; want a number from 1 to 100"},
		{"not JSON", `cost=3`, 400, `want JSON such as {"name": "iron rate", "value": 3000}`},
		{"a string", `{"name": "cost", "value": "3"}`, 400, "not a knob setting"},
		{"extra field", `{"name": "cost", "value": 3, "unit": "s"}`, 400, "unknown field"},
		{"refused", `{"name": "picky", "value": 3}`, 400, "conveyors is 0"},
		{"failed", `{"name": "broken", "value": 3}`, 500, `knob "broken": bus closed`},
		{"panicked", `{"name": "wild", "value": 1}`, 500, "Set panicked: wild knob"},
		{"two values", `{"name": "cost", "value": 3}{"name": "cost", "value": 4}`, 400,
			"more than one JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := post(t, url, tt.body)
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Errorf("POST %s: %d %q; want %d saying %q", tt.body, code, body, tt.code, tt.want)
			}
		})
	}
	if value.Load() != 25 {
		t.Errorf("value %d after refused settings, want 25", value.Load())
	}

	// Another site's page cannot turn the knobs of a local dashboard.
	code, _ = post(t, url, `{"name": "cost", "value": 3}`, "Sec-Fetch-Site", "cross-site")
	if code != http.StatusForbidden || value.Load() != 25 {
		t.Errorf("cross-site POST: %d, value %d; want 403 and 25", code, value.Load())
	}

	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /knobs: %d, want 405", res.StatusCode)
	}
}

func TestNoKnobs(t *testing.T) {
	srv := serve(t, dashboard.MustHandler(mainbus.StatsOf()))
	code, body := post(t, srv.URL+"/knobs", `{"name": "rate", "value": 1}`)
	if code != 400 || !strings.Contains(body, "this dashboard has no knobs") {
		t.Errorf("%d %q, want 400 saying there are no knobs", code, body)
	}
}
