package jetbus

import "runtime"

// goid returns the ID of the calling goroutine. It parses the header line
// of the goroutine's stack trace ("goroutine 42 [running]:"), which costs
// about a microsecond, so it runs only where a consumer goroutine starts
// and where Close must know whether a handler called it; never on the
// path of an event. Package mainbus does the same for the in-process bus.
func goid() uint64 {
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
