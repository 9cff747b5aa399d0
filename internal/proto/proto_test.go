package proto

import (
	"bytes"
	"io"
	"testing"
)

// A message followed by raw bytes on one stream: the raw bytes must still
// be readable from the same Reader after ReadMsg (no read-ahead loss).
func TestReaderKeepsBytesAfterMessage(t *testing.T) {
	var buf bytes.Buffer
	req := &FetchRequest{Kind: FetchRequest_CHUNKS, Cid: []byte("cid"), FirstChunk: 7, Count: 3}
	if err := WriteMsg(&buf, req); err != nil {
		t.Fatal(err)
	}
	raw := bytes.Repeat([]byte{0xAB}, 300<<10)
	buf.Write(raw)
	if err := WriteMsg(&buf, req); err != nil {
		t.Fatal(err)
	}

	r := NewReader(&buf, MaxRequestSize)
	var got FetchRequest
	if err := r.ReadMsg(&got); err != nil {
		t.Fatal(err)
	}
	if got.FirstChunk != 7 || got.Count != 3 || string(got.Cid) != "cid" {
		t.Fatalf("got %+v", &got)
	}
	rest := make([]byte, len(raw))
	if _, err := io.ReadFull(r, rest); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rest, raw) {
		t.Fatal("raw bytes after the message were lost or changed")
	}
	if err := r.ReadMsg(&got); err != nil {
		t.Fatalf("second message: %v", err)
	}
}

func TestReaderRejectsOversizedMessage(t *testing.T) {
	var buf bytes.Buffer
	big := &CatalogResponse{}
	for i := 0; i < 100; i++ {
		big.Entries = append(big.Entries, &CatalogEntry{Name: string(bytes.Repeat([]byte("n"), 200))})
	}
	if err := WriteMsg(&buf, big); err != nil {
		t.Fatal(err)
	}
	var got CatalogResponse
	if err := NewReader(&buf, MaxRequestSize).ReadMsg(&got); err == nil {
		t.Fatal("a message above the limit was accepted")
	}
}

func TestReaderRejectsGarbage(t *testing.T) {
	var got FetchRequest
	for _, in := range [][]byte{
		{},           // nothing
		{0x05, 0x01}, // truncated
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // huge varint
		{0x03, 0xff, 0xff, 0xff},                                     // invalid protobuf
	} {
		if err := NewReader(bytes.NewReader(in), MaxRequestSize).ReadMsg(&got); err == nil {
			t.Errorf("input %x accepted", in)
		}
	}
}

// The IDs other nodes know: a change here breaks compatibility with them,
// so it must be deliberate (a new version number).
func TestProtocolIDs(t *testing.T) {
	for got, want := range map[string]string{
		string(Prefix):           "/p2pshare",
		string(CatalogID):        "/p2pshare/catalog/1",
		string(FetchID):          "/p2pshare/fetch/1",
		string(DirectAnnounceID): "/p2pshare/announce-direct/1",
		AnnounceTopic:            "/p2pshare/announce/1",
	} {
		if got != want {
			t.Errorf("protocol ID %q, want %q", got, want)
		}
	}
}
