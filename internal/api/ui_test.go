package api_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p2pshare/p2pshare/internal/api"
	"github.com/p2pshare/p2pshare/internal/node"
)

// loginLink asks s for a one-time login URL with the token.
func loginLink(t *testing.T, s *api.Server) string {
	t.Helper()
	status, _, body := raw(t, s, http.MethodPost, "/api/v1/login-link", map[string]string{"Authorization": "Bearer " + s.Token()}, "")
	if status != http.StatusOK {
		t.Fatalf("login-link: %d %s", status, body)
	}
	var l api.LoginLink
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatal(err)
	}
	return l.URL
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// login opens a login link as a browser would and returns the session
// cookie it sets.
func login(t *testing.T, s *api.Server) *http.Cookie {
	t.Helper()
	resp, err := noRedirect.Get(loginLink(t, s))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	cs := resp.Cookies()
	if len(cs) != 1 {
		t.Fatalf("login set %d cookies, want 1", len(cs))
	}
	return cs[0]
}

// browser sends one request with the session cookie (and an Origin, if
// not empty).
func browser(t *testing.T, s *api.Server, c *http.Cookie, method, path, origin string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c != nil {
		req.AddCookie(c)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestLoginLinkAndCookie(t *testing.T) {
	n := newNode(t, "n")
	s := startAPI(t, n, 0)
	writeFile(t, n, "a.txt", 100)
	_, port, _ := net.SplitHostPort(s.Addr())
	origin := "http://127.0.0.1:" + port

	// Without the token: no link.
	if status, _, _ := raw(t, s, http.MethodPost, "/api/v1/login-link", nil, ""); status != http.StatusUnauthorized {
		t.Fatalf("login-link without token: %d", status)
	}
	link := loginLink(t, s)
	u, err := url.Parse(link)
	if err != nil || u.Host != s.Addr() || u.Path != "/login" || len(u.Query().Get("once")) < 32 {
		t.Fatalf("login link %q", link)
	}

	// The link sets the cookie once.
	resp, err := noRedirect.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("login: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	c := resp.Cookies()[0]
	if c.Name != "p2pshare_session_"+port || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Value == "" {
		t.Fatalf("cookie %+v: want p2pshare_session_%s, HttpOnly, SameSite=Strict, Path=/", c, port)
	}
	if sc := resp.Header.Get("Set-Cookie"); !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Strict") {
		t.Fatalf("Set-Cookie %q", sc)
	}
	for _, again := range []string{link, s.URL() + "/login?once=" + strings.Repeat("0", 64), s.URL() + "/login"} {
		resp, err := noRedirect.Get(again)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 || !strings.Contains(string(b), "p2pshare ui") {
			t.Fatalf("%s: %d, cookies %v, %q: want 403, none", again, resp.StatusCode, resp.Cookies(), b)
		}
	}

	// The cookie opens the UI and the API.
	if status, body := browser(t, s, c, http.MethodGet, "/", "", nil); status != http.StatusOK || !strings.Contains(body, "/ui/app.js") {
		t.Fatalf("GET / with cookie: %d %.200s", status, body)
	}
	if status, body := browser(t, s, nil, http.MethodGet, "/", "", nil); status != http.StatusUnauthorized || !strings.Contains(body, "p2pshare ui") || strings.Contains(body, "app.js") {
		t.Fatalf("GET / without cookie: %d %.200s", status, body)
	}
	if status, _ := browser(t, s, c, http.MethodGet, "/api/v1/files", "", nil); status != http.StatusOK {
		t.Fatalf("GET files with cookie: %d", status)
	}
	bad := &http.Cookie{Name: c.Name, Value: strings.Repeat("a", 64)}
	if status, _ := browser(t, s, bad, http.MethodGet, "/api/v1/files", "", nil); status != http.StatusUnauthorized {
		t.Fatalf("GET files with a made-up cookie: %d", status)
	}
	// The UI's own files need no login; they hold no data.
	if status, body := browser(t, s, nil, http.MethodGet, "/ui/app.js", "", nil); status != http.StatusOK || !strings.Contains(body, "EventSource") {
		t.Fatalf("GET /ui/app.js: %d", status)
	}

	// With the cookie, a change needs the UI's Origin.
	publish := func() io.Reader { return strings.NewReader(`{"names":["a.txt"]}`) }
	for _, o := range []string{"", "http://evil.example", "null", "http://127.0.0.1:1"} {
		if status, body := browser(t, s, c, http.MethodPost, "/api/v1/publish", o, publish()); status != http.StatusForbidden {
			t.Fatalf("publish with cookie, Origin %q: %d %s, want 403", o, status, body)
		}
	}
	if status, _ := browser(t, s, bad, http.MethodPost, "/api/v1/publish", origin, publish()); status != http.StatusUnauthorized {
		t.Fatalf("publish with a made-up cookie: %d", status)
	}
	if status, _ := browser(t, s, nil, http.MethodPost, "/api/v1/publish", origin, publish()); status != http.StatusUnauthorized {
		t.Fatalf("publish with neither token nor cookie: %d", status)
	}
	if len(n.Share.Published()) != 0 {
		t.Fatal("a refused request published")
	}
	// A session cannot mint more sessions.
	if status, _ := browser(t, s, c, http.MethodPost, "/api/v1/login-link", origin, nil); status != http.StatusForbidden {
		t.Fatalf("login-link with the cookie: %d, want 403", status)
	}
	if status, body := browser(t, s, c, http.MethodPost, "/api/v1/publish", origin, publish()); status != http.StatusOK {
		t.Fatalf("publish with cookie and Origin: %d %s", status, body)
	}
	if len(n.Share.Published()) != 1 {
		t.Fatal("publish with the cookie did nothing")
	}
	// The Host check still comes first.
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/", nil)
	req.Host = "evil.example:" + port
	req.AddCookie(c)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("rebinding host with cookie: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// startAPIMaxUpload is startAPI with a small upload limit.
func startAPIMaxUpload(t *testing.T, n *node.Node, max int64) *api.Server {
	t.Helper()
	s, err := api.Start(api.Config{
		Node: n.P2P, Share: n.Share, Transfer: n.Transfer,
		DataDir: n.Config.DataDir, DownloadDir: n.Config.DownloadDir,
		Addr: "127.0.0.1:0", Version: "test", MaxUpload: max,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// onlyReader hides a reader's length, so the body is sent chunked.
type onlyReader struct{ io.Reader }

func TestUpload(t *testing.T) {
	n := newNode(t, "n")
	const limit = 1000
	s := startAPIMaxUpload(t, n, limit)
	c := login(t, s)
	_, port, _ := net.SplitHostPort(s.Addr())
	origin := "http://127.0.0.1:" + port
	dir := n.Config.ShareDir
	up := func(name string, body io.Reader) (int, string) {
		return browser(t, s, c, http.MethodPost, "/api/v1/upload?name="+url.QueryEscape(name), origin, body)
	}
	data := make([]byte, limit)
	rand.Read(data)

	// Success: the file is in the share folder, complete, and no temp
	// file is left.
	if status, body := up("new file.bin", bytes.NewReader(data)); status != http.StatusCreated || !strings.Contains(body, `"size":1000`) {
		t.Fatalf("upload: %d %s", status, body)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "new file.bin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("uploaded file differs (%v)", err)
	}
	// Chunked (no length given) works too.
	if status, body := up("chunked.bin", onlyReader{bytes.NewReader(data[:10])}); status != http.StatusCreated {
		t.Fatalf("chunked upload: %d %s", status, body)
	}

	// An existing name: 409, the file untouched.
	if status, body := up("new file.bin", strings.NewReader("other")); status != http.StatusConflict || !strings.Contains(body, "never replace") {
		t.Fatalf("upload over an existing file: %d %s", status, body)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "new file.bin")); !bytes.Equal(got, data) {
		t.Fatal("an upload replaced an existing file")
	}

	// Over the limit, declared or not: 413, nothing left.
	big := append(data, 'x')
	if status, body := up("big.bin", bytes.NewReader(big)); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized upload: %d %s", status, body)
	}
	if status, body := up("big.bin", onlyReader{bytes.NewReader(big)}); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized chunked upload: %d %s", status, body)
	}

	// Path tricks and bad names: 400.
	for _, name := range []string{"../x", "a/b", `a\b`, "/etc/passwd", "", "..", ".hidden", "evil\u202etxt.exe", " space"} {
		if status, body := up(name, strings.NewReader("x")); status != http.StatusBadRequest {
			t.Errorf("upload as %q: %d %s, want 400", name, status, body)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "x")); err == nil {
		t.Fatal("../x was written outside the share folder")
	}

	// Without Origin, or without a login: refused.
	if status, _ := browser(t, s, c, http.MethodPost, "/api/v1/upload?name=o.bin", "", strings.NewReader("x")); status != http.StatusForbidden {
		t.Fatalf("upload with cookie, no Origin: %d", status)
	}
	if status, _ := browser(t, s, nil, http.MethodPost, "/api/v1/upload?name=o.bin", origin, strings.NewReader("x")); status != http.StatusUnauthorized {
		t.Fatalf("upload without login: %d", status)
	}

	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	if strings.Join(names, ",") != "chunked.bin,new file.bin" {
		t.Fatalf("share folder holds %v, want only the two uploads", names)
	}
	// The listing shows them.
	files, _ := n.Share.Files()
	if len(files) != 2 {
		t.Fatalf("files: %+v", files)
	}
}
