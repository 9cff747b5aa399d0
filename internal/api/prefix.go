package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// matchPrefix finds the one string of known that starts with prefix (a
// whole ID is its own prefix): tables show IDs shortened, and a short ID
// typed back must name exactly one. what names the kind for errors.
func matchPrefix(what, prefix string, known []string) (string, error) {
	if prefix == "" {
		return "", withStatus(http.StatusBadRequest, fmt.Errorf("empty %s", what))
	}
	var hits []string
	for _, s := range known {
		if strings.HasPrefix(s, prefix) && !slices.Contains(hits, s) {
			hits = append(hits, s)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return "", fmt.Errorf("no known %s starts with %q", what, prefix)
	}
	slices.Sort(hits)
	const show = 5
	list := strings.Join(hits[:min(len(hits), show)], ", ")
	if len(hits) > show {
		list += fmt.Sprintf(" and %d more", len(hits)-show)
	}
	return "", withStatus(http.StatusBadRequest, &ambiguousError{fmt.Errorf("%q is ambiguous: %d %ss start with it (give more characters): %s", prefix, len(hits), what, list)})
}

// ambiguousError is a prefix more than one ID starts with.
type ambiguousError struct{ error }

func (e *ambiguousError) Unwrap() error { return e.error }

func isAmbiguous(err error) bool {
	var a *ambiguousError
	return errors.As(err, &a)
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }
