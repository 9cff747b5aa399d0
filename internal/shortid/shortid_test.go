package shortid

import (
	"errors"
	"strings"
	"testing"
)

func TestUniqueLen(t *testing.T) {
	for _, tc := range []struct {
		ids  []string
		min  int
		want int
	}{
		{[]string{"abcdef1", "abcdef2", "xyz"}, 3, 7},
		{[]string{"abcdef1", "abcdef1"}, 3, 3},
		{nil, 10, 10},
		{[]string{"ab", "abc"}, 1, 3},
	} {
		if got := UniqueLen(tc.ids, tc.min); got != tc.want {
			t.Errorf("UniqueLen(%q, %d) = %d, want %d", tc.ids, tc.min, got, tc.want)
		}
	}
	short := Shortener([]string{"bafkreiaaaa1", "bafkreiaaab2"}, 4, false)
	if got := short("bafkreiaaa1x"); got != "bafkreiaaa1" {
		t.Errorf("short = %q", got)
	}
	if got := Shortener(nil, 4, true)("bafkreiaaaa1"); got != "bafkreiaaaa1" {
		t.Errorf("wide = %q", got)
	}
}

func TestMatch(t *testing.T) {
	known := []string{"bafkreiabc", "bafkreiabd", "bafkreixyz", "bafkreixyz"}
	if got, err := Match("CID", "bafkreix", known); err != nil || got != "bafkreixyz" {
		t.Errorf("unique prefix: %q, %v", got, err)
	}
	if got, err := Match("CID", "bafkreiabc", known); err != nil || got != "bafkreiabc" {
		t.Errorf("whole ID: %q, %v", got, err)
	}
	_, err := Match("CID", "bafkreiab", known)
	if !IsAmbiguous(err) || !strings.Contains(err.Error(), "bafkreiabc") || !strings.Contains(err.Error(), "bafkreiabd") {
		t.Errorf("ambiguous: %v", err)
	}
	if _, err := Match("CID", "nope", known); err == nil || IsAmbiguous(err) {
		t.Errorf("no match: %v", err)
	}
	if _, err := Match("CID", "", known); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty: %v", err)
	}
}
