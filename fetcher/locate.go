package fetcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	krbconfig "github.com/jcmturner/gokrb5/v8/config"

	"github.com/gmsa-hook/gmsa-hook/hook/config"
)

// dcs are the domain controllers of one domain, in the order to try them.
type dcs struct {
	kdcs []string // host:port of KDCs
	ldap []string // host names of LDAP servers (their SPN is ldap/<name>)
	how  string   // where the list came from, for messages
	// dial opens KDC and LDAP connections: a net.Dialer with the
	// configured resolver. Tests point it at fake servers.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// dnsLookupLimit bounds SRV lookups so an unreachable resolver leaves time
// for the krb5.conf fallback within the whole deadline.
const dnsLookupLimit = 3 * time.Second

func (c *conf) resolver() *net.Resolver {
	if c.DNSServer == "" {
		return net.DefaultResolver
	}
	server := c.dnsServer()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// dnsServer is dns_server as host:port.
func (c *conf) dnsServer() string {
	if _, _, err := net.SplitHostPort(c.DNSServer); err != nil {
		return net.JoinHostPort(c.DNSServer, "53")
	}
	return c.DNSServer
}

// nameServer makes a lookup error name dns_server: the Go resolver names
// the server from /etc/resolv.conf it believes it asked.
func (c *conf) nameServer(err error) {
	var de *net.DNSError
	if c.DNSServer != "" && errors.As(err, &de) {
		de.Server = c.dnsServer()
	}
}

// locate finds the domain's DCs: the configured list, else DNS SRV records
// (sorted by priority, shuffled by weight, as net.LookupSRV does), else the
// realm's kdc entries in krb5.conf.
func (c *conf) locate(ctx context.Context, domain, realm string) (*dcs, error) {
	r := c.resolver()
	d := &dcs{dial: (&net.Dialer{Resolver: r}).DialContext}
	if len(c.DomainControllers) > 0 {
		for _, h := range c.DomainControllers {
			d.kdcs = append(d.kdcs, net.JoinHostPort(h, "88"))
			d.ldap = append(d.ldap, h)
		}
		d.how = "configured domain_controllers"
		return d, nil
	}
	lctx, cancel := context.WithTimeout(ctx, dnsLookupLimit)
	defer cancel()
	_, krb, kerr := r.LookupSRV(lctx, "kerberos", "tcp", domain)
	_, ldp, lerr := r.LookupSRV(lctx, "", "", "_ldap._tcp.dc._msdcs."+domain)
	c.nameServer(kerr)
	if kerr == nil && len(krb) > 0 {
		for _, s := range krb {
			d.kdcs = append(d.kdcs, net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))))
		}
		if lerr == nil {
			for _, s := range ldp {
				d.ldap = append(d.ldap, strings.TrimSuffix(s.Target, "."))
			}
		}
		if len(d.ldap) == 0 {
			for _, k := range d.kdcs {
				h, _, _ := net.SplitHostPort(k)
				d.ldap = append(d.ldap, h)
			}
		}
		d.how = "dns srv records of " + domain
		return d, nil
	}
	path := (*config.Config)(c).KRB5ConfOrDefault()
	kc, err := krbconfig.Load(path)
	if err != nil {
		return nil, fmt.Errorf("%w: no dns srv records for %s (%v) and krb5 config %s unreadable: %v", ErrNoDC, domain, kerr, path, err)
	}
	for _, rl := range kc.Realms {
		if !strings.EqualFold(rl.Realm, realm) {
			continue
		}
		for _, k := range rl.KDC {
			host, port, err := net.SplitHostPort(k)
			if err != nil {
				host, port = k, "88"
			}
			d.kdcs = append(d.kdcs, net.JoinHostPort(host, port))
			// An address cannot name the ldap/<host> service principal.
			if net.ParseIP(host) == nil {
				d.ldap = append(d.ldap, host)
			}
		}
	}
	if len(d.kdcs) == 0 {
		return nil, fmt.Errorf("%w: no dns srv records for %s (%v) and no kdc for realm %s in %s", ErrNoDC, domain, kerr, realm, path)
	}
	if len(d.ldap) == 0 {
		return nil, fmt.Errorf("%w: no dns srv records for %s (%v), and %s gives the kdcs of %s by address: the ldap service principal needs a domain controller's host name", ErrNoDC, domain, kerr, path, realm)
	}
	d.how = "kdc entries of " + path
	return d, nil
}
