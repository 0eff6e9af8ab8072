package fetcher

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/gmsa-hook/gmsa-hook/fetcher/kdc"
	"github.com/gmsa-hook/gmsa-hook/spec"
)

// ErrNotGMSA marks an account that exists but is not a group Managed
// Service Account (a user, a computer, a standalone MSA).
var ErrNotGMSA = errors.New("not a group managed service account")

// Domain is what the directory says about a domain: the values of a
// credential spec's DomainJoinConfig.
type Domain struct {
	SID         string // objectSid of the domain, S-1-5-21-...
	GUID        string // objectGUID of the domain, 8-4-4-4-12 lower-case hex
	DNSName     string // dnsRoot of the domain's crossRef
	DNSTreeName string // the forest root domain's DNS name
	NetBIOSName string // nETBIOSName of the domain's crossRef
}

// Account is what the directory says about the account a name gives.
type Account struct {
	SAM      string // sAMAccountName, "webapp01$" for a gMSA
	DN       string
	SID      string
	GMSA     bool   // objectClass msDS-GroupManagedServiceAccount
	Class    string // the most specific objectClass, e.g. "user"
	Disabled bool
	SPNs     []string
	DNSHost  string // dNSHostName
	KVNO     int
	// Readable says the directory gave the reader the managed password
	// (asked only with DescribeRequest.ReadPassword; the bytes are dropped
	// at once).
	Readable bool
}

// DescribeRequest asks the directory about a domain and an account, as the
// reader a fetch would use.
type DescribeRequest struct {
	// Domain is the DNS name of the domain; Account the name to look up,
	// with or without its "$". An empty Account reads the domain only.
	Domain, Account string
	// Secret is the domainless reader; nil reads as the host (its keytab).
	Secret *spec.Secret
	Config Config
	// ReadPassword asks for msDS-ManagedPassword too, to tell whether the
	// reader may retrieve it.
	ReadPassword bool
	Now          func() time.Time
}

// Description is the directory's answer.
type Description struct {
	Domain  Domain
	Account *Account // nil when no account has the name
	DC      string   // the domain controller that answered
	Reader  string   // who read, e.g. "gmsa-reader@CORP.EXAMPLE.TEST"
	Steps   []Step   // "credspec", "locate", "login", "bind", "read"
}

// Describe logs in as the reader, binds to a DC over the same sealed (or
// TLS) connection a fetch uses, and reads the domain's identifiers and the
// account. It gives up at the configured timeout, as Fetch does.
func Describe(ctx context.Context, req DescribeRequest) (*Description, error) {
	return withDeadline(ctx, req.Config, func(ctx context.Context) (*Description, error) { return describe(ctx, req) })
}

func describe(ctx context.Context, req DescribeRequest) (*Description, error) {
	tm := &timer{last: time.Now()}
	cfg := (*conf)(&req.Config)
	domain := strings.ToLower(strings.TrimSuffix(req.Domain, "."))
	if domain == "" || strings.ContainsAny(domain, " /\\@,=") {
		return nil, fmt.Errorf("domain %q is not a DNS name", req.Domain)
	}
	realm := strings.ToUpper(domain)
	var rd *reader
	if req.Secret != nil {
		rd = secretReader(req.Secret)
	} else {
		var err error
		if rd, err = cfg.hostReader(); err != nil {
			return nil, &Error{Step: "read host keytab", Err: err, Phase: PhaseCredspec}
		}
	}
	out := &Description{Reader: strings.Trim(rd.name(), `"`)}
	tm.lap("credspec")
	d, s, err := cfg.logIn(ctx, domain, realm, rd, req.Now, tm)
	if err != nil {
		return nil, err
	}
	var bound bool
	host, err := cfg.eachDC(ctx, d, func(ctx context.Context, host string) error {
		l, bounded, err := cfg.bind(ctx, d, host, s.ticket)
		if err != nil {
			return &bindError{err}
		}
		defer l.Close()
		bound = true
		tm.lap("bind")
		if out.Domain, err = readDomain(l, bounded, domain); err != nil {
			return err
		}
		if req.Account != "" {
			out.Account, err = readAccountInfo(l, bounded, req.Account, domain, req.ReadPassword)
		}
		return err
	})
	var le *loginError
	if errors.As(err, &le) {
		return nil, &Error{Step: "log in as " + rd.name(), Server: kdcOf(le.err, d), Err: le.err, Phase: PhaseLogin}
	}
	if err != nil {
		if host == "" {
			host = strings.Join(d.ldap, ", ")
		}
		phase, step := PhaseRead, "read domain "+domain
		if req.Account != "" {
			step = fmt.Sprintf("read account %q of %s", strings.TrimSuffix(req.Account, "$"), domain)
		}
		if !bound {
			phase, step = PhaseBind, "bind to ldap"
		}
		return nil, &Error{Step: step + " as " + rd.name(), Server: host, Err: err, Phase: phase}
	}
	tm.lap("read")
	out.DC, out.Steps = host, tm.steps
	return out, nil
}

// withDeadline runs f under the configured timeout and names the deadline
// in the error when it is what ended f.
func withDeadline[T any](ctx context.Context, cfg Config, f func(ctx context.Context) (T, error)) (T, error) {
	timeout := cfg.TimeoutOrDefault()
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w of %s", ErrDeadline, timeout))
	defer cancel()
	res, err := f(ctx)
	if err != nil && ctx.Err() != nil {
		var zero T
		var fe *Error
		if errors.As(err, &fe) {
			fe.Err = fmt.Errorf("%w: %v", context.Cause(ctx), innermost(fe.Err))
			return zero, fe
		}
		return zero, fmt.Errorf("%w: %v", context.Cause(ctx), err)
	}
	return res, err
}

// search runs one bounded search.
func search(l *ldap.Conn, bounded *boundedConn, req *ldap.SearchRequest) (*ldap.SearchResult, error) {
	req.SizeLimit, req.EnforceSizeLimit = maxEntries, true
	res, err := l.Search(req)
	switch {
	case errors.Is(err, ldap.ErrSizeLimitExceeded):
		return nil, fmt.Errorf("ldap server sent more than %d entries for %s in %s", maxEntries, req.Filter, req.BaseDN)
	case err != nil && bounded.exceeded.Load():
		return nil, fmt.Errorf("ldap server sent more than %d bytes for %s in %s", maxResponse, req.Filter, req.BaseDN)
	case err != nil:
		return nil, fmt.Errorf("search %s in %q: %w", req.Filter, req.BaseDN, err)
	}
	return res, nil
}

// readDomain reads the domain object, its crossRef and the forest root.
func readDomain(l *ldap.Conn, bounded *boundedConn, domain string) (Domain, error) {
	var d Domain
	root, err := search(l, bounded, &ldap.SearchRequest{Scope: ldap.ScopeBaseObject, Filter: "(objectClass=*)",
		Attributes: []string{"defaultNamingContext", "rootDomainNamingContext", "configurationNamingContext"}})
	if err != nil {
		return d, fmt.Errorf("root dse: %w", err)
	}
	if len(root.Entries) != 1 {
		return d, errors.New("root dse: no entry")
	}
	rse := root.Entries[0]
	base := baseDN(domain)
	if got := rse.GetAttributeValue("defaultNamingContext"); !strings.EqualFold(got, base) {
		return d, fmt.Errorf("the domain controller serves %q, not %s", got, base)
	}
	d.DNSTreeName = dnsOf(rse.GetAttributeValue("rootDomainNamingContext"))
	obj, err := search(l, bounded, &ldap.SearchRequest{BaseDN: base, Scope: ldap.ScopeBaseObject, Filter: "(objectClass=domain)",
		Attributes: []string{"objectSid", "objectGUID"}})
	if err != nil {
		return d, err
	}
	if len(obj.Entries) != 1 {
		return d, fmt.Errorf("no domain object %s", base)
	}
	if d.SID, err = SIDString(obj.Entries[0].GetRawAttributeValue("objectSid")); err != nil {
		return d, fmt.Errorf("objectSid of %s: %w", base, err)
	}
	if d.GUID, err = GUIDString(obj.Entries[0].GetRawAttributeValue("objectGUID")); err != nil {
		return d, fmt.Errorf("objectGUID of %s: %w", base, err)
	}
	parts := "CN=Partitions," + rse.GetAttributeValue("configurationNamingContext")
	xr, err := search(l, bounded, &ldap.SearchRequest{BaseDN: parts, Scope: ldap.ScopeSingleLevel,
		Filter:     fmt.Sprintf("(&(objectClass=crossRef)(nCName=%s))", ldap.EscapeFilter(base)),
		Attributes: []string{"nETBIOSName", "dnsRoot"}})
	if err != nil {
		return d, err
	}
	if len(xr.Entries) != 1 {
		return d, fmt.Errorf("no crossRef for %s in %s", base, parts)
	}
	d.NetBIOSName = xr.Entries[0].GetAttributeValue("nETBIOSName")
	d.DNSName = strings.ToLower(xr.Entries[0].GetAttributeValue("dnsRoot"))
	if d.NetBIOSName == "" || d.DNSName == "" {
		return d, fmt.Errorf("crossRef for %s has no nETBIOSName or dnsRoot", base)
	}
	if d.DNSTreeName == "" {
		d.DNSTreeName = d.DNSName
	}
	return d, nil
}

// dnsOf turns DC=corp,DC=example,DC=test into corp.example.test.
func dnsOf(dn string) string {
	var labels []string
	for _, rdn := range strings.Split(dn, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(rdn), "="); ok && strings.EqualFold(k, "DC") {
			labels = append(labels, strings.ToLower(v))
		}
	}
	return strings.Join(labels, ".")
}

// readAccountInfo looks up name$ (a gMSA) and name (any other account).
func readAccountInfo(l *ldap.Conn, bounded *boundedConn, name, domain string, password bool) (*Account, error) {
	bare := strings.TrimSuffix(name, "$")
	filter := fmt.Sprintf("(|(sAMAccountName=%s)(sAMAccountName=%s))", ldap.EscapeFilter(bare+"$"), ldap.EscapeFilter(bare))
	attrs := []string{"sAMAccountName", "objectClass", "objectSid", "userAccountControl", "servicePrincipalName", "dNSHostName", "msDS-KeyVersionNumber"}
	if password {
		attrs = append(attrs, "msDS-ManagedPassword")
	}
	res, err := search(l, bounded, &ldap.SearchRequest{BaseDN: baseDN(domain), Scope: ldap.ScopeWholeSubtree, Filter: filter, Attributes: attrs})
	if err != nil {
		if errors.Is(err, ErrLayerRefused) || strings.Contains(strings.ToLower(err.Error()), "encrypted connection") {
			return nil, fmt.Errorf("%w: %v", ErrLayerRefused, ldapMessage(err))
		}
		return nil, err
	}
	if len(res.Entries) == 0 {
		return nil, nil
	}
	// name$ wins over name: the gMSA is what was asked for.
	e := res.Entries[0]
	for _, x := range res.Entries {
		if strings.EqualFold(x.GetAttributeValue("sAMAccountName"), bare+"$") {
			e = x
		}
	}
	classes := e.GetAttributeValues("objectClass")
	a := &Account{SAM: e.GetAttributeValue("sAMAccountName"), DN: e.DN,
		GMSA:    slices.ContainsFunc(classes, func(c string) bool { return strings.EqualFold(c, "msDS-GroupManagedServiceAccount") }),
		SPNs:    e.GetAttributeValues("servicePrincipalName"),
		DNSHost: e.GetAttributeValue("dNSHostName")}
	if len(classes) > 0 {
		a.Class = classes[len(classes)-1]
	}
	a.SID, _ = SIDString(e.GetRawAttributeValue("objectSid"))
	a.KVNO, _ = strconv.Atoi(e.GetAttributeValue("msDS-KeyVersionNumber"))
	uac, _ := strconv.Atoi(e.GetAttributeValue("userAccountControl"))
	a.Disabled = uac&uacAccountDisable != 0
	if pw := e.GetRawAttributeValue("msDS-ManagedPassword"); len(pw) > 0 {
		a.Readable = true
		clear(pw)
	}
	return a, nil
}

// SIDString formats a binary security identifier (MS-DTYP 2.4.2) as
// S-1-5-21-....
func SIDString(b []byte) (string, error) {
	if len(b) < 8 || b[0] != 1 || len(b) != 8+4*int(b[1]) {
		return "", fmt.Errorf("malformed sid of %d bytes", len(b))
	}
	var auth uint64
	for _, x := range b[2:8] {
		auth = auth<<8 | uint64(x)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "S-%d-%d", b[0], auth)
	for i := 0; i < int(b[1]); i++ {
		fmt.Fprintf(&sb, "-%d", binary.LittleEndian.Uint32(b[8+4*i:]))
	}
	return sb.String(), nil
}

// GUIDString formats a binary GUID (MS-DTYP 2.3.4.2: the first three fields
// little-endian) as Windows prints it without braces, in lower case.
func GUIDString(b []byte) (string, error) {
	if len(b) != 16 {
		return "", fmt.Errorf("malformed guid of %d bytes", len(b))
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16]), nil
}

// DCs are the domain controllers of a domain, in the order a fetch tries
// them, and how they were found.
type DCs struct {
	KDCs []string // host:port
	LDAP []string // host names
	How  string   // "configured domain_controllers", "dns srv records of ..."
	d    *dcs
}

// Locate finds the domain's DCs as a fetch does.
func Locate(ctx context.Context, cfg Config, domain string) (*DCs, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	d, err := (*conf)(&cfg).locate(ctx, domain, strings.ToUpper(domain))
	if err != nil {
		return nil, err
	}
	return &DCs{KDCs: slices.Clone(d.kdcs), LDAP: slices.Clone(d.ldap), How: d.how, d: d}, nil
}

// Dial connects as a fetch does: the configured resolver, and host names
// from /etc/hosts.
func (d *DCs) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return d.d.dial(ctx, network, addr)
}

// CheckKeytab reads the host keytab as a domain-joined fetch would and
// returns the principal it would log in as.
func CheckKeytab(cfg Config) (string, error) {
	p, _, err := (*conf)(&cfg).keytabKeys()
	if err != nil {
		return "", err
	}
	return p.name + "@" + p.realm, nil
}

// ClockOffset is how far the KDC's clock is ahead of ours (negative:
// behind), measured against the middle of one exchange, and the KDC asked.
// name is any principal of the realm; nothing is logged in.
func (d *DCs) ClockOffset(ctx context.Context, cfg Config, realm, name string) (time.Duration, string, error) {
	kc := &kdc.Client{Realm: strings.ToUpper(realm), KDCs: slices.Clone(d.KDCs), Dial: d.d.dial, AllowRC4: cfg.AllowRC4}
	start := time.Now()
	server, t, err := kc.ServerTime(ctx, types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, name))
	if err != nil {
		return 0, server, err
	}
	end := time.Now()
	mid := start.Add(end.Sub(start) / 2)
	return t.Sub(mid), server, nil
}
