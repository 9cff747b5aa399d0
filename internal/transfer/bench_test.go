package transfer

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

const benchSize = 64 << 20

// benchNodes starts n providers of one benchSize file (default chunk size)
// and a fetcher, all with unlimited resource managers on loopback.
func benchNodes(b *testing.B, n int, opts ...nodeOpt) ([]*node, *node, cid.Cid) {
	b.Helper()
	data := pattern(benchSize, 99)
	mk := func(o ...nodeOpt) *node {
		nd := &node{h: newHost(b, true), src: &testSource{}, fnd: &staticFinder{}, dir: b.TempDir()}
		cfg := Config{Host: nd.h, Source: nd.src, BBSKey: bbsKey(b), Finder: nd.fnd,
			DownloadDir: filepath.Join(nd.dir, "downloads"), MinModulusBits: testKeyBits}
		for _, f := range o {
			f(&cfg)
		}
		svc, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { svc.Close() })
		nd.svc = svc
		return nd
	}
	var srvs []*node
	var ais []peer.AddrInfo
	var c cid.Cid
	for range n {
		s := mk()
		c = s.publish(b, "bench.bin", data, manifest.DefaultChunkSize)
		srvs = append(srvs, s)
		ais = append(ais, addrInfo(s.h))
	}
	cli := mk(opts...)
	cli.fnd.set(ais...)
	return srvs, cli, c
}

func benchGet(b *testing.B, cli *node, c cid.Cid) {
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		res, err := cli.svc.Get(context.Background(), c, GetOptions{Name: "bench.bin"})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.Remove(res.Path)
		b.StartTimer()
	}
}

func BenchmarkGet1Provider(b *testing.B) {
	_, cli, c := benchNodes(b, 1)
	benchGet(b, cli, c)
}

func BenchmarkGet3Providers(b *testing.B) {
	_, cli, c := benchNodes(b, 3)
	benchGet(b, cli, c)
}

// BenchmarkBareStream is the baseline: the same bytes over a bare libp2p
// stream between the same kind of hosts, no bbsaes, no verification, no
// disk on the receiving side.
func BenchmarkBareStream(b *testing.B) {
	srvs, cli, c := benchNodes(b, 1)
	const id = proto.Prefix + "/bench/bare"
	path := srvs[0].src.files[c].path
	srvs[0].h.SetStreamHandler(id, func(s network.Stream) {
		defer s.Close()
		f, err := os.Open(path)
		if err != nil {
			s.Reset()
			return
		}
		defer f.Close()
		buf := make([]byte, 1<<20)
		io.CopyBuffer(s, f, buf)
	})
	if err := cli.h.Connect(context.Background(), addrInfo(srvs[0].h)); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		s, err := cli.h.NewStream(context.Background(), srvs[0].h.ID(), id)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, s, buf)
		if err != nil || n != benchSize {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		s.Close()
	}
}

// throttled limits each provider's sending rate (server-side writer
// throttle), to compare one against three bandwidth-bound providers.
const throttleRate = 20 << 20 // bytes/s per provider

func benchThrottled(b *testing.B, providers int) {
	srvs, cli, c := benchNodes(b, providers)
	for _, s := range srvs {
		s.svc.upload = newUploadLimiter(throttleRate)
	}
	benchGet(b, cli, c)
}

func BenchmarkGetThrottled1Provider(b *testing.B)  { benchThrottled(b, 1) }
func BenchmarkGetThrottled3Providers(b *testing.B) { benchThrottled(b, 3) }
