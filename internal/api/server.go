package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/p2pshare/p2pshare/internal/p2p"
	"github.com/p2pshare/p2pshare/internal/people"
	"github.com/p2pshare/p2pshare/internal/share"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

// DefaultAddr is where the API listens unless told otherwise. When its
// port is taken (another node runs on this machine), the node takes a
// free port instead; every node writes its address to <data>/api.addr.
const DefaultAddr = "127.0.0.1:5890"

// DefaultMaxConcurrentGets is how many background downloads run at once;
// more wait in a queue.
const DefaultMaxConcurrentGets = 3

// maxBody bounds a request body: every request is a small JSON object.
const maxBody = 1 << 20

// Config is what a Server serves and where.
type Config struct {
	Node     *p2p.Node
	Share    *share.Service
	Transfer *transfer.Service
	People   *people.Book // names, groups, blocks shown with peers; nil: none
	DataDir  string       // api.token and api.addr live here
	// DownloadDir is where gets save by default (shown by id).
	DownloadDir string
	// Addr is host:port on a loopback address (or localhost); with
	// DefaultAddr, a taken port falls back to a free one.
	Addr              string
	MaxConcurrentGets int    // 0: DefaultMaxConcurrentGets
	Version           string // shown by GET /api/v1/id
	MaxUpload         int64  // bytes; 0: MaxUpload
	Log               *slog.Logger
}

// Server is a running API.
type Server struct {
	cfg   Config
	log   *slog.Logger
	token string
	addr  string // host:port actually listened on
	port  string

	ctx    context.Context // ends at Close: event streams, watchers, downloads
	cancel context.CancelFunc
	http   *http.Server
	served chan struct{} // closed when Serve has returned

	events *hub
	jobs   *jobs
	// pubChanged wakes the watcher of our published files after an API
	// publish or unpublish (it also looks every few seconds, for the
	// prompt's).
	pubChanged chan struct{}
	watchers   sync.WaitGroup
	logins     *logins

	closeOnce sync.Once
}

// Start loads (or makes) the token, listens, records the address in
// <data>/api.addr and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Node == nil || cfg.Share == nil || cfg.Transfer == nil || cfg.DataDir == "" {
		return nil, errors.New("api: Config needs Node, Share, Transfer and DataDir")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.MaxConcurrentGets <= 0 {
		cfg.MaxConcurrentGets = DefaultMaxConcurrentGets
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = MaxUpload
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	token, err := LoadOrCreateToken(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	l, err := listen(cfg.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: cfg.Log.With("component", "api"), token: token,
		addr: l.Addr().String(), served: make(chan struct{}),
		events: newHub(), pubChanged: make(chan struct{}, 1), logins: newLogins(),
	}
	_, s.port, _ = net.SplitHostPort(s.addr)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.jobs = newJobs(s, cfg.MaxConcurrentGets)
	if err := writeAddr(cfg.DataDir, s.addr); err != nil {
		l.Close()
		s.cancel()
		return nil, fmt.Errorf("record the API address: %w", err)
	}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	s.startWatchers()
	go func() {
		defer close(s.served)
		if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("API server stopped", "err", err)
		}
	}()
	s.log.Info("API listening", "addr", s.addr)
	return s, nil
}

// listen opens addr, which must be on loopback. DefaultAddr falls back to
// a free port when its own is taken.
func listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--api %q: want HOST:PORT, e.g. %s (or off): %w", addr, DefaultAddr, err)
	}
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("--api %q: the API only listens on a loopback address (127.0.0.1, ::1 or localhost): anyone who can reach it could control the node", addr)
	}
	hp := net.JoinHostPort(ip.String(), port)
	l, err := net.Listen("tcp", hp)
	if err != nil && addr == DefaultAddr {
		// Taken, most likely by another node (the error differs between
		// systems): any free port will do, api.addr tells clients.
		l, err = net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	}
	if err != nil {
		return nil, fmt.Errorf("API: listen on %s: %w", hp, err)
	}
	return l, nil
}

// Addr is the address the API listens on (host:port).
func (s *Server) Addr() string { return s.addr }

// URL is the API's base URL, http://127.0.0.1:PORT.
func (s *Server) URL() string { return "http://" + s.addr }

// Token is the token requests must carry.
func (s *Server) Token() string { return s.token }

// Close stops serving: event streams end, running downloads pause (their
// partial data is kept; get them again to resume), queued ones are
// dropped, and <data>/api.addr is removed. Call it before closing the
// node's services.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		removeAddr(s.cfg.DataDir, s.addr)
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = s.http.Shutdown(ctx)
		if err != nil {
			s.http.Close()
		}
		<-s.served
		s.jobs.close()
		s.watchers.Wait()
		s.events.close()
	})
	return err
}

// Handler is the API and the web UI with their checks, in this order:
// the Host header (403); then the login link, the UI's files, and the
// login page at / for a browser without a session; then the token or the
// session cookie (401); for POST the Origin header (403: with the cookie
// it must be there); then the route (404, 405).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.routes(mux)
	ui := s.handleUI()
	mux.Handle("GET /{$}", ui)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// A route with the wrong method lands here too (this pattern
		// matches every method): say which method it takes.
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			alt := r.Clone(r.Context())
			alt.Method = m
			if _, pattern := mux.Handler(alt); pattern != "/" {
				w.Header().Set("Allow", m)
				writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("%s %s: this route takes %s", r.Method, r.URL.Path, m))
				return
			}
		}
		writeError(w, http.StatusNotFound, fmt.Errorf("no such API route: %s %s (routes are under /api/v1/)", r.Method, r.URL.Path))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if !s.hostOK(r.Host) {
			writeError(w, http.StatusForbidden, fmt.Errorf("host %q refused: the API answers only to 127.0.0.1:%s, localhost:%s or [::1]:%s", r.Host, s.port, s.port, s.port))
			return
		}
		switch {
		case r.URL.Path == "/login":
			s.handleLogin(w, r)
			return
		case strings.HasPrefix(r.URL.Path, "/ui/") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			ui.ServeHTTP(w, r)
			return
		}
		byToken := s.tokenOK(r.Header.Get("Authorization"))
		if !byToken && !s.sessionOK(r) {
			if r.URL.Path == "/" && r.Method == http.MethodGet {
				servePage(w, http.StatusUnauthorized, "You are not logged in.")
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="p2pshare"`)
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong API token: send Authorization: Bearer TOKEN, the token being in <data>/api.token (a browser logs in through the link `p2pshare ui` prints)"))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			o := r.Header.Get("Origin")
			if o != "" && !s.originOK(o) {
				writeError(w, http.StatusForbidden, fmt.Errorf("origin %q refused", o))
				return
			}
			if o == "" && !byToken {
				// A browser always sends Origin with a POST; one that
				// comes with the cookie and without Origin is not from
				// the UI's own page.
				writeError(w, http.StatusForbidden, errors.New("a request with the session cookie that changes anything must carry the Origin header of the UI"))
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// hostOK: the Host header names this listener by a loopback name, so a
// page served from a rebinding domain (evil.example resolving to
// 127.0.0.1) is refused.
func (s *Server) hostOK(host string) bool {
	h, p, err := net.SplitHostPort(host)
	if err != nil || p != s.port {
		return false
	}
	return h == "127.0.0.1" || h == "::1" || strings.EqualFold(h, "localhost")
}

func (s *Server) originOK(origin string) bool {
	rest, ok := strings.CutPrefix(origin, "http://")
	return ok && s.hostOK(rest)
}

func (s *Server) tokenOK(auth string) bool {
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.token)) == 1
}

// routes lists every route of the API. The README's Daemon section
// documents them; keep the two together.
func (s *Server) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/id", s.handleID)
	mux.HandleFunc("GET /api/v1/files", s.handleFiles)
	mux.HandleFunc("POST /api/v1/publish", s.handlePublish)
	mux.HandleFunc("GET /api/v1/published", s.handlePublished)
	mux.HandleFunc("POST /api/v1/unpublish", s.handleUnpublish)
	mux.HandleFunc("GET /api/v1/available", s.handleAvailable)
	mux.HandleFunc("GET /api/v1/search", s.handleSearch)
	mux.HandleFunc("POST /api/v1/get", s.handleGet)
	mux.HandleFunc("GET /api/v1/gets", s.handleJobs)
	mux.HandleFunc("GET /api/v1/gets/{id}", s.handleJob)
	mux.HandleFunc("GET /api/v1/transfers", s.handleTransfers)
	mux.HandleFunc("POST /api/v1/cancel", s.handleCancel)
	mux.HandleFunc("GET /api/v1/peers", s.handlePeers)
	mux.HandleFunc("GET /api/v1/groups", s.handleGroups)
	mux.HandleFunc("POST /api/v1/peers/refresh", s.handleRefreshPeers)
	mux.HandleFunc("POST /api/v1/connect", s.handleConnect)
	mux.HandleFunc("GET /api/v1/share", s.handleShare)
	mux.HandleFunc("GET /api/v1/events", s.handleEvents)
	mux.HandleFunc("POST /api/v1/login-link", s.handleLoginLink)
	mux.HandleFunc("POST /api/v1/upload", s.handleUpload)
}

// statusError is an error with the HTTP status it is answered with.
type statusError struct {
	status int
	err    error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

func withStatus(status int, err error) error { return &statusError{status, err} }

// statusOf picks the status of an error: its own, or from the services'
// errors; anything else is the node's fault (500).
func statusOf(err error) int {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se.status
	case errors.Is(err, share.ErrNotFound), errors.Is(err, share.ErrNotPublished), errors.Is(err, transfer.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, share.ErrAmbiguous), errors.Is(err, share.ErrBadName):
		return http.StatusBadRequest
	case errors.Is(err, transfer.ErrInProgress), errors.Is(err, transfer.ErrExists):
		return http.StatusConflict
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, Error{Error: err.Error()})
}

// fail answers err with its status.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status >= 500 {
		s.log.Warn("API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, err)
}

// decode reads the JSON body into v: one object, no unknown fields (a
// misspelt field is an error, not silently ignored), at most maxBody.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return withStatus(http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", maxBody))
		}
		if errors.Is(err, io.EOF) {
			return withStatus(http.StatusBadRequest, errors.New("empty request body: want a JSON object"))
		}
		return withStatus(http.StatusBadRequest, fmt.Errorf("bad JSON in request body: %w", err))
	}
	if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
		return withStatus(http.StatusBadRequest, errors.New("bad JSON in request body: more than one value"))
	}
	return nil
}

// itoa is for job IDs.
func itoa(n int) string { return strconv.Itoa(n) }
