package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"time"
)

// Browser login. A browser cannot send the bearer token on the page loads
// and EventSource streams it makes, so it logs in once through a link that
// `p2pshare ui` asks for with the token (POST /api/v1/login-link): GET
// /login?once=NONCE, the nonce single-use and short-lived, sets a session
// cookie that stands for the token from then on.
const (
	// LoginLinkTTL is how long a login link stays usable.
	LoginLinkTTL = 2 * time.Minute
	// maxPendingLogins bounds unused login links kept (a script asking
	// for links in a loop cannot grow memory without bound).
	maxPendingLogins = 64
	// maxSessions bounds browser sessions; the oldest goes first.
	maxSessions = 64
	// sessionCookiePrefix + the API's port names the cookie: cookies are
	// not scoped by port, so two nodes on one machine (127.0.0.1:A and
	// 127.0.0.1:B) must not overwrite each other's.
	sessionCookiePrefix = "p2pshare_session_"
)

// LoginLink is the answer of POST /api/v1/login-link.
type LoginLink struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

// logins holds pending login nonces and live sessions, both by the
// SHA-256 of their secret (a lookup cannot leak the secret's bytes
// through timing).
type logins struct {
	mu       sync.Mutex
	now      func() time.Time
	pending  map[[32]byte]time.Time // nonce -> expiry
	sessions map[[32]byte]time.Time // session -> created
}

func newLogins() *logins {
	return &logins{now: time.Now, pending: map[[32]byte]time.Time{}, sessions: map[[32]byte]time.Time{}}
}

func randomSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newNonce makes a login nonce valid for LoginLinkTTL.
func (l *logins) newNonce() (string, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for k, exp := range l.pending {
		if !now.Before(exp) {
			delete(l.pending, k)
		}
	}
	if len(l.pending) >= maxPendingLogins {
		dropOldest(l.pending)
	}
	n := randomSecret()
	exp := now.Add(LoginLinkTTL)
	l.pending[sha256.Sum256([]byte(n))] = exp
	return n, exp
}

// redeem consumes a nonce (it is gone even when expired) and, if it was
// valid, opens a session and returns its secret.
func (l *logins) redeem(nonce string) (string, bool) {
	k := sha256.Sum256([]byte(nonce))
	l.mu.Lock()
	defer l.mu.Unlock()
	exp, ok := l.pending[k]
	delete(l.pending, k)
	now := l.now()
	if !ok || !now.Before(exp) {
		return "", false
	}
	if len(l.sessions) >= maxSessions {
		dropOldest(l.sessions)
	}
	sess := randomSecret()
	l.sessions[sha256.Sum256([]byte(sess))] = now
	return sess, true
}

func (l *logins) valid(session string) bool {
	if session == "" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.sessions[sha256.Sum256([]byte(session))]
	return ok
}

func dropOldest(m map[[32]byte]time.Time) {
	var oldest [32]byte
	var t time.Time
	first := true
	for k, v := range m {
		if first || v.Before(t) {
			oldest, t, first = k, v, false
		}
	}
	delete(m, oldest)
}

func (s *Server) cookieName() string { return sessionCookiePrefix + s.port }

// sessionOK: the request carries a live session cookie.
func (s *Server) sessionOK(r *http.Request) bool {
	c, err := r.Cookie(s.cookieName())
	return err == nil && s.logins.valid(c.Value)
}

func (s *Server) handleLoginLink(w http.ResponseWriter, r *http.Request) {
	if !s.tokenOK(r.Header.Get("Authorization")) {
		// A browser session must not mint more sessions: only the
		// token's holder hands out links.
		writeError(w, http.StatusForbidden, errors.New("login links are made with the API token only (p2pshare ui)"))
		return
	}
	nonce, exp := s.logins.newNonce()
	writeJSON(w, http.StatusOK, LoginLink{URL: s.URL() + "/login?once=" + nonce, Expires: exp.UTC()})
}

// handleLogin redeems a login link: it sets the session cookie and sends
// the browser to the UI.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, errors.New("login links are opened with GET"))
		return
	}
	sess, ok := s.logins.redeem(r.URL.Query().Get("once"))
	if !ok {
		servePage(w, http.StatusForbidden, "This login link is not valid: it was used already, has expired (links last 2 minutes) or belongs to a node that has restarted.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(), Value: sess, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
