package repl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// printJSON prints v, a listing in the local API's types (internal/api
// builds them, for its answers and for this), as one indented JSON
// document: with --json a script reads the prompt's listings as it reads
// the API's, with full IDs. encoding/json escapes the control characters
// below U+0020; DEL and the C1 controls (U+007F to U+009F), which it
// leaves as they are and a terminal may act on, are escaped here too (a
// peer's addresses are its own text), which leaves the JSON's meaning
// unchanged: they can only occur inside strings.
func (c *call) printJSON(v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	out := make([]byte, 0, b.Len())
	for s := b.Bytes(); len(s) > 0; {
		r, n := utf8.DecodeRune(s)
		if r >= 0x7f && r <= 0x9f {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, s[:n]...)
		}
		s = s[n:]
	}
	_, err := c.out.Write(out)
	return err
}

// listFlagsJSON parses the flags of a listing that --json prints as the
// local API answers it: --wide and --json, no positional arguments.
func (c *call) listFlagsJSON(args []string, api string) (wide, asJSON bool, err error) {
	fs := c.flags()
	w := fs.Bool("wide", false, "print CIDs and peer IDs in full")
	j := fs.Bool("json", false, "print the list as JSON, as the local API answers "+api)
	pos, err := parseInterleaved(fs, args)
	if err == nil {
		err = noArgs(pos)
	}
	return *w, *j, err
}
