package api

import (
	"embed"
	"html"
	"io/fs"
	"net/http"
)

// The web UI: plain HTML, CSS and JavaScript in ui/, embedded in the
// binary (no build step, nothing fetched from elsewhere). It is a single
// page that calls the API with the session cookie and follows
// /api/v1/events.
//
//go:embed ui
var uiFiles embed.FS

// uiCSP allows only the UI's own files: no inline script, no other
// origin, no framing.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func uiHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", uiCSP)
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

// handleUI serves the page at / (to a logged-in browser) and its files
// under /ui/ (to anyone: they are the same in every binary and hold no
// data).
func (s *Server) handleUI() http.Handler {
	sub, _ := fs.Sub(uiFiles, "ui")
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uiHeaders(w)
		if r.URL.Path == "/" {
			b, _ := uiFiles.ReadFile("ui/index.html")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write(b)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// servePage answers a short HTML page with one message (the login page,
// a spent login link).
func servePage(w http.ResponseWriter, status int, msg string) {
	uiHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/style.css"><title>p2pshare</title></head>` +
		`<body class="plain"><h1>p2pshare</h1><p>` + html.EscapeString(msg) + `</p>` +
		`<p>To open the web UI, run <code>p2pshare ui</code> on this machine (as the user who runs the node) and open the one-time link it prints.</p></body></html>`))
}
