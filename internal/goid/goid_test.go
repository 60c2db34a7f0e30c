package goid_test

import (
	"testing"

	"github.com/mainbus-go/mainbus/internal/goid"
)

func TestCurrentTellsGoroutinesApart(t *testing.T) {
	here := goid.Current()
	if here == 0 || goid.Current() != here {
		t.Fatalf("Current() = %d, then %d; want the same nonzero ID", here, goid.Current())
	}
	other := make(chan uint64)
	go func() { other <- goid.Current() }()
	if id := <-other; id == 0 || id == here {
		t.Errorf("another goroutine has ID %d, this one %d; want two nonzero IDs", id, here)
	}
}
