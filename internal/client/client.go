// Package client talks to the API of a running p2pshare node
// (internal/api): it finds the node of a data folder through
// <data>/api.addr and <data>/api.token, makes the calls and reads the
// event stream. `p2pshare COMMAND` is built on it.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/p2pshare/p2pshare/internal/api"
)

// ErrNoNode: no node runs on the data folder (or it runs with --api off).
var ErrNoNode = errors.New("no p2pshare node is running")

// Client calls one node's API.
type Client struct {
	dataDir string
	base    string // http://127.0.0.1:PORT
	token   string
	hc      *http.Client
}

// Open finds the node running on dataDir.
func Open(dataDir string) (*Client, error) {
	addr, err := api.ReadAddr(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, noNode(dataDir)
	}
	if err != nil {
		return nil, err
	}
	token, err := api.ReadToken(dataDir)
	if err != nil {
		return nil, fmt.Errorf("read the API token: %w", err)
	}
	return New(dataDir, addr, token), nil
}

// New is a client of the API at addr (host:port) with token; dataDir is
// only named in errors.
func New(dataDir, addr, token string) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the API is on loopback: never through a proxy
	return &Client{dataDir: dataDir, base: "http://" + addr, token: token, hc: &http.Client{Transport: tr}}
}

func noNode(dataDir string) error {
	return fmt.Errorf("%w on %s: start one with `p2pshare --data %s daemon` (or run `p2pshare --data %s` for the prompt)", ErrNoNode, dataDir, dataDir, dataDir)
}

// Error is an error answer of the API.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// Call makes one request: body (if not nil) is sent as JSON, and the
// answer is decoded into out (if not nil). An error answer is an *Error;
// its body is decoded into out too, when it fits (publish answers what it
// did along with what failed).
func (c *Client) Call(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.do(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the node's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e api.Error
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("the node answered %s", resp.Status)
		}
		if out != nil {
			json.Unmarshal(b, out)
		}
		return &Error{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("bad answer from the node: %w", err)
		}
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if isRefused(err) {
			// api.addr left behind by a node that did not stop cleanly.
			return nil, noNode(c.dataDir)
		}
		return nil, fmt.Errorf("call the node at %s: %w", c.base, err)
	}
	return resp, nil
}

func isRefused(err error) bool {
	var op *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &op) && op.Op == "dial")
}

// Event is one Server-Sent Event.
type Event struct {
	Name string
	Data json.RawMessage
}

// Events is an open event stream.
type Events struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

// Events opens the event stream and waits for its "ready" event: events
// after Events returns are not missed.
func (c *Client) Events(ctx context.Context) (*Events, error) {
	resp, err := c.do(ctx, http.MethodGet, "/api/v1/events", nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e api.Error
		json.NewDecoder(resp.Body).Decode(&e)
		return nil, &Error{Status: resp.StatusCode, Message: e.Error}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	es := &Events{body: resp.Body, sc: sc}
	ev, err := es.Next()
	if err != nil {
		es.Close()
		return nil, err
	}
	if ev.Name != api.EventReady {
		es.Close()
		return nil, fmt.Errorf("event stream: first event %q, want %q", ev.Name, api.EventReady)
	}
	return es, nil
}

// Next returns the next event. io.EOF: the node ended the stream.
func (es *Events) Next() (Event, error) {
	var ev Event
	var data []string
	for es.sc.Scan() {
		line := es.sc.Text()
		switch {
		case line == "":
			if ev.Name != "" || len(data) > 0 {
				ev.Data = json.RawMessage(strings.Join(data, "\n"))
				return ev, nil
			}
		case strings.HasPrefix(line, ":"): // comment: keepalive
		case strings.HasPrefix(line, "event:"):
			ev.Name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := es.sc.Err(); err != nil {
		return Event{}, err
	}
	return Event{}, io.EOF
}

// Close ends the stream.
func (es *Events) Close() error { return es.body.Close() }
