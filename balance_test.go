package mainbus_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/mainbus-go/mainbus"
)

// balLanes is a fake [mainbus.Conveyors]: one entry per conveyor, holding
// its depth.
type balLanes []int

func (l balLanes) Len() int        { return len(l) }
func (l balLanes) Depth(i int) int { return l[i] }

// balWide is a fake [mainbus.Conveyors] of any width, all empty. It lets a
// test ask for more conveyors than it could allocate.
type balWide int

func (w balWide) Len() int      { return int(w) }
func (balWide) Depth(_ int) int { return 0 }

// balFNV is the reference FNV-1a 32-bit hash, from the standard library.
func balFNV(key string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return h.Sum32()
}

// balAll lists every balancer the package ships, each built fresh.
var balAll = []struct {
	name string
	make func() mainbus.Balancer
}{
	{"Random", mainbus.Random},
	{"SeededRandom", func() mainbus.Balancer { return mainbus.SeededRandom(7) }},
	{"RoundRobin", mainbus.RoundRobin},
	{"KeyHash", mainbus.KeyHash},
	{"LeastLoaded", mainbus.LeastLoaded},
}

// balWidths are the conveyor counts every balancer is tried on.
var balWidths = []int{1, 2, 3, 4, 7, 64}

// balLongKey is a 1 MiB key.
var balLongKey = strings.Repeat("furnace-", 1<<20/8)

func TestBalanceKeyHashPublishedVectors(t *testing.T) {
	t.Parallel()
	// Published FNV-1a 32-bit test vectors (Fowler, Noll, Vo).
	vectors := []struct {
		key  string
		hash uint32
	}{
		{"", 0x811c9dc5},
		{"a", 0xe40c292c},
		{"foobar", 0xbf9cf968},
	}
	// math.MaxUint32 conveyors lets the whole hash through the modulo.
	widths := []int{1, 2, 3, 4, 7, 64, 65536, math.MaxInt32, math.MaxUint32}
	kh := mainbus.KeyHash()
	for _, v := range vectors {
		if got := balFNV(v.key); got != v.hash {
			t.Fatalf("hash/fnv(%q) = %#x, want the published %#x; the reference is wrong",
				v.key, got, v.hash)
		}
		for _, n := range widths {
			t.Run(fmt.Sprintf("%q/n=%d", v.key, n), func(t *testing.T) {
				t.Parallel()
				want := int(v.hash % uint32(n))
				if got := kh.Pick(v.key, balWide(n)); got != want {
					t.Errorf("KeyHash().Pick(%q) on %d conveyors = %d, want %#x %% %d = %d",
						v.key, n, got, v.hash, n, want)
				}
			})
		}
	}
}

func TestBalanceKeyHashMatchesFNV(t *testing.T) {
	t.Parallel()
	keys := []string{
		"", "a", "b", "iron", "copper", "furnace-7", "furnace-8",
		"Ünïcödé ключ 鍵", "\x00", "\x00\x00\xff\xfe", strings.Repeat("x", 1000),
		balLongKey,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		keys = append(keys, string(b))
	}
	kh := mainbus.KeyHash()
	for _, n := range append(balWidths, 65536, math.MaxUint32) {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			t.Parallel()
			for _, key := range keys {
				want := int(balFNV(key) % uint32(n))
				if got := kh.Pick(key, balWide(n)); got != want {
					t.Errorf("KeyHash().Pick(%.20q, %d conveyors) = %d, want FNV-1a %% n = %d",
						key, n, got, want)
				}
			}
		})
	}
}

func TestBalanceKeyHashIgnoresDepth(t *testing.T) {
	t.Parallel()
	kh := mainbus.KeyHash()
	keys := []string{"", "iron", "copper", "furnace-7"}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, key := range keys {
		want := kh.Pick(key, make(balLanes, 7))
		for range 100 {
			lanes := make(balLanes, 7)
			for i := range lanes {
				lanes[i] = rng.IntN(100)
			}
			if got := kh.Pick(key, lanes); got != want {
				t.Fatalf("KeyHash().Pick(%q) = %d with depths %v, %d with empty conveyors; "+
					"the same key must always get the same conveyor", key, got, lanes, want)
			}
		}
	}
}

func TestBalanceInRange(t *testing.T) {
	t.Parallel()
	keys := []struct {
		name  string
		key   string
		picks int
	}{
		{"empty key", "", 500},
		{"short key", "furnace-7", 500},
		{"1 MiB key", balLongKey, 3},
	}
	for _, bal := range balAll {
		for _, n := range balWidths {
			for _, k := range keys {
				t.Run(fmt.Sprintf("%s/n=%d/%s", bal.name, n, k.name), func(t *testing.T) {
					t.Parallel()
					b := bal.make()
					rng := rand.New(rand.NewPCG(uint64(n), 5))
					lanes := make(balLanes, n)
					for range k.picks {
						for i := range lanes {
							lanes[i] = rng.IntN(3)
						}
						if got := b.Pick(k.key, lanes); got < 0 || got >= n {
							t.Fatalf("Pick on %d conveyors = %d, want 0 to %d", n, got, n-1)
						}
					}
				})
			}
		}
	}
}

func TestBalanceRoundRobinEven(t *testing.T) {
	t.Parallel()
	const rounds = 50
	for _, n := range balWidths {
		for _, producers := range []int{1, 8} {
			t.Run(fmt.Sprintf("n=%d/producers=%d", n, producers), func(t *testing.T) {
				t.Parallel()
				rr := mainbus.RoundRobin()
				lanes := make(balLanes, n)
				counts := make([][]int, producers)
				var wg sync.WaitGroup
				for p := range producers {
					counts[p] = make([]int, n)
					wg.Go(func() {
						// Every producer makes its share of rounds*n*producers picks.
						for range rounds * n {
							counts[p][rr.Pick("", lanes)]++
						}
					})
				}
				wg.Wait()
				for i := range n {
					total := 0
					for p := range producers {
						total += counts[p][i]
					}
					if want := rounds * producers; total != want {
						t.Errorf("conveyor %d got %d of %d picks, want exactly %d",
							i, total, rounds*n*producers, want)
					}
				}
			})
		}
	}
}

func TestBalanceRoundRobinInTurn(t *testing.T) {
	t.Parallel()
	rr := mainbus.RoundRobin()
	lanes := make(balLanes, 3)
	var got []int
	for range 7 {
		got = append(got, rr.Pick("", lanes))
	}
	if want := []int{0, 1, 2, 0, 1, 2, 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("RoundRobin picks = %v, want %v", got, want)
	}
}

// balChiSquare returns Pearson's chi-square statistic of counts against
// a uniform distribution.
func balChiSquare(counts []int, picks int) float64 {
	expected := float64(picks) / float64(len(counts))
	var chi float64
	for _, c := range counts {
		d := float64(c) - expected
		chi += d * d / expected
	}
	return chi
}

func TestBalanceRandomUniform(t *testing.T) {
	t.Parallel()
	const picks = 40000
	random := []struct {
		name string
		make func() mainbus.Balancer
	}{
		{"Random", mainbus.Random},
		{"SeededRandom/0", func() mainbus.Balancer { return mainbus.SeededRandom(0) }},
		{"SeededRandom/42", func() mainbus.Balancer { return mainbus.SeededRandom(42) }},
	}
	for _, bal := range random {
		for _, n := range balWidths[1:] {
			t.Run(fmt.Sprintf("%s/n=%d", bal.name, n), func(t *testing.T) {
				t.Parallel()
				b := bal.make()
				lanes := make(balLanes, n)
				counts := make([]int, n)
				for range picks {
					counts[b.Pick("same-key", lanes)]++
				}
				// The statistic has n-1 degrees of freedom: mean n-1,
				// standard deviation sqrt(2(n-1)). The bound sits more
				// than 12 deviations out, so a fair balancer never
				// crosses it, while one stuck on a conveyor scores
				// picks*(n-1).
				df := float64(n - 1)
				bound := df + 12*math.Sqrt(2*df) + 40
				if chi := balChiSquare(counts, picks); chi > bound {
					t.Errorf("chi-square of %v over %d picks = %.1f, want at most %.1f",
						counts, picks, chi, bound)
				}
				for i, c := range counts {
					if c == 0 {
						t.Errorf("conveyor %d never picked in %d picks: %v", i, picks, counts)
					}
				}
			})
		}
	}
}

func TestBalanceSeededRandomRepeatable(t *testing.T) {
	t.Parallel()
	seq := func(seed uint64, n int) []int {
		b := mainbus.SeededRandom(seed)
		lanes := make(balLanes, n)
		out := make([]int, 1000)
		for i := range out {
			out[i] = b.Pick("", lanes)
		}
		return out
	}
	tests := []struct {
		name   string
		s1, s2 uint64
		same   bool
	}{
		{"same seed 0", 0, 0, true},
		{"same seed 42", 42, 42, true},
		{"same seed max", math.MaxUint64, math.MaxUint64, true},
		{"seeds 1 and 2", 1, 2, false},
		{"seeds 0 and 42", 0, 42, false},
	}
	for _, tt := range tests {
		for _, n := range []int{2, 7, 64} {
			t.Run(fmt.Sprintf("%s/n=%d", tt.name, n), func(t *testing.T) {
				t.Parallel()
				a, b := seq(tt.s1, n), seq(tt.s2, n)
				if same := fmt.Sprint(a) == fmt.Sprint(b); same != tt.same {
					t.Errorf("SeededRandom(%d) and SeededRandom(%d) gave the same 1000 picks: %v; want %v",
						tt.s1, tt.s2, same, tt.same)
				}
			})
		}
	}
}

// balRecordLanes runs events 0..n-1 through a fresh bus with balancer b,
// from a single producer, and returns the conveyor each event was
// handled on.
func balRecordLanes(t *testing.T, b mainbus.Balancer, n int) []int {
	t.Helper()
	lanes := make([]int, n)
	bus, err := mainbus.New("iron", func(_ context.Context, c int, ev mainbus.Event[int]) error {
		lanes[ev.ID] = c // one event per ID: each slot has one writer
		return nil
	}, mainbus.WithConveyors(5), mainbus.WithExactConveyors(), mainbus.WithBalancer(b))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for i := range n {
		if err := bus.Produce(context.Background(), mainbus.Event[int]{ID: uint64(i)}); err != nil {
			t.Fatalf("Produce %d: %v", i, err)
		}
	}
	if err := bus.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return lanes
}

func TestBalanceSeededRandomRepeatableOnBus(t *testing.T) {
	t.Parallel()
	a := balRecordLanes(t, mainbus.SeededRandom(99), 500)
	b := balRecordLanes(t, mainbus.SeededRandom(99), 500)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("two runs with SeededRandom(99) put the events on different conveyors:\n%v\n%v", a, b)
	}
	c := balRecordLanes(t, mainbus.SeededRandom(100), 500)
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("SeededRandom(99) and SeededRandom(100) put 500 events on the same conveyors")
	}
}

// balMinDepth returns the smallest depth of lanes.
func balMinDepth(lanes balLanes) int {
	m := lanes[0]
	for _, d := range lanes[1:] {
		m = min(m, d)
	}
	return m
}

func TestBalanceLeastLoadedPicksShallowest(t *testing.T) {
	t.Parallel()
	fixed := []struct {
		name  string
		lanes balLanes
		want  int
	}{
		{"one conveyor", balLanes{9}, 0},
		{"first", balLanes{0, 5, 5, 5}, 0},
		{"last", balLanes{5, 5, 5, 0}, 3},
		{"middle non-zero", balLanes{7, 3, 2, 9, 4}, 2},
		{"all full but one", balLanes{64, 64, 64, 63, 64, 64, 64}, 3},
	}
	for _, tt := range fixed {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ll := mainbus.LeastLoaded()
			// Repeat so that every starting point of a rotation is tried.
			for range 3 * len(tt.lanes) {
				if got := ll.Pick("", tt.lanes); got != tt.want {
					t.Fatalf("LeastLoaded().Pick with depths %v = %d, want %d", tt.lanes, got, tt.want)
				}
			}
		})
	}
	t.Run("random depths", func(t *testing.T) {
		t.Parallel()
		rng := rand.New(rand.NewPCG(11, 12))
		ll := mainbus.LeastLoaded()
		for range 5000 {
			lanes := make(balLanes, 1+rng.IntN(12))
			for i := range lanes {
				lanes[i] = rng.IntN(6)
			}
			got := ll.Pick("", lanes)
			if got < 0 || got >= len(lanes) {
				t.Fatalf("LeastLoaded().Pick with depths %v = %d, out of range", lanes, got)
			}
			if lanes[got] != balMinDepth(lanes) {
				t.Fatalf("LeastLoaded().Pick with depths %v = %d (depth %d), want a conveyor of depth %d",
					lanes, got, lanes[got], balMinDepth(lanes))
			}
		}
	})
}

func TestBalanceLeastLoadedSpreadsTies(t *testing.T) {
	t.Parallel()
	// The doc promises that ties go to the tied conveyors in turn, so
	// over many picks with fixed depths each tied conveyor gets close to
	// its fair share. The bound asks for half of it.
	tests := []struct {
		name  string
		lanes balLanes
	}{
		{"all empty", balLanes{0, 0, 0, 0}},
		{"all equal non-zero", balLanes{3, 3, 3, 3, 3, 3, 3}},
		{"even spacing", balLanes{0, 9, 0, 9}},
		{"adjacent pair", balLanes{5, 0, 0, 5}},
		{"pair after a long busy run", balLanes{0, 0, 9, 9, 9, 9, 9, 9}},
		{"non-zero ties", balLanes{4, 2, 8, 8, 2, 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ll := mainbus.LeastLoaded()
			n := len(tt.lanes)
			picks := 100 * n
			counts := make([]int, n)
			for range picks {
				counts[ll.Pick("", tt.lanes)]++
			}
			m := balMinDepth(tt.lanes)
			var tied []int
			for i, d := range tt.lanes {
				if d == m {
					tied = append(tied, i)
				} else if counts[i] > 0 {
					t.Errorf("conveyor %d of depth %d picked %d times; the shallowest depth is %d",
						i, d, counts[i], m)
				}
			}
			fair := picks / len(tied)
			for _, i := range tied {
				if counts[i] < fair/2 {
					t.Errorf("depths %v: tied conveyor %d got %d of %d picks, want about %d "+
						"(ties should go to the tied conveyors in turn); counts %v",
						tt.lanes, i, counts[i], picks, fair, counts)
				}
			}
		})
	}
}

func TestBalanceBadPickRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		pick int
	}{
		{"negative", -1},
		{"equal to count", 4},
		{"far out", 1 << 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			handled := make(chan uint64, 1)
			bal := mainbus.BalancerFunc(func(string, mainbus.Conveyors) int { return tt.pick })
			bus, err := mainbus.New("iron", func(_ context.Context, _ int, ev mainbus.Event[int]) error {
				handled <- ev.ID
				return nil
			}, mainbus.WithConveyors(4), mainbus.WithBalancer(bal))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			err = bus.Produce(context.Background(), mainbus.Event[int]{ID: 1})
			if !errors.Is(err, mainbus.ErrInvalidOption) {
				t.Errorf("Produce with a balancer picking %d = %v, want an error wrapping ErrInvalidOption",
					tt.pick, err)
			}
			if err := bus.TryProduce(mainbus.Event[int]{ID: 2}); !errors.Is(err, mainbus.ErrInvalidOption) {
				t.Errorf("TryProduce with a balancer picking %d = %v, want ErrInvalidOption", tt.pick, err)
			}
			if err := bus.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			select {
			case id := <-handled:
				t.Errorf("event %d was handled though Produce did not accept it", id)
			default:
			}
			if got := bus.Stats().Total().Produced; got != 0 {
				t.Errorf("Stats().Total().Produced = %d, want 0", got)
			}
		})
	}
}

// balKeyed is the payload of the key-order test: who produced the event
// and its place in that producer's sequence for the key.
type balKeyed struct {
	producer int
	seq      int
}

func TestBalanceKeyHashOrderOnBus(t *testing.T) {
	t.Parallel()
	const (
		conveyors = 4
		producers = 4
		keys      = 64
		perProd   = 2000
	)
	var (
		mu       sync.Mutex
		next     = map[string][]int{} // key -> next seq expected from each producer
		laneOf   = map[string]int{}
		problems []string
		handled  int
	)
	h := func(_ context.Context, c int, ev mainbus.Event[balKeyed]) error {
		mu.Lock()
		defer mu.Unlock()
		handled++
		if len(problems) > 10 {
			return nil
		}
		if want := int(balFNV(ev.Key) % conveyors); c != want {
			problems = append(problems, fmt.Sprintf("key %q handled on conveyor %d, want FNV-1a %% %d = %d",
				ev.Key, c, conveyors, want))
		}
		if l, ok := laneOf[ev.Key]; ok && l != c {
			problems = append(problems, fmt.Sprintf("key %q handled on conveyors %d and %d", ev.Key, l, c))
		}
		laneOf[ev.Key] = c
		if next[ev.Key] == nil {
			next[ev.Key] = make([]int, producers)
		}
		p := ev.Value.producer
		if want := next[ev.Key][p]; ev.Value.seq != want {
			problems = append(problems, fmt.Sprintf("key %q producer %d: got seq %d, want %d",
				ev.Key, p, ev.Value.seq, want))
		}
		next[ev.Key][p] = ev.Value.seq + 1
		return nil
	}
	// A small buffer makes producers wait on full conveyors now and then.
	bus, err := mainbus.New("iron", h, mainbus.WithConveyors(conveyors),
		mainbus.WithBalancer(mainbus.KeyHash()), mainbus.WithBuffer(4))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = bus.Close(context.Background()) })

	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Go(func() {
			seq := make([]int, keys)
			for i := range perProd {
				k := (i*7 + p*13) % keys
				ev := mainbus.Event[balKeyed]{
					ID:    uint64(p*perProd + i),
					Key:   fmt.Sprintf("furnace-%d", k),
					Value: balKeyed{producer: p, seq: seq[k]},
				}
				seq[k]++
				if err := bus.Produce(context.Background(), ev); err != nil {
					errs <- fmt.Errorf("producer %d event %d: %w", p, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := bus.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	if handled != producers*perProd {
		t.Errorf("handled %d events, want %d", handled, producers*perProd)
	}
	if len(laneOf) != keys {
		t.Errorf("saw %d keys, want %d", len(laneOf), keys)
	}
}

func FuzzKeyHash(f *testing.F) {
	seeds := []struct {
		key string
		n   uint32
	}{
		{"", 0},
		{"a", 1},
		{"foobar", 3},
		{"furnace-7", 63},
		{"\x00\xff", 6},
		{strings.Repeat("z", 4096), 65535},
		{"Ünïcödé", math.MaxUint32 - 1},
	}
	for _, s := range seeds {
		f.Add(s.key, s.n)
	}
	kh := mainbus.KeyHash()
	f.Fuzz(func(t *testing.T, key string, n uint32) {
		// Any count from 1 to math.MaxUint32 conveyors.
		width := int(n%math.MaxUint32) + 1
		got := kh.Pick(key, balWide(width))
		if got < 0 || got >= width {
			t.Fatalf("KeyHash().Pick(%q) on %d conveyors = %d, out of range", key, width, got)
		}
		if want := int(balFNV(key) % uint32(width)); got != want {
			t.Fatalf("KeyHash().Pick(%q) on %d conveyors = %d, want FNV-1a %% n = %d",
				key, width, got, want)
		}
		if again := kh.Pick(key, balWide(width)); again != got {
			t.Fatalf("KeyHash().Pick(%q) gave %d, then %d", key, got, again)
		}
	})
}
