package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/p2pshare/p2pshare/internal/proto"
)

const copyBuf = 1 << 20

// receive copies r into a new file at path through a 1 MiB buffer, then
// fsyncs and closes it, and checks the byte count.
func receive(r io.Reader, path string, want int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(onlyWriter{f}, onlyReader{r}, make([]byte, copyBuf))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != want {
		err = fmt.Errorf("received %d bytes, want %d", n, want)
	}
	return err
}

// send copies the file at path into w through a 1 MiB buffer.
func send(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(onlyWriter{w}, onlyReader{f}, make([]byte, copyBuf))
	return err
}

// tcpCopy sends the file over a loopback TCP connection to a receiver in this
// process that writes and fsyncs it under dir. The time runs from the dial
// to the receiver's fsync.
func tcpCopy(file, dir string) (time.Duration, int64, error) {
	st, err := os.Stat(file)
	if err != nil {
		return 0, 0, err
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	out := filepath.Join(dir, "tcpcopy.out")
	defer os.Remove(out)
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- receive(c, out, st.Size())
	}()
	start := time.Now()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		return 0, 0, err
	}
	serr := send(c, file)
	c.Close()
	rerr := <-done
	d := time.Since(start)
	return d, st.Size(), errors.Join(serr, rerr)
}

const bareProto = proto.Prefix + "/bench/bare/1"

// libp2pPair is two in-process hosts configured like internal/p2p's (TCP,
// TLS then Noise, yamux, or QUIC; the same resource-manager limits),
// connected.
type libp2pPair struct {
	snd, rcv host.Host
	file     string
}

// newLibp2pPair connects two hosts over transport ("tcp" or "quic").
func newLibp2pPair(file, transport string) (*libp2pPair, error) {
	cfg := hostConfig{bulk: []protocol.ID{bareProto}, transport: transport}
	snd, err := newHost(cfg)
	if err != nil {
		return nil, err
	}
	rcv, err := newHost(cfg)
	if err != nil {
		snd.Close()
		return nil, err
	}
	p := &libp2pPair{snd: snd, rcv: rcv, file: file}
	snd.SetStreamHandler(bareProto, func(s network.Stream) {
		if err := send(s, p.file); err != nil {
			s.Reset()
			return
		}
		s.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rcv.Connect(ctx, peer.AddrInfo{ID: snd.ID(), Addrs: snd.Addrs()}); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *libp2pPair) Close() { p.snd.Close(); p.rcv.Close() }

// copy opens a stream on the existing connection; the sender streams the
// file, the receiver writes and fsyncs it under dir, or drops it (dir
// empty: what the stream alone can carry). The time runs from NewStream to
// the fsync (the last byte).
func (p *libp2pPair) copy(dir string) (time.Duration, int64, error) {
	st, err := os.Stat(p.file)
	if err != nil {
		return 0, 0, err
	}
	out := filepath.Join(dir, "libp2pcopy.out")
	defer os.Remove(out)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	s, err := p.rcv.NewStream(ctx, p.snd.ID(), bareProto)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	if dir == "" {
		err = discard(s, st.Size())
	} else {
		err = receive(s, out, st.Size())
	}
	return time.Since(start), st.Size(), err
}

// discard reads r to its end through a 1 MiB buffer, as receive does, but
// writes nothing (/dev/null), and checks the byte count.
func discard(r io.Reader, want int64) error {
	n, err := io.CopyBuffer(onlyWriter{io.Discard}, onlyReader{r}, make([]byte, copyBuf))
	if err == nil && n != want {
		err = fmt.Errorf("received %d bytes, want %d", n, want)
	}
	return err
}

func cmdTCPCopy(args []string) error {
	fs := flag.NewFlagSet("tcpcopy", flag.ExitOnError)
	file := fs.String("file", "", "file to send")
	runs := fs.Int("runs", 1, "runs")
	dir := fs.String("dir", os.TempDir(), "receiver's folder")
	var c common
	c.register(fs)
	fs.Parse(args)
	if err := c.start(); err != nil {
		return err
	}
	defer c.stop()
	warm(*file)
	for i := range *runs {
		d, n, err := tcpCopy(*file, *dir)
		if err != nil {
			return err
		}
		emit(Result{Bench: "transfer", Case: "tcp", Metric: "MBps", Value: mbps(n, d), Run: i, Size: n})
	}
	return nil
}

func cmdLibp2pCopy(args []string) error {
	fs := flag.NewFlagSet("libp2pcopy", flag.ExitOnError)
	file := fs.String("file", "", "file to send")
	runs := fs.Int("runs", 1, "runs")
	dir := fs.String("dir", os.TempDir(), "receiver's folder")
	transport := fs.String("transport", "tcp", "tcp or quic")
	null := fs.Bool("null", false, "the receiver drops what it reads instead of writing it")
	var c common
	c.register(fs)
	fs.Parse(args)
	if *null {
		*dir = ""
	}
	warm(*file)
	p, err := newLibp2pPair(*file, *transport)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := c.start(); err != nil {
		return err
	}
	defer c.stop()
	for i := range *runs {
		d, n, err := p.copy(*dir)
		if err != nil {
			return err
		}
		emit(Result{Bench: "transfer", Case: bareCase(*transport, *dir == ""), Metric: "MBps", Value: mbps(n, d), Run: i, Size: n})
	}
	return nil
}

// bareCase names the result of a bare stream over transport: "libp2p" for
// TCP written to disk and fsynced (the first baseline, kept under its
// name), "bare-tcp" or "bare-quic" to /dev/null, "libp2p-quic" for QUIC
// to disk.
func bareCase(transport string, null bool) string {
	switch {
	case null:
		return "bare-" + transport
	case transport == "tcp":
		return "libp2p"
	}
	return "libp2p-" + transport
}
