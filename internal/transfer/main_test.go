package transfer

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// Get, handler and background loop must be stopped by its owner.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
