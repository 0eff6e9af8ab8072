package fetcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/gmsa-hook/gmsa-hook/fetcher/kdc"
	"github.com/gmsa-hook/gmsa-hook/spec"
)

// reader is who reads the directory: the domainless user of a secret, or
// the host's machine account from its keytab.
type reader struct {
	principal  types.PrincipalName
	realm      string
	salt       string // "" lets the KDC announce it (keytab keys need none)
	keys       kdc.KeyFunc
	dn         string // the gMSA's DN from the secret, if it gave one
	domainless bool
}

// name is the reader as messages quote it: "gmsa-reader@CORP.EXAMPLE.TEST".
func (r *reader) name() string {
	return fmt.Sprintf("%q", strings.Join(r.principal.NameString, "/")+"@"+r.realm)
}

// readStep names the step that failed to find the reader's credentials.
func (r *reader) readStep(gmsa string) string {
	if r.domainless {
		return "read reader secret for " + gmsa
	}
	return "read host keytab for " + gmsa
}

// reader finds the spec's reader: the secret given (sec), else the one the
// spec's CredentialArn names, or the host keytab for a domain-joined spec.
// On error the returned reader still says which kind it is.
func (c *conf) reader(ctx context.Context, cs *spec.CredSpec, sec *spec.Secret, remote spec.Remote) (*reader, error) {
	if !cs.Domainless() {
		return c.hostReader()
	}
	rd := &reader{domainless: true}
	if sec == nil {
		src, err := spec.ParseSecretSource(cs.CredentialArn())
		if err != nil {
			return rd, err
		}
		s, err := spec.LoadSecret(ctx, src, remote)
		if err != nil {
			return rd, err
		}
		sec = &s
	}
	return secretReader(sec), nil
}

func secretReader(sec *spec.Secret) *reader {
	realm := strings.ToUpper(sec.DomainName)
	return &reader{
		principal: types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, sec.Username),
		realm:     realm, salt: realm + sec.Username,
		keys: kdc.PasswordKeys(sec.Password), dn: sec.DistinguishedName, domainless: true,
	}
}

func (c *conf) hostReader() (*reader, error) {
	p, keys, err := c.keytabKeys()
	if err != nil {
		return &reader{}, err
	}
	return &reader{principal: types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, p.name), realm: p.realm, keys: kdc.FixedKeys(keys)}, nil
}

// session is a reader's access to a domain's DCs: its KDC client and the
// service tickets for ldap/<dc> it got, one per DC.
type session struct {
	cfg     *conf
	d       *dcs
	rd      *reader
	kc      *kdc.Client
	tickets map[string]ticketResult
}

type ticketResult struct {
	t   *kdc.Ticket
	err error
}

func (c *conf) session(d *dcs, rd *reader, now func() time.Time) *session {
	return &session{cfg: c, d: d, rd: rd, tickets: map[string]ticketResult{},
		kc: &kdc.Client{Realm: rd.realm, KDCs: d.kdcs, Dial: d.dial,
			Lifetime: time.Duration(c.TicketLifetime), RenewLifetime: renew(c), Now: now, AllowRC4: c.AllowRC4}}
}

// logIn finds the domain's controllers and logs the reader in to the
// first (session.login): the steps "locate" and "login" of a fetch or a
// description.
func (c *conf) logIn(ctx context.Context, domain, realm string, rd *reader, now func() time.Time, tm *timer) (*dcs, *session, error) {
	d, err := c.locate(ctx, domain, realm)
	if err != nil {
		return nil, nil, &Error{Step: "find domain controllers of " + domain, Err: err, Phase: PhaseLocate}
	}
	tm.lap("locate")
	s := c.session(d, rd, now)
	if err := s.login(ctx); err != nil {
		return nil, nil, err
	}
	tm.lap("login")
	return d, s, nil
}

// ticket gets the reader's ticket for ldap/<host>. The reader needs no
// ticket but the one for the DC's LDAP service: it asks the AS for that
// directly, one KDC round trip instead of a login and a TGS exchange.
// Another DC, after a failover, gets its own.
func (s *session) ticket(ctx context.Context, host string) (*kdc.Ticket, error) {
	r, ok := s.tickets[host]
	if !ok {
		r.t, r.err = s.kc.LoginTo(ctx, s.rd.principal, s.rd.salt, s.rd.keys, "ldap/"+host)
		s.tickets[host] = r
	}
	return r.t, r.err
}

// login asks for the first DC's ticket before its LDAP port is tried, so
// that a wrong password or an unreachable KDC is reported as the login's
// failure. A DC named by address has no service principal: whether that
// matters is known once its LDAP port answers or not.
func (s *session) login(ctx context.Context) error {
	if _, err := s.ticket(ctx, s.d.ldap[0]); err != nil && !errors.Is(err, kdc.ErrUnknownService) {
		return &Error{Step: "log in as " + s.rd.name(), Server: kdcOf(err, s.d), Err: err, Phase: PhaseLogin}
	}
	return nil
}
