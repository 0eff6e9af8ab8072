// Package fetcher turns a credential spec into a Kerberos ticket-granting
// ticket for its group Managed Service Account (gMSA), in pure Go:
//
//	reader login (domainless user from a secret, or the host keytab),
//	  straight to a service ticket for ldap/<dc>
//	  -> sealed SASL GSSAPI bind and search for msDS-ManagedPassword
//	  -> gMSA keys from the managed password
//	  -> AS exchange as the gMSA, retried with the previous password
//	  -> MIT credential cache.
//
// Every network step honours the context's deadline and fails over to the
// next domain controller on network errors.
package fetcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/gmsa-hook/gmsa-hook/fetcher/blob"
	"github.com/gmsa-hook/gmsa-hook/fetcher/ccache"
	"github.com/gmsa-hook/gmsa-hook/fetcher/kdc"
	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/spec"
)

// Conditions an operator can fix, matched with errors.Is. Errors from the
// KDC also match kdc's sentinels (kdc.ErrBadCredentials, kdc.ErrSkew, ...).
var (
	ErrNotPermitted = errors.New("not permitted to retrieve the managed password")
	ErrNoSuchGMSA   = errors.New("no such gMSA")
	ErrDisabled     = errors.New("gMSA is disabled")
	ErrLayerRefused = errors.New("ldap server refused the security layer")
	ErrNoDC         = errors.New("no domain controller found")
	ErrUnreachable  = errors.New("no domain controller reachable")
	ErrDeadline     = errors.New("gave up at the deadline")
	ErrKeytab       = errors.New("unusable keytab")
	ErrBlob         = errors.New("malformed managed password")
	// ErrKeysRefused: the KDC refused the password LDAP gave as current,
	// and the previous one too (or there was none).
	ErrKeysRefused = errors.New("the KDC refused the gMSA's current and previous passwords")
)

// Request is one fetch.
type Request struct {
	// Source is where the credential spec lives (see spec.ParseSource).
	Source string
	// Spec, when set, is used instead of reading Source.
	Spec *spec.CredSpec
	// Secret, when set, is the domainless reader's secret, used instead of
	// reading the spec's CredentialArn (the hook reads it under its policy).
	Secret *spec.Secret
	// Remote reads AWS sources; nil means files only.
	Remote spec.Remote
	Config Config
	// Now is the clock for Kerberos pre-authentication; nil means
	// time.Now. Tests use it to show how clock skew is reported.
	Now func() time.Time
}

// Result is a fetched ticket.
type Result struct {
	Cache   *ccache.Cache
	Account string // the gMSA's sAMAccountName, e.g. "webapp01$"
	Realm   string
	DC      string // the domain controller the password was read from
	KVNO    int
	Expires time.Time
	// Previous is true when the KDC accepted only the previous password.
	Previous bool
	// Steps is where the time went, for debug logs and benchmarks.
	Steps []Step
}

// Step is a timed part of a fetch: "credspec" (reading the spec and the
// reader's secret), "locate" (finding DCs), "login" (the reader's ticket
// for ldap/<dc>), "ldap" (connect, bind, search), "gmsa" (keys and the
// gMSA's own AS exchange).
type Step struct {
	Name    string
	Elapsed time.Duration
}

// timer records Steps.
type timer struct {
	steps []Step
	last  time.Time
}

func (t *timer) lap(name string) {
	now := time.Now()
	t.steps = append(t.steps, Step{name, now.Sub(t.last)})
	t.last = now
}

// Error is a failed fetch: which step, for which account, against which
// server. Err keeps the cause for errors.Is.
type Error struct {
	Step   string // e.g. `read password of gMSA "webapp01$"`
	Server string // a DC host or KDC address, when one was involved
	Err    error
	// Phase is the part of the pipeline that failed, for tools that walk
	// it step by step (gmsa-hook doctor); it is not part of the message.
	Phase Phase
}

// Phase is a part of the pipeline a fetch or a Describe walks.
type Phase string

const (
	PhaseCredspec Phase = "credspec" // the spec, the reader's secret or the host keytab
	PhaseLocate   Phase = "locate"   // finding the domain controllers
	PhaseLogin    Phase = "login"    // the reader's ticket for ldap/<dc>
	PhaseBind     Phase = "bind"     // the LDAP connection and its protected bind
	PhaseRead     Phase = "read"     // the searches: the gMSA, its password
	PhaseTicket   Phase = "gmsa"     // the gMSA's own AS exchange
)

func (e *Error) Error() string {
	if e.Server != "" {
		prep := "at"
		if strings.HasPrefix(e.Step, "read") {
			prep = "from"
		}
		return fmt.Sprintf("%s %s %s: %v", e.Step, prep, e.Server, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Step, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Fetch returns a ticket-granting ticket for the spec's gMSA. It gives up
// at the configured timeout (or the context's deadline, if sooner).
func Fetch(ctx context.Context, req Request) (*Result, error) {
	return withDeadline(ctx, req.Config, func(ctx context.Context) (*Result, error) { return fetch(ctx, req) })
}

// innermost drops the timeout noise of wrapped network errors.
func innermost(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func fetch(ctx context.Context, req Request) (*Result, error) {
	tm := &timer{last: time.Now()}
	cs := req.Spec
	if cs == nil {
		src, err := spec.ParseSource(req.Source)
		if err != nil {
			return nil, &Error{Step: "read credential spec", Err: err, Phase: PhaseCredspec}
		}
		if cs, err = spec.Load(ctx, src, req.Remote); err != nil {
			return nil, &Error{Step: "read credential spec", Err: err, Phase: PhaseCredspec}
		}
	}
	cfg := (*conf)(&req.Config)
	name, domain, realm := cs.Account(), cs.DNSDomain(), cs.Realm()
	gmsa := fmt.Sprintf("gMSA %q", name+"$")

	rd, err := cfg.reader(ctx, cs, req.Secret, req.Remote)
	if err != nil {
		return nil, &Error{Step: rd.readStep(gmsa), Err: err, Phase: PhaseCredspec}
	}
	readerName := rd.name()
	tm.lap("credspec")

	d, s, err := cfg.logIn(ctx, domain, realm, rd, req.Now, tm)
	if err != nil {
		return nil, err
	}
	acct, host, err := cfg.readAccount(ctx, d, s.ticket, name, domain, rd.dn)
	var le *loginError
	if errors.As(err, &le) {
		return nil, &Error{Step: "log in as " + readerName, Server: kdcOf(le.err, d), Err: le.err, Phase: PhaseLogin}
	}
	if err != nil {
		if host == "" {
			host = strings.Join(d.ldap, ", ")
		}
		return nil, &Error{Step: "read password of " + gmsa + " as " + readerName, Server: host, Err: err, Phase: phaseOf(err)}
	}
	gmsa = fmt.Sprintf("gMSA %q", acct.SAM)
	if acct.Disabled {
		return nil, &Error{Step: "read password of " + gmsa, Server: host, Err: ErrDisabled, Phase: PhaseRead}
	}
	if acct.Blob == nil {
		return nil, &Error{Step: "read password of " + gmsa + " as " + readerName, Server: host, Err: ErrNotPermitted, Phase: PhaseRead}
	}
	mp, err := blob.Parse(acct.Blob)
	if err != nil {
		return nil, &Error{Step: "read password of " + gmsa, Server: host, Err: fmt.Errorf("%w: %v", ErrBlob, err), Phase: PhaseRead}
	}
	defer mp.Wipe()

	tm.lap("ldap")
	gc := &kdc.Client{Realm: realm, KDCs: s.kc.KDCs, Dial: d.dial,
		Lifetime: time.Duration(cfg.TicketLifetime), RenewLifetime: renew(cfg), Now: req.Now, AllowRC4: cfg.AllowRC4}
	principal := types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, acct.SAM)
	salt := blob.Salt(realm, acct.SAM, domain)
	previous := false
	tkt, err := gc.Login(ctx, principal, salt, passwordKeys(mp.Current))
	if errors.Is(err, kdc.ErrBadCredentials) && mp.Previous != nil {
		// Within a rotation window the KDC may still know only the old keys.
		if t, perr := gc.Login(ctx, principal, salt, passwordKeys(mp.Previous)); perr == nil {
			tkt, err, previous = t, nil, true
		}
	}
	if errors.Is(err, kdc.ErrBadCredentials) {
		err = fmt.Errorf("%w: %w", ErrKeysRefused, err)
	}
	if err != nil {
		return nil, &Error{Step: "get ticket of " + gmsa, Server: kdcOf(err, d), Err: err, Phase: PhaseTicket}
	}
	tm.lap("gmsa")
	return &Result{
		Cache:   cacheOf(tkt),
		Account: acct.SAM, Realm: realm, DC: host, KVNO: acct.KVNO,
		Expires: tkt.EndTime, Previous: previous,
		Steps: tm.steps,
	}, nil
}

func renew(cfg *conf) time.Duration {
	if cfg.RenewLifetime > 0 {
		return time.Duration(cfg.RenewLifetime)
	}
	return 7 * 24 * time.Hour
}

func kdcOf(err error, d *dcs) string {
	var ke *kdc.Error
	if errors.As(err, &ke) {
		return ke.Server
	}
	return strings.Join(d.kdcs, ", ")
}

// passwordKeys derives the gMSA's keys lazily, per etype and salt.
func passwordKeys(pw []byte) kdc.KeyFunc {
	return func(etype int32, salt string) (types.EncryptionKey, bool, error) {
		k, err := blob.KeyFor(etype, pw, salt)
		if errors.Is(err, blob.ErrUnsupportedEtype) {
			return types.EncryptionKey{}, false, nil
		}
		return k, err == nil, err
	}
}

func cacheOf(t *kdc.Ticket) *ccache.Cache {
	client := ccache.NewPrincipal(t.ClientRealm, t.Client)
	return &ccache.Cache{
		DefaultPrincipal: client,
		Credentials: []ccache.Credential{{
			Client: client, Server: ccache.NewPrincipal(t.ServerRealm, t.Server),
			Key:      t.SessionKey,
			AuthTime: t.AuthTime, StartTime: t.StartTime, EndTime: t.EndTime, RenewTill: t.RenewTill,
			Flags:  ccache.FlagsFromBitString(t.Flags),
			Ticket: t.Raw,
		}},
	}
}

type keytabPrincipal struct{ name, realm string }

// keytabKeys reads the host's machine account keys: the entry named by
// KeytabPrincipal, else the first machine principal, at its newest kvno.
func (c *conf) keytabKeys() (keytabPrincipal, []types.EncryptionKey, error) {
	path := c.Keytab
	if path == "" {
		path = config.DefaultKeytab
	}
	kt, err := keytab.Load(path)
	if err != nil {
		return keytabPrincipal{}, nil, fmt.Errorf("%w %s: %v", ErrKeytab, path, err)
	}
	var p keytabPrincipal
	for _, e := range kt.Entries {
		name := strings.Join(e.Principal.Components, "/")
		if c.KeytabPrincipal != "" {
			if strings.EqualFold(name+"@"+e.Principal.Realm, c.KeytabPrincipal) || strings.EqualFold(name, c.KeytabPrincipal) {
				p = keytabPrincipal{name, e.Principal.Realm}
				break
			}
			continue
		}
		if len(e.Principal.Components) == 1 && strings.HasSuffix(name, "$") {
			p = keytabPrincipal{name, e.Principal.Realm}
			break
		}
	}
	if p.name == "" {
		want := "a machine principal (NAME$)"
		if c.KeytabPrincipal != "" {
			want = fmt.Sprintf("principal %q", c.KeytabPrincipal)
		}
		return p, nil, fmt.Errorf("%w %s: no entry for %s", ErrKeytab, path, want)
	}
	type versioned struct {
		kvno uint32
		key  types.EncryptionKey
	}
	newest := map[int32]versioned{}
	for _, e := range kt.Entries {
		if strings.Join(e.Principal.Components, "/") != p.name || e.Principal.Realm != p.realm {
			continue
		}
		if cur, ok := newest[e.Key.KeyType]; !ok || e.KVNO > cur.kvno {
			newest[e.Key.KeyType] = versioned{e.KVNO, e.Key}
		}
	}
	var keys []types.EncryptionKey
	for _, et := range kdc.Etypes {
		if et == etypeID.RC4_HMAC && !c.AllowRC4 {
			continue
		}
		if v, ok := newest[et]; ok {
			keys = append(keys, v.key)
		}
	}
	if len(keys) == 0 {
		if _, rc4 := newest[etypeID.RC4_HMAC]; rc4 && !c.AllowRC4 {
			return p, nil, fmt.Errorf("%w %s: %s has only an rc4-hmac key: %w", ErrKeytab, path, p.name, kdc.ErrRC4Disabled)
		}
		return p, nil, fmt.Errorf("%w %s: %s has no aes or rc4 key", ErrKeytab, path, p.name)
	}
	return p, keys, nil
}
