package bbsaes

import (
	"crypto/rand"
	"sync"
	"testing"
)

var (
	sharedKeyOnce sync.Once
	sharedKey     *Key
	sharedKeyErr  error
)

// testKey returns one 2048-bit BBS key per test binary: generating one takes
// a noticeable fraction of a second.
func testKey(t testing.TB) *Key {
	t.Helper()
	sharedKeyOnce.Do(func() { sharedKey, sharedKeyErr = GenerateKey(rand.Reader, DefaultModulusBits) })
	if sharedKeyErr != nil {
		t.Fatal(sharedKeyErr)
	}
	return sharedKey
}
