package repl

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/internal/shortid"
	"github.com/p2pshare/p2pshare/internal/ticket"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

// A piped script whose commands fail makes Run report it (the process
// exits non-zero), after running every line.
func TestRunPipedReportsFailures(t *testing.T) {
	r := New(Deps{})
	var out bytes.Buffer
	err := r.runPiped(context.Background(), strings.NewReader("echo a\nnosuch\necho 'open\necho b\n"), &out)
	if !errors.Is(err, ErrCommandsFailed) || !strings.HasPrefix(err.Error(), "2 ") {
		t.Fatalf("runPiped = %v, want 2 failed commands", err)
	}
	if !strings.Contains(out.String(), "b\n") {
		t.Fatalf("the script stopped at the first failure: %q", out.String())
	}
	out.Reset()
	if err := r.runPiped(context.Background(), strings.NewReader("echo a\n# comment\n\nhelp echo\n"), &out); err != nil {
		t.Fatalf("a script without failures: %v\n%s", err, out.String())
	}
	// Failures before quit count too.
	err = r.runPiped(context.Background(), strings.NewReader("help nosuch\nquit\necho never\n"), &out)
	if !errors.Is(err, ErrCommandsFailed) {
		t.Fatalf("failure then quit: %v", err)
	}
}

func TestCompleteLineQuotes(t *testing.T) {
	names := []string{"my file.txt", "my other.txt", "it's.bin", `say "hi"`, "plain.bin"}
	cands := func(words []string, _ string) []string {
		if len(words) == 0 {
			return []string{"get"}
		}
		return names
	}
	tests := []struct {
		head string
		want []string
	}{
		{"get my", []string{`\ file.txt `, `\ other.txt `}},
		{"get my\\ f", []string{"ile.txt "}},
		{"get ", []string{"'my file.txt' ", "'my other.txt' ", `'it'\''s.bin' `, `'say "hi"' `, "plain.bin "}},
		{"get 'my o", []string{"ther.txt' "}},
		{`get "say \"`, []string{`hi\"" `}},
		{"get it", []string{`\'s.bin `}},
		{"ge", []string{"t "}},
	}
	for _, tt := range tests {
		got, n := completeLine(tt.head, cands)
		var gs []string
		for _, g := range got {
			gs = append(gs, string(g))
		}
		if !slices.Equal(gs, tt.want) {
			t.Errorf("complete %q = %q, want %q", tt.head, gs, tt.want)
		}
		// Every completion, typed, gives back the name as one word.
		for _, g := range gs {
			words, err := splitWords(tt.head + g)
			if err != nil || len(words) == 0 {
				t.Errorf("%q + %q does not parse: %v", tt.head, g, err)
				continue
			}
			last := words[len(words)-1]
			if !slices.Contains(names, last) && last != "get" {
				t.Errorf("%q + %q parses to %q, not a name", tt.head, g, words)
			}
		}
		// The length covers the word as typed, quotes included.
		if st := lex(tt.head); st.inWord && n != len([]rune(tt.head))-st.start {
			t.Errorf("complete %q: length %d", tt.head, n)
		}
	}
}

func TestQuoteWordRoundTrip(t *testing.T) {
	for _, s := range []string{"a", "a b", "it's", `"x"`, `back\slash`, "tab\there", "", "'"} {
		words, err := splitWords("get " + quoteWord(s))
		if err != nil || len(words) != 2 || words[1] != s {
			t.Errorf("quoteWord(%q) = %s reads back as %q, %v", s, quoteWord(s), words, err)
		}
		for _, q := range []rune{0, '\'', '"'} {
			if q == 0 && s == "" {
				continue // nothing typed: completion quotes the whole word instead
			}
			open := map[rune]string{0: "", '\'': "'", '"': `"`}[q]
			words, err := splitWords("get " + open + continueWord(s, q))
			if err != nil || len(words) != 2 || words[1] != s {
				t.Errorf("continueWord(%q, %q) reads back as %q, %v", s, q, words, err)
			}
		}
	}
}

func TestGetCandidatesNamesFirst(t *testing.T) {
	names := []string{"b.txt", "a.txt"}
	cids := []string{"bafkreib", "bafkreia"}
	if got := getCandidates(slices.Clone(names), cids, ""); !slices.Equal(got, []string{"a.txt", "b.txt"}) {
		t.Errorf("empty prefix: %q, want names only", got)
	}
	if got := getCandidates(slices.Clone(names), cids, "bafk"); !slices.Equal(got, []string{"a.txt", "b.txt", "bafkreia", "bafkreib"}) {
		t.Errorf("CID prefix: %q, want names then CIDs", got)
	}
}

func testCID(t *testing.T, data string) cid.Cid {
	t.Helper()
	h, err := multihash.Sum([]byte(data), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

func TestShortIDsAndPrefixes(t *testing.T) {
	if n := shortid.UniqueLen([]string{"abcdef1", "abcdef2", "xyz"}, 3); n != 7 {
		t.Errorf("uniqueLen = %d, want 7", n)
	}
	if n := shortid.UniqueLen([]string{"abcdef1", "abcdef1"}, 3); n != 3 {
		t.Errorf("uniqueLen of duplicates = %d, want 3", n)
	}
	var cids []cid.Cid
	for _, s := range []string{"a", "b", "c", "d"} {
		cids = append(cids, testCID(t, s))
	}
	strs := cidStrings(cids)
	short := shortener(strs, minShortCID, false)
	for i, c := range cids {
		s := short(c.String())
		if len(s) < minShortCID || len(s) >= len(c.String()) {
			t.Errorf("short CID %q", s)
		}
		// A short CID read back names exactly its CID.
		got, err := resolveCID(s, cids)
		if err != nil || !got.Equals(cids[i]) {
			t.Errorf("resolveCID(%q) = %s, %v; want %s", s, got, err, cids[i])
		}
	}
	// "bafkrei" is shared by all: ambiguous, listing every candidate.
	_, err := resolveCID("bafkrei", cids)
	if !isAmbiguous(err) {
		t.Fatalf("resolveCID of a shared prefix: %v", err)
	}
	for _, s := range strs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("ambiguity error does not list %s: %v", s, err)
		}
	}
	// What the issue saw: a prefix matching nothing says so, not
	// "invalid cid: length greater than remaining number of bytes".
	_, err = resolveCID("bafkreie66", nil)
	if err == nil || !strings.Contains(err.Error(), `no known CID starts with "bafkreie66"`) {
		t.Errorf("unknown prefix: %v", err)
	}
	// A full CID needs no list.
	if got, err := resolveCID(strs[0], nil); err != nil || !got.Equals(cids[0]) {
		t.Errorf("full CID: %s, %v", got, err)
	}
	if short := shortener(strs, minShortCID, true); short(strs[0]) != strs[0] {
		t.Error("--wide shortened a CID")
	}
}

func TestResolvePeerPrefix(t *testing.T) {
	ids := []peer.ID{}
	for _, s := range []string{
		"12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf",
		"12D3KooWHbELPMWBbaSg9kjjxQDp5ANTeYqz1pUmvQfKd5Z5RFvC",
	} {
		id, err := peer.Decode(s)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	short := shortener(peerStrings(ids), minShortPeer, false)
	for _, id := range ids {
		s := short(id.String())
		if len(s) != minShortPeer {
			t.Errorf("short peer %q", s)
		}
		if got, err := resolvePeer(s, ids); err != nil || got != id {
			t.Errorf("resolvePeer(%q) = %s, %v", s, got, err)
		}
	}
	if _, err := resolvePeer("12D3KooW", ids); !isAmbiguous(err) {
		t.Errorf("shared prefix: %v", err)
	}
}

// help fits the width, breaking lines only between words.
func TestHelpWrapsAtWordBoundaries(t *testing.T) {
	r := New(Deps{})
	for _, width := range []int{80, 60} {
		r.cols = width
		var out bytes.Buffer
		if quit, failed := r.Exec(context.Background(), "help", &out); quit || failed {
			t.Fatalf("help failed: %s", out.String())
		}
		words := map[string]bool{}
		for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
			if n := len([]rune(line)); n > width {
				t.Errorf("width %d: line of %d: %q", width, n, line)
			}
			for _, w := range strings.Fields(line) {
				words[w] = true
			}
		}
		for _, c := range r.cmds {
			for _, w := range strings.Fields(c.help + " " + c.usage) {
				if !words[w] {
					t.Errorf("width %d: word %q of %s's help was broken or lost", width, w, c.name)
				}
			}
		}
		out.Reset()
		r.Exec(context.Background(), "help wait", &out)
		for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
			if len([]rune(line)) > width {
				t.Errorf("help wait, width %d: %q", width, line)
			}
		}
	}
}

func TestOutputPath(t *testing.T) {
	c := &call{r: New(Deps{})}
	dir := t.TempDir()
	id := testCID(t, "x")
	// An existing folder: into it, under the file's name.
	if got, err := c.outputPath(dir, id, "song.mp3"); err != nil || got != filepath.Join(dir, "song.mp3") {
		t.Errorf("-o FOLDER = %q, %v", got, err)
	}
	// ... never over a file there.
	os.WriteFile(filepath.Join(dir, "song.mp3"), []byte("mine"), 0o600)
	if _, err := c.outputPath(dir, id, "song.mp3"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("-o FOLDER holding the name: %v", err)
	}
	if got, err := c.outputPath(filepath.Join(dir, "new.bin"), id, "song.mp3"); err != nil || got != filepath.Join(dir, "new.bin") {
		t.Errorf("-o NEWFILE = %q, %v", got, err)
	}
	missing := filepath.Join(dir, "no", "such")
	if _, err := c.outputPath(filepath.Join(missing, "x"), id, "x"); err == nil || !strings.Contains(err.Error(), "folder "+missing+" does not exist") {
		t.Errorf("-o in a missing folder: %v", err)
	}
	file := filepath.Join(dir, "song.mp3")
	if _, err := c.outputPath(filepath.Join(file, "x"), id, "x"); err == nil || !strings.Contains(err.Error(), "is not a folder") {
		t.Errorf("-o under a file: %v", err)
	}
}

func TestDialReason(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp4", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	de := &swarm.DialError{DialErrors: []swarm.TransportError{{Address: multiaddr.StringCast("/ip4/127.0.0.1/tcp/1"), Cause: refused}}}
	if got := dialReason(de); got != "connection refused" {
		t.Errorf("dialReason = %q", got)
	}
	if got := dialReason(context.DeadlineExceeded); !strings.Contains(got, "no answer") {
		t.Errorf("dialReason(timeout) = %q", got)
	}
}

func TestSessionRateCountsOnlyFetchedBytes(t *testing.T) {
	// 100 MiB file, 90 MiB resumed from disk, 10 MiB fetched in 2 s.
	res := &transfer.Result{Size: 100 << 20, FetchedBytes: 10 << 20, Duration: 2 * time.Second}
	if got := sessionRate(res); got != 5<<20 {
		t.Errorf("rate = %v, want 5 MiB/s", got)
	}
}

func TestVersionOf(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}}
	if got := versionOf(bi); got != "v1.2.3, go1.26.8" {
		t.Errorf("tagged: %q", got)
	}
	bi.Main.Version = "(devel)"
	bi.Settings = []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}
	if got := versionOf(bi); got != "revision 0123456789ab+dirty, go1.26.8" {
		t.Errorf("from a checkout: %q", got)
	}
	if v := Version(); !strings.Contains(v, "go1") {
		t.Errorf("Version() = %q", v)
	}
}

// A ticket is taken wherever a CID is (cancel, unpublish): it names its CID.
func TestResolveCIDTakesTicket(t *testing.T) {
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPublicKey(pub)
	mh, _ := multihash.Sum([]byte("x"), multihash.SHA2_256, -1)
	c := cid.NewCidV1(cid.Raw, mh)
	sum := sha256.Sum256([]byte("x"))
	s, err := ticket.Ticket{CID: c, Name: "x.bin", Size: 1, SHA256: sum[:], Publisher: id}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := resolveCID(s, nil); err != nil || !got.Equals(c) {
		t.Fatalf("resolveCID(ticket) = %v, %v; want %s", got, err, c)
	}
	if _, err := resolveCID(s[:len(s)-4], nil); err == nil || !strings.Contains(err.Error(), "ticket") {
		t.Fatalf("damaged ticket: %v", err)
	}
}
