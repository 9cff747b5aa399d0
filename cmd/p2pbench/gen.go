package main

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"flag"
	"io"
	"os"
)

// cmdGen writes a file of pseudo-random bytes (AES-CTR keyed by -seed, a few
// GB/s) or, with -sparse, a sparse all-zero file.
func cmdGen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	file := fs.String("file", "", "file to write")
	sizeS := fs.String("size", "256MiB", "size")
	seed := fs.Uint64("seed", 1, "seed of the generator")
	sparse := fs.Bool("sparse", false, "sparse all-zero file instead of pseudo-random bytes")
	fs.Parse(args)
	size, err := parseSize(*sizeS)
	if err != nil {
		return err
	}
	return genFile(*file, size, *seed, *sparse)
}

func genFile(path string, size int64, seed uint64, sparse bool) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if sparse {
		return f.Truncate(size)
	}
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	blk, _ := aes.NewCipher(key[:])
	ctr := cipher.NewCTR(blk, make([]byte, aes.BlockSize))
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		clear(buf[:n])
		ctr.XORKeyStream(buf[:n], buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return err
		}
		left -= n
	}
	return f.Close()
}

// warm reads a file once so the measurements that follow read it from the
// page cache.
func warm(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(io.Discard, onlyReader{f}, make([]byte, 1<<20))
	return err
}

// onlyReader and onlyWriter hide ReadFrom/WriteTo, so copies go through a
// user-space buffer (read + write), as the node's own code does: no sendfile
// or splice shortcut in the baselines.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }
