// Package sasl is the client side of the SASL GSSAPI mechanism (RFC 4752)
// over Kerberos v5 (RFC 4121), with the security layers go-ldap lacks.
//
// Active Directory and Samba return msDS-ManagedPassword over plain LDAP only
// when the bind negotiated confidentiality: every LDAP message after the bind
// travels as a sealed (encrypted) wrap token. go-ldap always picks "no
// security layer" and gokrb5's wrap tokens cannot seal, so both halves are
// here: Client drives go-ldap's GSSAPI bind and picks the layer, and Conn
// wraps and unwraps the connection once the bind has succeeded.
package sasl

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/chksumtype"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Layer is a SASL GSSAPI security layer (RFC 4752 section 3.3).
type Layer byte

const (
	None            Layer = 0x01
	Integrity       Layer = 0x02
	Confidentiality Layer = 0x04
)

func (l Layer) String() string {
	switch l {
	case None:
		return "none"
	case Integrity:
		return "integrity"
	case Confidentiality:
		return "confidentiality"
	}
	return fmt.Sprintf("layer(%#x)", byte(l))
}

// ErrLayerRefused means the server does not offer the requested layer, or
// ended the bind without negotiating it (see LayerError).
var ErrLayerRefused = errors.New("server does not offer the security layer")

// LayerError is a bind that ended with another security layer than the one
// asked for: a server (or a man in the middle relaying the AP exchange) that
// answers the bind with success before the RFC 4752 negotiation leaves
// nothing negotiated. It matches ErrLayerRefused.
type LayerError struct {
	Asked      Layer
	Negotiated Layer // 0: the bind ended before the server offered layers
}

func (e *LayerError) Error() string {
	if e.Negotiated == 0 {
		return fmt.Sprintf("asked for %s, negotiated nothing: the bind succeeded before the server offered its layers", e.Asked)
	}
	return fmt.Sprintf("asked for %s, negotiated %s", e.Asked, e.Negotiated)
}

// Is makes a LayerError match ErrLayerRefused.
func (e *LayerError) Is(target error) bool { return target == ErrLayerRefused }

// maxRecv is the largest wrapped message this client accepts (the most
// three octets can say).
const maxRecv = 0xffffff

// Client implements go-ldap's GSSAPIClient for one bind with a service
// ticket obtained beforehand.
type Client struct {
	// CName and CRealm name the client, as in its ticket.
	CName  types.PrincipalName
	CRealm string
	// Ticket and SessionKey are the service ticket for the LDAP server.
	Ticket     messages.Ticket
	SessionKey types.EncryptionKey
	// Layer is the security layer to choose.
	Layer Layer
	// ChannelBinding is the application data of the GSS-API channel
	// bindings, e.g. TLSServerEndPoint of an LDAPS connection; AD and Samba
	// refuse a GSSAPI bind over TLS without it.
	ChannelBinding []byte

	sent       bool
	key        types.EncryptionKey // acceptor subkey, or the session key
	subkey     bool
	sendSeq    uint64
	recvSeq    uint64
	recvSeqSet bool
	serverMax  int
	chosen     Layer
}

// InitSecContext implements ldap.GSSAPIClient.
func (c *Client) InitSecContext(target string, token []byte) ([]byte, bool, error) {
	return c.InitSecContextWithOptions(target, token, nil)
}

// InitSecContextWithOptions implements ldap.GSSAPIClient. The first call
// returns the AP-REQ; the second takes the server's AP-REP.
func (c *Client) InitSecContextWithOptions(_ string, token []byte, _ []int) ([]byte, bool, error) {
	if !c.sent {
		c.sent = true
		tok, err := c.apReq()
		return tok, true, err
	}
	if err := c.apRep(token); err != nil {
		return nil, false, err
	}
	return nil, false, nil
}

func (c *Client) apReq() ([]byte, error) {
	auth, err := types.NewAuthenticator(c.CRealm, c.CName)
	if err != nil {
		return nil, err
	}
	// RFC 4121 section 4.1.1: the checksum carries the context flags.
	sum := make([]byte, 24)
	binary.LittleEndian.PutUint32(sum, 16)
	if c.ChannelBinding != nil {
		copy(sum[4:20], bindingHash(c.ChannelBinding))
	}
	const mutual, replay, sequence, conf, integ = 2, 4, 8, 16, 32
	binary.LittleEndian.PutUint32(sum[20:], mutual|replay|sequence|conf|integ)
	auth.Cksum = types.Checksum{CksumType: chksumtype.GSSAPI, Checksum: sum}
	req, err := messages.NewAPReq(c.Ticket, c.SessionKey, auth)
	if err != nil {
		return nil, fmt.Errorf("build ap-req: %w", err)
	}
	types.SetFlag(&req.APOptions, flags.APOptionMutualRequired)
	der, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode ap-req: %w", err)
	}
	c.sendSeq = uint64(auth.SeqNumber)
	return frame(tokAPReq, der), nil
}

// KRBError is a Kerberos error the server sent instead of an AP-REP.
type KRBError struct{ messages.KRBError }

func (e *KRBError) Error() string {
	return fmt.Sprintf("server refused the service ticket: kerberos error %d", e.ErrorCode)
}

func (c *Client) apRep(token []byte) error {
	id, body, err := unframe(token)
	if err != nil {
		return err
	}
	switch id {
	case tokAPRep:
	case tokError:
		var m messages.KRBError
		if err := m.Unmarshal(body); err != nil {
			return fmt.Errorf("%w: undecodable kerberos error", ErrToken)
		}
		return &KRBError{m}
	default:
		return fmt.Errorf("%w: want ap-rep, got token id %#04x", ErrToken, id)
	}
	var rep messages.APRep
	if err := rep.Unmarshal(body); err != nil {
		return fmt.Errorf("%w: ap-rep: %v", ErrToken, err)
	}
	plain, err := crypto.DecryptEncPart(rep.EncPart, c.SessionKey, keyusage.AP_REP_ENCPART)
	if err != nil {
		return fmt.Errorf("%w: ap-rep does not decrypt with the session key", ErrToken)
	}
	var enc messages.EncAPRepPart
	if err := enc.Unmarshal(plain); err != nil {
		return fmt.Errorf("%w: ap-rep: %v", ErrToken, err)
	}
	c.key, c.subkey = c.SessionKey, false
	if len(enc.Subkey.KeyValue) > 0 {
		c.key, c.subkey = enc.Subkey, true
	}
	// A sequence number is a UInt32; some implementations encode those
	// above 2^31 as negative INTEGERs.
	c.recvSeq = uint64(uint32(enc.SequenceNumber))
	c.recvSeqSet = true
	return nil
}

// NegotiateSaslAuth implements ldap.GSSAPIClient: it reads the layers the
// server offers and answers with Layer and our receive buffer size.
func (c *Client) NegotiateSaslAuth(token []byte, authzid string) ([]byte, error) {
	if c.key.KeyValue == nil {
		return nil, fmt.Errorf("%w: security layer negotiation before the context was established", ErrToken)
	}
	payload, _, err := c.unwrap(token)
	if err != nil {
		return nil, err
	}
	if len(payload) != 4 {
		return nil, fmt.Errorf("%w: layer offer is %d bytes, want 4", ErrToken, len(payload))
	}
	offered := Layer(payload[0])
	c.serverMax = int(payload[1])<<16 | int(payload[2])<<8 | int(payload[3])
	if offered&c.Layer == 0 {
		return nil, fmt.Errorf("%w: want %s, offered %#02x", ErrLayerRefused, c.Layer, byte(offered))
	}
	if c.Layer != None && c.serverMax == 0 {
		return nil, fmt.Errorf("%w: server offers a layer with a zero buffer", ErrLayerRefused)
	}
	c.chosen = c.Layer
	reply := []byte{byte(c.Layer), maxRecv >> 16 & 0xff, maxRecv >> 8 & 0xff, maxRecv & 0xff}
	if c.Layer == None {
		reply[1], reply[2], reply[3] = 0, 0, 0
	}
	reply = append(reply, authzid...)
	// The answer is integrity-protected only, whatever layer it picks.
	return c.wrap(reply, false)
}

// DeleteSecContext implements ldap.GSSAPIClient. The keys stay usable by
// the Conn this client secures.
func (c *Client) DeleteSecContext() error { return nil }

func (c *Client) wrap(payload []byte, seal bool) ([]byte, error) {
	tok, err := wrap(c.key, c.subkey, c.sendSeq, payload, seal)
	if err != nil {
		return nil, err
	}
	c.sendSeq++
	return tok, nil
}

func (c *Client) unwrap(token []byte) ([]byte, bool, error) {
	payload, seq, sealed, err := unwrap(c.key, token)
	if err != nil {
		return nil, false, err
	}
	if c.recvSeqSet && seq != c.recvSeq {
		return nil, false, fmt.Errorf("%w: sequence number %d, want %d", ErrToken, seq, c.recvSeq)
	}
	// Once confidentiality is negotiated, a token that is only signed is
	// plaintext that a man in the middle may have chosen.
	if c.chosen == Confidentiality && !sealed {
		return nil, false, fmt.Errorf("%w: server sent a token without the negotiated layer", ErrToken)
	}
	c.recvSeq = seq + 1
	c.recvSeqSet = true
	return payload, sealed, nil
}

// GSS-API framing (RFC 2743 section 3.1) of Kerberos tokens.
const (
	tokAPReq = 0x0100
	tokAPRep = 0x0200
	tokError = 0x0300
)

var krb5OID = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02}

func frame(id uint16, body []byte) []byte {
	inner := make([]byte, 0, len(krb5OID)+2+len(body))
	inner = append(inner, krb5OID...)
	inner = binary.BigEndian.AppendUint16(inner, id)
	inner = append(inner, body...)
	out := []byte{0x60}
	out = appendLength(out, len(inner))
	return append(out, inner...)
}

func appendLength(b []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n <= 0xff:
		return append(b, 0x81, byte(n))
	case n <= 0xffff:
		return append(b, 0x82, byte(n>>8), byte(n))
	default:
		return append(b, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
}

func unframe(b []byte) (uint16, []byte, error) {
	bad := fmt.Errorf("%w: not a kerberos gss-api token", ErrToken)
	if len(b) < 2 || b[0] != 0x60 {
		return 0, nil, bad
	}
	n, rest := int(b[1]), b[2:]
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 3 || len(rest) < k {
			return 0, nil, bad
		}
		n = 0
		for _, x := range rest[:k] {
			n = n<<8 | int(x)
		}
		rest = rest[k:]
	}
	if n != len(rest) || len(rest) < len(krb5OID)+2 || string(rest[:len(krb5OID)]) != string(krb5OID) {
		return 0, nil, bad
	}
	rest = rest[len(krb5OID):]
	return binary.BigEndian.Uint16(rest), rest[2:], nil
}

// bindingHash is the Bnd field of RFC 4121 section 4.1.1.2: MD5 over the
// gss_channel_bindings_struct with no addresses and the application data.
func bindingHash(appData []byte) []byte {
	b := make([]byte, 16, 20+len(appData))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(appData)))
	b = append(b, appData...)
	sum := md5.Sum(b)
	return sum[:]
}

// TLSServerEndPoint is the "tls-server-end-point" channel binding of RFC
// 5929 for a server certificate: its hash, with SHA-256 standing in for
// MD5 and SHA-1.
func TLSServerEndPoint(cert *x509.Certificate) []byte {
	var sum []byte
	switch cert.SignatureAlgorithm {
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		h := sha512.Sum384(cert.Raw)
		sum = h[:]
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
		h := sha512.Sum512(cert.Raw)
		sum = h[:]
	default:
		h := sha256.Sum256(cert.Raw)
		sum = h[:]
	}
	return append([]byte("tls-server-end-point:"), sum...)
}
