// Package goid tells goroutines apart, for the buses that must know
// whether a call comes from one of their own consumer goroutines.
package goid

import "runtime"

// Current returns the ID of the calling goroutine. It parses the header
// line of the goroutine's stack trace ("goroutine 42 [running]:"), which
// costs about a microsecond, so callers use it only where a consumer
// goroutine starts and where Close must know whether a handler called
// it; never on the path of an event.
func Current() uint64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	const prefix = "goroutine "
	var id uint64
	for _, c := range buf[len(prefix):n] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}
