package dashboard

import (
	"fmt"
	"math"
	"time"

	"github.com/mainbus-go/mainbus"
)

// DefaultInterval is how often updates are pushed to the page when
// [WithInterval] is not given.
const DefaultInterval = 250 * time.Millisecond

// Bounds of [WithInterval].
const (
	MinInterval = 10 * time.Millisecond
	MaxInterval = time.Minute
)

// An Option configures the dashboard. Options are checked by
// [NewHandler] and [MustHandler].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	interval time.Duration
	title    string
	knobs    []Knob
}

// WithInterval sets how often the page gets an update, from
// [MinInterval] to [MaxInterval]. The default is [DefaultInterval].
func WithInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.interval = d })
}

// WithTitle sets the title of the page. The default is "mainbus".
func WithTitle(s string) Option {
	return optionFunc(func(c *config) { c.title = s })
}

// WithKnobs adds live controls to the page, shown as sliders in the order
// given. Knob names must be unique across all WithKnobs options.
func WithKnobs(knobs ...Knob) Option {
	knobs = append([]Knob(nil), knobs...)
	return optionFunc(func(c *config) { c.knobs = append(c.knobs, knobs...) })
}

// A Knob is a live control of the program behind the dashboard, such as
// the rate of a producer, shown on the page as a slider from Min to Max
// in steps of Step.
//
// Get and Set are called from the goroutines of requests, so they must
// be safe for concurrent use; Get is called once per knob per frame, for
// every client, and should be cheap. The dashboard calls Set only with a
// value from Min to Max. An error from Set is shown on the page: a 400
// Bad Request if it wraps [mainbus.ErrInvalidOption], a 500 otherwise.
type Knob struct {
	Name string // unique, as shown on the page and sent to POST /knobs
	Unit string // shown after the value, e.g. "events/s"; may be empty

	Min, Max, Step float64

	Get func() float64
	Set func(float64) error
}

// check says what is wrong with the knob, if anything.
func (k Knob) check() error {
	finite := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	switch {
	case k.Name == "":
		return invalid("a knob has no name; want a name shown on the page")
	case !finite(k.Min) || !finite(k.Max) || k.Min >= k.Max:
		return invalid("knob %q ranges from %v to %v; want finite Min < Max", k.Name, k.Min, k.Max)
	case !finite(k.Step) || k.Step <= 0 || k.Step > k.Max-k.Min:
		return invalid("knob %q has step %v; want above 0 and at most Max-Min (%v)",
			k.Name, k.Step, k.Max-k.Min)
	case k.Get == nil || k.Set == nil:
		return invalid("knob %q needs both Get and Set", k.Name)
	}
	return nil
}

func (c *config) check() error {
	if c.interval < MinInterval || c.interval > MaxInterval {
		return invalid("interval is %v; want %v to %v", c.interval, MinInterval, MaxInterval)
	}
	seen := make(map[string]bool, len(c.knobs))
	for _, k := range c.knobs {
		if err := k.check(); err != nil {
			return err
		}
		if seen[k.Name] {
			return invalid("knob %q is given twice; want unique names", k.Name)
		}
		seen[k.Name] = true
	}
	return nil
}

// invalid returns an error wrapping [mainbus.ErrInvalidOption] that says
// what was wrong and what is accepted.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: dashboard: %s", mainbus.ErrInvalidOption, fmt.Sprintf(format, args...))
}
