package api

import (
	"errors"
	"net/http"
	"slices"

	"github.com/p2pshare/p2pshare/internal/shortid"
)

// matchPrefix finds the one string of known that starts with prefix (a
// whole ID is its own prefix; see internal/shortid, which the prompt uses
// too). An empty or ambiguous prefix is the client's mistake (400).
func matchPrefix(what, prefix string, known []string) (string, error) {
	full, err := shortid.Match(what, prefix, known)
	if shortid.IsAmbiguous(err) || errors.Is(err, shortid.ErrEmpty) {
		return "", withStatus(http.StatusBadRequest, err)
	}
	return full, err
}

func isAmbiguous(err error) bool { return shortid.IsAmbiguous(err) }

func contains(list []string, s string) bool { return slices.Contains(list, s) }
