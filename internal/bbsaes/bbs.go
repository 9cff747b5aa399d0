package bbsaes

import (
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"math/bits"
	"os"

	"github.com/p2pshare/p2pshare/internal/atomicfile"
)

const (
	// DefaultModulusBits is the size of the BBS modulus a node makes and the
	// smallest modulus a peer accepts unless Config.MinModulusBits says
	// otherwise.
	DefaultModulusBits = 2048
	// MaxModulusBits bounds a received modulus (and the handshake message
	// that carries it).
	MaxModulusBits = 8192
	// minKeyBits is the smallest modulus GenerateKey makes (tests use small
	// keys for the "modulus too small" cases).
	minKeyBits = 512

	pemType = "P2PSHARE BBS PRIVATE KEY"
)

// Key is a node's BBS private key: N = P*Q with P and Q distinct primes,
// both 3 mod 4. P and Q never leave the node; only N is sent to peers.
type Key struct {
	N, P, Q *big.Int
}

// Public returns the modulus N, the only part of the key that peers see.
func (k *Key) Public() *big.Int { return k.N }

// Validate checks that P and Q are distinct primes, both 3 mod 4, and that
// N = P*Q. It does not check the size; see CheckModulus.
func (k *Key) Validate() error {
	if k == nil || k.N == nil || k.P == nil || k.Q == nil {
		return fmt.Errorf("%w: incomplete key", ErrBadModulus)
	}
	if k.P.Cmp(k.Q) == 0 {
		return fmt.Errorf("%w: p == q", ErrBadModulus)
	}
	for _, f := range []*big.Int{k.P, k.Q} {
		if f.Sign() <= 0 || f.Bit(0) != 1 || f.Bit(1) != 1 {
			return fmt.Errorf("%w: factor is not 3 mod 4", ErrBadModulus)
		}
		if !f.ProbablyPrime(20) {
			return fmt.Errorf("%w: factor is not prime", ErrBadModulus)
		}
	}
	if new(big.Int).Mul(k.P, k.Q).Cmp(k.N) != 0 {
		return fmt.Errorf("%w: N != p*q", ErrBadModulus)
	}
	return nil
}

// GenerateKey makes a BBS key whose modulus has exactly bits bits, from two
// primes that are both 3 mod 4. bits must be at least 512; production uses
// DefaultModulusBits. (Since Go 1.26 crypto/rand.Prime may ignore rand and use
// the system generator; rand is still required to be non-nil.)
func GenerateKey(random io.Reader, bits int) (*Key, error) {
	if random == nil {
		return nil, errors.New("bbsaes: generate key: nil random source")
	}
	if bits < minKeyBits || bits > MaxModulusBits {
		return nil, fmt.Errorf("bbsaes: generate key: %d bits outside [%d, %d]", bits, minKeyBits, MaxModulusBits)
	}
	pBits := (bits + 1) / 2
	qBits := bits - pBits
	for {
		p, err := prime3mod4(random, pBits)
		if err != nil {
			return nil, fmt.Errorf("bbsaes: generate key: %w", err)
		}
		q, err := prime3mod4(random, qBits)
		if err != nil {
			return nil, fmt.Errorf("bbsaes: generate key: %w", err)
		}
		if p.Cmp(q) == 0 {
			continue
		}
		n := new(big.Int).Mul(p, q)
		// rand.Prime sets the top two bits, so the product has exactly
		// pBits+qBits bits; checked anyway.
		if n.BitLen() != bits {
			continue
		}
		return &Key{N: n, P: p, Q: q}, nil
	}
}

func prime3mod4(random io.Reader, bits int) (*big.Int, error) {
	for {
		p, err := rand.Prime(random, bits)
		if err != nil {
			return nil, err
		}
		if p.Bit(1) == 1 { // p is odd, so bit 1 set means p = 3 mod 4
			return p, nil
		}
	}
}

// LoadOrGenerateKey loads the key at path, or makes one of the given size and
// stores it there (temp file, fsync, rename, mode 0600). A loaded key is
// validated: P and Q prime and 3 mod 4, N = P*Q, at least bits bits, and the
// file not readable by group or others.
func LoadOrGenerateKey(path string, bits int) (*Key, error) {
	k, err := loadKey(path)
	if err == nil {
		if k.N.BitLen() < bits {
			return nil, fmt.Errorf("bbsaes: key %s: %w: %d bits, want at least %d", path, ErrBadModulus, k.N.BitLen(), bits)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	k, err = GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, err
	}
	if err := writeKeyAtomic(path, k); err != nil {
		return nil, err
	}
	return k, nil
}

func loadKey(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bbsaes: load key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("bbsaes: load key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("bbsaes: load key %s: mode %v is readable by others, want 0600", path, st.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, 16<<10))
	if err != nil {
		return nil, fmt.Errorf("bbsaes: load key %s: %w", path, err)
	}
	k, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("bbsaes: load key %s: %w", path, err)
	}
	return k, nil
}

// The file is one PEM block whose body is len(p) (2 bytes) || p || len(q)
// (2 bytes) || q, big-endian. N is recomputed on load.
func marshalKey(k *Key) []byte {
	var body []byte
	for _, f := range []*big.Int{k.P, k.Q} {
		b := f.Bytes()
		body = append(body, byte(len(b)>>8), byte(len(b)))
		body = append(body, b...)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: body})
}

func parseKey(data []byte) (*Key, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != pemType || len(rest) != 0 {
		return nil, fmt.Errorf("%w: not a single %q PEM block", ErrBadModulus, pemType)
	}
	body := block.Bytes
	var fs [2]*big.Int
	for i := range fs {
		if len(body) < 2 {
			return nil, fmt.Errorf("%w: key file truncated", ErrBadModulus)
		}
		n := int(body[0])<<8 | int(body[1])
		body = body[2:]
		if n == 0 || n > len(body) {
			return nil, fmt.Errorf("%w: key file truncated", ErrBadModulus)
		}
		fs[i] = new(big.Int).SetBytes(body[:n])
		body = body[n:]
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes in key file", ErrBadModulus)
	}
	k := &Key{P: fs[0], Q: fs[1], N: new(big.Int).Mul(fs[0], fs[1])}
	if err := k.Validate(); err != nil {
		return nil, err
	}
	return k, nil
}

func writeKeyAtomic(path string, k *Key) error {
	if err := atomicfile.WriteNew(path, marshalKey(k), 0o600); err != nil {
		return fmt.Errorf("bbsaes: store key: %w", err)
	}
	return nil
}

// smallPrimesProduct is the product of the odd primes below 1000, used to
// refuse moduli with a small factor in one GCD.
var smallPrimesProduct = func() *big.Int {
	p := big.NewInt(1)
	for n := int64(3); n < 1000; n += 2 {
		if big.NewInt(n).ProbablyPrime(0) {
			p.Mul(p, big.NewInt(n))
		}
	}
	return p
}()

// CheckModulus checks a received BBS modulus: between minBits and
// MaxModulusBits bits, odd, 1 mod 4 (as a product of two primes that are
// 3 mod 4 is), not a perfect square and without a factor below 1000.
// It cannot check that N has exactly two prime factors; the key derivation
// does not depend on it (see the package documentation).
func CheckModulus(n *big.Int, minBits int) error {
	if n == nil || n.Sign() <= 0 {
		return fmt.Errorf("%w: not positive", ErrBadModulus)
	}
	if bl := n.BitLen(); bl < minBits {
		return fmt.Errorf("%w: %d bits, want at least %d", ErrBadModulus, bl, minBits)
	} else if bl > MaxModulusBits {
		return fmt.Errorf("%w: %d bits, want at most %d", ErrBadModulus, bl, MaxModulusBits)
	}
	if n.Bit(0) == 0 {
		return fmt.Errorf("%w: even", ErrBadModulus)
	}
	if n.Bit(1) != 0 {
		return fmt.Errorf("%w: not 1 mod 4", ErrBadModulus)
	}
	if r := new(big.Int).Sqrt(n); r.Mul(r, r).Cmp(n) == 0 {
		return fmt.Errorf("%w: perfect square", ErrBadModulus)
	}
	if new(big.Int).GCD(nil, nil, n, smallPrimesProduct).Cmp(bigOne) != 0 {
		return fmt.Errorf("%w: has a small factor", ErrBadModulus)
	}
	return nil
}

var (
	bigOne = big.NewInt(1)
	bigTwo = big.NewInt(2)
)

// Generator is a Blum Blum Shub generator: x0 = seed^2 mod N,
// x(i+1) = x(i)^2 mod N, and the output is, from x1 on, the k lowest bits of
// each state, most significant of them first, packed into bytes most
// significant bit first. It is deterministic and not safe for concurrent use.
type Generator struct {
	n, x0    *big.Int
	x        big.Int // current state x(step)
	sq, quo  big.Int // scratch
	k        int     // bits per step
	step     uint64  // index of x
	bitsLeft int     // bits of x not yet output
	bitPos   uint64  // bits output so far (for Skip)
}

// MaxBitsPerStep returns the largest number of bits per step that
// NewGenerator accepts for n: floor(log2(bitlen(n))).
func MaxBitsPerStep(n *big.Int) int {
	return bits.Len(uint(n.BitLen())) - 1
}

// NewGenerator returns a generator over n seeded with seed (x0 = seed^2 mod
// n), producing bitsPerStep bits per squaring (0 means 1). It refuses an even
// n, a seed that is not in [2, n-1], shares a factor with n, or whose square
// is 1 mod n, and bitsPerStep above MaxBitsPerStep(n). It does not check the
// size of n (the known-answer vectors use small moduli); see CheckModulus.
func NewGenerator(n, seed *big.Int, bitsPerStep int) (*Generator, error) {
	if bitsPerStep == 0 {
		bitsPerStep = 1
	}
	if n == nil || n.Cmp(big.NewInt(3)) < 0 || n.Bit(0) == 0 {
		return nil, fmt.Errorf("%w: modulus must be odd and > 2", ErrBadModulus)
	}
	if bitsPerStep < 1 || bitsPerStep > MaxBitsPerStep(n) {
		return nil, fmt.Errorf("bbsaes: %d bits per step outside [1, %d] for a %d-bit modulus", bitsPerStep, MaxBitsPerStep(n), n.BitLen())
	}
	if seed == nil || seed.Cmp(bigTwo) < 0 || seed.Cmp(n) >= 0 {
		return nil, fmt.Errorf("%w: seed not in [2, N-1]", ErrBadSeed)
	}
	if new(big.Int).GCD(nil, nil, seed, n).Cmp(bigOne) != 0 {
		return nil, fmt.Errorf("%w: seed shares a factor with N", ErrBadSeed)
	}
	g := &Generator{n: new(big.Int).Set(n), k: bitsPerStep}
	g.x0 = new(big.Int).Mul(seed, seed)
	g.x0.Mod(g.x0, n)
	if g.x0.Cmp(bigOne) == 0 {
		return nil, fmt.Errorf("%w: seed^2 = 1 mod N", ErrBadSeed)
	}
	g.x.Set(g.x0)
	return g, nil
}

// State returns a copy of the current state x(i) and its index i.
func (g *Generator) State() (*big.Int, uint64) {
	return new(big.Int).Set(&g.x), g.step
}

func (g *Generator) square() {
	g.sq.Mul(&g.x, &g.x)
	g.quo.QuoRem(&g.sq, g.n, &g.x)
	g.step++
}

// Read fills p with generator output. It never fails.
func (g *Generator) Read(p []byte) (int, error) {
	for i := range p {
		var b byte
		for j := 0; j < 8; j++ {
			if g.bitsLeft == 0 {
				g.square()
				g.bitsLeft = g.k
			}
			g.bitsLeft--
			b = b<<1 | byte(g.x.Bit(g.bitsLeft))
		}
		p[i] = b
	}
	g.bitPos += 8 * uint64(len(p))
	return len(p), nil
}

// Skip advances the output by nbytes bytes. With key == nil it squares its
// way there (one squaring per k bits). With the key whose modulus the
// generator uses, it jumps: x(i) = x0^(2^i mod (p-1)) mod p, likewise mod q,
// combined by CRT, in a handful of modular exponentiations.
func (g *Generator) Skip(nbytes int64, key *Key) error {
	if nbytes < 0 {
		return fmt.Errorf("bbsaes: skip %d bytes: negative", nbytes)
	}
	if key != nil && (key.N == nil || key.N.Cmp(g.n) != 0) {
		return errors.New("bbsaes: skip: key does not match the generator's modulus")
	}
	if uint64(nbytes) > (1<<63)/8-g.bitPos/8 {
		return fmt.Errorf("bbsaes: skip %d bytes: position overflows", nbytes)
	}
	pos := g.bitPos + 8*uint64(nbytes)
	k := uint64(g.k)
	// The next bit to output, number pos, comes from state pos/k + 1, of
	// which k - pos%k bits are then left.
	target := pos/k + 1
	left := int(k - pos%k)
	if key == nil {
		for g.step < target {
			g.square()
		}
	} else {
		g.jump(target, key)
	}
	g.bitsLeft = left
	g.bitPos = pos
	return nil
}

func (g *Generator) jump(i uint64, key *Key) {
	e := new(big.Int).SetUint64(i)
	part := func(f *big.Int) *big.Int {
		fm1 := new(big.Int).Sub(f, bigOne)
		ef := new(big.Int).Exp(bigTwo, e, fm1)
		return new(big.Int).Exp(g.x0, ef, f)
	}
	xp, xq := part(key.P), part(key.Q)
	// x = xq + q * ((xp - xq) * q^-1 mod p)
	qinv := new(big.Int).ModInverse(key.Q, key.P)
	h := new(big.Int).Sub(xp, xq)
	h.Mul(h, qinv)
	h.Mod(h, key.P)
	h.Mul(h, key.Q)
	h.Add(h, xq)
	g.x.Set(h)
	g.step = i
}
