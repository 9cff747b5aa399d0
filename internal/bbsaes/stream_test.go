package bbsaes

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"
)

func TestRoundTripOverPipe(t *testing.T) {
	si, sr := sessionPair(t)
	sizes := []int{0, 1, MaxFramePlaintext - 1, MaxFramePlaintext, MaxFramePlaintext + 1, 3<<20 + 12345}
	for _, size := range sizes {
		data := make([]byte, size)
		rand.Read(data)
		var wire bytes.Buffer
		w, err := si.NewWriter(&wire, Header{CID: []byte("cid"), StartChunk: 7})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := sr.NewStandaloneReader(&wire)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("size %d: plaintext differs", size)
		}
	}
}
