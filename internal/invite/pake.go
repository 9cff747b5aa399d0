package invite

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/schollz/pake/v3"
)

// The PAKE is schollz/pake (croc's SPAKE2 on an elliptic curve). Its
// session key only says "both sides used the same password"; on top of it
// each side derives, with HKDF, a key-confirmation key bound to the whole
// transcript: the nameplate, both libp2p peer IDs (authenticated by the
// connection's security handshake) and both PAKE messages. The acceptor
// uses the inviter's ID as the remote end of its stream and its own as the
// local one, and the inviter the same pair seen from its side, so a peer
// that relays the messages between two others (a splice) makes the two
// sides bind different IDs and the confirmations fail.

// pakeCurve is NIST P-256, the most reviewed of the library's curves.
const pakeCurve = "p256"

// Roles in the library's terms: the acceptor speaks first.
const (
	roleAcceptor = 0
	roleInviter  = 1
)

// password is the PAKE's input: the code's secret words, bound to the
// protocol version and the nameplate.
func password(c Code) []byte {
	h := sha256.Sum256([]byte("p2pshare invite/1 password\x00" + c.Nameplate + "\x00" + c.secret()))
	return h[:]
}

// p256P is the field order; a coordinate at or above it is malformed.
var p256P = func() *big.Int {
	p, _ := new(big.Int).SetString("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff", 16)
	return p
}()

// checkPakeMsg checks a peer's PAKE message before the library sees it:
// pake.Update dereferences the point it expects without looking (a JSON
// null, or a message without the point, would panic), so the message must
// come from the other role and carry that point with coordinates in range.
func checkPakeMsg(b []byte, fromRole int) error {
	var q *pake.Pake
	if err := json.Unmarshal(b, &q); err != nil {
		return fmt.Errorf("malformed PAKE message: %w", err)
	}
	if q == nil {
		return errors.New("malformed PAKE message: empty")
	}
	if q.Role != fromRole {
		return fmt.Errorf("malformed PAKE message: role %d, want %d", q.Role, fromRole)
	}
	x, y := q.Xᵤ, q.Xᵥ
	if fromRole == roleInviter {
		x, y = q.Yᵤ, q.Yᵥ
	}
	for _, c := range []*big.Int{x, y} {
		if c == nil || c.Sign() < 0 || c.Cmp(p256P) >= 0 {
			return errors.New("malformed PAKE message: point missing or out of range")
		}
	}
	return nil
}

// pakeUpdate feeds a checked message to p. The library is not ours: a
// panic in it becomes an error rather than taking the node down.
func pakeUpdate(p *pake.Pake, msg []byte, fromRole int) (err error) {
	if err := checkPakeMsg(msg, fromRole); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("PAKE: %v", r)
		}
	}()
	if err := p.Update(msg); err != nil {
		return fmt.Errorf("PAKE: %w", err)
	}
	return nil
}

// confirmations are the two key-confirmation MACs of one exchange.
type confirmations struct {
	acceptor, inviter []byte
}

// confirm derives both sides' key confirmations from the PAKE session key
// k and the transcript.
func confirm(k []byte, nameplate string, inviter, acceptor peer.ID, msgA, msgB []byte) (confirmations, error) {
	th := sha256.New()
	for _, f := range [][]byte{[]byte("p2pshare invite/1 transcript"), []byte(nameplate),
		[]byte(inviter), []byte(acceptor), msgA, msgB} {
		th.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
		th.Write(f)
	}
	transcript := th.Sum(nil)
	mac := func(label string) ([]byte, error) {
		key, err := hkdf.Key(sha256.New, k, transcript, "p2pshare invite/1 "+label+" confirmation", 32)
		if err != nil {
			return nil, err
		}
		m := hmac.New(sha256.New, key)
		m.Write(transcript)
		return m.Sum(nil), nil
	}
	var c confirmations
	var err error
	if c.acceptor, err = mac("acceptor"); err != nil {
		return c, fmt.Errorf("derive key confirmation: %w", err)
	}
	if c.inviter, err = mac("inviter"); err != nil {
		return c, fmt.Errorf("derive key confirmation: %w", err)
	}
	return c, nil
}
