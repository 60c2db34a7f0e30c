package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the tests, or, when the test binary is started by
// runBinary, the command itself, so tests can check real exit statuses.
func TestMain(m *testing.M) {
	if os.Getenv("MAINBUS_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}
