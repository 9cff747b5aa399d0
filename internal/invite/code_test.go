package invite

import (
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/schollz/pake/v3"
)

func TestWordList(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range wordList {
		if w == "" || strings.Trim(w, "abcdefghijklmnopqrstuvwxyz") != "" {
			t.Errorf("word %q: want lowercase ASCII letters", w)
		}
		if seen[w] {
			t.Errorf("word %q twice", w)
		}
		seen[w] = true
	}
}

func TestNewCodeParses(t *testing.T) {
	taken := map[string]bool{}
	for range 200 {
		c, err := newCode(func(np string) bool { return taken[np] })
		if err != nil {
			t.Fatal(err)
		}
		if taken[c.Nameplate] {
			t.Fatalf("nameplate %s reused", c.Nameplate)
		}
		taken[c.Nameplate] = true
		got, err := ParseCode(c.String())
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if got.String() != c.String() {
			t.Fatalf("parsed %s as %s", c, got)
		}
	}
}

func TestParseCode(t *testing.T) {
	w := wordList
	good := map[string]string{
		"42-" + w[0] + "-" + w[1] + "-" + w[2]:                      "42-" + w[0] + "-" + w[1] + "-" + w[2],
		"  0042 " + strings.ToUpper(w[3]) + " " + w[4] + "-" + w[5]: "42-" + w[3] + "-" + w[4] + "-" + w[5],
		"9999--" + w[6] + "--" + w[7] + "-" + w[8] + "\t":           "9999-" + w[6] + "-" + w[7] + "-" + w[8],
	}
	for in, want := range good {
		c, err := ParseCode(in)
		if err != nil || c.String() != want {
			t.Errorf("ParseCode(%q) = %v, %v; want %s", in, c, err, want)
		}
	}
	bad := map[string]string{
		"":                                    "want a number and 3 words",
		"42-" + w[0] + "-" + w[1]:             "want a number and 3 words",
		"42-" + w[0] + "-" + w[1] + "-xyzzy":  `"xyzzy" is not one of the code words`,
		"0-" + w[0] + "-" + w[1] + "-" + w[2]: "out of range",
		"12345-" + w[0] + "-" + w[1] + "-" + w[2]: "1 to 4 digits",
		"+42-" + w[0] + "-" + w[1] + "-" + w[2]:   "1 to 4 digits",
		strings.Repeat("a", maxCodeLen+1):         "too long",
	}
	for in, want := range bad {
		_, err := ParseCode(in)
		if !errors.Is(err, ErrBadCode) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCode(%q) = %v; want an error saying %q", in, err, want)
		}
	}
}

// The password depends on the whole code: another word or another
// nameplate is another password.
func TestPasswordBindsWholeCode(t *testing.T) {
	c := Code{Nameplate: "42", Words: []string{wordList[0], wordList[1], wordList[2]}}
	p := string(password(c))
	for _, o := range []Code{
		{Nameplate: "43", Words: c.Words},
		{Nameplate: "42", Words: []string{wordList[0], wordList[1], wordList[3]}},
		{Nameplate: "42", Words: []string{wordList[1], wordList[0], wordList[2]}},
	} {
		if string(password(o)) == p {
			t.Errorf("%s and %s share a password", c, o)
		}
	}
}

// malformedPake are PAKE messages a hostile peer might send; the library
// would panic on several of them if it saw them unchecked.
func malformedPake(t testing.TB) map[string][]byte {
	t.Helper()
	big1 := new(big.Int).Lsh(big.NewInt(1), 300)
	mk := func(m map[string]any) []byte {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return map[string][]byte{
		"null":          []byte("null"),
		"empty object":  []byte("{}"),
		"not json":      []byte("\x00\xff garbage"),
		"array":         []byte("[1,2,3]"),
		"role only":     []byte(`{"Role":0}`),
		"wrong role":    mk(map[string]any{"Role": 1, "Xᵤ": 1, "Xᵥ": 2}),
		"x missing":     mk(map[string]any{"Role": 0, "Xᵥ": 2}),
		"negative":      mk(map[string]any{"Role": 0, "Xᵤ": -5, "Xᵥ": 2}),
		"huge":          mk(map[string]any{"Role": 0, "Xᵤ": big1, "Xᵥ": big1}),
		"not on curve":  mk(map[string]any{"Role": 0, "Xᵤ": 1, "Xᵥ": 2}),
		"zero point":    mk(map[string]any{"Role": 0, "Xᵤ": 0, "Xᵥ": 0}),
		"string coords": []byte(`{"Role":0,"Xᵤ":"1","Xᵥ":"2"}`),
	}
}

func TestMalformedPakeRefused(t *testing.T) {
	for name, msg := range malformedPake(t) {
		b, err := pake.InitCurve(password(Code{Nameplate: "1", Words: []string{"a", "b", "c"}}), roleInviter, pakeCurve)
		if err != nil {
			t.Fatal(err)
		}
		if err := pakeUpdate(b, msg, roleAcceptor); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if b.HaveSessionKey() {
			t.Errorf("%s: a session key was made", name)
		}
	}
}

// The honest exchange through the helpers: both sides get one key and
// matching confirmations; a different password gives different ones.
func TestPakeRoundTrip(t *testing.T) {
	c := Code{Nameplate: "7", Words: []string{wordList[9], wordList[8], wordList[7]}}
	run := func(pwA, pwB []byte) (confirmations, confirmations) {
		a, err := pake.InitCurve(pwA, roleAcceptor, pakeCurve)
		if err != nil {
			t.Fatal(err)
		}
		b, err := pake.InitCurve(pwB, roleInviter, pakeCurve)
		if err != nil {
			t.Fatal(err)
		}
		if err := pakeUpdate(b, a.Bytes(), roleAcceptor); err != nil {
			t.Fatal(err)
		}
		if err := pakeUpdate(a, b.Bytes(), roleInviter); err != nil {
			t.Fatal(err)
		}
		ka, _ := a.SessionKey()
		kb, _ := b.SessionKey()
		ca, err := confirm(ka, c.Nameplate, "inviter", "acceptor", a.Bytes(), b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		cb, err := confirm(kb, c.Nameplate, "inviter", "acceptor", a.Bytes(), b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return ca, cb
	}
	ca, cb := run(password(c), password(c))
	if string(ca.acceptor) != string(cb.acceptor) || string(ca.inviter) != string(cb.inviter) {
		t.Fatal("same code, different confirmations")
	}
	if string(ca.acceptor) == string(ca.inviter) {
		t.Fatal("the two sides' confirmations are the same value")
	}
	other := Code{Nameplate: "7", Words: []string{wordList[9], wordList[8], wordList[6]}}
	ca, cb = run(password(c), password(other))
	if string(ca.acceptor) == string(cb.acceptor) || string(ca.inviter) == string(cb.inviter) {
		t.Fatal("different codes, same confirmations")
	}
}

func FuzzPakeUpdate(f *testing.F) {
	for _, m := range malformedPake(f) {
		f.Add(m)
	}
	a, err := pake.InitCurve([]byte("pw"), roleAcceptor, pakeCurve)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(a.Bytes())
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, role := range []int{roleAcceptor, roleInviter} {
			p, err := pake.InitCurve([]byte("pw"), 1-role, pakeCurve)
			if err != nil {
				t.Fatal(err)
			}
			pakeUpdate(p, msg, role) // must not panic
		}
	})
}
