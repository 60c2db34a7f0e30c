package mainbus

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// A Balancer picks the conveyor for each event.
//
// Pick must return an index in [0, c.Len()); Produce reports any other
// result as an error wrapping [ErrInvalidOption] and does not accept the
// event. Pick is called by every producer goroutine, so it must be safe
// for concurrent use, and it should be fast: it runs on every Produce.
type Balancer interface {
	Pick(key string, c Conveyors) int
}

// Conveyors is the view of a bus's conveyors a [Balancer] picks from.
type Conveyors interface {
	// Len returns the number of conveyors.
	Len() int

	// Depth returns how many events conveyor i holds, 0 <= i < Len().
	Depth(i int) int
}

// BalancerFunc adapts a function to a [Balancer].
type BalancerFunc func(key string, c Conveyors) int

// Pick returns f(key, c).
func (f BalancerFunc) Pick(key string, c Conveyors) int { return f(key, c) }

// Random returns the default balancer: each event goes to a conveyor
// chosen uniformly at random, without a lock.
func Random() Balancer { return random{} }

type random struct{}

func (random) Pick(_ string, c Conveyors) int { return rand.IntN(c.Len()) }

// keyless marks the balancers that ignore the key. [Bus.ProduceBatch]
// asks them once per stack instead of once per event.
type keyless interface{ keyless() }

func (random) keyless()       {}
func (*seeded) keyless()      {}
func (*roundRobin) keyless()  {}
func (*leastLoaded) keyless() {}

// SeededRandom returns a random balancer whose choices are repeatable: a
// single producer sending the same events to the same bus gets the same
// conveyors from run to run. It takes a lock on every pick.
func SeededRandom(seed uint64) Balancer {
	return &seeded{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

type seeded struct {
	mu  sync.Mutex
	rng *rand.Rand
}

func (s *seeded) Pick(_ string, c Conveyors) int {
	s.mu.Lock()
	i := s.rng.IntN(c.Len())
	s.mu.Unlock()
	return i
}

// RoundRobin returns a balancer that sends events to the conveyors in
// turn: L0, L1, …, L(n-1), L0, …
func RoundRobin() Balancer { return &roundRobin{} }

type roundRobin struct{ next atomic.Uint64 }

func (r *roundRobin) Pick(_ string, c Conveyors) int {
	return int((r.next.Add(1) - 1) % uint64(c.Len()))
}

// KeyHash returns a balancer that sends every event with the same key to
// the same conveyor, so events of one key are handled one at a time, in
// the order they were accepted.
//
// The conveyor is the 32-bit FNV-1a hash of the key's bytes modulo the
// conveyor count. This mapping is part of the API: it is the same in every
// process and every version of mainbus, and it matches the partition
// function of NATS subject mapping, so programs in other languages can
// compute it too. The empty key is a key like any other.
func KeyHash() Balancer { return keyHash{} }

type keyHash struct{}

func (keyHash) Pick(key string, c Conveyors) int {
	return int(fnv1a(key) % uint32(c.Len()))
}

// fnv1a returns the 32-bit FNV-1a hash of s. It does not allocate.
func fnv1a(s string) uint32 {
	const (
		offset = 2166136261
		prime  = 16777619
	)
	h := uint32(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= prime
	}
	return h
}

// LeastLoaded returns a balancer that sends each event to the conveyor
// with the fewest slots taken at the moment of the pick. Ties go to the
// tied conveyors in turn. It reads every conveyor's depth on every pick,
// so it costs more than the others on wide buses.
func LeastLoaded() Balancer { return &leastLoaded{} }

type leastLoaded struct{ turn atomic.Uint64 }

func (l *leastLoaded) Pick(_ string, c Conveyors) int {
	n := c.Len()
	best, ties := 0, 0
	min := int(^uint(0) >> 1)
	for i := 0; i < n; i++ {
		switch d := c.Depth(i); {
		case d < min:
			best, ties, min = i, 1, d
		case d == min:
			ties++
		}
	}
	if ties == 1 {
		return best
	}
	// Take the k-th of the tied conveyors. Depths may have moved since the
	// first pass; if no k-th tie is left, the first pass's pick stands.
	k := int(l.turn.Add(1) % uint64(ties))
	for i := best; i < n; i++ {
		if c.Depth(i) == min {
			if k == 0 {
				return i
			}
			k--
		}
	}
	return best
}

// JumpHash returns a keyed balancer like [KeyHash] for buses that are
// resized often: when the conveyor count grows from n to m, only the
// share (m-n)/m of keys moves, each to one of the new conveyors, where
// KeyHash moves most keys. It is the jump consistent hash of Lamport and
// Veach over the 64-bit FNV-1a hash of the key; like KeyHash it is fixed
// across processes and versions.
func JumpHash() Balancer { return jumpHash{} }

type jumpHash struct{}

func (jumpHash) Pick(key string, c Conveyors) int { return jump(fnv1a64(key), c.Len()) }

// jump maps h to a bucket in [0, n): it follows h's pseudo-random sequence
// of bucket counts at which h would jump, and returns the last jump below
// n.
func jump(h uint64, n int) int {
	bucket, next := int64(-1), int64(0)
	for next < int64(n) {
		bucket = next
		h = h*2862933555777941757 + 1
		next = int64(float64(bucket+1) * (float64(1<<31) / float64(h>>33+1)))
	}
	return int(bucket)
}

// fnv1a64 returns the 64-bit FNV-1a hash of s. It does not allocate.
func fnv1a64(s string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	return h
}
