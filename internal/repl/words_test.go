package repl

import (
	"flag"
	"io"
	"reflect"
	"testing"
)

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"", nil, false},
		{"   ", nil, false},
		{"get a.txt", []string{"get", "a.txt"}, false},
		{"get  a.txt\r", []string{"get", "a.txt"}, false},
		{`publish "my file.txt" b`, []string{"publish", "my file.txt", "b"}, false},
		{`publish 'it''s'`, []string{"publish", "its"}, false},
		{`publish my\ file`, []string{"publish", "my file"}, false},
		{`get ""`, []string{"get", ""}, false},
		{`publish "open`, nil, true},
		{`publish x\`, nil, true},
	}
	for _, tt := range tests {
		got, err := splitWords(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("splitWords(%q) error = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitWords(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseInterleaved(t *testing.T) {
	tests := []struct {
		args    []string
		pos     []string
		out     string
		from    string
		wantErr bool
	}{
		{[]string{"a"}, []string{"a"}, "", "", false},
		{[]string{"a", "-o", "x"}, []string{"a"}, "x", "", false},
		{[]string{"-o", "x", "a"}, []string{"a"}, "x", "", false},
		{[]string{"a", "--from", "P", "b", "-o=y"}, []string{"a", "b"}, "y", "P", false},
		{[]string{"--", "-o"}, []string{"-o"}, "", "", false},
		{[]string{"a", "-nope"}, nil, "", "", true},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("get", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		out := fs.String("o", "", "")
		from := fs.String("from", "", "")
		pos, err := parseInterleaved(fs, tt.args)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: error = %v", tt.args, err)
			continue
		}
		if tt.wantErr {
			continue
		}
		if !reflect.DeepEqual(pos, tt.pos) || *out != tt.out || *from != tt.from {
			t.Errorf("%q: pos=%q o=%q from=%q", tt.args, pos, *out, *from)
		}
	}
}
