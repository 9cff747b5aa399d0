package bbsaes

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind (handshake
// helpers, relays and writers all have owners that wait for them).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
