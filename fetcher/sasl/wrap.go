package sasl

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/crypto/etype"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/types"
)

// RFC 4121 section 4.2.2 token flags.
const (
	flagSentByAcceptor = 0x01
	flagSealed         = 0x02
	flagAcceptorSubkey = 0x04
)

// RFC 4121 section 2 key usages. Wrap tokens use the SEAL usages whether
// sealed or integrity-only; the SIGN usages are for MIC tokens.
const (
	usageAcceptorSeal  = 22
	usageInitiatorSeal = 24
)

const headerLen = 16

// ErrToken marks a wrap token that is malformed or fails its integrity check.
var ErrToken = errors.New("bad gss-api wrap token")

func header(flags byte, ec, rrc uint16, seq uint64) []byte {
	h := make([]byte, headerLen)
	h[0], h[1], h[2], h[3] = 0x05, 0x04, flags, 0xff
	binary.BigEndian.PutUint16(h[4:], ec)
	binary.BigEndian.PutUint16(h[6:], rrc)
	binary.BigEndian.PutUint64(h[8:], seq)
	return h
}

// wrap makes an initiator's wrap token (RFC 4121 section 4.2.6.2) carrying
// payload: sealed (encrypted) or integrity-protected only.
func wrap(key types.EncryptionKey, subkey bool, seq uint64, payload []byte, seal bool) ([]byte, error) {
	et, err := wrapEtype(key)
	if err != nil {
		return nil, err
	}
	var flags byte
	if subkey {
		flags |= flagAcceptorSubkey
	}
	if seal {
		flags |= flagSealed
		// AES-CTS needs no padding: EC = 0. The encrypted header copy has RRC 0.
		h := header(flags, 0, 0, seq)
		plain := make([]byte, 0, len(payload)+headerLen)
		plain = append(append(plain, payload...), h...)
		_, ct, err := et.EncryptMessage(key.KeyValue, plain, usageInitiatorSeal)
		if err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
		return append(h, ct...), nil
	}
	h := header(flags, 0, 0, seq)
	data := make([]byte, 0, len(payload)+headerLen)
	data = append(append(data, payload...), h...)
	sum, err := et.GetChecksumHash(key.KeyValue, data, usageInitiatorSeal)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	tok := header(flags, uint16(len(sum)), 0, seq)
	tok = append(tok, payload...)
	return append(tok, sum...), nil
}

// unwrap checks an acceptor's wrap token and returns its payload and
// sequence number. It undoes the right rotation (RRC) Windows and Samba apply.
func unwrap(key types.EncryptionKey, token []byte) ([]byte, uint64, bool, error) {
	if len(token) < headerLen || token[0] != 0x05 || token[1] != 0x04 || token[3] != 0xff {
		return nil, 0, false, fmt.Errorf("%w: not an rfc 4121 wrap token", ErrToken)
	}
	flags := token[2]
	if flags&flagSentByAcceptor == 0 {
		return nil, 0, false, fmt.Errorf("%w: not sent by the acceptor", ErrToken)
	}
	ec := int(binary.BigEndian.Uint16(token[4:]))
	rrc := int(binary.BigEndian.Uint16(token[6:]))
	seq := binary.BigEndian.Uint64(token[8:])
	body := rotateLeft(token[headerLen:], rrc)
	et, err := wrapEtype(key)
	if err != nil {
		return nil, 0, false, err
	}
	if flags&flagSealed != 0 {
		if len(body) < et.GetConfounderByteSize()+et.GetHMACBitLength()/8+headerLen {
			return nil, 0, false, fmt.Errorf("%w: sealed data too short", ErrToken)
		}
		plain, err := et.DecryptMessage(key.KeyValue, body, usageAcceptorSeal)
		if err != nil {
			return nil, 0, false, fmt.Errorf("%w: %v", ErrToken, err)
		}
		if len(plain) < ec+headerLen {
			return nil, 0, false, fmt.Errorf("%w: sealed data too short", ErrToken)
		}
		inner := plain[len(plain)-headerLen:]
		want := header(flags, uint16(ec), 0, seq)
		if !hmac.Equal(inner, want) {
			return nil, 0, false, fmt.Errorf("%w: encrypted header does not match", ErrToken)
		}
		return plain[:len(plain)-headerLen-ec], seq, true, nil
	}
	if len(body) < ec {
		return nil, 0, false, fmt.Errorf("%w: checksum longer than token", ErrToken)
	}
	payload, sum := body[:len(body)-ec], body[len(body)-ec:]
	data := append(append([]byte{}, payload...), header(flags, 0, 0, seq)...)
	if !et.VerifyChecksum(key.KeyValue, data, sum, usageAcceptorSeal) {
		return nil, 0, false, fmt.Errorf("%w: checksum does not verify", ErrToken)
	}
	return payload, seq, false, nil
}

func rotateLeft(b []byte, n int) []byte {
	if len(b) == 0 {
		return b
	}
	n %= len(b)
	out := make([]byte, 0, len(b))
	return append(append(out, b[n:]...), b[:n]...)
}

// wrapEtype returns the etype of an RFC 4121 key. RC4 keys use the older
// RFC 4757 token format, which AD only picks when AES is disabled.
func wrapEtype(key types.EncryptionKey) (etype.EType, error) {
	if key.KeyType != etypeID.AES256_CTS_HMAC_SHA1_96 && key.KeyType != etypeID.AES128_CTS_HMAC_SHA1_96 {
		return nil, fmt.Errorf("%w: session key etype %d is not aes; enable aes for the domain controller's account", ErrToken, key.KeyType)
	}
	return crypto.GetEtype(key.KeyType)
}
