package repl

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/p2pshare/p2pshare/internal/transfer"
)

// syncBuffer is a terminal stand-in the bar's goroutine writes to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lastFrame is the last line the bar drew.
func lastFrame(s string) string {
	s = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`).ReplaceAllString(s, "\n")
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

// Before the manifest the size is unknown: a get that ends then (an
// error, no provider) draws no empty "0 B / 0 B" bar.
func TestProgressBarNotDrawnBeforeSizeKnown(t *testing.T) {
	var term syncBuffer
	var out bytes.Buffer
	pb := newProgressBar(&out, &term, 80, testCID(t, "x"), "big.bin")
	pb.update(transfer.Progress{Providers: 1})
	pb.update(transfer.Progress{})
	pb.done()
	if s := term.String(); s != "" {
		t.Fatalf("bar drawn before the size was known: %q", s)
	}
}

// The last report comes when every provider is idle: the finished bar
// keeps the count of those that sent the file, and nothing is drawn after
// done.
func TestProgressBarKeepsProviderCountAtEnd(t *testing.T) {
	var term syncBuffer
	var out bytes.Buffer
	pb := newProgressBar(&out, &term, 80, testCID(t, "x"), "big2.bin")
	const total = 8 << 20
	for done := int64(1 << 20); done < total; done += 1 << 20 {
		pb.update(transfer.Progress{Total: total, Done: done, Providers: 3})
	}
	pb.update(transfer.Progress{Total: total, Done: total, Providers: 0})
	pb.done()
	frame := lastFrame(term.String())
	if !strings.Contains(frame, "8.0 MiB / 8.0 MiB") || !strings.Contains(frame, "3 provider(s)") {
		t.Fatalf("final frame %q: want 8.0 MiB / 8.0 MiB and 3 provider(s)", frame)
	}
	n := len(term.String())
	pb.update(transfer.Progress{Total: total, Done: total, Providers: 0})
	if len(term.String()) != n {
		t.Fatal("the bar was drawn after done")
	}
}

// A folder's bar counts its files as well as its bytes.
func TestProgressBarCountsFolderFiles(t *testing.T) {
	var term syncBuffer
	var out bytes.Buffer
	pb := newProgressBar(&out, &term, 120, testCID(t, "x"), "photos")
	pb.update(transfer.Progress{Total: 4 << 20, Done: 1 << 20, Providers: 1, Files: 400, FilesDone: 100})
	pb.update(transfer.Progress{Total: 4 << 20, Done: 4 << 20, Providers: 1, Files: 400, FilesDone: 400})
	pb.done()
	if frame := lastFrame(term.String()); !strings.Contains(frame, "400/400 files") {
		t.Fatalf("final frame %q: want 400/400 files", frame)
	}
}
