package sasl

import (
	"bytes"
	"testing"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/types"
)

// fuzzKey is fixed so that seeds made with it stay valid tokens.
var fuzzKey = types.EncryptionKey{KeyType: etypeID.AES256_CTS_HMAC_SHA1_96, KeyValue: bytes.Repeat([]byte{0x5a}, 32)}

// FuzzUnwrap: unwrap never panics on arbitrary tokens, returns nothing
// beside an error, and a token the acceptor makes of the same bytes
// unwraps to them.
func FuzzUnwrap(f *testing.F) {
	for _, p := range [][]byte{{}, {0x07, 0x01, 0x00, 0x00}, []byte("0\x0c\x02\x01\x02e\x07\x0a\x01\x00\x04\x00\x04\x00")} {
		for _, a := range []acceptorToken{sambaSealed, sambaSigned, {seal: true, subkey: true, ec: 3, rrc: 1}, {rrc: 1000}} {
			f.Add(a.make(f, fuzzKey, 42, p))
		}
	}
	f.Add([]byte{0x05, 0x04, 0x07, 0xff, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x05, 0x04, 0x05, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, token []byte) {
		payload, _, _, err := unwrap(fuzzKey, token)
		if err != nil && payload != nil {
			t.Fatalf("unwrap returned %q with error %v", payload, err)
		}
		// Through a Client, which also checks the sequence.
		c := &Client{key: fuzzKey, subkey: true}
		if p, _, err := c.unwrap(token); err != nil && p != nil {
			t.Fatalf("Client.unwrap returned %q with error %v", p, err)
		}

		// The bytes as a payload: what the acceptor wraps comes back.
		if len(token) > 0 {
			a := acceptorToken{seal: token[0]&1 == 1, subkey: true, rrc: uint16(token[0]) * 3}
			tok := a.make(t, fuzzKey, uint64(len(token)), token)
			got, seq, sealed, err := unwrap(fuzzKey, tok)
			if err != nil || !bytes.Equal(got, token) || seq != uint64(len(token)) || sealed != a.seal {
				t.Fatalf("round trip of %q via %+v: %q, %d, %v, %v", token, a, got, seq, sealed, err)
			}
			// And our own wrap tokens are never taken for the acceptor's.
			mine, err := wrap(fuzzKey, true, 1, token, a.seal)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := unwrap(fuzzKey, mine); err == nil {
				t.Fatal("unwrap accepted an initiator's token")
			}
		}
	})
}

// FuzzUnframe: unframe never panics, and what it accepts frames again to
// the same id and body, in no more bytes.
func FuzzUnframe(f *testing.F) {
	f.Add(frame(tokAPRep, []byte("ap-rep")))
	f.Add(frame(tokError, bytes.Repeat([]byte{1}, 200)))
	f.Add(frame(tokAPReq, bytes.Repeat([]byte{2}, 300)))
	f.Add([]byte{0x60, 0x83, 0xff, 0xff, 0xff})
	f.Add([]byte{0x60, 0x80})
	f.Add(append([]byte{0x60, 0x82, 0x00, 0x0d}, append(append([]byte{}, krb5OID...), 2, 0)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, body, err := unframe(b)
		if err != nil {
			if id != 0 || body != nil {
				t.Fatalf("unframe returned %#04x, %x with error %v", id, body, err)
			}
			return
		}
		again := frame(id, body)
		if len(again) > len(b) {
			t.Fatalf("frame(unframe(%x)) = %x is longer", b, again)
		}
		id2, body2, err := unframe(again)
		if err != nil || id2 != id || !bytes.Equal(body2, body) {
			t.Fatalf("unframe(frame(%#04x, %x)) = %#04x, %x, %v", id, body, id2, body2, err)
		}
		// A token that used the shortest length form frames to itself.
		if len(again) == len(b) && !bytes.Equal(again, b) {
			t.Fatalf("frame(unframe(%x)) = %x", b, again)
		}
	})
}
