package repl

import (
	"errors"
	"flag"
	"strings"
)

// lexState is where a command line's lexer stands at the end of the line:
// what the completer needs to know to extend the last word.
type lexState struct {
	words   []string // complete words
	start   int      // index (in runes) where the last word starts, when inWord
	partial string   // the word being typed, unquoted
	inWord  bool     // the line ends inside a word (partial may be "" after an opening quote)
	quote   rune     // the quote open at the end of the line, or 0
	escaped bool     // the line ends with a backslash
}

// lex splits a command line into words like a shell does: single quotes
// keep everything literally, double quotes keep spaces and allow backslash
// escapes, and outside quotes a backslash escapes the next character.
func lex(line string) lexState {
	var (
		st  lexState
		cur strings.Builder
	)
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		if !st.inWord {
			st.start = i
		}
		switch {
		case st.quote != 0 && c == st.quote:
			st.quote = 0
		case st.quote == '\'':
			cur.WriteRune(c)
		case c == '\\':
			st.inWord = true
			if i+1 >= len(rs) {
				st.escaped = true
				continue
			}
			i++
			cur.WriteRune(rs[i])
		case st.quote == '"':
			cur.WriteRune(c)
		case c == '"' || c == '\'':
			st.quote = c
			st.inWord = true
		case isSpace(c):
			if st.inWord {
				st.words = append(st.words, cur.String())
				cur.Reset()
				st.inWord = false
			}
		default:
			cur.WriteRune(c)
			st.inWord = true
		}
	}
	st.partial = cur.String()
	return st
}

func isSpace(c rune) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// splitWords splits a command line into words (see lex).
func splitWords(line string) ([]string, error) {
	st := lex(line)
	switch {
	case st.quote != 0:
		return nil, errors.New("unterminated quote")
	case st.escaped:
		return nil, errors.New("line ends with a backslash")
	}
	if st.inWord {
		st.words = append(st.words, st.partial)
	}
	return st.words, nil
}

// needsQuoting reports whether s must be quoted to come back from lex as
// one word.
func needsQuoting(s string) bool {
	return s == "" || strings.ContainsAny(s, " \t\r\n'\"\\")
}

// quoteWord returns s written so that lex reads it back as one word: as
// is when that is safe, else in single quotes (a single quote inside
// becomes '\”).
func quoteWord(s string) string {
	if !needsQuoting(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// continueWord returns the text that, typed after a word left open in the
// quoting state quote, adds rest to that word and ends it. It is what tab
// completion inserts: it can only append to the line.
func continueWord(rest string, quote rune) string {
	var b strings.Builder
	for _, c := range rest {
		switch quote {
		case '\'':
			if c == '\'' {
				b.WriteString(`'\''`)
				continue
			}
		case '"':
			if c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
		default:
			if isSpace(c) || c == '\'' || c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
		}
		b.WriteRune(c)
	}
	if quote != 0 {
		b.WriteRune(quote)
	}
	return b.String()
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
