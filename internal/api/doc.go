// Package api is a node's local HTTP+JSON API: everything the prompt can
// do (files, publish, get, transfers, peers, ...), for the command-line
// client (internal/client, `p2pshare COMMAND`), scripts and the web UI
// (ui.go, ui/: embedded HTML, CSS and JavaScript served at /). It also runs downloads in the background, several at once with
// a queue beyond them (gets.go), and streams live updates as Server-Sent
// Events (events.go).
//
// Routes are versioned under /api/v1/; see routes in server.go and the
// README's Daemon section, which documents every route and field. Field
// names are snake_case and stable: new fields may be added, none renamed.
// Errors are {"error": "..."} with a 4xx or 5xx status.
//
// # Security
//
// A listener on 127.0.0.1 is reachable by every program of every user of
// the machine and by every web page the user's browser opens. So:
//
//   - The server only listens on a loopback address (New refuses others).
//   - Every request must carry the node's token (Authorization: Bearer
//     TOKEN); the token is 32 random bytes in <data>/api.token, mode 0600,
//     made on first start, so only the user who owns the data folder can
//     read it. A request without it gets 401 before any handler runs.
//   - The Host header must name the listener itself (127.0.0.1:PORT,
//     localhost:PORT or [::1]:PORT): a page on a domain the attacker
//     points at 127.0.0.1 (DNS rebinding) sends its own name and gets 403.
//   - Requests that change anything are POST only, and a POST carrying an
//     Origin header must come from the API's own origin (http://127.0.0.1:
//     PORT, http://localhost:PORT or http://[::1]:PORT); others get 403.
//   - No CORS headers are ever sent, so no other origin can read answers.
//
// The web UI cannot set an Authorization header on the page loads and
// EventSource streams a browser makes. It logs in once through a one-time
// link printed by `p2pshare ui` (login.go): GET /login?once=NONCE, where
// NONCE is single-use, lasts LoginLinkTTL and is made by POST
// /api/v1/login-link, which needs the token. The answer sets an HttpOnly,
// SameSite=Strict session cookie for the API's origin and redirects to /.
// The cookie then stands for the token, with the Host check unchanged and
// a stricter Origin check: a POST with the cookie must carry the API's own
// Origin (SameSite=Strict already keeps other sites' requests from
// carrying the cookie). The UI's static files under /ui/ are served to
// anyone: they hold no data. / without a session shows how to log in.
package api
