// Package repl is p2pshare's command interpreter: one command table used
// by the interactive prompt (line editing, history, tab completion) and by
// piped input (one command per line, no prompt, exit at EOF), so scripts
// and tests drive a node exactly as a user does.
//
// It owns no state of its own: every command calls the node's services.
package repl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/ergochat/readline"
	"github.com/ipfs/go-cid"
	"golang.org/x/term"

	"github.com/p2pshare/p2pshare/internal/invite"
	"github.com/p2pshare/p2pshare/internal/p2p"
	"github.com/p2pshare/p2pshare/internal/people"
	"github.com/p2pshare/p2pshare/internal/share"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

// Deps are the services the commands drive.
type Deps struct {
	Node     *p2p.Node
	Share    *share.Service
	Transfer *transfer.Service
	// People are the node's names, groups and blocks; nil: peers are
	// taken by ID only and the commands on them say so.
	People *people.Book
	// Invites runs invitations (invite, accept, invites); nil: those
	// commands say they are not available.
	Invites *invite.Service
	DataDir string
	// Log gets what is too detailed for the prompt (the full dial errors
	// of connect); default slog.Default().
	Log *slog.Logger
	// Background, if set, queues a download in the node's background
	// queue (the local API's) for `get --bg`; ended delivers how it ended,
	// then closes. Nil: `get --bg` says it needs the local API.
	Background func(target string, c cid.Cid, opt transfer.GetOptions) (id string, ended <-chan JobEnd, err error)
	// ResolveWho reads one word of `publish --to`: a peer (ID, unique
	// prefix, or a name the node gave it) or a group. Nil: peer IDs and
	// unique prefixes of known peers only.
	ResolveWho func(word string) (share.Who, error)
}

// JobEnd is how a background download ended.
type JobEnd struct {
	ID     string
	State  string // done, failed, canceled, paused
	Path   string
	Size   int64
	SHA256 string
	Error  string
}

// REPL runs commands against a node.
type REPL struct {
	d      Deps
	cmds   []*command
	byName map[string]*command

	// tty is the output when it is a terminal (progress bars are drawn
	// on it), nil otherwise.
	tty *os.File
	// cols, when set, is the width help wraps to (tests); otherwise the
	// terminal's, or 80.
	cols int

	mu     sync.Mutex
	cancel context.CancelFunc // of the running command, nil when idle

	// bg counts the goroutines that report background downloads (get
	// --bg). Under bgMu: bgRunning, those still waiting for their
	// download's end; bgFailed, those that did not end with the file
	// saved (one lock, so that a download is counted once as it ends).
	bg        sync.WaitGroup
	bgMu      sync.Mutex
	bgRunning int
	bgFailed  int
}

// errQuit ends the loop.
var errQuit = errors.New("quit")

// errReported is returned by a command that has already told the user why
// it did not do its job (a paused get): Exec prints nothing more but counts
// the command as failed.
var errReported = errors.New("reported")

// ErrCommandsFailed is returned by Run in piped mode when some commands
// failed, so the process can exit non-zero and scripts notice.
var ErrCommandsFailed = errors.New("command(s) failed")

// New returns a REPL over d.
func New(d Deps) *REPL {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	r := &REPL{d: d, byName: map[string]*command{}}
	r.cmds = commands()
	for _, c := range r.cmds {
		r.byName[c.name] = c
		for _, a := range c.aliases {
			r.byName[a] = c
		}
	}
	return r
}

// Exec runs one command line, writing its output to out. It reports
// whether the line asked to quit, and whether the command failed (it could
// not be parsed, it reported an error, or it was canceled).
func (r *REPL) Exec(ctx context.Context, line string, out io.Writer) (quit, failed bool) {
	words, err := splitWords(line)
	if err != nil {
		fmt.Fprintf(out, "error: %v\n", err)
		return false, true
	}
	if len(words) == 0 || strings.HasPrefix(words[0], "#") {
		return false, false
	}
	c, ok := r.byName[words[0]]
	if !ok {
		fmt.Fprintf(out, "error: unknown command %q (try help)\n", words[0])
		return false, true
	}
	ctx, cancel := context.WithCancel(ctx)
	r.mu.Lock()
	r.cancel = cancel
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.cancel = nil
		r.mu.Unlock()
		cancel()
	}()
	err = c.run(ctx, &call{r: r, out: out, name: words[0]}, words[1:])
	switch {
	case err == nil:
		return false, false
	case errors.Is(err, errQuit):
		return true, false
	case errors.Is(err, errReported):
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintf(out, "%s: canceled\n", c.name)
	default:
		// Errors can quote peers (a provider's refusal message, say).
		fmt.Fprintf(out, "error: %s: %s\n", c.name, termText(err.Error()))
	}
	return false, true
}

// interrupt cancels the running command. It reports whether one was running.
func (r *REPL) interrupt() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel == nil {
		return false
	}
	r.cancel()
	return true
}

// Run reads commands from in until quit, EOF or ctx ends. With a terminal
// on both ends it is an interactive prompt; otherwise it reads lines, and
// returns an error wrapping ErrCommandsFailed if any command failed.
// Ctrl-C cancels the running command, not the node; when piped and idle,
// it ends the loop.
func (r *REPL) Run(ctx context.Context, in *os.File, out *os.File) error {
	interactive := term.IsTerminal(int(in.Fd())) && term.IsTerminal(int(out.Fd()))
	if term.IsTerminal(int(out.Fd())) {
		r.tty = out
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-sigs:
				if !r.interrupt() && !interactive {
					stop()
				}
			}
		}
	}()

	if interactive {
		return r.runInteractive(ctx, in, out)
	}
	return r.runPiped(ctx, in, out)
}

func (r *REPL) runPiped(ctx context.Context, in io.Reader, out io.Writer) error {
	failed := 0
	result := func(err error) error {
		if err == nil && failed > 0 {
			err = fmt.Errorf("%d %w", failed, ErrCommandsFailed)
		}
		return err
	}
	lines := make(chan string)
	errc := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		errc <- sc.Err()
		close(lines)
	}()
	// Background downloads report from their own goroutines: one writer
	// at a time. At the end of the input, or at quit, the session waits
	// for them, so a script's `get --bg` lines have all ended when the
	// node exits, and one that failed counts as a failed command. A
	// download the node stops (SIGTERM, Ctrl-C) before its end counts as
	// failed too: its file was not saved.
	out = &syncWriter{w: out}
	waitBackground := func() {
		ended := make(chan struct{})
		go func() {
			r.bg.Wait()
			close(ended)
		}()
		select {
		case <-ended:
		case <-ctx.Done():
		}
		failed += r.takeBackgroundFailed()
	}
	for {
		select {
		case <-ctx.Done():
			failed += r.takeBackgroundFailed()
			return result(nil)
		case line, ok := <-lines:
			if !ok {
				waitBackground()
				return result(<-errc)
			}
			quit, bad := r.Exec(ctx, line, out)
			if bad {
				failed++
			}
			if quit {
				waitBackground()
				return result(nil)
			}
		}
	}
}

// bgStarted counts a background download that began.
func (r *REPL) bgStarted() {
	r.bgMu.Lock()
	r.bgRunning++
	r.bgMu.Unlock()
}

// bgEnded counts the end of a background download, failed or not.
func (r *REPL) bgEnded(failed bool) {
	r.bgMu.Lock()
	r.bgRunning--
	if failed {
		r.bgFailed++
	}
	r.bgMu.Unlock()
}

// takeBackgroundFailed returns the background downloads that failed
// since the last call, and those still running (the session is ending
// without them: their files are not saved), and resets the count of
// failures.
func (r *REPL) takeBackgroundFailed() int {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	n := r.bgFailed + r.bgRunning
	r.bgFailed = 0
	return n
}

func (r *REPL) runInteractive(ctx context.Context, in, out *os.File) error {
	rl, err := readline.NewFromConfig(&readline.Config{
		Prompt:            "p2pshare> ",
		HistoryFile:       filepath.Join(r.d.DataDir, "history"),
		HistorySearchFold: true,
		AutoComplete:      completer{r},
		InterruptPrompt:   "^C",
		EOFPrompt:         "quit",
		Stdin:             in,
		Stdout:            out,
	})
	if err != nil {
		return err
	}
	defer rl.Close()
	// ReadLine does not watch ctx: closing the line editor makes it return,
	// so SIGTERM stops an idle prompt too.
	stopClose := context.AfterFunc(ctx, func() { rl.Close() })
	defer stopClose()
	fmt.Fprintf(rl.Stdout(), "p2pshare %s: type help for commands, quit to leave\n", r.d.Node.Host().ID())
	for ctx.Err() == nil {
		line, err := rl.ReadLine()
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			if line == "" {
				fmt.Fprintln(rl.Stdout(), "(type quit or press Ctrl-D to leave)")
			}
			continue
		case errors.Is(err, io.EOF) || ctx.Err() != nil:
			return nil
		case err != nil:
			return err
		}
		if quit, _ := r.Exec(ctx, line, rl.Stdout()); quit {
			return nil
		}
	}
	return nil
}

// width is the width help wraps to: the terminal's, or 80.
func (r *REPL) width() int {
	if r.cols > 0 {
		return r.cols
	}
	if r.tty != nil {
		if w, _, err := term.GetSize(int(r.tty.Fd())); err == nil && w > 20 {
			return w
		}
	}
	return 80
}

// completer completes command names, then each command's arguments. What
// it inserts is quoted as the line parser reads it back: a name with a
// space completes to 'my file.txt' (or my\ file.txt after a typed prefix).
type completer struct{ r *REPL }

func (c completer) Do(line []rune, pos int) ([][]rune, int) {
	return completeLine(string(line[:pos]), func(words []string, partial string) []string {
		if len(words) == 0 {
			var names []string
			for name := range c.r.byName {
				names = append(names, name)
			}
			slices.Sort(names)
			return names
		}
		if cmd, ok := c.r.byName[words[0]]; ok && cmd.complete != nil {
			return cmd.complete(c.r, words[1:], partial)
		}
		return nil
	})
}

// completeLine completes the last word of head (the line up to the
// cursor) from the candidates cands gives for the words before it, in
// their order. It returns what to append for each candidate that fits and
// how many runes of head the last word already has.
func completeLine(head string, cands func(words []string, partial string) []string) ([][]rune, int) {
	st := lex(head)
	if st.escaped {
		return nil, 0
	}
	var out [][]rune
	for _, s := range cands(st.words, st.partial) {
		if !strings.HasPrefix(s, st.partial) {
			continue
		}
		var add string
		if st.inWord {
			add = continueWord(s[len(st.partial):], st.quote)
		} else {
			add = quoteWord(s)
		}
		out = append(out, []rune(add+" "))
	}
	typed := 0
	if st.inWord {
		typed = len([]rune(head)) - st.start
	}
	return out, typed
}

// syncWriter serialises writes from the command loop and from background
// downloads' reports.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
