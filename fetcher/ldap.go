package fetcher

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/gmsa-hook/gmsa-hook/fetcher/kdc"
	"github.com/gmsa-hook/gmsa-hook/fetcher/sasl"
)

// account is what the directory says about a gMSA.
type account struct {
	SAM      string // sAMAccountName, with its "$"
	DN       string
	Blob     []byte // msDS-ManagedPassword; nil when not permitted
	KVNO     int
	Disabled bool
}

const uacAccountDisable = 0x2

func baseDN(domain string) string {
	return "DC=" + strings.Join(strings.Split(domain, "."), ",DC=")
}

// readAccount reads the gMSA's entry from the first DC that answers,
// failing over to the next on network errors. It returns the DC used.
func (c *conf) readAccount(ctx context.Context, d *dcs, ticket ldapTicketFunc, name, domain, dn string) (*account, string, error) {
	var a *account
	host, err := c.eachDC(ctx, d, func(ctx context.Context, host string) error {
		l, bounded, err := c.bind(ctx, d, host, ticket)
		if err != nil {
			return &bindError{err}
		}
		defer l.Close()
		a, err = searchAccount(l, bounded, name, domain, dn)
		return err
	})
	return a, host, err
}

// eachDC runs op against the DCs in turn until one answers: the next is
// tried only after a network error. It returns the DC of the last try
// ("" when none answered).
func (c *conf) eachDC(ctx context.Context, d *dcs, op func(ctx context.Context, host string) error) (string, error) {
	var errs []string
	for i, host := range d.ldap {
		actx, cancel := kdc.ShareDeadline(ctx, len(d.ldap)-i)
		err := op(actx, host)
		cancel()
		if err == nil {
			return host, nil
		}
		if !isNetwork(err) || ctx.Err() != nil {
			return host, err
		}
		errs = append(errs, fmt.Sprintf("%s: %v", host, err))
	}
	return "", fmt.Errorf("%w: no ldap server answered (%s)", ErrUnreachable, strings.Join(errs, "; "))
}

func isNetwork(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, kdc.ErrUnreachable) ||
		ldap.IsErrorWithCode(err, ldap.ErrorNetwork)
}

// loginError is the reader's login failing while it asks for another
// DC's service ticket: reported as the login's failure, not the DC's.
type loginError struct{ err error }

func (e *loginError) Error() string { return e.err.Error() }
func (e *loginError) Unwrap() error { return e.err }

// bindError is a failure to connect or bind: its message is the cause's.
type bindError struct{ err error }

func (e *bindError) Error() string { return e.err.Error() }
func (e *bindError) Unwrap() error { return e.err }

// phaseOf says whether an LDAP read failed at the bind or the search.
func phaseOf(err error) Phase {
	var be *bindError
	if errors.As(err, &be) || errors.Is(err, ErrUnreachable) {
		return PhaseBind
	}
	return PhaseRead
}

// ldapTicketFunc gets the reader's service ticket for ldap/<host>.
type ldapTicketFunc func(ctx context.Context, host string) (*kdc.Ticket, error)

// bind opens an LDAP connection to host and binds as the reader with the
// configured protection: a sealed SASL GSSAPI layer on 389, or TLS on 636.
// Everything the DC sends comes through the returned bounded reader; closing
// the connection closes the socket.
func (c *conf) bind(ctx context.Context, d *dcs, host string, ticket ldapTicketFunc) (_ *ldap.Conn, _ *boundedConn, err error) {
	port := "389"
	if c.LDAPS {
		port = "636"
	}
	raw, err := d.dial(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if err != nil {
			stop()
			raw.Close()
		}
	}()
	// Everything the DC sends comes through one bounded reader: this runs
	// as root, and a DC that streams must not fill its memory.
	bounded := &boundedConn{Conn: raw, left: maxResponse}
	// The first DC's ticket came with the reader's login; another DC's is
	// asked for once it answers, so an unreachable DC is skipped before its
	// service principal is looked up.
	st, err := ticket(ctx, host)
	if err != nil {
		var ke *kdc.Error
		if errors.As(err, &ke) && !errors.Is(err, kdc.ErrUnknownService) {
			return nil, nil, &loginError{err}
		}
		return nil, nil, fmt.Errorf("service ticket for ldap/%s: %w", host, err)
	}

	var conn net.Conn = bounded
	var binding []byte
	layer := sasl.Confidentiality
	switch c.LDAPSecurity {
	case "sign":
		layer = sasl.Integrity
	case "none":
		layer = sasl.None
	}
	if c.LDAPS {
		tc, err := c.tlsConfig(host)
		if err != nil {
			return nil, nil, err
		}
		t := tls.Client(bounded, tc)
		if err := t.HandshakeContext(ctx); err != nil {
			return nil, nil, fmt.Errorf("tls with %s: %w", host, err)
		}
		// AD refuses a SASL layer inside TLS, and wants the bind tied to
		// this TLS connection.
		conn, layer = t, sasl.None
		binding = sasl.TLSServerEndPoint(t.ConnectionState().PeerCertificates[0])
	}
	sc := sasl.NewConn(conn)
	l := ldap.NewConn(sc, c.LDAPS)
	l.Start()
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if dl, ok := ctx.Deadline(); ok {
		l.SetTimeout(time.Until(dl))
	}
	cl := &sasl.Client{CName: st.Client, CRealm: st.ClientRealm, Ticket: st.Ticket, SessionKey: st.SessionKey, Layer: layer, ChannelBinding: binding}
	if err := l.GSSAPIBindRequest(cl, &ldap.GSSAPIBindRequest{ServicePrincipalName: "ldap/" + host}); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultStrongAuthRequired) {
			return nil, nil, fmt.Errorf("%w: bind with security layer %s: %v", ErrLayerRefused, layer, ldapMessage(err))
		}
		if errors.Is(err, sasl.ErrLayerRefused) {
			return nil, nil, fmt.Errorf("%w: %v", ErrLayerRefused, err)
		}
		if bounded.exceeded.Load() {
			return nil, nil, fmt.Errorf("ldap server sent more than %d bytes during the bind", maxResponse)
		}
		return nil, nil, fmt.Errorf("sasl gssapi bind: %w", err)
	}
	// The bind's success alone proves nothing about the layer: a server
	// that skips the negotiation leaves the connection in plaintext.
	if err := sc.Secure(cl); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrLayerRefused, err)
	}

	return l, bounded, nil
}

// searchAccount reads the gMSA's entry (by name, or the one at dn) over a
// bound connection.
func searchAccount(l *ldap.Conn, bounded *boundedConn, name, domain, dn string) (*account, error) {
	req := &ldap.SearchRequest{
		BaseDN:    baseDN(domain),
		Scope:     ldap.ScopeWholeSubtree,
		SizeLimit: maxEntries,
		// The server's promise is not enough: go-ldap stops reading
		// entries at the limit.
		EnforceSizeLimit: true,
		Filter:           fmt.Sprintf("(&(objectClass=msDS-GroupManagedServiceAccount)(sAMAccountName=%s))", ldap.EscapeFilter(name+"$")),
		Attributes:       []string{"sAMAccountName", "msDS-ManagedPassword", "msDS-KeyVersionNumber", "userAccountControl"},
	}
	if dn != "" {
		req.BaseDN, req.Scope, req.Filter = dn, ldap.ScopeBaseObject, "(objectClass=msDS-GroupManagedServiceAccount)"
	}
	res, err := l.Search(req)
	if errors.Is(err, ldap.ErrSizeLimitExceeded) {
		return nil, fmt.Errorf("ldap server sent more than %d entries for %s$ in %s", maxEntries, name, req.BaseDN)
	}
	if err != nil && bounded.exceeded.Load() {
		return nil, fmt.Errorf("ldap server sent more than %d bytes for %s$ in %s", maxResponse, name, req.BaseDN)
	}
	if err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return nil, fmt.Errorf("%w: no object %s", ErrNoSuchGMSA, req.BaseDN)
		}
		if strings.Contains(strings.ToLower(err.Error()), "encrypted connection") {
			return nil, fmt.Errorf("%w: %v", ErrLayerRefused, ldapMessage(err))
		}
		return nil, fmt.Errorf("search %s: %w", req.BaseDN, err)
	}
	switch len(res.Entries) {
	case 0:
		return nil, fmt.Errorf("%w in %s", ErrNoSuchGMSA, req.BaseDN)
	case 1:
	default:
		return nil, fmt.Errorf("%d accounts named %s$ in %s", len(res.Entries), name, req.BaseDN)
	}
	e := res.Entries[0]
	a := &account{SAM: e.GetAttributeValue("sAMAccountName"), DN: e.DN}
	if v := e.GetRawAttributeValue("msDS-ManagedPassword"); len(v) > 0 {
		a.Blob = v
	}
	a.KVNO, _ = strconv.Atoi(e.GetAttributeValue("msDS-KeyVersionNumber"))
	uac, _ := strconv.Atoi(e.GetAttributeValue("userAccountControl"))
	a.Disabled = uac&uacAccountDisable != 0
	if a.SAM == "" {
		a.SAM = name + "$"
	}
	return a, nil
}

// maxEntries is the most entries the search asks for and reads: one gMSA,
// and one more to tell that its name is ambiguous.
const maxEntries = 2

// maxResponse bounds the bytes one LDAP connection reads, TLS or SASL
// framing included: a gMSA's entry and the bind's tokens take a few KiB.
const maxResponse = 1 << 20

// errResponseTooLarge ends a connection whose server sent maxResponse bytes.
var errResponseTooLarge = errors.New("ldap response too large")

// boundedConn reads at most left bytes, then fails every Read. One reader
// at a time (the TLS handshake, then go-ldap's reader) calls Read.
type boundedConn struct {
	net.Conn
	left     int
	exceeded atomic.Bool
}

func (c *boundedConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.exceeded.Store(true)
		return 0, errResponseTooLarge
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= n
	return n, err
}

func ldapMessage(err error) string {
	var le *ldap.Error
	if errors.As(err, &le) && le.Err != nil {
		return strings.TrimSpace(le.Err.Error())
	}
	return err.Error()
}

func (c *conf) tlsConfig(host string) (*tls.Config, error) {
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if c.LDAPSCAFile != "" {
		pem, err := os.ReadFile(c.LDAPSCAFile)
		if err != nil {
			return nil, fmt.Errorf("ldaps ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldaps ca file %s: no pem certificates", c.LDAPSCAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
