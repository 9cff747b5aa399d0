// Command p2pshare runs a p2pshare node and its command prompt.
//
//	go build -o bin/p2pshare ./cmd/node
//	bin/p2pshare --data ~/.p2pshare
//
// Commands are read from the terminal (with line editing, history and tab
// completion) or, when stdin is not a terminal, line by line until EOF.
// libp2p's logs go to <data>/node.log, never over the prompt.
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
	"time"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/node"
	"github.com/p2pshare/p2pshare/internal/p2p"
	"github.com/p2pshare/p2pshare/internal/repl"
	"github.com/p2pshare/p2pshare/internal/share"
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

func run(args []string) error {
	var (
		cfg         node.Config
		listen      multiFlag
		bootstrap   multiFlag
		noMDNS      bool
		logLevel    string
		showVersion bool
		relays      multiFlag
		noPortMap   bool
		dhtMode     = string(p2p.DHTLAN)
		relaySvc    = string(p2p.RelayAuto)
	)
	fs := flag.NewFlagSet("p2pshare", flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data", node.DefaultDataDir(), "data folder: identity, keys, index, peer table, logs")
	fs.StringVar(&cfg.ShareDir, "share", "", "share folder (default <data>/files)")
	fs.StringVar(&cfg.DownloadDir, "downloads", "", "downloads folder (default <data>/downloads)")
	fs.Var(&listen, "listen", "listen multiaddr (repeatable; default all interfaces, TCP and QUIC, random ports)")
	fs.Var(&bootstrap, "bootstrap", "bootstrap peer multiaddr with /p2p/ID (repeatable)")
	fs.BoolVar(&noMDNS, "no-mdns", false, "turn off LAN discovery by mDNS")
	fs.StringVar(&dhtMode, "dht", dhtMode, "lan: p2pshare's own DHT (mDNS, bootstrap peers); public: the public IPFS DHT")
	fs.Var(&relays, "relay", "circuit relay multiaddr with /p2p/ID, used when this node is not reachable (repeatable)")
	fs.StringVar(&relaySvc, "relay-service", relaySvc, "relay for others: auto (when publicly reachable), on, off, unlimited (carries whole transfers)")
	fs.BoolVar(&noPortMap, "no-portmap", false, "do not ask the router for a port mapping (UPnP, NAT-PMP)")
	fs.DurationVar(&cfg.Keepalive, "keepalive", 10*time.Second, "interval of keepalive pings to known peers")
	fs.StringVar(&logLevel, "log-level", "warn", "log level for <data>/node.log: debug, info, warn, error")
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
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	// Errors are printed once, by main; the usage only on --help.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Fprintf(os.Stdout, "usage: p2pshare [flags]   (commands are read from the terminal or stdin; type help)\n\nflags:\n")
			fs.PrintDefaults()
			return nil
		}
		return fmt.Errorf("%w (p2pshare --help lists the flags)", err)
	}
	if showVersion {
		fmt.Printf("p2pshare %s\n", repl.Version())
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (commands are read from stdin; p2pshare --help lists the flags)", fs.Args())
	}
	if err := checkFlags(&cfg, listen); err != nil {
		return err
	}
	cfg.MDNS = !noMDNS
	cfg.PortMap = !noPortMap
	var err error
	if cfg.DHT, err = p2p.ParseDHTMode(dhtMode); err != nil {
		return fmt.Errorf("--dht: %w", err)
	}
	if cfg.RelayService, err = p2p.ParseRelayMode(relaySvc); err != nil {
		return fmt.Errorf("--relay-service: %w", err)
	}
	for _, s := range relays {
		ma, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("--relay %q: %w", s, err)
		}
		cfg.Relays = append(cfg.Relays, ma)
	}
	cfg.ListenAddrs = listen
	for _, s := range bootstrap {
		ma, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("--bootstrap %q: %w", s, err)
		}
		cfg.Bootstrap = append(cfg.Bootstrap, ma)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	logger, err := setupLogging(filepath.Join(cfg.DataDir, "node.log"), logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = logger

	// SIGTERM stops the node; SIGINT is the REPL's (it cancels a command).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
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
	r := repl.New(repl.Deps{Node: n.P2P, Share: n.Share, Transfer: n.Transfer, DataDir: cfg.DataDir})
	return r.Run(ctx, os.Stdin, os.Stdout)
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
