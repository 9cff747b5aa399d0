package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"

	"github.com/p2pshare/p2pshare/internal/api"
	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/client"
	"github.com/p2pshare/p2pshare/internal/node"
	"github.com/p2pshare/p2pshare/internal/ticket"
)

// bbsKey is one BBS key for every node of these tests: making a 2048-bit
// modulus takes a while, and sharing it is harmless in a test.
var (
	bbsOnce sync.Once
	bbsKey  []byte
	bbsErr  error
)

// newNode starts a real node on loopback (mDNS off) with a short
// keepalive, so peers go online and offline quickly.
func newNode(t *testing.T, name string) *node.Node {
	t.Helper()
	bbsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "api-bbs")
		if err != nil {
			bbsErr = err
			return
		}
		defer os.RemoveAll(dir)
		p := filepath.Join(dir, "bbs.key")
		if _, bbsErr = bbsaes.LoadOrGenerateKey(p, 2048); bbsErr == nil {
			bbsKey, bbsErr = os.ReadFile(p)
		}
	})
	if bbsErr != nil {
		t.Fatal(bbsErr)
	}
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bbs.key"), bbsKey, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(context.Background(), node.Config{
		DataDir:     dir,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Keepalive:   200 * time.Millisecond,
		Logger:      slog.New(slog.DiscardHandler),
		DHTOptions:  []dht.Option{dht.DisableAutoRefresh()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// startAPI serves n's API on a free loopback port; it is closed before
// the node (cleanups run last first).
func startAPI(t *testing.T, n *node.Node, maxGets int) *api.Server {
	t.Helper()
	s, err := api.Start(api.Config{
		Node: n.P2P, Share: n.Share, Transfer: n.Transfer, People: n.People,
		DataDir: n.Config.DataDir, DownloadDir: n.Config.DownloadDir,
		Addr: "127.0.0.1:0", MaxConcurrentGets: maxGets, Version: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openClient(t *testing.T, n *node.Node) *client.Client {
	t.Helper()
	c, err := client.Open(n.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeFile(t *testing.T, n *node.Node, name string, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(n.Config.ShareDir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// raw sends one request as a browser or another program could, and
// returns the status, the headers and the body.
func raw(t *testing.T, s *api.Server, method, path string, hdr map[string]string, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func call(t *testing.T, c *client.Client, method, path string, q url.Values, body, out any) error {
	t.Helper()
	return c.Call(context.Background(), method, path, q, body, out)
}

func statusOf(err error) int {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// mustStatus checks that a call failed with status want and that its
// message says something useful (contains hint).
func mustStatus(t *testing.T, err error, want int, hint string) {
	t.Helper()
	if got := statusOf(err); got != want {
		t.Fatalf("status %d (%v), want %d", got, err, want)
	}
	if !strings.Contains(err.Error(), hint) {
		t.Fatalf("error %q does not say %q", err, hint)
	}
}

// The token, Host and Origin checks: a request failing any of them is
// refused before any handler runs, and changes nothing.
func TestSecurityChecks(t *testing.T) {
	n := newNode(t, "n")
	s := startAPI(t, n, 0)
	writeFile(t, n, "a.txt", 100)
	_, port, _ := net.SplitHostPort(s.Addr())
	auth := "Bearer " + s.Token()
	publish := `{"names":["a.txt"]}`

	for _, tt := range []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"wrong token", map[string]string{"Authorization": "Bearer " + strings.Repeat("0", 64)}, http.StatusUnauthorized},
		{"token without Bearer", map[string]string{"Authorization": s.Token()}, http.StatusUnauthorized},
		{"rebinding host", map[string]string{"Authorization": auth, "Host": "evil.example:" + port}, http.StatusForbidden},
		{"host, other port", map[string]string{"Authorization": auth, "Host": "127.0.0.1:1"}, http.StatusForbidden},
		{"foreign origin", map[string]string{"Authorization": auth, "Origin": "http://evil.example"}, http.StatusForbidden},
		{"origin, other port", map[string]string{"Authorization": auth, "Origin": "http://127.0.0.1:1"}, http.StatusForbidden},
		{"https origin", map[string]string{"Authorization": auth, "Origin": "https://localhost:" + port}, http.StatusForbidden},
		{"null origin", map[string]string{"Authorization": auth, "Origin": "null"}, http.StatusForbidden},
	} {
		status, h, body := raw(t, s, http.MethodPost, "/api/v1/publish", tt.hdr, publish)
		if status != tt.status {
			t.Errorf("%s: status %d %s, want %d", tt.name, status, body, tt.status)
		}
		var e api.Error
		if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Errorf("%s: body %q is not a JSON error", tt.name, body)
		}
		if h.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: CORS header sent", tt.name)
		}
		if len(n.Share.Published()) != 0 {
			t.Fatalf("%s: a refused request published the file", tt.name)
		}
	}
	if status, h, _ := raw(t, s, http.MethodGet, "/api/v1/id", nil, ""); status != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
		t.Errorf("GET without token: %d, WWW-Authenticate %q", status, h.Get("WWW-Authenticate"))
	}
	// A preflight gets no CORS answer either (and needs the token).
	status, h, _ := raw(t, s, http.MethodOptions, "/api/v1/publish", map[string]string{"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}, "")
	if status != http.StatusUnauthorized || h.Get("Access-Control-Allow-Origin") != "" || h.Get("Access-Control-Allow-Methods") != "" {
		t.Errorf("preflight: %d %v", status, h)
	}

	// A state change by GET is not routed.
	if status, _, _ := raw(t, s, http.MethodGet, "/api/v1/publish", map[string]string{"Authorization": auth}, ""); status != http.StatusMethodNotAllowed {
		t.Errorf("GET publish: %d, want 405", status)
	}
	if status, _, body := raw(t, s, http.MethodGet, "/api/v1/nothing", map[string]string{"Authorization": auth}, ""); status != http.StatusNotFound || !strings.Contains(body, "no such API route") {
		t.Errorf("unknown route: %d %s", status, body)
	}

	// The same request, rightly made, from each allowed name.
	for i, host := range []string{"127.0.0.1", "localhost", "[::1]"} {
		hdr := map[string]string{"Authorization": auth, "Host": host + ":" + port, "Origin": "http://" + host + ":" + port}
		status, h, body := raw(t, s, http.MethodPost, "/api/v1/publish", hdr, publish)
		if status != http.StatusOK || h.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("host %s: %d %s", host, status, body)
		}
		var res api.Published
		if err := json.Unmarshal([]byte(body), &res); err != nil || len(res.Files) != 1 || res.Files[0].Already != (i > 0) {
			t.Fatalf("host %s: %s", host, body)
		}
	}
	// No Origin at all (curl, the CLI) is fine.
	if status, _, body := raw(t, s, http.MethodPost, "/api/v1/unpublish", map[string]string{"Authorization": auth}, `{"all":true}`); status != http.StatusOK {
		t.Fatalf("unpublish without Origin: %d %s", status, body)
	}
}

// Every endpoint on one node, with its errors.
func TestEndpoints(t *testing.T) {
	n := newNode(t, "n")
	s := startAPI(t, n, 1)
	c := openClient(t, n)
	data := writeFile(t, n, "a.txt", 3000)
	writeFile(t, n, "b.txt", 10)
	get := func(path string, q url.Values, out any) error { return call(t, c, http.MethodGet, path, q, nil, out) }
	post := func(path string, body, out any) error { return call(t, c, http.MethodPost, path, nil, body, out) }

	var id api.ID
	if err := get("/api/v1/id", nil, &id); err != nil || id.PeerID != n.P2P.ID().String() || id.Version != "test" || len(id.Addrs) == 0 || id.ShareDir != n.Config.ShareDir {
		t.Fatalf("id: %+v, %v", id, err)
	}

	var files []api.LocalFile
	if err := get("/api/v1/files", nil, &files); err != nil || len(files) != 2 || files[0].Name != "a.txt" || files[0].Size != 3000 || files[0].Published {
		t.Fatalf("files: %+v, %v", files, err)
	}

	// publish: one good name, then one good and one unknown.
	var pub api.Published
	if err := post("/api/v1/publish", api.PublishRequest{Names: []string{"a.txt"}}, &pub); err != nil || len(pub.Files) != 1 {
		t.Fatalf("publish: %+v, %v", pub, err)
	}
	sum := sha256.Sum256(data)
	a := pub.Files[0]
	if a.Name != "a.txt" || a.Size != 3000 || a.SHA256 != hex.EncodeToString(sum[:]) || a.Already || !strings.HasPrefix(a.CID, "bafk") {
		t.Fatalf("publish result: %+v", a)
	}
	pub = api.Published{}
	err := post("/api/v1/publish", api.PublishRequest{Names: []string{"b.txt", "nope.txt"}}, &pub)
	mustStatus(t, err, http.StatusNotFound, "nope.txt")
	if len(pub.Files) != 1 || pub.Files[0].Name != "b.txt" || !strings.Contains(pub.Error, "nope.txt") {
		t.Fatalf("partial publish: %+v", pub)
	}
	mustStatus(t, post("/api/v1/publish", api.PublishRequest{}, nil), http.StatusBadRequest, "names")
	mustStatus(t, post("/api/v1/publish", api.PublishRequest{Names: []string{"../etc/passwd"}}, nil), http.StatusBadRequest, "")
	if len(n.Share.Published()) != 2 {
		t.Fatalf("published %d files, want 2", len(n.Share.Published()))
	}

	// Bad bodies.
	auth := map[string]string{"Authorization": "Bearer " + s.Token()}
	for _, body := range []string{``, `{`, `{"names":"a.txt"}`, `{"nmaes":["a.txt"]}`, `{"names":["a.txt"]} {}`, `[]`} {
		if status, _, resp := raw(t, s, http.MethodPost, "/api/v1/publish", auth, body); status != http.StatusBadRequest || !strings.Contains(resp, "JSON") && !strings.Contains(resp, "body") {
			t.Errorf("body %q: %d %s", body, status, resp)
		}
	}
	big := `{"names":["` + strings.Repeat("x", 2<<20) + `"]}`
	if status, _, resp := raw(t, s, http.MethodPost, "/api/v1/publish", auth, big); status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d %s", status, resp)
	}

	var entries []api.Entry
	if err := get("/api/v1/published", nil, &entries); err != nil || len(entries) != 2 || entries[0].CID != a.CID || entries[0].PublishedAt.IsZero() {
		t.Fatalf("published: %+v, %v", entries, err)
	}

	// publish with an audience, then public again.
	const bob = "12D3KooWPvCx5soxxeJ6ZH9dPbBbWER9C76x3fZRpdc4W8ysDCWS"
	if err := n.People.CreateGroup("team"); err != nil {
		t.Fatal(err)
	}
	var to api.Published
	if err := post("/api/v1/publish", api.PublishRequest{Names: []string{"a.txt"}, To: []string{bob, "team"}}, &to); err != nil ||
		len(to.Files) != 1 || !slices.Equal(to.Files[0].ToPeers, []string{bob}) || !slices.Equal(to.Files[0].ToGroups, []string{"team"}) {
		t.Fatalf("publish to bob and team: %+v, %v", to, err)
	}
	if p := n.Share.Published(); p[0].Audience.Public() {
		t.Fatal("a.txt still public")
	}
	mustStatus(t, post("/api/v1/publish", api.PublishRequest{Names: []string{"a.txt"}, To: []string{bob}, Public: true}, nil), http.StatusBadRequest, "public")
	if err := post("/api/v1/publish", api.PublishRequest{Names: []string{"a.txt"}, Public: true}, &to); err != nil {
		t.Fatal(err)
	}
	if p := n.Share.Published(); !p[0].Audience.Public() {
		t.Fatal("a.txt not public again")
	}

	// share: a ticket for a.txt that decodes to it.
	var tk api.Ticket
	if err := get("/api/v1/share", url.Values{"file": {"a.txt"}}, &tk); err != nil || tk.CID != a.CID {
		t.Fatalf("share: %+v, %v", tk, err)
	}
	if dt, err := ticket.Decode(tk.Ticket); err != nil || dt.CID.String() != a.CID || dt.Publisher != n.P2P.ID() || dt.Size != 3000 {
		t.Fatalf("ticket: %+v, %v", dt, err)
	}
	mustStatus(t, get("/api/v1/share", url.Values{"file": {"nope.txt"}}, nil), http.StatusNotFound, "not published")
	mustStatus(t, get("/api/v1/share", nil, nil), http.StatusBadRequest, "file")

	// Nothing remote on a lone node.
	var remotes []api.Remote
	if err := get("/api/v1/available", nil, &remotes); err != nil || remotes == nil || len(remotes) != 0 {
		t.Fatalf("available: %#v, %v", remotes, err)
	}
	if err := get("/api/v1/search", url.Values{"q": {"a"}}, &remotes); err != nil || len(remotes) != 0 {
		t.Fatalf("search: %#v, %v", remotes, err)
	}
	mustStatus(t, get("/api/v1/search", nil, nil), http.StatusBadRequest, "q=")

	var peers []api.Peer
	if err := get("/api/v1/peers", nil, &peers); err != nil || peers == nil || len(peers) != 0 {
		t.Fatalf("peers: %#v, %v", peers, err)
	}
	if err := post("/api/v1/peers/refresh", nil, &peers); err != nil {
		t.Fatalf("peers refresh: %v", err)
	}

	// connect: a bad address, an address nobody answers at.
	mustStatus(t, post("/api/v1/connect", api.ConnectRequest{Addr: "nonsense"}, nil), http.StatusBadRequest, "multiaddr")
	dead := "/ip4/127.0.0.1/tcp/1/p2p/" + n.P2P.ID().String()
	if err := post("/api/v1/connect", api.ConnectRequest{Addr: dead}, nil); statusOf(err) < 400 {
		t.Fatalf("connect to nobody: %v", err)
	}

	// get: unknown name, bad output paths, unknown job, ambiguous prefix.
	mustStatus(t, post("/api/v1/get", api.GetRequest{Target: "nope.txt"}, nil), http.StatusNotFound, "nope.txt")
	mustStatus(t, post("/api/v1/get", api.GetRequest{}, nil), http.StatusBadRequest, "target")
	mustStatus(t, post("/api/v1/get", api.GetRequest{Target: a.CID, Output: "relative/path"}, nil), http.StatusBadRequest, "absolute")
	existing := filepath.Join(t.TempDir(), "there")
	os.WriteFile(existing, []byte("mine"), 0o600)
	mustStatus(t, post("/api/v1/get", api.GetRequest{Target: a.CID, Output: existing}, nil), http.StatusConflict, "never overwrites")
	mustStatus(t, post("/api/v1/get", api.GetRequest{Target: a.CID, Output: "/no/such/folder/x"}, nil), http.StatusBadRequest, "does not exist")
	mustStatus(t, post("/api/v1/get", api.GetRequest{Target: "bafkrei"}, nil), http.StatusBadRequest, "ambiguous")
	mustStatus(t, post("/api/v1/get", api.GetRequest{Target: "p2ps1garbage"}, nil), http.StatusBadRequest, "")
	mustStatus(t, get("/api/v1/gets/99", nil, nil), http.StatusNotFound, "no job")
	if b, _ := os.ReadFile(existing); string(b) != "mine" {
		t.Fatal("the existing file was changed")
	}

	// Background gets of CIDs nobody provides: one slot, so the first
	// waits for providers and the second queues; cancel frees the slot.
	// (This node's own CIDs are fine for it: it does not fetch from itself.)
	var j1, j2 api.Job
	if err := post("/api/v1/get", api.GetRequest{Target: a.CID}, &j1); err != nil || j1.ID == "" || j1.CID != a.CID || j1.Name != "a.txt" {
		t.Fatalf("get 1: %+v, %v", j1, err)
	}
	mustStatus(t, post("/api/v1/get", api.GetRequest{Target: a.CID}, nil), http.StatusConflict, "already")
	b := pub.Files[0]
	if err := post("/api/v1/get", api.GetRequest{Target: b.CID[:20]}, &j2); err != nil || j2.State != api.JobQueued || j2.CID != b.CID {
		t.Fatalf("get 2: %+v, %v", j2, err)
	}
	var list []api.Transfer
	if err := get("/api/v1/transfers", nil, &list); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, tr := range list {
		states[tr.Job] = tr.State
	}
	if states[j2.ID] != api.JobQueued || states[j1.ID] == "" {
		t.Fatalf("transfers: %+v", list)
	}
	var jobs []api.Job
	if err := get("/api/v1/gets", nil, &jobs); err != nil || len(jobs) != 2 || jobs[0].ID != j1.ID {
		t.Fatalf("gets: %+v, %v", jobs, err)
	}
	var cn api.Canceled
	if err := post("/api/v1/cancel", api.CancelRequest{Target: j1.ID}, &cn); err != nil || cn.CID != a.CID || cn.Job != j1.ID {
		t.Fatalf("cancel 1: %+v, %v", cn, err)
	}
	waitJob(t, c, j1.ID, api.JobCanceled)
	waitJob(t, c, j2.ID, api.JobRunning)
	if err := post("/api/v1/cancel", api.CancelRequest{Target: b.CID[:20]}, &cn); err != nil || cn.Job != j2.ID {
		var j api.Job
		call(t, c, http.MethodGet, "/api/v1/gets/"+j2.ID, nil, nil, &j)
		t.Fatalf("cancel 2: %+v, %v; job %+v", cn, err, j)
	}
	waitJob(t, c, j2.ID, api.JobCanceled)
	mustStatus(t, post("/api/v1/cancel", api.CancelRequest{Target: j1.ID}, nil), http.StatusConflict, "already ended")
	mustStatus(t, post("/api/v1/cancel", api.CancelRequest{Target: "bafkreinothing"}, nil), http.StatusNotFound, "no known")
	mustStatus(t, post("/api/v1/cancel", api.CancelRequest{}, nil), http.StatusBadRequest, "target")

	// unpublish: by CID prefix, an unknown name (nothing withdrawn), all.
	mustStatus(t, post("/api/v1/unpublish", api.UnpublishRequest{Names: []string{"b.txt", "nope"}}, nil), http.StatusNotFound, "nope")
	if len(n.Share.Published()) != 2 {
		t.Fatal("a failed unpublish withdrew something")
	}
	pub = api.Published{}
	if err := post("/api/v1/unpublish", api.UnpublishRequest{Names: []string{a.CID[:16]}}, &pub); err != nil || len(pub.Files) != 1 || pub.Files[0].CID != a.CID {
		t.Fatalf("unpublish by prefix: %+v, %v", pub, err)
	}
	mustStatus(t, post("/api/v1/unpublish", api.UnpublishRequest{}, nil), http.StatusBadRequest, "all")
	mustStatus(t, post("/api/v1/unpublish", api.UnpublishRequest{All: true, Names: []string{"x"}}, nil), http.StatusBadRequest, "not both")
	if err := post("/api/v1/unpublish", api.UnpublishRequest{All: true}, &pub); err != nil || len(pub.Files) != 1 || len(n.Share.Published()) != 0 {
		t.Fatalf("unpublish all: %+v, %v", pub, err)
	}
}

// waitJob polls a job until it reaches state (or fails the test after a
// deadline).
func waitJob(t *testing.T, c *client.Client, id, state string) api.Job {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var j api.Job
		if err := call(t, c, http.MethodGet, "/api/v1/gets/"+id, nil, nil, &j); err != nil {
			t.Fatal(err)
		}
		if j.State == state {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: state %s (%s), want %s", id, j.State, j.Error, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nextEvent reads events until one named name satisfies match.
func nextEvent(t *testing.T, es *client.Events, name string, match func(json.RawMessage) bool) json.RawMessage {
	t.Helper()
	type result struct {
		data json.RawMessage
		err  error
	}
	done := make(chan result, 1)
	go func() {
		for {
			ev, err := es.Next()
			if err != nil {
				done <- result{err: err}
				return
			}
			if ev.Name == name && match(ev.Data) {
				done <- result{data: ev.Data}
				return
			}
		}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("event stream ended waiting for %q: %v", name, r.err)
		}
		return r.data
	case <-time.After(60 * time.Second):
		es.Close()
		<-done
		t.Fatalf("no %q event", name)
	}
	return nil
}

// Two nodes: the events of publishing, of a peer coming online and going
// offline, of a remote file appearing; a background get between them that
// ends verified, followed through its events.
func TestTwoNodesEventsAndGet(t *testing.T) {
	na, nb := newNode(t, "a"), newNode(t, "b")
	startAPI(t, na, 0)
	startAPI(t, nb, 0)
	ca, cb := openClient(t, na), openClient(t, nb)
	ctx := context.Background()
	evA, err := ca.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer evA.Close()
	evB, err := cb.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer evB.Close()

	data := writeFile(t, na, "movie.bin", 3<<20+11)
	var pub api.Published
	if err := call(t, ca, http.MethodPost, "/api/v1/publish", nil, api.PublishRequest{Names: []string{"movie.bin"}}, &pub); err != nil {
		t.Fatal(err)
	}
	var e api.Entry
	json.Unmarshal(nextEvent(t, evA, api.EventPublished, func(json.RawMessage) bool { return true }), &e)
	if e.Name != "movie.bin" || e.CID != pub.Files[0].CID {
		t.Fatalf("published event: %+v", e)
	}

	// B connects to A through its API; A comes online in B's table and
	// its file appears in B's view.
	var cn api.Connected
	if err := call(t, cb, http.MethodPost, "/api/v1/connect", nil, api.ConnectRequest{Addr: na.P2P.Addrs()[0].String()}, &cn); err != nil || cn.PeerID != na.P2P.ID().String() {
		t.Fatalf("connect: %+v, %v", cn, err)
	}
	nextEvent(t, evB, api.EventPeer, func(d json.RawMessage) bool {
		var pe api.PeerEvent
		return json.Unmarshal(d, &pe) == nil && pe.Change == "online" && pe.Peer.PeerID == cn.PeerID
	})
	nextEvent(t, evB, api.EventAvailable, func(d json.RawMessage) bool {
		var ae api.AvailableEvent
		return json.Unmarshal(d, &ae) == nil && ae.Change != "removed" && ae.File.Name == "movie.bin" &&
			len(ae.File.Providers) == 1 && ae.File.Providers[0].Online
	})
	var remotes []api.Remote
	if err := call(t, cb, http.MethodGet, "/api/v1/search", url.Values{"q": {"movie"}}, nil, &remotes); err != nil || len(remotes) != 1 || remotes[0].CID != e.CID {
		t.Fatalf("search: %+v, %v", remotes, err)
	}

	// B gets it in the background by name, into a folder of our choice.
	out := t.TempDir()
	var j api.Job
	if err := call(t, cb, http.MethodPost, "/api/v1/get", nil, api.GetRequest{Target: "movie.bin", Output: out, From: []string{cn.PeerID[:16]}}, &j); err != nil {
		t.Fatal(err)
	}
	var final api.Job
	sawProgress := false
	nextEvent(t, evB, api.EventTransfer, func(d json.RawMessage) bool {
		var u api.Job
		if json.Unmarshal(d, &u) != nil || u.ID != j.ID {
			return false
		}
		if u.State == api.JobRunning && u.Size == int64(len(data)) {
			sawProgress = true
		}
		final = u
		return u.Finished()
	})
	if final.State != api.JobDone {
		t.Fatalf("get ended %s: %s", final.State, final.Error)
	}
	sum := sha256.Sum256(data)
	if final.Path != filepath.Join(out, "movie.bin") || final.SHA256 != hex.EncodeToString(sum[:]) || final.Size != int64(len(data)) {
		t.Fatalf("final job: %+v", final)
	}
	if !sawProgress {
		t.Error("no progress event with the file's size")
	}
	got, err := os.ReadFile(final.Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded file differs (%v)", err)
	}
	if j2 := waitJob(t, cb, j.ID, api.JobDone); j2.Path != final.Path {
		t.Fatalf("GET gets/%s: %+v", j.ID, j2)
	}

	// A withdraws it: B sees it go; A stops: B sees it offline.
	if err := call(t, ca, http.MethodPost, "/api/v1/unpublish", nil, api.UnpublishRequest{Names: []string{"movie.bin"}}, nil); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, evB, api.EventAvailable, func(d json.RawMessage) bool {
		var ae api.AvailableEvent
		return json.Unmarshal(d, &ae) == nil && ae.Change == "removed" && ae.File.CID == e.CID
	})
	na.Close()
	nextEvent(t, evB, api.EventPeer, func(d json.RawMessage) bool {
		var pe api.PeerEvent
		return json.Unmarshal(d, &pe) == nil && pe.Change == "offline" && pe.Peer.PeerID == cn.PeerID
	})
}

// Closing the server ends event streams and removes api.addr.
func TestCloseEndsStreamsAndAddrFile(t *testing.T) {
	n := newNode(t, "n")
	s := startAPI(t, n, 0)
	c := openClient(t, n)
	es, err := c.Events(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	addr, err := api.ReadAddr(n.Config.DataDir)
	if err != nil || addr != s.Addr() {
		t.Fatalf("api.addr: %q, %v; want %q", addr, err, s.Addr())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := es.Next(); err != nil {
			break
		}
	}
	if _, err := api.ReadAddr(n.Config.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("api.addr after Close: %v", err)
	}
	if _, err := client.Open(n.Config.DataDir); !errors.Is(err, client.ErrNoNode) || !strings.Contains(err.Error(), "daemon") {
		t.Fatalf("client with no node: %v", err)
	}
	// A stale api.addr (a node killed with SIGKILL) reads as no node too.
	os.WriteFile(filepath.Join(n.Config.DataDir, api.AddrFile), []byte(s.Addr()+"\n"), 0o600)
	c, err = client.Open(n.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := call(t, c, http.MethodGet, "/api/v1/id", nil, nil, nil); !errors.Is(err, client.ErrNoNode) {
		t.Fatalf("stale api.addr: %v", err)
	}
}

func TestToken(t *testing.T) {
	dir := t.TempDir()
	tok, err := api.LoadOrCreateToken(dir)
	if err != nil || len(tok) != 64 {
		t.Fatalf("token %q, %v", tok, err)
	}
	fi, err := os.Stat(filepath.Join(dir, api.TokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v", fi.Mode(), err)
	}
	if again, err := api.LoadOrCreateToken(dir); err != nil || again != tok {
		t.Fatalf("second start: %q, %v", again, err)
	}
	if other, _ := api.LoadOrCreateToken(t.TempDir()); other == tok {
		t.Fatal("two folders, one token")
	}
	os.Chmod(filepath.Join(dir, api.TokenFile), 0o644)
	if _, err := api.LoadOrCreateToken(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token: %v", err)
	}
	os.WriteFile(filepath.Join(dir, api.TokenFile), []byte("short\n"), 0o600)
	if _, err := api.LoadOrCreateToken(dir); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("malformed token: %v", err)
	}
}

// The default port, when taken, falls back to a free one; an explicit
// address must be free, and on loopback.
func TestListenAddresses(t *testing.T) {
	n := newNode(t, "n")
	cfg := api.Config{Node: n.P2P, Share: n.Share, Transfer: n.Transfer, DataDir: n.Config.DataDir}

	// Hold the default port (if something else holds it, it is taken all the same).
	if l, err := net.Listen("tcp", api.DefaultAddr); err == nil {
		defer l.Close()
	}
	cfg.Addr = api.DefaultAddr
	s, err := api.Start(cfg)
	if err != nil {
		t.Fatalf("default port taken: %v", err)
	}
	if s.Addr() == api.DefaultAddr || !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Fatalf("fell back to %s", s.Addr())
	}
	if addr, _ := api.ReadAddr(n.Config.DataDir); addr != s.Addr() {
		t.Fatalf("api.addr %q, want %q", addr, s.Addr())
	}
	s.Close()

	for _, bad := range []string{"0.0.0.0:0", "192.0.2.1:5890", "example.com:80", "nonsense"} {
		cfg.Addr = bad
		if s, err := api.Start(cfg); err == nil {
			s.Close()
			t.Errorf("--api %s accepted", bad)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg.Addr = l.Addr().String()
	if s, err := api.Start(cfg); err == nil {
		s.Close()
		t.Errorf("taken explicit address %s accepted", cfg.Addr)
	}
	cfg.Addr = "localhost:0"
	s, err = api.Start(cfg)
	if err != nil {
		t.Fatalf("localhost: %v", err)
	}
	s.Close()
}

// A publish made outside the API (at the prompt) is an event too.
func TestEventOfPromptPublish(t *testing.T) {
	n := newNode(t, "n")
	startAPI(t, n, 0)
	es, err := openClient(t, n).Events(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	writeFile(t, n, "p.txt", 10)
	if _, err := n.Share.Publish(context.Background(), "p.txt"); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, es, api.EventPublished, func(d json.RawMessage) bool {
		var e api.Entry
		return json.Unmarshal(d, &e) == nil && e.Name == "p.txt"
	})
}

// A folder is listed, published and withdrawn through the API as one
// entry, marked as a folder with its file count.
func TestPublishFolder(t *testing.T) {
	n := newNode(t, "n")
	startAPI(t, n, 1)
	c := openClient(t, n)
	if err := os.MkdirAll(filepath.Join(n.Config.ShareDir, "pics", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, n, "pics/a.jpg", 100)
	writeFile(t, n, "pics/sub/b.jpg", 200)

	var files []api.LocalFile
	if err := call(t, c, http.MethodGet, "/api/v1/files", nil, nil, &files); err != nil || len(files) != 1 ||
		!files[0].Folder || files[0].Files != 2 || files[0].Size != 300 || files[0].Published {
		t.Fatalf("files: %+v, %v", files, err)
	}
	var pub api.Published
	if err := call(t, c, http.MethodPost, "/api/v1/publish", nil, api.PublishRequest{Names: []string{"pics"}}, &pub); err != nil || len(pub.Files) != 1 {
		t.Fatalf("publish: %+v, %v", pub, err)
	}
	if p := pub.Files[0]; p.Name != "pics" || !p.Folder || p.Files != 2 || p.Size != 300 || p.SHA256 != "" || p.Already {
		t.Fatalf("publish result: %+v", p)
	}
	var listed []api.Entry
	if err := call(t, c, http.MethodGet, "/api/v1/published", nil, nil, &listed); err != nil || len(listed) != 1 || !listed[0].Folder {
		t.Fatalf("published: %+v, %v", listed, err)
	}
}

// The same bytes under two names: one published entry, carrying the
// other name.
func TestPublishedAliases(t *testing.T) {
	n := newNode(t, "n")
	startAPI(t, n, 1)
	c := openClient(t, n)
	b := writeFile(t, n, "a.txt", 100)
	if err := os.WriteFile(filepath.Join(n.Config.ShareDir, "b.txt"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var pub api.Published
	if err := call(t, c, http.MethodPost, "/api/v1/publish", nil, api.PublishRequest{Names: []string{"a.txt", "b.txt"}}, &pub); err != nil {
		t.Fatalf("publish: %+v, %v", pub, err)
	}
	var listed []api.Entry
	if err := call(t, c, http.MethodGet, "/api/v1/published", nil, nil, &listed); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range listed {
		names[e.Name] = true
		for _, a := range e.Aliases {
			names[a] = true
		}
	}
	if !names["a.txt"] || !names["b.txt"] {
		t.Fatalf("published lists %+v; want both a.txt and b.txt", listed)
	}
}
