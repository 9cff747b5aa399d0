// Command p2pshare runs a p2pshare node: with its command prompt, in the
// background as a daemon, or as a client of a running node.
//
//	go build -o bin/p2pshare ./cmd/node
//	bin/p2pshare --data ~/.p2pshare                  # node and prompt
//	bin/p2pshare --data ~/.p2pshare daemon           # node, no prompt
//	bin/p2pshare --data ~/.p2pshare get NAME --wait  # client of that node
//
// The prompt reads commands from the terminal (with line editing,
// history and tab completion) or, when stdin is not a terminal, line by
// line until EOF. Both node modes serve the local API (internal/api) that
// the client commands call. libp2p's logs go to <data>/node.log, never
// over the prompt.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ipfs/go-cid"
	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/internal/api"
	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/node"
	"github.com/p2pshare/p2pshare/internal/p2p"
	"github.com/p2pshare/p2pshare/internal/people"
	"github.com/p2pshare/p2pshare/internal/repl"
	"github.com/p2pshare/p2pshare/internal/share"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "p2pshare:", err)
		os.Exit(1)
	}
}

// Limits of the flags: a keepalive below minKeepalive would ping every
// peer many times a second; below minUploadRate the rate limiter's waits
// outlast the peers' I/O timeouts and no chunk is ever served.
const (
	minKeepalive  = 100 * time.Millisecond
	minUploadRate = 1 << 10
)

// nodeOptions are the flags of a node.
type nodeOptions struct {
	cfg         node.Config
	listen      multiFlag
	bootstrap   multiFlag
	noMDNS      bool
	logLevel    string
	showVersion bool
	relays      multiFlag
	noPortMap   bool
	dhtMode     string
	relaySvc    string
	apiAddr     string
	maxGets     int
}

func nodeFlags(o *nodeOptions) *flag.FlagSet {
	o.dhtMode, o.relaySvc = string(p2p.DHTLAN), string(p2p.RelayAuto)
	cfg := &o.cfg
	fs := flag.NewFlagSet("p2pshare", flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data", node.DefaultDataDir(), "data folder: identity, keys, index, peer table, logs")
	fs.StringVar(&cfg.ShareDir, "share", "", "share folder (default <data>/files)")
	fs.StringVar(&cfg.DownloadDir, "downloads", "", "downloads folder (default <data>/downloads)")
	fs.Var(&o.listen, "listen", "listen multiaddr (repeatable; default all interfaces, TCP and QUIC, random ports)")
	fs.Var(&o.bootstrap, "bootstrap", "bootstrap peer multiaddr with /p2p/ID (repeatable)")
	fs.StringVar(&cfg.Nick, "nick", "", "a name this node says for itself; peers show it as its claim, (says: NAME), never as who it is")
	fs.BoolVar(&o.noMDNS, "no-mdns", false, "turn off LAN discovery by mDNS")
	fs.StringVar(&o.dhtMode, "dht", o.dhtMode, "lan: p2pshare's own DHT (mDNS, bootstrap peers); public: the public IPFS DHT")
	fs.Var(&o.relays, "relay", "circuit relay multiaddr with /p2p/ID, used when this node is not reachable (repeatable)")
	fs.StringVar(&o.relaySvc, "relay-service", o.relaySvc, "relay for others: auto (when publicly reachable), on, off, unlimited (carries whole transfers)")
	fs.BoolVar(&o.noPortMap, "no-portmap", false, "do not ask the router for a port mapping (UPnP, NAT-PMP)")
	fs.DurationVar(&cfg.Keepalive, "keepalive", 10*time.Second, "interval of keepalive pings to known peers")
	fs.StringVar(&o.logLevel, "log-level", "warn", "log level for <data>/node.log: debug, info, warn, error")
	fs.Func("max-upload-rate", "cap on what this node serves, bytes per second over all peers (e.g. 20MiB, 500KB; default no limit)", func(v string) error {
		n, err := parseBytes(v)
		if err == nil && n < minUploadRate {
			err = fmt.Errorf("%q is too low: at least 1KiB (leave the flag out for no limit)", v)
		}
		cfg.UploadLimit = n
		return err
	})
	fs.Func("on-change", "when a published file is edited: republish (publish the new content, withdraw the old) or withdraw (default republish)", func(v string) error {
		var err error
		cfg.OnChange, err = share.ParseOnChange(v)
		return err
	})
	fs.IntVar(&cfg.BBSBits, "bbs-bits", bbsaes.DefaultModulusBits, "size of the BBS modulus made on first start (at least 2048)")
	fs.StringVar(&o.apiAddr, "api", api.DefaultAddr, "address of the local API (loopback only; if the default port is taken, a free one), or off")
	fs.IntVar(&o.maxGets, "max-concurrent-gets", api.DefaultMaxConcurrentGets, "background downloads (API gets) that run at once; more wait in a queue")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	// Errors are printed once, by main; the usage only on --help.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

const usageText = `usage:
  p2pshare [flags]                  run a node with its command prompt (commands from the terminal or stdin; type help)
  p2pshare [flags] daemon           run a node in the background: no prompt, stopped by SIGTERM or Ctrl-C
  p2pshare [--data D] COMMAND ...   ask the node running on D (--json: machine-readable output)
  p2pshare help | version

`

func printUsage(fs *flag.FlagSet) {
	fmt.Fprint(os.Stdout, usageText)
	fmt.Fprintln(os.Stdout, "commands (of a running node; each takes --json and --data):")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	for _, c := range clientCommands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.usage, c.help)
	}
	tw.Flush()
	fmt.Fprintln(os.Stdout, "\nflags of a node:")
	fs.SetOutput(os.Stdout)
	fs.PrintDefaults()
}

func run(args []string) error {
	var o nodeOptions
	fs := nodeFlags(&o)
	parse := func(args []string) (bool, error) {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs)
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("%w (p2pshare --help lists the flags)", err)
		}
		return false, nil
	}
	if done, err := parse(args); done || err != nil {
		return err
	}
	if o.showVersion {
		fmt.Printf("p2pshare %s\n", repl.Version())
		return nil
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return runNode(&o, false)
	}
	switch rest[0] {
	case "daemon":
		if done, err := parse(rest[1:]); done || err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("daemon: unexpected arguments %q (p2pshare --help lists the flags)", fs.Args())
		}
		return runNode(&o, true)
	case "help":
		printUsage(fs)
		return nil
	case "version":
		fmt.Printf("p2pshare %s\n", repl.Version())
		return nil
	}
	// A client: the node's flags mean nothing to it.
	var nodeOnly []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "data" {
			nodeOnly = append(nodeOnly, "--"+f.Name)
		}
	})
	if _, ok := findClientCommand(rest[0]); ok && len(nodeOnly) > 0 {
		return fmt.Errorf("%s: %s: flags of a node (give them to p2pshare daemon), not of the command", rest[0], strings.Join(nodeOnly, ", "))
	}
	return runClient(o.cfg.DataDir, rest, os.Stdout, os.Stderr)
}

// runNode runs a node: with the prompt, or as a daemon until SIGTERM or
// SIGINT.
func runNode(o *nodeOptions, daemon bool) error {
	cfg := o.cfg
	if err := checkFlags(&cfg, o.listen); err != nil {
		return err
	}
	if cfg.Nick != "" {
		if err := people.ValidName(cfg.Nick); err != nil {
			return fmt.Errorf("--nick: %w", err)
		}
	}
	if o.maxGets < 1 {
		return fmt.Errorf("--max-concurrent-gets %d: must be at least 1", o.maxGets)
	}
	cfg.MDNS = !o.noMDNS
	cfg.PortMap = !o.noPortMap
	var err error
	if cfg.DHT, err = p2p.ParseDHTMode(o.dhtMode); err != nil {
		return fmt.Errorf("--dht: %w", err)
	}
	if cfg.RelayService, err = p2p.ParseRelayMode(o.relaySvc); err != nil {
		return fmt.Errorf("--relay-service: %w", err)
	}
	for _, s := range o.relays {
		ma, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("--relay %q: %w", s, err)
		}
		cfg.Relays = append(cfg.Relays, ma)
	}
	cfg.ListenAddrs = o.listen
	for _, s := range o.bootstrap {
		ma, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("--bootstrap %q: %w", s, err)
		}
		cfg.Bootstrap = append(cfg.Bootstrap, ma)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	logger, err := setupLogging(filepath.Join(cfg.DataDir, "node.log"), o.logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = logger

	// SIGTERM stops the node; SIGINT is the prompt's (it cancels a
	// command), but stops a daemon.
	sigs := []os.Signal{syscall.SIGTERM}
	if daemon {
		sigs = append(sigs, os.Interrupt)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	n, err := node.Open(ctx, cfg)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		// The datastore's lock is held: another node runs on this folder.
		return fmt.Errorf("%s is in use by another p2pshare node", cfg.DataDir)
	}
	if err != nil {
		return err
	}
	defer n.Close()
	if err := n.P2P.MDNSError(); err != nil {
		fmt.Fprintf(os.Stderr, "warning: LAN discovery is off (%v); reach peers with --bootstrap or connect\n", err)
	}
	logger.Info("node started", "peer", n.P2P.Host().ID())

	var srv *api.Server
	if o.apiAddr != "off" {
		srv, err = api.Start(api.Config{
			Node: n.P2P, Share: n.Share, Transfer: n.Transfer, People: n.People,
			DataDir: n.Config.DataDir, DownloadDir: n.Config.DownloadDir,
			Addr: o.apiAddr, MaxConcurrentGets: o.maxGets, Version: repl.Version(), Log: logger,
		})
		switch {
		case err != nil && daemon:
			return err
		case err != nil:
			// The prompt works without the API.
			fmt.Fprintf(os.Stderr, "warning: no local API: %v\n", err)
		default:
			defer srv.Close() // before n.Close: it pauses the background gets
		}
	}
	if !daemon {
		d := repl.Deps{Node: n.P2P, Share: n.Share, Transfer: n.Transfer, People: n.People, Invites: n.Invite, DataDir: cfg.DataDir}
		if srv != nil {
			d.Background = backgroundGets(srv)
		}
		r := repl.New(d)
		return r.Run(ctx, os.Stdin, os.Stdout)
	}
	apiURL := "off"
	if srv != nil {
		apiURL = srv.URL()
	}
	fmt.Printf("p2pshare daemon: peer %s, API %s, data %s (logs in node.log; SIGTERM or Ctrl-C stops it)\n", n.P2P.ID(), apiURL, cfg.DataDir)
	<-ctx.Done()
	logger.Info("node stopping", "signal", "received")
	return nil
}

// checkFlags refuses flag values that parse but make no sense, naming
// the flag.
func checkFlags(cfg *node.Config, listen []string) error {
	if cfg.Keepalive < minKeepalive {
		return fmt.Errorf("--keepalive %s: must be at least %s (it is the interval of the pings that tell online from offline peers)", cfg.Keepalive, minKeepalive)
	}
	if cfg.BBSBits < bbsaes.DefaultModulusBits || cfg.BBSBits > bbsaes.MaxModulusBits {
		return fmt.Errorf("--bbs-bits %d: must be between %d and %d", cfg.BBSBits, bbsaes.DefaultModulusBits, bbsaes.MaxModulusBits)
	}
	for _, s := range listen {
		if _, err := multiaddr.NewMultiaddr(s); err != nil {
			return fmt.Errorf("--listen %q: not a multiaddr (example: /ip4/0.0.0.0/tcp/4001): %w", s, err)
		}
	}
	return nil
}

// setupLogging sends every log (ours through slog, go-libp2p's through
// gologshim, kad-dht's through go-log) to one file, so nothing is written
// over the prompt. It must run before the first libp2p logger logs.
func setupLogging(path, level string) (*slog.Logger, error) {
	lvl, err := golog.Parse(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	golog.SetupLogging(golog.Config{Format: golog.PlaintextOutput, Level: lvl, File: path})
	h := golog.SlogHandler()
	gologshim.SetDefaultHandler(h)
	slog.SetDefault(slog.New(h))
	return slog.New(h).With("logger", "p2pshare"), nil
}

// parseBytes reads a byte count with an optional unit: B, KB, MB, GB
// (powers of 1000) or KiB, MiB, GiB (powers of 1024).
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := strings.TrimSpace(s), 1.0
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(num), strings.ToUpper(u.suffix)) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || v*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("bad byte count %q (examples: 20MiB, 500KB, 1048576)", s)
	}
	return int64(v * mult), nil
}

// backgroundGets lets the prompt's `get --bg` use the API's download
// queue, so prompt and API downloads share --max-concurrent-gets.
func backgroundGets(srv *api.Server) func(string, cid.Cid, transfer.GetOptions) (string, <-chan repl.JobEnd, error) {
	return func(target string, c cid.Cid, opt transfer.GetOptions) (string, <-chan repl.JobEnd, error) {
		job, ended, err := srv.Background(target, c, opt)
		if err != nil {
			return "", nil, err
		}
		out := make(chan repl.JobEnd, 1)
		go func() {
			defer close(out)
			if j, ok := <-ended; ok {
				out <- repl.JobEnd{ID: j.ID, State: j.State, Path: j.Path, Size: j.Size, SHA256: j.SHA256, Error: j.Error}
			}
		}()
		return job.ID, out, nil
	}
}
