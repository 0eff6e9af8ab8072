package sasl

import (
	"bytes"
	"crypto/md5"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/chksumtype"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

func TestKRB5OID(t *testing.T) {
	// 1.2.840.113554.1.2.2, RFC 1964 section 1.
	want, err := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 113554, 1, 2, 2})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(krb5OID, want) {
		t.Errorf("krb5OID = %x, want %x", krb5OID, want)
	}
}

func TestFrame(t *testing.T) {
	const oidAndID = 11 + 2
	tests := []struct {
		name    string
		bodyLen int
		prefix  []byte // tag and length octets
	}{
		{"empty body", 0, []byte{0x60, oidAndID}},
		{"inner 127, short form", 127 - oidAndID, []byte{0x60, 0x7f}},
		{"inner 128, one length octet", 128 - oidAndID, []byte{0x60, 0x81, 0x80}},
		{"inner 255", 255 - oidAndID, []byte{0x60, 0x81, 0xff}},
		{"inner 256, two length octets", 256 - oidAndID, []byte{0x60, 0x82, 0x01, 0x00}},
		{"inner 65535", 65535 - oidAndID, []byte{0x60, 0x82, 0xff, 0xff}},
		{"inner 65536, three length octets", 65536 - oidAndID, []byte{0x60, 0x83, 0x01, 0x00, 0x00}},
		{"inner 100000", 100000 - oidAndID, []byte{0x60, 0x83, 0x01, 0x86, 0xa0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := bytes.Repeat([]byte{0xab}, tt.bodyLen)
			b := frame(tokAPReq, body)
			want := append(append(append([]byte{}, tt.prefix...), krb5OID...), 0x01, 0x00)
			want = append(want, body...)
			if !bytes.Equal(b, want) {
				t.Fatalf("frame = %x..., want %x...", b[:min(len(b), 20)], want[:min(len(want), 20)])
			}
			id, got, err := unframe(b)
			if err != nil {
				t.Fatal(err)
			}
			if id != tokAPReq || !bytes.Equal(got, body) {
				t.Errorf("unframe = %#04x, %d bytes; want %#04x, %d bytes", id, len(got), tokAPReq, len(body))
			}
		})
	}
}

func TestUnframeErrors(t *testing.T) {
	good := frame(tokAPRep, []byte("body"))
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0x60}},
		{"wrong tag", append([]byte{0x30}, good[1:]...)},
		{"length too long", append([]byte{0x60, byte(len(good) - 1)}, good[2:]...)},
		{"length too short", append([]byte{0x60, byte(len(good) - 3)}, good[2:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(append([]byte{}, good...), 0)},
		{"indefinite length", append([]byte{0x60, 0x80}, good[2:]...)},
		{"four length octets", []byte{0x60, 0x84, 0, 0, 0, 17}},
		{"length octets missing", []byte{0x60, 0x82, 0x01}},
		{"spnego oid", append([]byte{0x60, 0x0a, 0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02}, 0x01, 0x00)},
		{"oid only, no token id", append([]byte{0x60, 11}, krb5OID...)},
		{"oid and one byte of id", append(append([]byte{0x60, 12}, krb5OID...), 0x02)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, body, err := unframe(tt.in)
			if err == nil {
				t.Fatalf("unframe(%x) = %#04x, %x; want an error", tt.in, id, body)
			}
			if want := "bad gss-api wrap token: not a kerberos gss-api token"; err.Error() != want {
				t.Errorf("error\n got %s\nwant %s", err, want)
			}
		})
	}
	// Non-minimal length octets are tolerated.
	long := append([]byte{0x60, 0x82, 0x00, byte(len(good) - 2)}, good[2:]...)
	if id, body, err := unframe(long); err != nil || id != tokAPRep || string(body) != "body" {
		t.Errorf("unframe with a long-form length = %#04x, %q, %v", id, body, err)
	}
}

// acceptor is the server side of a test GSS-API context: it holds the
// service ticket's session key and reads the client's AP-REQ.
type acceptor struct {
	t          *testing.T
	sessionKey types.EncryptionKey
	subkey     types.EncryptionKey // sent in the AP-REP; empty for none
	seq        int64               // the acceptor's sequence number in the AP-REP
}

var testCName = types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, "gmsa-reader")

// testTicket is a service ticket as the client holds it: opaque to it.
func testTicket() messages.Ticket {
	return messages.Ticket{
		TktVNO:  5,
		Realm:   "CORP.EXAMPLE.TEST",
		SName:   types.NewPrincipalName(nametype.KRB_NT_SRV_INST, "ldap/dc1.corp.example.test"),
		EncPart: types.EncryptedData{EType: etypeID.AES256_CTS_HMAC_SHA1_96, KVNO: 2, Cipher: bytes.Repeat([]byte{0x42}, 64)},
	}
}

// readAPReq checks the client's first token and returns its authenticator.
func (a acceptor) readAPReq(tok []byte) messages.APReq {
	a.t.Helper()
	id, body, err := unframe(tok)
	if err != nil {
		a.t.Fatal(err)
	}
	if id != tokAPReq {
		a.t.Fatalf("first token id %#04x, want %#04x", id, tokAPReq)
	}
	var req messages.APReq
	if err := req.Unmarshal(body); err != nil {
		a.t.Fatal(err)
	}
	if err := req.DecryptAuthenticator(a.sessionKey); err != nil {
		a.t.Fatal(err)
	}
	return req
}

// apRep answers with an AP-REP carrying the acceptor's subkey and
// sequence number.
func (a acceptor) apRep(auth types.Authenticator) []byte {
	a.t.Helper()
	enc := messages.EncAPRepPart{CTime: auth.CTime, Cusec: auth.Cusec, Subkey: a.subkey, SequenceNumber: a.seq}
	b, err := asn1.Marshal(enc)
	if err != nil {
		a.t.Fatal(err)
	}
	b = asn1tools.AddASNAppTag(b, 27)
	ed, err := crypto.GetEncryptedData(b, a.sessionKey, keyusage.AP_REP_ENCPART, 0)
	if err != nil {
		a.t.Fatal(err)
	}
	rep, err := asn1.Marshal(struct {
		PVNO    int                 `asn1:"explicit,tag:0"`
		MsgType int                 `asn1:"explicit,tag:1"`
		EncPart types.EncryptedData `asn1:"explicit,tag:2"`
	}{5, 15, ed})
	if err != nil {
		a.t.Fatal(err)
	}
	return frame(tokAPRep, asn1tools.AddASNAppTag(rep, 15))
}

// handshake runs the client to the point where the layers are offered.
func handshake(t *testing.T, c *Client, a acceptor) types.Authenticator {
	t.Helper()
	tok, more, err := c.InitSecContext("ldap/dc1.corp.example.test", nil)
	if err != nil || !more {
		t.Fatalf("first InitSecContext = %v, %v", more, err)
	}
	req := a.readAPReq(tok)
	out, more, err := c.InitSecContextWithOptions("ldap/dc1.corp.example.test", a.apRep(req.Authenticator), nil)
	if err != nil || more || out != nil {
		t.Fatalf("second InitSecContext = %x, %v, %v", out, more, err)
	}
	return req.Authenticator
}

func TestHandshake(t *testing.T) {
	sessionKey := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	subkey := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	for _, tt := range []struct {
		name     string
		acceptor acceptor
		key      types.EncryptionKey
		flag     byte
	}{
		{"acceptor subkey", acceptor{t: t, sessionKey: sessionKey, subkey: subkey, seq: 0x2bcd_ef01}, subkey, 0x04},
		{"no subkey: the session key", acceptor{t: t, sessionKey: sessionKey, seq: 77}, sessionKey, 0x00},
		{
			// RFC 4120 sequence numbers are UInt32; some implementations
			// encode those above 2^31 as negative INTEGERs.
			"sequence number encoded negative", acceptor{t: t, sessionKey: sessionKey, subkey: subkey, seq: -5}, subkey, 0x04,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{CName: testCName, CRealm: "CORP.EXAMPLE.TEST", Ticket: testTicket(), SessionKey: sessionKey, Layer: Confidentiality}
			auth := handshake(t, c, tt.acceptor)

			// The authenticator asks for mutual authentication,
			// sequencing, integrity and confidentiality.
			if auth.Cksum.CksumType != chksumtype.GSSAPI || len(auth.Cksum.Checksum) != 24 {
				t.Fatalf("authenticator checksum type %d, %d bytes", auth.Cksum.CksumType, len(auth.Cksum.Checksum))
			}
			if n := binary.LittleEndian.Uint32(auth.Cksum.Checksum); n != 16 {
				t.Errorf("Lgth %d, want 16", n)
			}
			if bnd := auth.Cksum.Checksum[4:20]; !bytes.Equal(bnd, make([]byte, 16)) {
				t.Errorf("channel binding %x without bindings, want zeros", bnd)
			}
			if f := binary.LittleEndian.Uint32(auth.Cksum.Checksum[20:]); f != 0x3e {
				t.Errorf("context flags %#x, want mutual|replay|sequence|conf|integ (0x3e)", f)
			}

			// The layer offer comes wrapped by the acceptor with the
			// AP-REP's key and sequence number, as Samba sends it.
			accSeq := uint64(uint32(tt.acceptor.seq))
			offer := acceptorToken{subkey: tt.flag != 0, rrc: 12}.make(t, tt.key, accSeq, []byte{0x07, 0x01, 0x00, 0x00})
			reply, err := c.NegotiateSaslAuth(offer, "")
			if err != nil {
				t.Fatal(err)
			}
			payload, fl, seq := acceptorOpen(t, tt.key, reply)
			if diff := cmp.Diff([]byte{0x04, 0xff, 0xff, 0xff}, payload); diff != "" {
				t.Errorf("layer choice (-want +got):\n%s", diff)
			}
			if fl != tt.flag {
				t.Errorf("reply flags %#02x, want %#02x (integrity only)", fl, tt.flag)
			}
			if seq != uint64(auth.SeqNumber) {
				t.Errorf("reply seq %d, want the authenticator's %d", seq, auth.SeqNumber)
			}
			if c.serverMax != 0x010000 || c.chosen != Confidentiality {
				t.Errorf("serverMax %d, chosen %v", c.serverMax, c.chosen)
			}

			// The next acceptor token carries the next sequence number.
			next := sambaSealed.make(t, tt.key, accSeq+1, []byte("hello"))
			if got, sealed, err := c.unwrap(next); err != nil || string(got) != "hello" || !sealed {
				t.Errorf("next token: %q, %v, %v", got, sealed, err)
			}
		})
	}
}

func TestChannelBindingInAPReq(t *testing.T) {
	sessionKey := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	appData := []byte("tls-server-end-point:0123456789abcdef0123456789abcdef")
	c := &Client{CName: testCName, CRealm: "CORP.EXAMPLE.TEST", Ticket: testTicket(), SessionKey: sessionKey, Layer: None, ChannelBinding: appData}
	tok, _, err := c.InitSecContext("ldap/dc1.corp.example.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	req := acceptor{t: t, sessionKey: sessionKey}.readAPReq(tok)
	// gss_channel_bindings_struct with no addresses: four zero u32s, then
	// the application data's length (little-endian) and the data.
	s := binary.LittleEndian.AppendUint32(make([]byte, 16), uint32(len(appData)))
	want := md5.Sum(append(s, appData...))
	if got := req.Authenticator.Cksum.Checksum[4:20]; !bytes.Equal(got, want[:]) {
		t.Errorf("Bnd = %x, want %x", got, want)
	}
	if !types.IsFlagSet(&req.APOptions, flags.APOptionMutualRequired) {
		t.Error("AP-REQ without mutual-required")
	}
}

func TestAPRepKRBError(t *testing.T) {
	sessionKey := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	c := &Client{CName: testCName, CRealm: "CORP.EXAMPLE.TEST", Ticket: testTicket(), SessionKey: sessionKey}
	if _, _, err := c.InitSecContext("ldap/dc1.corp.example.test", nil); err != nil {
		t.Fatal(err)
	}
	m := messages.NewKRBError(types.NewPrincipalName(nametype.KRB_NT_SRV_INST, "ldap/dc1.corp.example.test"), "CORP.EXAMPLE.TEST", 41, "KRB_AP_ERR_MODIFIED")
	der, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.InitSecContext("ldap/dc1.corp.example.test", frame(tokError, der))
	var kerr *KRBError
	if !errors.As(err, &kerr) {
		t.Fatalf("error %v (%T), want *KRBError", err, err)
	}
	if kerr.ErrorCode != 41 || kerr.EText != "KRB_AP_ERR_MODIFIED" {
		t.Errorf("KRBError code %d, text %q", kerr.ErrorCode, kerr.EText)
	}
	if want := "server refused the service ticket: kerberos error 41"; err.Error() != want {
		t.Errorf("error\n got %s\nwant %s", err, want)
	}
}

func TestAPRepErrors(t *testing.T) {
	sessionKey := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	otherKey := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	good := acceptor{t: t, sessionKey: sessionKey, subkey: testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96), seq: 1}
	tests := []struct {
		name string
		tok  func(a types.Authenticator) []byte
		want string
	}{
		{"not framed", func(types.Authenticator) []byte { return []byte{0x6f, 0x00} }, "bad gss-api wrap token: not a kerberos gss-api token"},
		{"ap-req back", func(types.Authenticator) []byte { return frame(tokAPReq, nil) }, "bad gss-api wrap token: want ap-rep, got token id 0x0100"},
		{"undecodable kerberos error", func(types.Authenticator) []byte { return frame(tokError, []byte{0x7e, 0x00}) }, "bad gss-api wrap token: undecodable kerberos error"},
		{
			"ap-rep under another key",
			func(a types.Authenticator) []byte {
				return acceptor{t: t, sessionKey: otherKey, seq: 1}.apRep(a)
			},
			"bad gss-api wrap token: ap-rep does not decrypt with the session key",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{CName: testCName, CRealm: "CORP.EXAMPLE.TEST", Ticket: testTicket(), SessionKey: sessionKey}
			tok, _, err := c.InitSecContext("ldap/dc1.corp.example.test", nil)
			if err != nil {
				t.Fatal(err)
			}
			auth := good.readAPReq(tok).Authenticator
			_, _, err = c.InitSecContext("ldap/dc1.corp.example.test", tt.tok(auth))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %s", err, tt.want)
			}
			if !errors.Is(err, ErrToken) {
				t.Errorf("error %v does not wrap ErrToken", err)
			}
		})
	}
	// An ap-rep that is not DER.
	c := &Client{CName: testCName, CRealm: "CORP.EXAMPLE.TEST", Ticket: testTicket(), SessionKey: sessionKey}
	if _, _, err := c.InitSecContext("", nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.InitSecContext("", frame(tokAPRep, []byte{0x6f, 0x01, 0x00})); !errors.Is(err, ErrToken) {
		t.Errorf("garbage ap-rep: %v, want ErrToken", err)
	}
}

func TestNegotiateSaslAuth(t *testing.T) {
	key := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	tests := []struct {
		name    string
		layer   Layer
		offer   []byte
		authzid string
		want    []byte // the client's choice, unwrapped
		wantErr string
		max     int
	}{
		{name: "confidentiality", layer: Confidentiality, offer: []byte{0x07, 0x01, 0x00, 0x00}, want: []byte{0x04, 0xff, 0xff, 0xff}, max: 65536},
		{name: "integrity", layer: Integrity, offer: []byte{0x07, 0x00, 0x10, 0x00}, want: []byte{0x02, 0xff, 0xff, 0xff}, max: 4096},
		{name: "none", layer: None, offer: []byte{0x07, 0x01, 0x00, 0x00}, want: []byte{0x01, 0x00, 0x00, 0x00}, max: 65536},
		{name: "none with a zero buffer", layer: None, offer: []byte{0x01, 0x00, 0x00, 0x00}, want: []byte{0x01, 0x00, 0x00, 0x00}},
		{name: "authzid appended", layer: Confidentiality, offer: []byte{0x04, 0x00, 0x01, 0x00}, authzid: "u:gmsa-reader", want: append([]byte{0x04, 0xff, 0xff, 0xff}, "u:gmsa-reader"...), max: 256},
		{name: "confidentiality not offered", layer: Confidentiality, offer: []byte{0x03, 0x01, 0x00, 0x00}, wantErr: "server does not offer the security layer: want confidentiality, offered 0x03"},
		{name: "zero buffer", layer: Confidentiality, offer: []byte{0x07, 0x00, 0x00, 0x00}, wantErr: "server does not offer the security layer: server offers a layer with a zero buffer"},
		{name: "offer too long", layer: Confidentiality, offer: []byte{0x07, 0x01, 0x00, 0x00, 0x00}, wantErr: "bad gss-api wrap token: layer offer is 5 bytes, want 4"},
		{name: "offer empty", layer: Confidentiality, offer: []byte{}, wantErr: "bad gss-api wrap token: layer offer is 0 bytes, want 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{Layer: tt.layer, key: key, subkey: true, sendSeq: 9, recvSeq: 3, recvSeqSet: true}
			reply, err := c.NegotiateSaslAuth(sambaSigned.make(t, key, 3, tt.offer), tt.authzid)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, fl, seq := acceptorOpen(t, key, reply)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("choice (-want +got):\n%s", diff)
			}
			if fl&0x02 != 0 || seq != 9 {
				t.Errorf("reply flags %#02x seq %d: want integrity only, seq 9", fl, seq)
			}
			if c.chosen != tt.layer || c.serverMax != tt.max {
				t.Errorf("chosen %v, serverMax %d; want %v, %d", c.chosen, c.serverMax, tt.layer, tt.max)
			}
		})
	}
	// Before the AP-REP there is no key to unwrap with.
	c := &Client{Layer: Confidentiality}
	_, err := c.NegotiateSaslAuth([]byte{0x05, 0x04}, "")
	if want := "bad gss-api wrap token: security layer negotiation before the context was established"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

func TestLayerString(t *testing.T) {
	got := fmt.Sprint(None, Integrity, Confidentiality, Layer(0x07))
	if want := "none integrity confidentiality layer(0x7)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDeleteSecContextKeepsKeys(t *testing.T) {
	key := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	c := &Client{key: key, subkey: true, recvSeq: 1, recvSeqSet: true}
	if err := c.DeleteSecContext(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.unwrap(sambaSealed.make(t, key, 1, []byte("x"))); err != nil {
		t.Errorf("unwrap after DeleteSecContext: %v", err)
	}
}

// TestUnwrapRefusesSignedAfterSeal: once confidentiality is negotiated the
// client itself, not only Conn, refuses a token that is merely signed.
func TestUnwrapRefusesSignedAfterSeal(t *testing.T) {
	key := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	c := &Client{Layer: Confidentiality, key: key, subkey: true, recvSeq: 3, recvSeqSet: true, serverMax: 65536, chosen: Confidentiality}
	_, _, err := c.unwrap(sambaSigned.make(t, key, 3, []byte("forged entry")))
	if want := "bad gss-api wrap token: server sent a token without the negotiated layer"; err == nil || err.Error() != want {
		t.Fatalf("unwrap = %v, want %s", err, want)
	}
	// Integrity-only stays accepted when integrity was negotiated.
	c = &Client{Layer: Integrity, key: key, subkey: true, recvSeq: 3, recvSeqSet: true, serverMax: 65536, chosen: Integrity}
	if got, sealed, err := c.unwrap(sambaSigned.make(t, key, 3, []byte("entry"))); err != nil || sealed || string(got) != "entry" {
		t.Errorf("unwrap with integrity = %q, %v, %v", got, sealed, err)
	}
}
