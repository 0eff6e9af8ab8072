// Package kdc talks to Active Directory's Key Distribution Center: the AS
// exchange that turns a password or keytab key into a ticket-granting ticket,
// and the TGS exchange that turns that into a service ticket.
//
// It is written on gokrb5's message and crypto packages rather than its
// client because a hook needs what that client lacks: a context deadline on
// every network step, failover between KDCs on any network error, the
// KDC's error code available to callers (clock skew, revoked, unknown
// principal), and pre-authentication in the first request when the salt is
// predictable, which saves a round trip on every login.
package kdc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/iana/patype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Etypes are the encryption types this package knows, strongest first.
// RC4-HMAC (etype 23) is requested and used only with Client.AllowRC4.
var Etypes = []int32{etypeID.AES256_CTS_HMAC_SHA1_96, etypeID.AES128_CTS_HMAC_SHA1_96, etypeID.RC4_HMAC}

// ErrRC4Disabled means the KDC or the keys offer only RC4-HMAC, which the
// client does not use unless AllowRC4 is set (the allow_rc4 config key).
var ErrRC4Disabled = errors.New("rc4-hmac is disabled (allow_rc4 is false)")

// Error is a KRB-ERROR answered by a KDC.
type Error struct {
	Code       int32
	Server     string // the KDC that answered
	ServerTime time.Time
	Text       string // e-text, when the KDC sent one
}

func (e *Error) Error() string {
	// Lookup gives "(24) KDC_ERR_PREAUTH_FAILED Pre-authentication ...",
	// or "Unknown ErrorCode 99" for a code it does not know.
	name := ""
	if f := strings.Fields(errorcode.Lookup(e.Code)); len(f) > 1 && strings.HasPrefix(f[0], "(") {
		name = " " + f[1]
	}
	what := ""
	switch e.Code {
	case errorcode.KDC_ERR_PREAUTH_FAILED:
		what = ErrBadCredentials.Error() + " "
	case errorcode.KDC_ERR_C_PRINCIPAL_UNKNOWN:
		what = ErrUnknownPrincipal.Error() + " "
	case errorcode.KDC_ERR_S_PRINCIPAL_UNKNOWN:
		what = ErrUnknownService.Error() + " "
	case errorcode.KDC_ERR_CLIENT_REVOKED:
		what = ErrRevoked.Error() + " "
	case errorcode.KDC_ERR_KEY_EXPIRED:
		what = ErrKeyExpired.Error() + " "
	case errorcode.KRB_AP_ERR_SKEW:
		what = fmt.Sprintf("%s: kdc time %s, ours %s ", ErrSkew, e.ServerTime.UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("%s(kerberos error %d%s)", what, e.Code, strings.ToLower(name))
}

// Is lets callers test an *Error against the sentinel errors below.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrBadCredentials:
		return e.Code == errorcode.KDC_ERR_PREAUTH_FAILED
	case ErrUnknownPrincipal:
		return e.Code == errorcode.KDC_ERR_C_PRINCIPAL_UNKNOWN
	case ErrRevoked:
		return e.Code == errorcode.KDC_ERR_CLIENT_REVOKED
	case ErrSkew:
		return e.Code == errorcode.KRB_AP_ERR_SKEW
	case ErrKeyExpired:
		return e.Code == errorcode.KDC_ERR_KEY_EXPIRED
	case ErrUnknownService:
		return e.Code == errorcode.KDC_ERR_S_PRINCIPAL_UNKNOWN
	}
	return false
}

// Conditions with a fix, matched with errors.Is.
var (
	ErrBadCredentials   = errors.New("wrong password or key")
	ErrUnknownPrincipal = errors.New("no such account")
	ErrUnknownService   = errors.New("no such service principal")
	ErrRevoked          = errors.New("account disabled or locked out")
	ErrSkew             = errors.New("clock skew too great")
	ErrKeyExpired       = errors.New("password expired")
	ErrUnreachable      = errors.New("no kdc reachable")
)

// Client talks to the KDCs of one realm.
type Client struct {
	Realm string
	// KDCs are host:port addresses, tried in order.
	KDCs []string
	// Dial opens a connection; nil means net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Lifetime and RenewLifetime are requested for new tickets.
	Lifetime, RenewLifetime time.Duration
	// Now is the clock used for pre-authentication; nil means time.Now.
	// Tests set it to show how a skewed host clock is reported.
	Now func() time.Time
	// AllowRC4 lets the client request RC4-HMAC, derive RC4 keys and
	// encrypt pre-authentication with them. Off, a KDC (or an attacker
	// posing as one) that asks for RC4 gets no timestamp it could crack
	// faster than an AES one.
	AllowRC4 bool
}

// etypes are the etypes the client requests and derives keys for.
func (c *Client) etypes() []int32 {
	return slices.DeleteFunc(slices.Clone(Etypes), func(e int32) bool { return !c.allowed(e) })
}

func (c *Client) allowed(etype int32) bool {
	return c.AllowRC4 || etype != etypeID.RC4_HMAC
}

// Ticket is a ticket with its session key, as a credential cache holds it.
type Ticket struct {
	Client                                  types.PrincipalName
	ClientRealm                             string
	Server                                  types.PrincipalName
	ServerRealm                             string
	Ticket                                  messages.Ticket
	Raw                                     []byte // DER of Ticket, exactly as the KDC sent it
	SessionKey                              types.EncryptionKey
	AuthTime, StartTime, EndTime, RenewTill time.Time
	Flags                                   asn1.BitString // the ticket flags, as sent
	KDC                                     string         // the KDC that issued it
	// KVNO is the version of the client key that a login reply was
	// encrypted with, as the KDC says (0 when it does not, or for a TGS
	// reply, which is encrypted with the session key).
	KVNO int
}

// KeyFunc returns the client's long-term key for an etype and salt. It
// returns ok=false for an etype it has no key for.
type KeyFunc func(etype int32, salt string) (key types.EncryptionKey, ok bool, err error)

// PasswordKeys is a KeyFunc for a password given as a UTF-8 string. It
// remembers the keys it derived: an AES key costs 4096 PBKDF2 rounds, and a
// failover to another domain controller asks for the same key again.
func PasswordKeys(password string) KeyFunc {
	type etypeSalt struct {
		etype int32
		salt  string
	}
	derived := map[etypeSalt]types.EncryptionKey{}
	return func(etype int32, salt string) (types.EncryptionKey, bool, error) {
		if k, ok := derived[etypeSalt{etype, salt}]; ok {
			return k, true, nil
		}
		et, err := crypto.GetEtype(etype)
		if err != nil {
			return types.EncryptionKey{}, false, nil
		}
		k, err := et.StringToKey(password, salt, et.GetDefaultStringToKeyParams())
		if err != nil {
			return types.EncryptionKey{}, false, err
		}
		key := types.EncryptionKey{KeyType: etype, KeyValue: k}
		derived[etypeSalt{etype, salt}] = key
		return key, true, nil
	}
}

// FixedKeys is a KeyFunc for keys that do not depend on the salt (a keytab,
// or keys already derived).
func FixedKeys(keys []types.EncryptionKey) KeyFunc {
	return func(etype int32, _ string) (types.EncryptionKey, bool, error) {
		for _, k := range keys {
			if k.KeyType == etype {
				return k, true, nil
			}
		}
		return types.EncryptionKey{}, false, nil
	}
}

func (c *Client) config() *config.Config {
	cfg := config.New()
	cfg.LibDefaults.DefaultTktEnctypeIDs = c.etypes()
	cfg.LibDefaults.DefaultTGSEnctypeIDs = c.etypes()
	cfg.LibDefaults.NoAddresses = true
	cfg.LibDefaults.Forwardable = true
	cfg.LibDefaults.TicketLifetime = 10 * time.Hour
	if c.Lifetime > 0 {
		cfg.LibDefaults.TicketLifetime = c.Lifetime
	}
	cfg.LibDefaults.RenewLifetime = c.RenewLifetime
	return cfg
}

// Login runs the AS exchange for a ticket-granting ticket. salt is the salt
// to try first with the first etype keys has; when the KDC announces
// another (ETYPE-INFO2), Login retries once with it.
func (c *Client) Login(ctx context.Context, name types.PrincipalName, salt string, keys KeyFunc) (*Ticket, error) {
	return c.LoginTo(ctx, name, salt, keys, "")
}

// LoginTo is Login for a ticket to service (e.g.
// "ldap/dc1.corp.example.test") straight from the AS exchange, as
// "kinit -S" does: one KDC round trip instead of a login and a TGS
// exchange, for a client that needs no other ticket. An empty service is
// the realm's ticket-granting service.
func (c *Client) LoginTo(ctx context.Context, name types.PrincipalName, salt string, keys KeyFunc, service string) (*Ticket, error) {
	etype, key, err := c.firstKey(keys, salt)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		req, err := messages.NewASReqForTGT(c.Realm, c.config(), name)
		if err != nil {
			return nil, fmt.Errorf("build login request: %w", err)
		}
		if service != "" {
			req.ReqBody.SName = types.NewPrincipalName(nametype.KRB_NT_SRV_INST, service)
		}
		if err := c.addEncTimestamp(&req, key); err != nil {
			return nil, err
		}
		b, err := req.Marshal()
		if err != nil {
			return nil, fmt.Errorf("encode login request: %w", err)
		}
		reply, kdc, err := c.send(ctx, b)
		if err != nil {
			return nil, err
		}
		var rep messages.ASRep
		if rep.Unmarshal(reply) == nil {
			return c.asTicket(rep, kdc, req, keys, etype, salt, key)
		}
		kerr, err := parseError(reply, kdc)
		if err != nil {
			return nil, err
		}
		if code := kerr.msg.ErrorCode; attempt == 0 && (code == errorcode.KDC_ERR_PREAUTH_FAILED || code == errorcode.KDC_ERR_PREAUTH_REQUIRED || code == errorcode.KDC_ERR_ETYPE_NOSUPP) {
			// The KDC says which etype and salt it wants; retry when that
			// differs from what was tried.
			e, s, ok, rc4 := c.announced(kerr, keys)
			if !ok && rc4 {
				return nil, fmt.Errorf("%w: the kdc offers only rc4-hmac (etype 23) for this account", ErrRC4Disabled)
			}
			if ok && (e != etype || s != salt) {
				nk, ok, err := keys(e, s)
				if err != nil {
					return nil, err
				}
				if ok {
					etype, salt, key = e, s, nk
					continue
				}
			}
		}
		return nil, kerr.err()
	}
}

// ErrNoKey means a KeyFunc has no key for any etype requested.
var ErrNoKey = errors.New("no key for aes256 or aes128")

func (c *Client) firstKey(keys KeyFunc, salt string) (int32, types.EncryptionKey, error) {
	for _, e := range c.etypes() {
		k, ok, err := keys(e, salt)
		if err != nil {
			return 0, types.EncryptionKey{}, err
		}
		if ok {
			return e, k, nil
		}
	}
	if c.AllowRC4 {
		return 0, types.EncryptionKey{}, fmt.Errorf("%w or rc4", ErrNoKey)
	}
	return 0, types.EncryptionKey{}, ErrNoKey
}

func (c *Client) addEncTimestamp(req *messages.ASReq, key types.EncryptionKey) error {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	t := now().UTC()
	ts, err := asn1.Marshal(types.PAEncTSEnc{PATimestamp: t.Truncate(time.Second), PAUSec: t.Nanosecond() / 1000})
	if err != nil {
		return err
	}
	ed, err := crypto.GetEncryptedData(ts, key, keyusage.AS_REQ_PA_ENC_TIMESTAMP, 0)
	if err != nil {
		return fmt.Errorf("encrypt pre-authentication: %w", err)
	}
	b, err := ed.Marshal()
	if err != nil {
		return err
	}
	req.PAData = append(req.PAData, types.PAData{PADataType: patype.PA_ENC_TIMESTAMP, PADataValue: b})
	return nil
}

// announced returns the first etype in the KDC's ETYPE-INFO2 that the
// client allows and keys can provide, with its salt. rc4 reports that the
// KDC announced RC4-HMAC while it is disabled; no RC4 key is derived then.
func (c *Client) announced(kerr *krbError, keys KeyFunc) (etype int32, salt string, ok, rc4 bool) {
	var pas types.PADataSequence
	if len(kerr.msg.EData) == 0 || pas.Unmarshal(kerr.msg.EData) != nil {
		return 0, "", false, false
	}
	for _, pa := range pas {
		if pa.PADataType != patype.PA_ETYPE_INFO2 {
			continue
		}
		info, err := pa.GetETypeInfo2()
		if err != nil {
			return 0, "", false, false
		}
		for _, e := range info {
			if !c.allowed(e.EType) {
				rc4 = true
				continue
			}
			if _, ok, _ := keys(e.EType, e.Salt); ok {
				return e.EType, e.Salt, true, false
			}
		}
	}
	return 0, "", false, rc4
}

func (c *Client) asTicket(rep messages.ASRep, kdc string, req messages.ASReq, keys KeyFunc, etype int32, salt string, key types.EncryptionKey) (*Ticket, error) {
	if !c.allowed(rep.EncPart.EType) {
		return nil, fmt.Errorf("%w: kdc %s encrypted its reply with rc4-hmac (etype 23)", ErrRC4Disabled, kdc)
	}
	// The reply may be encrypted with another etype or salt than the one
	// used for pre-authentication; the KDC says which in its PA-DATA.
	if rep.EncPart.EType != etype {
		s := salt
		for _, pa := range rep.PAData {
			if pa.PADataType == patype.PA_ETYPE_INFO2 {
				if info, err := pa.GetETypeInfo2(); err == nil && len(info) > 0 && info[0].Salt != "" {
					s = info[0].Salt
				}
			}
		}
		k, ok, err := keys(rep.EncPart.EType, s)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("kdc %s encrypted its reply with etype %d, for which there is no key", kdc, rep.EncPart.EType)
		}
		key = k
	}
	plain, err := crypto.DecryptEncPart(rep.EncPart, key, keyusage.AS_REP_ENCPART)
	if err != nil {
		return nil, fmt.Errorf("kdc %s: decrypt login reply: %w", kdc, ErrBadCredentials)
	}
	var enc messages.EncKDCRepPart
	if err := enc.Unmarshal(plain); err != nil {
		// Some KDCs tag the AS reply part as a TGS reply part.
		return nil, fmt.Errorf("kdc %s: decode login reply: %w", kdc, err)
	}
	if enc.Nonce != req.ReqBody.Nonce {
		return nil, fmt.Errorf("kdc %s: login reply does not answer our request (nonce mismatch)", kdc)
	}
	t, err := c.ticket(rep.CName, rep.CRealm, rep.Ticket, enc, kdc)
	if err != nil {
		return nil, err
	}
	t.KVNO = rep.EncPart.KVNO
	return t, nil
}

func (c *Client) ticket(cname types.PrincipalName, crealm string, tkt messages.Ticket, enc messages.EncKDCRepPart, kdc string) (*Ticket, error) {
	raw, err := tkt.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode ticket: %w", err)
	}
	if !c.allowed(enc.Key.KeyType) {
		return nil, fmt.Errorf("%w: kdc %s issued an rc4-hmac (etype 23) session key", ErrRC4Disabled, kdc)
	}
	start := enc.StartTime
	if start.IsZero() {
		start = enc.AuthTime
	}
	return &Ticket{
		Client: cname, ClientRealm: crealm,
		Server: enc.SName, ServerRealm: enc.SRealm,
		Ticket: tkt, Raw: raw, SessionKey: enc.Key,
		AuthTime: enc.AuthTime, StartTime: start, EndTime: enc.EndTime, RenewTill: enc.RenewTill,
		Flags: enc.Flags, KDC: kdc,
	}, nil
}

// ServiceTicket runs the TGS exchange for service (e.g.
// "ldap/dc1.corp.example.test") with a ticket-granting ticket.
func (c *Client) ServiceTicket(ctx context.Context, tgt *Ticket, service string) (*Ticket, error) {
	return c.tgs(ctx, tgt, types.NewPrincipalName(nametype.KRB_NT_SRV_INST, service), false)
}

// Renew renews a renewable ticket-granting ticket (RFC 4120 3.3.1: a TGS
// exchange with the RENEW option, the ticket itself as the one presented):
// the KDC returns the same ticket with a new end time, up to its renew-till,
// without the client's long-term key. One KDC round trip.
func (c *Client) Renew(ctx context.Context, tgt *Ticket) (*Ticket, error) {
	return c.tgs(ctx, tgt, tgt.Server, true)
}

// tgs is a TGS exchange presenting tgt, for sname.
func (c *Client) tgs(ctx context.Context, tgt *Ticket, sname types.PrincipalName, renewal bool) (*Ticket, error) {
	what := "service ticket"
	if renewal {
		what = "renewal"
	}
	req, err := messages.NewTGSReq(tgt.Client, c.Realm, c.config(), tgt.Ticket, tgt.SessionKey, sname, renewal)
	if err != nil {
		return nil, fmt.Errorf("build %s request: %w", what, err)
	}
	b, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode %s request: %w", what, err)
	}
	reply, kdc, err := c.send(ctx, b)
	if err != nil {
		return nil, err
	}
	var rep messages.TGSRep
	if rep.Unmarshal(reply) != nil {
		kerr, err := parseError(reply, kdc)
		if err != nil {
			return nil, err
		}
		return nil, kerr.err()
	}
	plain, err := crypto.DecryptEncPart(rep.EncPart, tgt.SessionKey, keyusage.TGS_REP_ENCPART_SESSION_KEY)
	if err != nil {
		return nil, fmt.Errorf("kdc %s: decrypt %s reply: %w", kdc, what, err)
	}
	var enc messages.EncKDCRepPart
	if err := enc.Unmarshal(plain); err != nil {
		return nil, fmt.Errorf("kdc %s: decode %s reply: %w", kdc, what, err)
	}
	if enc.Nonce != req.ReqBody.Nonce {
		return nil, fmt.Errorf("kdc %s: %s reply does not answer our request (nonce mismatch)", kdc, what)
	}
	return c.ticket(rep.CName, rep.CRealm, rep.Ticket, enc, kdc)
}

type krbError struct {
	msg messages.KRBError
	kdc string
}

func (k *krbError) err() error {
	return &Error{Code: k.msg.ErrorCode, Server: k.kdc, ServerTime: k.msg.STime, Text: k.msg.EText}
}

func parseError(reply []byte, kdc string) (*krbError, error) {
	var m messages.KRBError
	if err := m.Unmarshal(reply); err != nil {
		return nil, fmt.Errorf("kdc %s: reply is neither a ticket nor an error: %w", kdc, err)
	}
	return &krbError{msg: m, kdc: kdc}, nil
}

// maxReply bounds a KDC reply; AD tickets with large PACs stay far below.
const maxReply = 1 << 20

// send delivers a request over TCP to the first KDC that answers, failing
// over to the next on any network error. It returns the reply and the KDC.
func (c *Client) send(ctx context.Context, req []byte) ([]byte, string, error) {
	if len(c.KDCs) == 0 {
		return nil, "", fmt.Errorf("realm %s: %w: no kdc configured or found", c.Realm, ErrUnreachable)
	}
	var errs []string
	for i, kdc := range c.KDCs {
		actx, cancel := ShareDeadline(ctx, len(c.KDCs)-i)
		reply, err := c.exchange(actx, kdc, req)
		cancel()
		if err == nil {
			if i > 0 {
				// Ask the KDC that answered first next time.
				c.KDCs = append([]string{kdc}, slices.Delete(slices.Clone(c.KDCs), i, i+1)...)
			}
			return reply, kdc, nil
		}
		if ctx.Err() != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", kdc, context.Cause(ctx)))
			break
		}
		errs = append(errs, fmt.Sprintf("%s: %v", kdc, err))
	}
	return nil, "", fmt.Errorf("%w (%s)", ErrUnreachable, strings.Join(errs, "; "))
}

// ShareDeadline gives one of n remaining attempts its share of ctx's time
// left, so a server that accepts and never answers leaves time for the next
// one. The LDAP failover in package fetcher uses it too.
func ShareDeadline(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok || n <= 1 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(dl)/time.Duration(n))
}

func (c *Client) exchange(ctx context.Context, kdc string, req []byte) ([]byte, error) {
	dial := c.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", kdc)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// Only the context ends the exchange: a socket deadline set to the
	// context's own could fire first, and send would then report an i/o
	// timeout and try the next KDC instead of naming the deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	msg := make([]byte, 4+len(req))
	binary.BigEndian.PutUint32(msg, uint32(len(req)))
	copy(msg[4:], req)
	if _, err := conn.Write(msg); err != nil {
		return nil, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxReply {
		return nil, fmt.Errorf("reply of %d bytes is too large", n)
	}
	reply := make([]byte, n)
	if _, err := io.ReadFull(conn, reply); err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	return reply, nil
}

// ServerTime asks a KDC for its clock: an AS request for name without
// pre-authentication, which a KDC answers with an error carrying its time
// (KDC_ERR_PREAUTH_REQUIRED, or another code for an unknown name). No key
// is used and no failed login is counted. It returns the KDC that answered
// and its time, to the microsecond.
func (c *Client) ServerTime(ctx context.Context, name types.PrincipalName) (string, time.Time, error) {
	req, err := messages.NewASReqForTGT(c.Realm, c.config(), name)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("build request: %w", err)
	}
	b, err := req.Marshal()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("encode request: %w", err)
	}
	reply, kdc, err := c.send(ctx, b)
	if err != nil {
		return "", time.Time{}, err
	}
	var rep messages.ASRep
	if rep.Unmarshal(reply) == nil {
		return kdc, time.Time{}, fmt.Errorf("kdc %s issued a ticket without pre-authentication: its time is in the encrypted part", kdc)
	}
	kerr, err := parseError(reply, kdc)
	if err != nil {
		return kdc, time.Time{}, err
	}
	return kdc, kerr.msg.STime.Add(time.Duration(kerr.msg.Susec) * time.Microsecond), nil
}
