package repl

import (
	"errors"
	"flag"
	"strings"
)

// splitWords splits a command line into words. Single and double quotes
// group words with spaces; a backslash escapes the next character outside
// single quotes.
func splitWords(line string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		inTok bool
		quote rune
	)
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == '\'':
			cur.WriteRune(c)
		case c == '\\':
			if i+1 >= len(rs) {
				return nil, errors.New("line ends with a backslash")
			}
			i++
			cur.WriteRune(rs[i])
			inTok = true
		case quote == '"':
			cur.WriteRune(c)
		case c == '"' || c == '\'':
			quote = c
			inTok = true
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			if inTok {
				words = append(words, cur.String())
				cur.Reset()
				inTok = false
			}
		default:
			cur.WriteRune(c)
			inTok = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	if inTok {
		words = append(words, cur.String())
	}
	return words, nil
}

// parseInterleaved parses flags that may appear before, between or after
// positional arguments ("get NAME -o PATH" as well as "get -o PATH NAME"),
// which flag.FlagSet alone does not allow. "--" ends the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag stops at the first non-flag word, or after "--".
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
