package bbsaes

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
)

// vectorsPath is the known-answer file (source in testdata/README).
const vectorsPath = "testdata/bbs.json"

type bbsVectors struct {
	Vectors []struct {
		Name         string   `json:"name"`
		P            string   `json:"p"`
		Q            string   `json:"q"`
		Seed         string   `json:"seed"`
		ModulusBits  int      `json:"modulus_bits"`
		BitsPerStep  int      `json:"bits_per_step"`
		StatesFromX0 []string `json:"states_from_x0"`
		Outputs      []struct {
			SkipBytes int64  `json:"skip_bytes"`
			Hex       string `json:"hex"`
		} `json:"outputs"`
	} `json:"vectors"`
}

func loadVectors(t testing.TB) bbsVectors {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		// Deliberately a failure, not a skip: without the vectors the
		// generator is unchecked.
		t.Fatalf("known-answer vectors: %v", err)
	}
	var v bbsVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("parse %s: %v", vectorsPath, err)
	}
	if len(v.Vectors) == 0 {
		t.Fatalf("%s: no vectors", vectorsPath)
	}
	return v
}

func mustInt(t testing.TB, s string) *big.Int {
	t.Helper()
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("bad integer %q", s)
	}
	return n
}

func TestBBSKnownAnswers(t *testing.T) {
	v := loadVectors(t)
	var outputs, states int
	for _, vec := range v.Vectors {
		p, q, seed := mustInt(t, vec.P), mustInt(t, vec.Q), mustInt(t, vec.Seed)
		n := new(big.Int).Mul(p, q)
		key := &Key{N: n, P: p, Q: q}
		if vec.ModulusBits != 0 && n.BitLen() != vec.ModulusBits {
			t.Fatalf("%s: modulus has %d bits, vector says %d", vec.Name, n.BitLen(), vec.ModulusBits)
		}
		if len(vec.StatesFromX0) > 0 {
			states++
			t.Run(vec.Name+"/states", func(t *testing.T) {
				g, err := NewGenerator(n, seed, 1)
				if err != nil {
					t.Fatal(err)
				}
				for i, want := range vec.StatesFromX0 {
					x, step := g.State()
					if step != uint64(i) || x.String() != want {
						t.Fatalf("x%d = %v (step %d), want %s", i, x, step, want)
					}
					g.square()
				}
			})
		}
		for _, out := range vec.Outputs {
			outputs++
			want, err := hex.DecodeString(out.Hex)
			if err != nil {
				t.Fatal(err)
			}
			for _, mode := range []struct {
				name string
				key  *Key
			}{{"jump", key}, {"iterate", nil}} {
				t.Run(vec.Name+"/"+mode.name, func(t *testing.T) {
					g, err := NewGenerator(n, seed, vec.BitsPerStep)
					if err != nil {
						t.Fatal(err)
					}
					if err := g.Skip(out.SkipBytes, mode.key); err != nil {
						t.Fatal(err)
					}
					got := make([]byte, len(want))
					g.Read(got)
					if !bytes.Equal(got, want) {
						t.Fatalf("skip %d: got %X, want %X", out.SkipBytes, got, want)
					}
				})
			}
		}
		// Reading straight through must agree with skipping.
		if len(vec.Outputs) > 0 {
			t.Run(vec.Name+"/read-through", func(t *testing.T) {
				g, err := NewGenerator(n, seed, vec.BitsPerStep)
				if err != nil {
					t.Fatal(err)
				}
				all := make([]byte, 30)
				g.Read(all)
				for _, out := range vec.Outputs {
					if out.SkipBytes >= 10 {
						continue
					}
					want, _ := hex.DecodeString(out.Hex)
					if got := all[out.SkipBytes : out.SkipBytes+int64(len(want))]; !bytes.Equal(got, want) {
						t.Fatalf("offset %d: got %X, want %X", out.SkipBytes, got, want)
					}
				}
			})
		}
	}
	if outputs == 0 || states == 0 {
		t.Fatalf("vectors file has %d output and %d state vectors; want both", outputs, states)
	}
}

// TestBBSSkipMidStream checks that skipping from a position that is not on a
// state boundary agrees with reading the bytes, with and without the key.
func TestBBSSkipMidStream(t *testing.T) {
	v := loadVectors(t)
	vec := v.Vectors[0]
	p, q, seed := mustInt(t, vec.P), mustInt(t, vec.Q), mustInt(t, vec.Seed)
	key := &Key{N: new(big.Int).Mul(p, q), P: p, Q: q}
	ref, _ := NewGenerator(key.N, seed, vec.BitsPerStep)
	all := make([]byte, 400)
	ref.Read(all)
	for _, k := range []*Key{nil, key} {
		for _, c := range []struct{ read, skip int }{{0, 0}, {1, 0}, {3, 7}, {5, 100}, {9, 290}} {
			g, _ := NewGenerator(key.N, seed, vec.BitsPerStep)
			first := make([]byte, c.read)
			g.Read(first)
			if err := g.Skip(int64(c.skip), k); err != nil {
				t.Fatal(err)
			}
			rest := make([]byte, 50)
			g.Read(rest)
			off := c.read + c.skip
			if !bytes.Equal(first, all[:c.read]) || !bytes.Equal(rest, all[off:off+50]) {
				t.Fatalf("key=%v read %d skip %d: mismatch", k != nil, c.read, c.skip)
			}
		}
	}
}

func TestNewGeneratorRefuses(t *testing.T) {
	n := big.NewInt(253) // 11 * 23
	cases := []struct {
		name string
		n    *big.Int
		seed int64
		k    int
		want error
	}{
		{"seed 0", n, 0, 1, ErrBadSeed},
		{"seed 1", n, 1, 1, ErrBadSeed},
		{"seed N", n, 253, 1, ErrBadSeed},
		{"seed shares factor 11", n, 22, 1, ErrBadSeed},
		{"seed shares factor 23", n, 46, 1, ErrBadSeed},
		{"seed N-1 squares to 1", n, 252, 1, ErrBadSeed},
		{"even modulus", big.NewInt(254), 3, 1, ErrBadModulus},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewGenerator(c.n, big.NewInt(c.seed), c.k)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	if _, err := NewGenerator(n, big.NewInt(3), 4); err == nil {
		t.Fatal("4 bits per step accepted for an 8-bit modulus (max 3)")
	}
}

func TestCheckModulus(t *testing.T) {
	key := testKey(t)
	sq := new(big.Int).Mul(key.P, key.P)
	small, err := GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	// A 2048-bit odd number that is 3 mod 4: p*q + 2.
	threeMod4 := new(big.Int).Add(key.N, bigTwo)
	// 3 * (a number that is 3 mod 4) is 1 mod 4 but has a small factor.
	withThree := new(big.Int).Mul(big.NewInt(3), new(big.Int).Add(new(big.Int).Lsh(bigOne, 2046), big.NewInt(3)))
	cases := []struct {
		name string
		n    *big.Int
		min  int
		ok   bool
	}{
		{"good", key.N, 2048, true},
		{"too small", small.N, 2048, false},
		{"small allowed by config", small.N, 1024, true},
		{"even", new(big.Int).Add(key.N, bigOne), 2048, false},
		{"3 mod 4", threeMod4, 2048, false},
		{"perfect square", sq, 1024, false},
		{"small factor", withThree, 2048, false},
		{"too large", new(big.Int).Add(new(big.Int).Lsh(bigOne, MaxModulusBits), bigOne), 2048, false},
		{"zero", new(big.Int), 0, false},
		{"nil", nil, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckModulus(c.n, c.min)
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok && !errors.Is(err, ErrBadModulus) {
				t.Fatalf("got %v, want ErrBadModulus", err)
			}
		})
	}
	if sq.Bit(1) != 0 || sq.Bit(0) != 1 {
		t.Fatal("test premise: p^2 should be 1 mod 4")
	}
}

func TestGenerateKey(t *testing.T) {
	key := testKey(t)
	if key.N.BitLen() != DefaultModulusBits {
		t.Fatalf("modulus has %d bits", key.N.BitLen())
	}
	if err := key.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := CheckModulus(key.Public(), DefaultModulusBits); err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKey(rand.Reader, 256); err == nil {
		t.Fatal("256-bit key generated")
	}
	k, err := GenerateKey(rand.Reader, 777)
	if err != nil {
		t.Fatal(err)
	}
	if k.N.BitLen() != 777 || k.Validate() != nil {
		t.Fatalf("odd size: %d bits, %v", k.N.BitLen(), k.Validate())
	}
}

func TestLoadOrGenerateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bbs.key")
	k1, err := LoadOrGenerateKey(path, 1024)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	k2, err := LoadOrGenerateKey(path, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if k1.N.Cmp(k2.N) != 0 || k1.P.Cmp(k2.P) != 0 || k1.Q.Cmp(k2.Q) != 0 {
		t.Fatal("reloaded key differs")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
	// Asking for a bigger key than stored is refused, not silently replaced.
	if _, err := LoadOrGenerateKey(path, 2048); !errors.Is(err, ErrBadModulus) {
		t.Fatalf("smaller stored key: got %v", err)
	}
	// A key whose factor is not prime is refused on load.
	bad := &Key{P: new(big.Int).Add(k1.P, big.NewInt(4)), Q: k1.Q}
	bad.N = new(big.Int).Mul(bad.P, bad.Q)
	badPath := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(badPath, marshalKey(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrGenerateKey(badPath, 1024); !errors.Is(err, ErrBadModulus) {
		t.Fatalf("bad key: got %v", err)
	}
	// Readable by others: refused.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrGenerateKey(path, 1024); err == nil {
		t.Fatal("world-readable key accepted")
	}
	// Garbage: refused.
	garbage := filepath.Join(dir, "garbage.key")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	if _, err := LoadOrGenerateKey(garbage, 1024); !errors.Is(err, ErrBadModulus) {
		t.Fatalf("garbage: got %v", err)
	}
}
