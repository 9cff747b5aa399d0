package repl

import (
	"flag"
	"time"
)

// Helpers the command-line client (cmd/node) shares with the prompt, so
// that both parse arguments and print alike.

// ParseInterleaved parses flags that may come before, between or after
// the positional arguments, and returns the positional ones.
func ParseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	return parseInterleaved(fs, args)
}

// HumanBytes prints a byte count in binary units: 5.0 MiB.
func HumanBytes(n int64) string { return humanBytes(n) }

// TermSafe escapes what a peer could use to take over a terminal.
func TermSafe(s string) string { return termSafe(s) }

// Ago says how long ago in its largest unit: 5s ago, 3m ago.
func Ago(d time.Duration) string { return ago(d) }
