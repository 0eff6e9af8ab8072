package sasl

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/types"
)

// The tests below play the acceptor (the LDAP server) with their own token
// code, written from RFC 4121 section 4.2 and what Samba sends, rather than
// with the package's header and rotation helpers.

// testKey returns a random key of an AES etype.
func testKey(t testing.TB, etype int32) types.EncryptionKey {
	t.Helper()
	n := 32
	if etype == etypeID.AES128_CTS_HMAC_SHA1_96 {
		n = 16
	}
	k := make([]byte, n)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return types.EncryptionKey{KeyType: etype, KeyValue: k}
}

// tokenHeader is an RFC 4121 wrap token header.
func tokenHeader(flags byte, ec, rrc uint16, seq uint64) []byte {
	h := []byte{0x05, 0x04, flags, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(h[4:6], ec)
	binary.BigEndian.PutUint16(h[6:8], rrc)
	binary.BigEndian.PutUint64(h[8:16], seq)
	return h
}

// rotateRight moves the last n bytes of b to the front, as a sender
// applying RRC n does.
func rotateRight(b []byte, n int) []byte {
	if len(b) == 0 {
		return b
	}
	n %= len(b)
	out := append([]byte{}, b[len(b)-n:]...)
	return append(out, b[:len(b)-n]...)
}

// acceptorToken is a wrap token as the acceptor sends it.
type acceptorToken struct {
	seal   bool
	subkey bool   // set the AcceptorSubkey flag
	ec     uint16 // sealed only: filler length
	rrc    uint16
	usage  uint32 // 0: 22, the acceptor's seal usage
	flags  byte   // when not 0, replaces the flags computed from the above
}

func (a acceptorToken) make(t testing.TB, key types.EncryptionKey, seq uint64, payload []byte) []byte {
	t.Helper()
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		t.Fatal(err)
	}
	usage := a.usage
	if usage == 0 {
		usage = 22
	}
	flags := byte(0x01)
	if a.seal {
		flags |= 0x02
	}
	if a.subkey {
		flags |= 0x04
	}
	if a.flags != 0 {
		flags = a.flags
	}
	if a.seal {
		plain := append(append([]byte{}, payload...), bytes.Repeat([]byte{0xee}, int(a.ec))...)
		plain = append(plain, tokenHeader(flags, a.ec, 0, seq)...)
		_, ct, err := et.EncryptMessage(key.KeyValue, plain, usage)
		if err != nil {
			t.Fatal(err)
		}
		return append(tokenHeader(flags, a.ec, a.rrc, seq), rotateRight(ct, int(a.rrc))...)
	}
	data := append(append([]byte{}, payload...), tokenHeader(flags, 0, 0, seq)...)
	sum, err := et.GetChecksumHash(key.KeyValue, data, usage)
	if err != nil {
		t.Fatal(err)
	}
	body := append(append([]byte{}, payload...), sum...)
	return append(tokenHeader(flags, uint16(len(sum)), a.rrc, seq), rotateRight(body, int(a.rrc))...)
}

// Samba's tokens, as seen on the wire.
var (
	sambaSealed = acceptorToken{seal: true, subkey: true, rrc: 28}
	sambaSigned = acceptorToken{subkey: true, rrc: 12}
)

func TestUnwrap(t *testing.T) {
	payloads := map[string][]byte{
		"empty":          {},
		"layer offer":    {0x07, 0x01, 0x00, 0x00},
		"ldap message":   []byte("0\x84\x00\x00\x00\x0c\x02\x01\x02e\x07\x0a\x01\x00\x04\x00\x04\x00"),
		"odd length":     bytes.Repeat([]byte("x"), 37),
		"block multiple": bytes.Repeat([]byte("y"), 64),
		"large":          bytes.Repeat([]byte("0123456789"), 7000),
	}
	kinds := []struct {
		name string
		tok  acceptorToken
	}{
		{"samba sealed (rrc 28)", sambaSealed},
		{"samba integrity (rrc 12)", sambaSigned},
		{"sealed, no rotation", acceptorToken{seal: true, subkey: true}},
		{"integrity, no rotation", acceptorToken{subkey: true}},
		{"sealed with filler", acceptorToken{seal: true, subkey: true, ec: 5, rrc: 33}},
		{"sealed, rotation past the end", acceptorToken{seal: true, rrc: 60000}},
		{"integrity, session key (no subkey flag)", acceptorToken{rrc: 12}},
	}
	for _, etype := range []int32{etypeID.AES256_CTS_HMAC_SHA1_96, etypeID.AES128_CTS_HMAC_SHA1_96} {
		key := testKey(t, etype)
		for _, k := range kinds {
			for pname, payload := range payloads {
				t.Run(fmt.Sprintf("etype %d/%s/%s", etype, k.name, pname), func(t *testing.T) {
					const seq = 0x1234_5678_9abc
					tok := k.tok.make(t, key, seq, payload)
					got, gotSeq, sealed, err := unwrap(key, tok)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, payload) {
						t.Errorf("payload = %q, want %q", got, payload)
					}
					if gotSeq != seq {
						t.Errorf("seq = %#x, want %#x", gotSeq, uint64(seq))
					}
					if sealed != k.tok.seal {
						t.Errorf("sealed = %v, want %v", sealed, k.tok.seal)
					}
				})
			}
		}
	}
}

func TestUnwrapTampered(t *testing.T) {
	key := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	payload := []byte("the managed password blob would be in here")
	for _, k := range []struct {
		name string
		tok  acceptorToken
	}{{"sealed", sambaSealed}, {"integrity", sambaSigned}} {
		tok := k.tok.make(t, key, 7, payload)
		if _, _, _, err := unwrap(key, tok); err != nil {
			t.Fatalf("%s: the untampered token: %v", k.name, err)
		}
		for i := range tok {
			for _, mask := range []byte{0x01, 0x80} {
				bad := append([]byte{}, tok...)
				bad[i] ^= mask
				got, _, _, err := unwrap(key, bad)
				if !errors.Is(err, ErrToken) {
					t.Errorf("%s: byte %d ^ %#02x: unwrap = %q, %v; want ErrToken", k.name, i, mask, got, err)
				}
			}
		}
	}
}

func TestUnwrapErrors(t *testing.T) {
	key := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	other := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	payload := []byte("payload")
	sealed := sambaSealed.make(t, key, 1, payload)
	signed := sambaSigned.make(t, key, 1, payload)
	initiator, err := wrap(key, true, 1, payload, true)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		key   types.EncryptionKey
		token []byte
		want  string
	}{
		{"empty", key, nil, "bad gss-api wrap token: not an rfc 4121 wrap token"},
		{"header only, short", key, sealed[:15], "bad gss-api wrap token: not an rfc 4121 wrap token"},
		{"mic token id", key, append([]byte{0x04, 0x04}, sealed[2:]...), "bad gss-api wrap token: not an rfc 4121 wrap token"},
		{"rfc 1964 token", key, append([]byte{0x02, 0x01}, sealed[2:]...), "bad gss-api wrap token: not an rfc 4121 wrap token"},
		{"filler not 0xff", key, append(append([]byte{}, sealed[:3]...), append([]byte{0x00}, sealed[4:]...)...), "bad gss-api wrap token: not an rfc 4121 wrap token"},
		{"our own sealed token reflected", key, initiator, "bad gss-api wrap token: not sent by the acceptor"},
		{
			"acceptor flag on a token sealed with the initiator's usage", key,
			acceptorToken{seal: true, subkey: true, rrc: 28, usage: 24}.make(t, key, 1, payload),
			"bad gss-api wrap token: integrity verification failed",
		},
		{
			"acceptor flag on a token signed with the initiator's usage", key,
			acceptorToken{subkey: true, rrc: 12, usage: 24}.make(t, key, 1, payload),
			"bad gss-api wrap token: checksum does not verify",
		},
		{
			"mic usage 23", key,
			acceptorToken{subkey: true, rrc: 12, usage: 23}.make(t, key, 1, payload),
			"bad gss-api wrap token: checksum does not verify",
		},
		{"sealed with another key", other, sealed, "bad gss-api wrap token: integrity verification failed"},
		{"signed with another key", other, signed, "bad gss-api wrap token: checksum does not verify"},
		{"sealed, header only", key, sealed[:16], "bad gss-api wrap token: sealed data too short"},
		{"sealed, truncated body", key, sealed[:16+43], "bad gss-api wrap token: sealed data too short"},
		{"sealed, body cut", key, sealed[:len(sealed)-1], "bad gss-api wrap token: integrity verification failed"},
		{
			"sealed, ec beyond the data", key,
			func() []byte {
				// A valid encryption whose outer and inner EC agree but
				// exceed the plaintext.
				et, _ := crypto.GetEtype(key.KeyType)
				plain := append([]byte("ab"), tokenHeader(0x07, 100, 0, 1)...)
				_, ct, err := et.EncryptMessage(key.KeyValue, plain, 22)
				if err != nil {
					t.Fatal(err)
				}
				return append(tokenHeader(0x07, 100, 0, 1), ct...)
			}(),
			"bad gss-api wrap token: sealed data too short",
		},
		{
			"sealed, inner header differs", key,
			func() []byte {
				et, _ := crypto.GetEtype(key.KeyType)
				plain := append([]byte("ab"), tokenHeader(0x07, 0, 0, 2)...)
				_, ct, err := et.EncryptMessage(key.KeyValue, plain, 22)
				if err != nil {
					t.Fatal(err)
				}
				return append(tokenHeader(0x07, 0, 0, 1), ct...)
			}(),
			"bad gss-api wrap token: encrypted header does not match",
		},
		{
			"integrity, ec beyond the data", key,
			append(tokenHeader(0x05, 200, 0, 1), []byte("short")...),
			"bad gss-api wrap token: checksum longer than token",
		},
		{
			"integrity, no checksum", key,
			append(tokenHeader(0x05, 0, 0, 1), []byte("unprotected")...),
			"bad gss-api wrap token: checksum does not verify",
		},
		{"rc4 key", types.EncryptionKey{KeyType: etypeID.RC4_HMAC, KeyValue: make([]byte, 16)}, signed,
			"bad gss-api wrap token: session key etype 23 is not aes; enable aes for the domain controller's account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, _, err := unwrap(tt.key, tt.token)
			if err == nil {
				t.Fatalf("unwrap = %q, want an error", got)
			}
			if !errors.Is(err, ErrToken) {
				t.Errorf("error %v does not wrap ErrToken", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestUnwrapShort(t *testing.T) {
	key := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	for _, k := range []acceptorToken{sambaSealed, sambaSigned, {seal: true, subkey: true, ec: 16, rrc: 44}} {
		tok := k.make(t, key, 3, []byte("0123456789abcdef0123"))
		for n := range len(tok) {
			if got, _, _, err := unwrap(key, tok[:n]); err == nil {
				t.Errorf("%+v: %d of %d bytes: unwrap = %q, want an error", k, n, len(tok), got)
			}
		}
	}
}

// acceptorOpen is the acceptor's reading of an initiator's wrap token.
func acceptorOpen(t *testing.T, key types.EncryptionKey, tok []byte) (payload []byte, flags byte, seq uint64) {
	t.Helper()
	if len(tok) < 16 || tok[0] != 0x05 || tok[1] != 0x04 || tok[3] != 0xff {
		t.Fatalf("not a wrap token: %x", tok)
	}
	flags = tok[2]
	ec := binary.BigEndian.Uint16(tok[4:6])
	rrc := binary.BigEndian.Uint16(tok[6:8])
	seq = binary.BigEndian.Uint64(tok[8:16])
	if flags&0x01 != 0 {
		t.Errorf("initiator token has the SentByAcceptor flag: %#02x", flags)
	}
	if rrc != 0 {
		t.Errorf("initiator token rotated: RRC %d", rrc)
	}
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		t.Fatal(err)
	}
	if flags&0x02 != 0 {
		plain, err := et.DecryptMessage(key.KeyValue, tok[16:], 24)
		if err != nil {
			t.Fatalf("acceptor cannot decrypt: %v", err)
		}
		if got, want := plain[len(plain)-16:], tokenHeader(flags, ec, 0, seq); !bytes.Equal(got, want) {
			t.Errorf("encrypted header %x, want %x", got, want)
		}
		return plain[:len(plain)-16-int(ec)], flags, seq
	}
	if int(ec) != et.GetHMACBitLength()/8 {
		t.Errorf("integrity token EC %d, want the checksum length %d", ec, et.GetHMACBitLength()/8)
	}
	body := tok[16:]
	payload, sum := body[:len(body)-int(ec)], body[len(body)-int(ec):]
	if !et.VerifyChecksum(key.KeyValue, append(append([]byte{}, payload...), tokenHeader(flags, 0, 0, seq)...), sum, 24) {
		t.Fatalf("acceptor cannot verify the checksum")
	}
	return payload, flags, seq
}

func TestWrap(t *testing.T) {
	for _, etype := range []int32{etypeID.AES256_CTS_HMAC_SHA1_96, etypeID.AES128_CTS_HMAC_SHA1_96} {
		key := testKey(t, etype)
		for _, tt := range []struct {
			name      string
			seal      bool
			subkey    bool
			wantFlags byte
		}{
			{"sealed with subkey", true, true, 0x06},
			{"integrity with subkey", false, true, 0x04},
			{"sealed with session key", true, false, 0x02},
			{"integrity with session key", false, false, 0x00},
		} {
			for _, payload := range [][]byte{{}, {0x04, 0xff, 0xff, 0xff}, bytes.Repeat([]byte("ldap"), 5000)} {
				t.Run(fmt.Sprintf("etype %d/%s/%d bytes", etype, tt.name, len(payload)), func(t *testing.T) {
					const seq = 0x3fff_fffe
					tok, err := wrap(key, tt.subkey, seq, payload, tt.seal)
					if err != nil {
						t.Fatal(err)
					}
					got, flags, gotSeq := acceptorOpen(t, key, tok)
					if diff := cmp.Diff(payload, got); diff != "" {
						t.Errorf("payload (-want +got):\n%s", diff)
					}
					if flags != tt.wantFlags {
						t.Errorf("flags %#02x, want %#02x", flags, tt.wantFlags)
					}
					if gotSeq != seq {
						t.Errorf("seq %#x, want %#x", gotSeq, seq)
					}
					if tt.seal && bytes.Contains(tok, []byte("ldapldap")) {
						t.Error("sealed token carries the plaintext")
					}
				})
			}
		}
	}
}

func TestWrapRC4(t *testing.T) {
	_, err := wrap(types.EncryptionKey{KeyType: etypeID.RC4_HMAC, KeyValue: make([]byte, 16)}, false, 0, []byte("x"), true)
	if !errors.Is(err, ErrToken) || !strings.Contains(err.Error(), "session key etype 23 is not aes") {
		t.Fatalf("wrap with an rc4 key: %v", err)
	}
}

func TestClientSequence(t *testing.T) {
	key := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	c := &Client{key: key, subkey: true, sendSeq: 10, recvSeq: 500, recvSeqSet: true}

	// Our tokens count up from the authenticator's sequence number.
	for want := uint64(10); want < 13; want++ {
		tok, err := c.wrap([]byte("x"), true)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, seq := acceptorOpen(t, key, tok); seq != want {
			t.Errorf("sent seq %d, want %d", seq, want)
		}
	}
	// The acceptor's count up from its AP-REP's.
	for seq := uint64(500); seq < 503; seq++ {
		if _, _, err := c.unwrap(sambaSealed.make(t, key, seq, []byte("y"))); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
	for _, tt := range []struct {
		seq  uint64
		want string
	}{
		{502, "bad gss-api wrap token: sequence number 502, want 503"}, // replayed
		{504, "bad gss-api wrap token: sequence number 504, want 503"}, // one lost
	} {
		_, _, err := c.unwrap(sambaSealed.make(t, key, tt.seq, []byte("z")))
		if err == nil || err.Error() != tt.want {
			t.Errorf("token with seq %d: %v, want %s", tt.seq, err, tt.want)
		}
	}
	if _, _, err := c.unwrap(sambaSealed.make(t, key, 503, []byte("y"))); err != nil {
		t.Fatalf("the expected token after refused ones: %v", err)
	}
}
