// Package names holds the one rule for file names that come from other
// peers or go into the share folder, shared by internal/share (publishing,
// catalogs, announcements) and internal/transfer (download names), so the
// two can never disagree. It imports nothing of the project but proto.
package names

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/p2pshare/p2pshare/internal/proto"
)

// ErrBad is wrapped by every error of Check.
var ErrBad = errors.New("bad file name")

// Check reports whether name is acceptable as a shared file name:
//   - a base name only: not "", "." or "..", no path separator, not absolute;
//   - at most proto.MaxNameLen bytes of valid UTF-8;
//   - nothing that can rewrite or hide text on a terminal: no rune of the
//     Unicode categories Cc (controls, C0 and C1, NUL), Cf (format: bidi
//     overrides and isolates such as U+202E, zero-width U+200B–U+200F,
//     U+FEFF, soft hyphen), Zl (U+2028) or Zp (U+2029);
//   - no leading or trailing white space (U+0020, NBSP, ideographic space...);
//   - no trailing dot, and not a device name Windows reserves (see
//     windowsReserved): a download is saved under the name, and on Windows
//     "aux.txt" opens a device and "a." is silently saved as "a", so such a
//     name would write somewhere else than the file it names.
//
// Spaces inside a name and non-ASCII letters are fine. Errors wrap ErrBad.
func Check(name string) error {
	why := ""
	switch {
	case name == "":
		why = "empty"
	case name == "." || name == "..":
		why = "not a file name"
	case len(name) > proto.MaxNameLen:
		why = fmt.Sprintf("longer than %d bytes", proto.MaxNameLen)
	case filepath.IsAbs(name) || strings.HasPrefix(name, "/"):
		why = "absolute path"
	case strings.ContainsAny(name, `/\`):
		why = "contains a path separator"
	case strings.ContainsRune(name, 0):
		why = "contains NUL"
	case !utf8.ValidString(name):
		why = "not valid UTF-8"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		why = "contains a control character"
	case strings.IndexFunc(name, invisible) >= 0:
		r, _ := utf8.DecodeRuneInString(name[strings.IndexFunc(name, invisible):])
		why = fmt.Sprintf("contains the invisible or formatting character %U", r)
	case startsWithSpace(name) || endsWithSpace(name):
		why = "leading or trailing space"
	case filepath.Base(name) != name || filepath.VolumeName(name) != "":
		why = "not a base name"
	case strings.HasSuffix(name, "."):
		why = "ends with a dot (Windows drops trailing dots)"
	case windowsReserved(name):
		why = "a device name reserved on Windows"
	}
	if why != "" {
		return fmt.Errorf("%w %q: %s", ErrBad, name, why)
	}
	return nil
}

// invisible: format characters and line/paragraph separators (controls
// are checked before).
func invisible(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}

func startsWithSpace(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsSpace(r)
}

func endsWithSpace(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return unicode.IsSpace(r)
}

// windowsReserved reports whether Windows treats name as a device rather
// than a file, in every folder: CON, PRN, AUX, NUL, CONIN$, CONOUT$,
// COM0-COM9 and LPT0-LPT9 (and COM¹²³, LPT¹²³, which Windows counts as
// digits), in any case, alone or followed by an extension ("nul.txt",
// "com1.tar.gz": Windows looks at the part before the first dot) and with
// spaces before the dot ("con .txt"), which Windows strips. The check is
// made on every platform: names travel between peers, and a file published
// on Linux is downloaded on Windows.
func windowsReserved(name string) bool {
	stem, _, _ := strings.Cut(name, ".")
	stem = strings.ToUpper(strings.TrimRight(stem, " "))
	switch stem {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if rest, ok := strings.CutPrefix(stem, "COM"); ok {
		return deviceDigit(rest)
	}
	if rest, ok := strings.CutPrefix(stem, "LPT"); ok {
		return deviceDigit(rest)
	}
	return false
}

// deviceDigit: the number of a COM or LPT device.
func deviceDigit(s string) bool {
	return len(s) == 1 && s[0] >= '0' && s[0] <= '9' || s == "¹" || s == "²" || s == "³"
}
