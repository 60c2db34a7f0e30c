package main

import (
	"fmt"
	"testing"
)

// BenchmarkPeers runs the workload through every implementation in impls
// with 1 and 8 producers, as BenchmarkPeers/<impl>/p<producers>. One
// operation is one event, sent, consumed and counted; each run checks
// that no event was lost and that shutdown left no goroutine behind.
func BenchmarkPeers(b *testing.B) {
	for _, im := range impls {
		for _, p := range producerCounts {
			b.Run(fmt.Sprintf("%s/p%d", im.name, p), func(b *testing.B) {
				if err := bench(b, im, p); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
