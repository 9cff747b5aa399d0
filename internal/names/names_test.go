package names

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a.txt", true},
		{"report 2024 (final).pdf", true},
		{"ünïcode-名前.txt", true},
		{"Ελληνικά αρχεία.zip", true},
		{"שלום.txt", true}, // right-to-left letters are letters, not overrides
		{".hidden", true},
		{strings.Repeat("x", 255), true},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{`a\b`, false},
		{"/etc/passwd", false},
		{"a\x00b", false},
		{"esc\x1b[31m", false},
		{"del\x7f", false},
		{"\xff\xfe", false},
		{"ok\xc3", false}, // truncated UTF-8
		{strings.Repeat("x", 256), false},
		{"photo\u202egnp.exe", false}, // shows as "photoexe.png"
		{"a\u202ab", false},
		{"a\u2066b", false},
		{"a\u200bb", false},
		{"a\u200cb", false},
		{"a\u200db", false},
		{"a\u200eb", false},
		{"a\u200fb", false},
		{"a\u2028b", false},
		{"a\u2029b", false},
		{"\ufeffa", false},
		{"a\u0085b", false},
		{"a\u00adb", false},
		{" a", false},
		{"a ", false},
		{"a\u00a0", false},
		{"\u3000a", false},
		{"a\tb", false},
		// Windows: device names, with or without extension, any case,
		// spaces before the dot; trailing dots.
		{"CON", false},
		{"con", false},
		{"aux.txt", false},
		{"Nul.tar.gz", false},
		{"prn.", false},
		{"con .txt", false},
		{"COM1", false},
		{"com9.log", false},
		{"COM0", false},
		{"LPT1.txt", false},
		{"lpt9", false},
		{"COM¹", false},
		{"LPT³.txt", false},
		{"CONIN$", false},
		{"conout$.txt", false},
		{"a.", false},
		{"a...", false},
		{"report.pdf.", false},
		// Not reserved: longer or shorter stems, device names inside.
		{"CONSOLE", true},
		{"con-notes.txt", true},
		{"com10", true},
		{"COM", true},
		{"lpt", true},
		{"my aux.txt", true},
		{"x.con", true},
		{".con", true},
		{"nul_file", true},
		{"a.b.c", true},
	} {
		err := Check(tc.name)
		if tc.ok != (err == nil) {
			t.Errorf("Check(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBad) {
			t.Errorf("Check(%q) = %v, does not wrap ErrBad", tc.name, err)
		}
	}
}
