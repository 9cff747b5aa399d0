package share

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Publishing a file that was only touched (same bytes, new modification
// time) changes nothing for peers, and the file is served again: before,
// the record kept the old time and Open refused the file as changed.
func TestPublishOfTouchedFileKeepsServing(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), false)
	e := n.publish(t, "t.txt", "same bytes")
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(n.dir, "t.txt"), later, later); err != nil {
		t.Fatal(err)
	}
	res, err := n.s.Publish(context.Background(), "t.txt")
	if err != nil || !res[0].Already || !res[0].Entry.CID.Equals(e.CID) {
		t.Fatalf("publish of the touched file = %+v, %v; want Already, same CID", res, err)
	}
	_, f, err := n.s.Open(e.CID, someone)
	if err != nil {
		t.Fatalf("Open after publishing the touched file: %v", err)
	}
	f.Close()
	// Other content under the name withdraws the old; publishing a name
	// whose new content is already published under another name withdraws
	// what the name held, and publishes that content under both names.
	u := n.publish(t, "u.txt", "other bytes")
	n.write(t, "t.txt", "other bytes")
	if res, err := n.s.Publish(context.Background(), "t.txt"); err != nil || res[0].Already || !res[0].Entry.CID.Equals(u.CID) {
		t.Fatalf("publish = %+v, %v", res, err)
	}
	if pub := n.s.Published(); len(pub) != 1 || pub[0].Name != "u.txt" || !slices.Equal(pub[0].Aliases, []string{"t.txt"}) {
		t.Fatalf("published after t.txt took u.txt's content: %+v", pub)
	}
	if _, _, err := n.s.Open(e.CID, someone); !errors.Is(err, ErrNotPublished) {
		t.Fatalf("t.txt's old content still served: %v", err)
	}
}

// With the watcher, a touched file is noticed and its record follows,
// without a new CID or a withdrawal.
func TestWatcherFollowsTouchedFile(t *testing.T) {
	checkLeaks(t)
	n := newNode(t, loopbackHost(t), false, func(c *Config) { c.OnChange = OnChangeRepublish })
	e := n.publish(t, "t.txt", "same bytes")
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(n.dir, "t.txt"), later, later); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the record follows the touched file", func() bool {
		fs, err := n.s.Files()
		return err == nil && len(fs) == 1 && fs[0].Published && !fs[0].Changed
	})
	if pub := n.s.Published(); len(pub) != 1 || !pub[0].CID.Equals(e.CID) {
		t.Fatalf("published after a touch: %+v", pub)
	}
	_, f, err := n.s.Open(e.CID, someone)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestParseOnChange(t *testing.T) {
	for _, s := range []string{"republish", "withdraw"} {
		if o, err := ParseOnChange(s); err != nil || string(o) != s {
			t.Errorf("ParseOnChange(%q) = %q, %v", s, o, err)
		}
	}
	for _, s := range []string{"", "ignore", "Republish", "delete"} {
		if _, err := ParseOnChange(s); err == nil {
			t.Errorf("ParseOnChange(%q) accepted", s)
		}
	}
}
