package api_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/p2pshare/p2pshare/internal/api"
)

// findChromium finds the browser. A missing browser fails the test: CI
// installs it (.ci/run), and a skipped UI test would hide a broken UI.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install it (apt-get install chromium) to run the web UI test")
	return ""
}

// newBrowser starts a headless chromium that talks to loopback only: no
// background or component traffic, no QUIC, and every host name except
// 127.0.0.1 fails to resolve.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(findChromium(t)),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 720),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	return ctx
}

// consoleErrors collects what the page reports as errors: exceptions,
// console.error, and the browser's own error log (failed loads, CSP).
type consoleErrors struct {
	mu   sync.Mutex
	list []string
}

func (c *consoleErrors) listen(ctx context.Context) error {
	return chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				msg = "console.error"
				for _, a := range ev.Args {
					msg += " " + string(a.Value)
				}
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				msg = "log: " + ev.Entry.Text + " " + ev.Entry.URL
			}
		}
		if msg != "" {
			c.mu.Lock()
			c.list = append(c.list, msg)
			c.mu.Unlock()
		}
	})
}

func (c *consoleErrors) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.list...)
}

// screenshots saves PNGs of the pages into $P2PSHARE_SCREENSHOTS (kept)
// or a temp folder.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("P2PSHARE_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// The web UI in a real browser against two real nodes on loopback: log
// in through the one-time link on node B; node A publishes a file (a name
// that is also HTML) and it appears on B's page without reload; Get it
// with the keyboard; the bar reaches 100% and the file on disk has the
// right SHA-256; upload and publish through the page; node A stops and
// its peer flag turns offline. Every page is screenshotted, at desktop
// width and at 360 px, and the page must log no error.
func TestBrowserUI(t *testing.T) {
	ctx := newBrowser(t)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	shots := screenshotDir(t)
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.CaptureScreenshot()(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
		})
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	// Each step has its own deadline, so a failing one says which.
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 45*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			// Show what the page showed.
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash + "\n" + document.body.innerText`))
			chromedp.Do(ctx, shot("failed"))
			t.Fatalf("%s: %v\npage:\n%s", what, err, text)
		}
	}

	na, nb := newNode(t, "a"), newNode(t, "b")
	sa, sb := startAPI(t, na, 0), startAPI(t, nb, 0)
	ca, cb := openClient(t, na), openClient(t, nb)

	// Start the browser, then watch for errors from the first page on.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	var errs consoleErrors
	if err := errs.listen(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if e := errs.get(); len(e) > 0 {
			t.Errorf("the page logged errors:\n%s", strings.Join(e, "\n"))
		}
	}()

	// Log in on B through the one-time link: it lands on the overview.
	do("log in", chromedp.Navigate(loginLink(t, sb)),
		chromedp.WaitVisible(css("#page-overview")),
		chromedp.Poll[chromedp.Void](`document.getElementById("live").textContent === "live"`, chromedp.WithPollingTimeout(30*time.Second)))

	// A and B meet; A publishes a file whose name is HTML.
	var cn api.Connected
	if err := call(t, cb, http.MethodPost, "/api/v1/connect", nil, api.ConnectRequest{Addr: na.P2P.Addrs()[0].String()}, &cn); err != nil {
		t.Fatal(err)
	}
	const name = `<img src=x onerror=alert(1)> clip.bin`
	data := writeFile(t, na, name, 2<<20+5)
	var pub api.Published
	if err := call(t, ca, http.MethodPost, "/api/v1/publish", nil, api.PublishRequest{Names: []string{name}}, &pub); err != nil {
		t.Fatal(err)
	}
	cid := pub.Files[0].CID
	row := fmt.Sprintf(`#available-body tr[data-cid=%q]`, cid)
	peerRow := fmt.Sprintf(`#peers-body tr[data-peer=%q]`, cn.PeerID)

	do("peer online", chromedp.Click(css(`nav a[href="#peers"]`)),
		chromedp.WaitVisible(css(peerRow+`[data-online="true"]`)))
	do("overview", chromedp.Click(css(`nav a[href="#overview"]`)),
		chromedp.Poll[chromedp.Void](`document.getElementById("ov-available").textContent === "1"`, chromedp.WithPollingTimeout(30*time.Second)),
		shot("overview"))

	// The file appears on B's Available page without reload, its name
	// shown as text.
	do("available", chromedp.Click(css(`nav a[href="#available"]`)),
		chromedp.WaitVisible(css(row)))
	cell, err := chromedp.Run(ctx, chromedp.TextContent(css(row+" td.name")))
	if err != nil || cell != name {
		t.Fatalf("name cell %q (%v), want %q", cell, err, name)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main img").length`)); err != nil || n != 0 {
		t.Fatalf("%d img elements in the page (%v): a peer's string became HTML", n, err)
	}
	// Search filters it out and back in.
	do("search", chromedp.SendKeys(css("#search"), "nomatch"),
		chromedp.WaitVisible(css("#available-empty")),
		chromedp.SendKeys(css("#search"), strings.Repeat(kb.Backspace, len("nomatch"))+"clip"),
		chromedp.WaitVisible(css(row)), shot("available"))

	// Get it with the keyboard: focus the button, press Enter.
	do("get", chromedp.Focus(css(row+" button")), chromedp.KeyEvent("\r"),
		chromedp.Click(css(`nav a[href="#transfers"]`)),
		chromedp.WaitVisible(css(`#transfers-body tr[data-state="done"]`)))
	pct, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const r = document.querySelector('#transfers-body tr[data-state="done"]'); return r.querySelector("progress").value + " " + r.querySelector(".pct").textContent; })()`))
	if err != nil || pct != "100 100%" {
		t.Fatalf("finished bar: %q (%v), want 100 100%%", pct, err)
	}
	do("transfers", shot("transfers"))
	var jobs []api.Job
	if err := call(t, cb, http.MethodGet, "/api/v1/gets", nil, nil, &jobs); err != nil || len(jobs) != 1 || jobs[0].State != api.JobDone {
		t.Fatalf("jobs: %+v (%v)", jobs, err)
	}
	got, err := os.ReadFile(jobs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatal("the downloaded file's SHA-256 differs from the published one")
	}

	// Upload a file through the page, then publish it with its toggle.
	up := filepath.Join(t.TempDir(), "notes.txt")
	upData := make([]byte, 12345)
	rand.Read(upData)
	if err := os.WriteFile(up, upData, 0o644); err != nil {
		t.Fatal(err)
	}
	fileRow := `#files-body tr[data-name="notes.txt"]`
	do("upload", chromedp.Click(css(`nav a[href="#files"]`)),
		chromedp.SetUploadFiles(css("#upload-file"), []string{up}),
		chromedp.Click(css(`#upload button[type="submit"]`)),
		chromedp.WaitVisible(css(fileRow)),
		chromedp.Click(css(fileRow+" button")),
		chromedp.WaitVisible(css(fileRow+` button[aria-pressed="true"]`)),
		shot("files"))
	if got, err := os.ReadFile(filepath.Join(nb.Config.ShareDir, "notes.txt")); err != nil || string(got) != string(upData) {
		t.Fatalf("uploaded file differs (%v)", err)
	}
	if len(nb.Share.Published()) != 1 {
		t.Fatalf("B publishes %d files, want the upload", len(nb.Share.Published()))
	}

	// A stops: its flag turns offline on B's peer page.
	sa.Close()
	na.Close()
	do("peer offline", chromedp.Click(css(`nav a[href="#peers"]`)),
		chromedp.WaitVisible(css(peerRow+`[data-online="false"]`)),
		shot("peers"))

	// At 360 px nothing sticks out sideways (tables scroll in their box).
	for _, page := range []string{"overview", "files", "available", "transfers", "peers"} {
		do("narrow "+page, chromedp.EmulateViewport(360, 740),
			chromedp.Click(css(fmt.Sprintf(`nav a[href="#%s"]`, page))),
			chromedp.WaitVisible(css("#page-"+page)),
			shot("narrow-"+page))
		w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		if err != nil || w > 360 {
			t.Errorf("%s at 360 px: page is %d px wide (%v)", page, w, err)
		}
	}
	t.Logf("screenshots in %s", shots)
}
