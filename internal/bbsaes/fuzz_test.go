package bbsaes

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// fixedSessions returns a matching initiator/responder session pair with a
// fixed key, so fuzzing needs no handshake and seeds stay valid across runs.
func fixedSessions() (*Session, *Session) {
	var key [32]byte
	for i := range key {
		key[i] = byte(i)
	}
	return &Session{key: key, role: roleInitiator}, &Session{key: key, role: roleResponder}
}

// FuzzReader feeds arbitrary bytes to the sealed-stream Reader. It must
// never panic, never deliver more bytes than it was given, and only accept
// (read to io.EOF) a stream whose plaintext the writer produced: the seeds
// are valid streams, and a mutated stream must not authenticate.
func FuzzReader(f *testing.F) {
	si, _ := fixedSessions()
	// Seed n carries n bytes of value byte(n) with StartChunk n. The salt
	// is random, so the fuzzing workers cannot know the seeds' exact bytes;
	// they check an accepted stream's plaintext against its header.
	sizes := map[uint64]bool{}
	for _, n := range []int{0, 1, 100, MaxFramePlaintext, MaxFramePlaintext + 1} {
		sizes[uint64(n)] = true
		data := bytes.Repeat([]byte{byte(n)}, n)
		var wire bytes.Buffer
		w, err := si.NewWriter(&wire, Header{CID: []byte("cid"), StartChunk: uint64(n)})
		if err != nil {
			f.Fatal(err)
		}
		w.Write(data)
		w.Close()
		f.Add(wire.Bytes())
		f.Add(wire.Bytes()[:wire.Len()-1])
		f.Add(append(bytes.Clone(wire.Bytes()), 0))
	}
	f.Add([]byte{})
	f.Add([]byte{Version, 0, 0})
	f.Add([]byte{Version, 0xff, 0xff, 1, 2, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		_, sr := fixedSessions()
		r, err := sr.NewStandaloneReader(bytes.NewReader(in))
		if err != nil {
			return
		}
		var out bytes.Buffer
		_, err = r.WriteTo(&out)
		if out.Len() > len(in) {
			t.Fatalf("delivered %d bytes from %d input bytes", out.Len(), len(in))
		}
		if err == nil {
			n := r.Header().StartChunk
			if !sizes[n] || !bytes.Equal(out.Bytes(), bytes.Repeat([]byte{byte(n)}, int(n))) {
				t.Fatalf("accepted a stream the writer never produced")
			}
		} else if errors.Is(err, io.EOF) {
			t.Fatalf("WriteTo returned io.EOF")
		}
	})
}

// FuzzHandshakeMessages feeds arbitrary bytes to the handshake message
// decoders (length-prefixed framing, then each message type). Whatever
// decodes must encode back to the same bytes (one encoding per message).
func FuzzHandshakeMessages(f *testing.F) {
	hello := helloMsg{bitsPerStep: 1, eph: [32]byte{1}, nonce: [32]byte{2}}
	resp := responseMsg{bitsPerStep: 1, modulus: []byte{0xc5}, pub: []byte{8, 1, 18, 32}, sig: bytes.Repeat([]byte{3}, 64)}
	fin := finishMsg{pub: []byte{8, 1}, sig: []byte{4}}
	for _, b := range [][]byte{hello.marshal(), resp.marshal(), fin.marshal()} {
		f.Add(lengthPrefixed(uint32(len(b)), b))
		f.Add(lengthPrefixed(uint32(len(b)), b[:len(b)-1]))
		f.Add(lengthPrefixed(uint32(len(b)+1), append(bytes.Clone(b), 0)))
	}
	f.Add(lengthPrefixed(MaxHandshakeMessage+1, nil))
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		body, err := readMessage(bytes.NewReader(in))
		if err != nil {
			if len(in) >= 4 && len(in)-4 >= int(uint32(in[0])<<24|uint32(in[1])<<16|uint32(in[2])<<8|uint32(in[3])) &&
				!errors.Is(err, ErrMessageTooLarge) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("complete message refused: %v", err)
			}
			return
		}
		if len(body) > MaxHandshakeMessage {
			t.Fatalf("%d-byte body accepted", len(body))
		}
		if m, err := parseHello(body); err == nil && !bytes.Equal(m.marshal(), body) {
			t.Fatal("hello does not round-trip")
		}
		if m, err := parseResponse(body); err == nil && !bytes.Equal(m.marshal(), body) {
			t.Fatal("response does not round-trip")
		}
		if m, err := parseFinish(body); err == nil && !bytes.Equal(m.marshal(), body) {
			t.Fatal("finish does not round-trip")
		}
	})
}
