package transfer

import (
	"errors"
	"fmt"
	"time"

	"github.com/p2pshare/p2pshare/internal/manifest"
)

// What a manifest may make a fetcher do is checked on its header, before
// the chunk hashes are read and before anything is allocated or created
// on disk (checkHeader): the header must agree with what the catalogue or
// ticket said (GetOptions.Expect), cut the file into a bounded number of
// chunks, and describe a file that fits in the free space of the
// downloads folder.
//
// The header is not yet verified against the content ID when it is
// checked, so a refusal there only drops the provider that sent it (a
// liar cannot end a download that honest providers serve); once every
// provider found has been refused, the download ends with their answers
// (swarm.allRefused).
const (
	// maxSmallChunks bounds the chunks of a manifest whose chunks are
	// smaller than manifest.DefaultChunkSize (what share publishes).
	// A download keeps about perChunkState bytes per chunk in memory
	// (each chunk's hash, once in the manifest bytes while they are read
	// and once parsed; the scheduler's per-chunk bytes and the
	// resumed download's trusted marks; the snapshot and the bitmap its resume state is
	// saved from), so 2^18 chunks is about 20 MiB, whatever the file.
	// Without the bound, a valid manifest of 2^21 chunks of 1 KiB (a
	// 2 GiB file) costs over 150 MiB of memory and a 64 MiB manifest.
	// Chunks of manifest.DefaultChunkSize or more may number up to one
	// per DefaultChunkSize of the file (manifest.MaxChunks at most): that
	// state is then under 1/10,000 of a file the free-space check
	// found room for.
	maxSmallChunks = 1 << 18
	// perChunkState is what maxSmallChunks is reckoned with.
	perChunkState = 2*32 + 6

	// manifestTimeout bounds the wait for a provider's answer to a
	// manifest request and for the manifest's header: a provider that
	// claims a CID and then stays silent holds its worker this long, not
	// the full ioTimeout. Every provider found is asked at once (each
	// worker asks its own), and the first valid manifest wins; one that
	// arrives after it is read and dropped in small pieces. So at most
	// Config.MaxProviders manifests, each one whose header passed
	// checkHeader, are held at once.
	manifestTimeout = 5 * time.Second
)

// Errors callers branch on.
var (
	// ErrNoSpace: the downloads folder has not room for the file.
	ErrNoSpace = errors.New("not enough free disk space")
	// ErrTooManyChunks: the manifest cuts the file into more chunks than a
	// fetcher keeps state for (maxSmallChunks).
	ErrTooManyChunks = errors.New("too many chunks")
)

// freeSpace is diskFree; tests replace it.
var freeSpace = diskFree

// maxChunksFor is the most chunks a fetcher accepts for a file of size
// bytes (see maxSmallChunks).
func maxChunksFor(size int64) int {
	return max(maxSmallChunks, manifest.NumChunks(size, manifest.DefaultChunkSize))
}

// checkHeader refuses a manifest header that disagrees with
// GetOptions.Expect, has too many chunks, or describes a file the
// downloads folder has no room for.
func (g *getter) checkHeader(h manifest.Header) error {
	if err := g.opt.Expect.checkHeader(h); err != nil {
		return err
	}
	if limit := maxChunksFor(h.Size); h.NumChunks > limit {
		return fmt.Errorf("%w: %s in %d chunks of %s; at most %d chunks smaller than %s are accepted",
			ErrTooManyChunks, humanSize(uint64(h.Size)), h.NumChunks, humanSize(uint64(h.ChunkSize)),
			limit, humanSize(manifest.DefaultChunkSize))
	}
	return g.s.checkSpace(h.Size)
}

// checkSpace refuses a download that needs more bytes than the downloads
// folder has free. Where the free space cannot be told, it does not
// refuse: a full disk still fails the download, with the write error.
func (s *Service) checkSpace(need int64) error {
	if need <= 0 {
		return nil
	}
	dir := s.cfg.DownloadDir
	free, ok, err := freeSpace(dir)
	if err != nil {
		s.log.Warn("cannot tell the free space of the downloads folder", "dir", dir, "err", err)
		return nil
	}
	if !ok || free >= uint64(need) {
		return nil
	}
	return fmt.Errorf("%w: the file needs %s, %s free on %s", ErrNoSpace, humanSize(uint64(need)), humanSize(free), dir)
}

// humanSize formats n bytes as "12.3 GiB".
func humanSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
