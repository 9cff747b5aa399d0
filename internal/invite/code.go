package invite

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// A code is NAMEPLATE-WORD-WORD-WORD, such as 4821-guitarist-revenge-tiger
// (magic-wormhole's shape). The nameplate is public: it only says which
// invitation is meant, and the rendezvous key on the DHT is derived from it
// alone. The words are the secret the PAKE proves knowledge of: three words
// of 256 are 24 bits, and since each guess needs a live exchange with the
// inviter (the PAKE gives an eavesdropper or a guesser nothing to test
// offline), MaxAttempts guesses per invitation succeed with probability
// 3 in 16.7 million before the code is burnt.
const (
	// CodeWords is the number of secret words in a code.
	CodeWords = 3
	// maxNameplate bounds the nameplate (1 to 4 digits). Nameplates are
	// random, not allocated by a server, so two invitations pending at the
	// same time in one DHT could share one; 1 in 9999 keeps that rare, and
	// a collision only costs the other invitation one attempt.
	maxNameplate = 9999
	// maxCodeLen bounds what ParseCode looks at.
	maxCodeLen = 128
)

// ErrBadCode is wrapped by ParseCode's errors.
var ErrBadCode = errors.New("not an invitation code")

// Code is a parsed invitation code.
type Code struct {
	Nameplate string   // decimal, no leading zero
	Words     []string // CodeWords words of wordList
}

// String is the code as a person types it.
func (c Code) String() string {
	return c.Nameplate + "-" + strings.Join(c.Words, "-")
}

// secret is the part the PAKE proves knowledge of.
func (c Code) secret() string { return strings.Join(c.Words, "-") }

var wordIndex = func() map[string]int {
	m := make(map[string]int, len(wordList))
	for i, w := range wordList {
		m[w] = i
	}
	return m
}()

// newCode makes a random code whose nameplate taken does not refuse.
func newCode(taken func(nameplate string) bool) (Code, error) {
	for range 100 {
		n, err := rand.Int(rand.Reader, big.NewInt(maxNameplate))
		if err != nil {
			return Code{}, fmt.Errorf("random nameplate: %w", err)
		}
		np := strconv.FormatInt(n.Int64()+1, 10)
		if taken(np) {
			continue
		}
		c := Code{Nameplate: np, Words: make([]string, CodeWords)}
		var b [CodeWords]byte
		if _, err := rand.Read(b[:]); err != nil {
			return Code{}, fmt.Errorf("random words: %w", err)
		}
		for i := range c.Words {
			c.Words[i] = wordList[b[i]]
		}
		return c, nil
	}
	return Code{}, errors.New("no free nameplate: too many pending invitations")
}

// ParseCode reads a code as typed: case and surrounding space do not
// matter, and words may be separated by dashes or spaces.
func ParseCode(s string) (Code, error) {
	if len(s) > maxCodeLen {
		return Code{}, fmt.Errorf("%w: too long", ErrBadCode)
	}
	parts := strings.FieldsFunc(strings.ToLower(strings.TrimSpace(s)), func(r rune) bool {
		return r == '-' || r == ' ' || r == '\t'
	})
	if len(parts) != 1+CodeWords {
		return Code{}, fmt.Errorf("%w: want a number and %d words, like 42-%s-%s-%s",
			ErrBadCode, CodeWords, wordList[10], wordList[200], wordList[99])
	}
	np, err := parseNameplate(parts[0])
	if err != nil {
		return Code{}, err
	}
	c := Code{Nameplate: np}
	for _, w := range parts[1:] {
		if _, ok := wordIndex[w]; !ok {
			return Code{}, fmt.Errorf("%w: %q is not one of the code words (check the spelling)", ErrBadCode, w)
		}
		c.Words = append(c.Words, w)
	}
	return c, nil
}

// parseNameplate checks a nameplate and returns it in canonical form.
func parseNameplate(s string) (string, error) {
	if s == "" || len(s) > 4 || strings.Trim(s, "0123456789") != "" {
		return "", fmt.Errorf("%w: it starts with a number of 1 to 4 digits, not %q", ErrBadCode, s)
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > maxNameplate {
		return "", fmt.Errorf("%w: nameplate %q out of range", ErrBadCode, s)
	}
	return strconv.Itoa(n), nil
}
