// Package transfer is p2pshare's file transfer: the fetch protocol
// (proto.FetchID) server, which serves the manifests and chunks of
// published files, and the fetcher, which downloads a content ID from
// several providers at once, verifies every chunk against the manifest
// before it is kept, survives providers that vanish or misbehave, and
// resumes interrupted downloads from their on-disk state. A file of at
// most one chunk is fetched into memory and written once, into place; it
// reaches the disk as a partial download only if interrupted.
//
// Every file byte crosses the network inside an internal/bbsaes sealed
// stream. The package does not find providers (Finder does: announcements,
// catalogs and the DHT, wired by internal/node) and does not decide what
// is published (Source does: internal/share).
//
// The fetcher, file by file: get.go is Get and the course of one download
// (open or start the partial download, download, finish, or keep what was
// verified); swarm.go the providers of a download (which are fetching,
// which failed or sent bad data, asking the Finder again with backoff);
// worker.go the fetching from one provider over one stream; sched.go which
// chunk ranges are asked of whom; partial.go the on-disk state;
// limits.go what a manifest may make a fetcher do (checked on its header,
// before anything is allocated or created: the expected size and hash, a
// bound on chunks, the free space); finish.go the end of a Get (chunks a
// resumed download trusted verified again, the file placed); place.go putting
// the file under a free name. The server is
// server.go; client.go and pool.go are the fetcher's end of a stream and
// the streams kept between downloads.
//
// Wire protocol, on one libp2p stream per provider (kept idle for the next
// download from that provider, up to 30 s; see pool.go): the fetcher runs
// bbsaes.Initiate, the server bbsaes.Respond; then the fetcher pipelines
// FetchRequests (MANIFEST, or CHUNKS first..first+count) and the server
// answers each in order with a FetchResponse and, when the status is OK,
// one sealed stream whose header names the CID and first chunk and whose
// plaintext is exactly `length` bytes.
package transfer

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/time/rate"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/bbsaes"
	"github.com/p2pshare/p2pshare/internal/manifest"
	"github.com/p2pshare/p2pshare/internal/proto"
)

// ServiceName is the resource manager service the fetch streams belong to.
const ServiceName = "p2pshare.fetch"

// Defaults for the tunables in Config.
const (
	DefaultWindow       = 4       // requests in flight per provider
	DefaultMaxProviders = 8       // providers downloading one file at once
	DefaultRequestBytes = 4 << 20 // bytes asked for in one request
	DefaultRetry        = 3 * time.Second
	maxRetry            = 30 * time.Second
	// maxServerStreamsPerPeer bounds the fetch streams one peer may have
	// open at this node; more are reset.
	maxServerStreamsPerPeer = 4
	// ioTimeout bounds every read and write on a fetch stream.
	ioTimeout = 30 * time.Second
	// idleTimeout is how long a server waits for the next request.
	idleTimeout = 2 * time.Minute
	// handshakeTimeout bounds the bbsaes handshake.
	handshakeTimeout = 20 * time.Second
)

// Errors callers branch on.
var (
	// ErrNoProviders: no provider could be found or reached and ctx ended
	// before one appeared (the partial download, if any, is kept).
	ErrNoProviders = errors.New("transfer: no providers")
	// ErrCanceled: the transfer was stopped by Cancel; its partial data is
	// removed.
	ErrCanceled = errors.New("transfer: canceled")
	// ErrExists: the explicit output path already exists; nothing is
	// overwritten.
	ErrExists = errors.New("transfer: output file exists")
	// ErrPaused: ctx ended during a download; its partial state is kept on
	// disk and a later Get of the same CID resumes it.
	ErrPaused = errors.New("transfer: paused")
	// ErrInProgress: a Get of the same CID is already running, or a
	// Cancel of it is removing its partial data.
	ErrInProgress = errors.New("transfer: already downloading")
	// ErrNotFound: Cancel of a CID that is neither running nor paused.
	ErrNotFound = errors.New("transfer: no such transfer")
	// ErrCorrupt: a file of a folder is not what the folder's document
	// says (size, or content at its CID).
	ErrCorrupt = errors.New("transfer: file does not match its manifest")
	// ErrClosed: the Service is closed.
	ErrClosed = errors.New("transfer: service closed")
)

// Source is what the server serves: the published files (share.Service).
// Open returns the file's manifest and an open file the server reads and
// closes, for the fetcher p: the authenticated remote peer of the stream
// (the libp2p connection's peer, which the bbsaes handshake binds). Any
// error is answered NOT_SERVED, except an error that has a method
// `Changed() bool` returning true (anywhere in its chain), which is
// answered CHANGED (the file changed on disk since it was published). A
// Source that keeps a file from p (its audience does not admit p) must
// answer as for a CID it does not publish, never CHANGED: the refusal
// then tells p nothing, not even that the CID exists.
//
// The server calls Open for every request and does not hash what it sends:
// Open must report a file whose size or mtime differ from when it was
// published as changed (share.Service does). While a request is served,
// the server checks with fstat that the size and mtime stay those of the
// opened file. A change that keeps both is not seen by the server; the
// fetcher, which verifies every chunk, drops such a provider as bad.
type Source interface {
	Open(c cid.Cid, p peer.ID) (*manifest.Manifest, *os.File, error)
}

// CollectionSource is implemented by a Source that also publishes
// collections (share.Library): Collection returns the encoded document of
// the collection c, if it publishes it to the fetcher p (the
// authenticated remote peer, as for Open; this node's own ID when it
// reads its own). The server answers a MANIFEST request for such a CID
// with the document, exactly as it answers one for a file with its
// manifest, and a refusal exactly as for a CID it does not publish; the
// files of a collection are ordinary published files, served by their own
// CIDs (Open decides who may have them).
type CollectionSource interface {
	Collection(c cid.Cid, p peer.ID) ([]byte, bool)
}

// Finder finds providers of a CID (DHT and announced providers). The
// channel closes when the search ends; Get asks again later when it runs
// out of providers.
type Finder interface {
	FindProviders(ctx context.Context, c cid.Cid) <-chan peer.AddrInfo
}

// Config configures a Service.
type Config struct {
	Host   host.Host
	Source Source // nil: serve nothing
	BBSKey *bbsaes.Key
	Finder Finder
	// Reach, if set, is called before a fetch stream is opened to a
	// provider: it makes sure file bytes may flow (a direct connection,
	// after hole punching if needed, or an unlimited relay) and returns
	// the context to open the stream with, or an error that says why the
	// provider cannot be used. Nil: streams open on whatever connection
	// the host has.
	Reach func(ctx context.Context, ai peer.AddrInfo) (context.Context, error)
	// DownloadDir receives finished files; partial downloads live under
	// DownloadDir/.partial/<cid>/. Required.
	DownloadDir string
	Logger      *slog.Logger

	// Tunables; zero means the default.
	Window           int           // requests in flight per provider
	MaxProviders     int           // providers used at once for one file
	ChunksPerRequest int           // default: DefaultRequestBytes worth, at most proto.MaxChunksPerRequest
	RetryInterval    time.Duration // first wait before asking the Finder again
	// MinModulusBits is the smallest BBS modulus accepted from a server
	// (bbsaes.Config.MinModulusBits). Tests only: production leaves it 0,
	// the bbsaes default (2048 bits).
	MinModulusBits int

	// UploadLimit caps what this node serves, in bytes per second over all
	// streams; 0 means no limit.
	UploadLimit int64
}

// Service serves the fetch protocol and runs downloads.
type Service struct {
	cfg  Config
	log  *slog.Logger
	bufs sync.Pool // *[]byte chunk buffers (server and fetcher)
	// ctx ends when Close is called; it interrupts waits on the upload
	// limiter, which a stream reset does not.
	ctx  context.Context
	stop context.CancelFunc

	act    activity      // when file bytes last moved to or from each peer
	upload *rate.Limiter // Config.UploadLimit; nil: none
	lock   io.Closer     // the downloads folder's lock (one node per folder)

	mu     sync.Mutex
	closed bool
	gets   map[string]*getter // running downloads by CID key
	// canceling counts the Cancels removing a paused download's partial
	// data, by CID key; Get refuses such a CID meanwhile.
	canceling map[string]int
	serving   map[peer.ID]int         // open fetch streams per peer
	idle      map[peer.ID][]*idleConn // kept fetch sessions (see connect)
	streams   map[network.Stream]struct{}
	sessions  sessionTable      // served sessions, for eviction (server.go)
	admit     *sessionAdmission // new sessions per remote address (admit.go)
	wg        sync.WaitGroup    // handlers and Gets
	// completedMu serialises the completed log (collget.go).
	completedMu sync.Mutex

	// test hooks, set only by tests before use
	onServe func(p peer.ID, first, count int)      // after a CHUNKS request is answered
	tapCID  func(c cid.Cid)                        // after a CHUNKS request for c is answered
	corrupt func(chunk int, data []byte)           // applied after the server read a chunk
	tapWire func(p peer.ID, w io.Writer) io.Writer // wraps the server's stream writer
	// beforeCancelRemove runs in Cancel of a paused download, just before
	// its partial data is removed
	beforeCancelRemove func(c cid.Cid)
}

// New creates the service and registers the fetch handler on the host.
// Partial downloads found on disk are listed by Transfers as paused; they
// resume when Get is called for their CID.
func New(cfg Config) (*Service, error) {
	if cfg.Host == nil {
		return nil, errors.New("transfer: Config.Host is nil")
	}
	if cfg.DownloadDir == "" {
		return nil, errors.New("transfer: Config.DownloadDir is empty")
	}
	if cfg.Source != nil && cfg.BBSKey == nil {
		return nil, errors.New("transfer: serving needs Config.BBSKey")
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxProviders <= 0 {
		cfg.MaxProviders = DefaultMaxProviders
	}
	if cfg.ChunksPerRequest > proto.MaxChunksPerRequest {
		cfg.ChunksPerRequest = proto.MaxChunksPerRequest
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(cfg.DownloadDir, partialDirName), 0o700); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	// Two nodes assembling the same partial file would corrupt each
	// other's downloads: one node per downloads folder.
	lock, err := lockDir(filepath.Join(cfg.DownloadDir, partialDirName))
	if err != nil {
		return nil, fmt.Errorf("transfer: downloads folder %s: %w", cfg.DownloadDir, err)
	}
	s := &Service{
		lock:      lock,
		cfg:       cfg,
		log:       cfg.Logger.With("component", "transfer"),
		gets:      make(map[string]*getter),
		canceling: make(map[string]int),
		serving:   make(map[peer.ID]int),
		admit:     newSessionAdmission(),
		idle:      make(map[peer.ID][]*idleConn),
		streams:   make(map[network.Stream]struct{}),
		upload:    newUploadLimiter(cfg.UploadLimit),
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	if cfg.Source != nil {
		cfg.Host.SetStreamHandler(proto.FetchID, s.handle)
	}
	return s, nil
}

// Close stops serving and pauses every running download (their partial
// state stays on disk), waiting for them to return.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.stop()
	for _, g := range s.gets {
		g.cancel(ErrClosed)
	}
	for st := range s.streams {
		st.Reset() // its handler returns at once, not after the idle timeout
	}
	s.closeIdleLocked()
	s.mu.Unlock()
	if s.cfg.Source != nil {
		s.cfg.Host.RemoveStreamHandler(proto.FetchID)
	}
	s.wg.Wait()
	return s.lock.Close()
}

// getBuf returns a buffer of at least n bytes from the pool.
func (s *Service) getBuf(n int) *[]byte {
	if b, ok := s.bufs.Get().(*[]byte); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	// Room for a default-size chunk, so the buffer can serve the next
	// download too; a small chunk gets a small buffer (a worker holds
	// many of them: sinkBuffers).
	c := n
	if n > manifest.DefaultChunkSize/2 {
		c = max(n, manifest.DefaultChunkSize)
	}
	b := make([]byte, n, c)
	return &b
}

func (s *Service) putBuf(b *[]byte) {
	if cap(*b) <= manifest.MaxChunkSize {
		s.bufs.Put(b)
	}
}
