package fetcher

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gmsa-hook/gmsa-hook/test/testdomain"
)

// closedDNS is a DNS server address where nothing listens: lookups fail at
// once with "connection refused", and nothing leaves the loopback.
const closedDNS = "127.0.0.1:1"

// located is what locate found, comparable with cmp.
type located struct {
	KDCs, LDAP []string
	How        string
}

func locateIn(t *testing.T, c Config, domain, realm string) (located, error) {
	t.Helper()
	if c.DNSServer != "" {
		host, _, err := net.SplitHostPort((*conf)(&c).dnsServer())
		if ip := net.ParseIP(host); err != nil || ip == nil || ip.To4() == nil || !ip.IsLoopback() {
			t.Fatalf("test DNS server %q is not in 127.0.0.0/8", c.DNSServer)
		}
	} else if len(c.DomainControllers) == 0 {
		t.Fatal("test would use the system resolver")
	}
	d, err := (*conf)(&c).locate(context.Background(), domain, realm)
	if err != nil {
		if d != nil {
			t.Errorf("locate returned %+v with error %v", d, err)
		}
		return located{}, err
	}
	return located{d.kdcs, d.ldap, d.how}, nil
}

// krb5Conf writes a krb5.conf and returns its path.
func krb5Conf(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "krb5.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sambaDNS returns the test domain's DNS server (Samba's, on the
// loopback) and DNS name. Without the domain the test skips when run by
// hand and fails in CI.
func sambaDNS(t *testing.T) (server, domain string) {
	t.Helper()
	env := testdomain.Env(t)
	return env["DC_ADDR"], env["DOMAIN_DNS"]
}

func TestLocateConfigured(t *testing.T) {
	// No lookup happens: the closed DNS server would fail it.
	got, err := locateIn(t, Config{DomainControllers: []string{"dc1.corp.example.test", "dc2.corp.example.test"}, DNSServer: closedDNS}, "corp.example.test", "CORP.EXAMPLE.TEST")
	if err != nil {
		t.Fatal(err)
	}
	want := located{
		KDCs: []string{"dc1.corp.example.test:88", "dc2.corp.example.test:88"},
		LDAP: []string{"dc1.corp.example.test", "dc2.corp.example.test"},
		How:  "configured domain_controllers",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("locate (-want +got):\n%s", diff)
	}
}

func TestLocateSRV(t *testing.T) {
	addr, domain := sambaDNS(t)
	for _, server := range []string{net.JoinHostPort(addr, "53"), addr} {
		t.Run(server, func(t *testing.T) {
			// The krb5.conf would give another answer: SRV records win.
			conf := krb5Conf(t, "[realms]\n "+strings.ToUpper(domain)+" = {\n  kdc = elsewhere.example.test\n }\n")
			got, err := locateIn(t, Config{DNSServer: server, KRB5Conf: conf}, domain, strings.ToUpper(domain))
			if err != nil {
				t.Fatal(err)
			}
			want := located{
				KDCs: []string{"dc1." + domain + ":88"},
				LDAP: []string{"dc1." + domain},
				How:  "dns srv records of " + domain,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("locate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLocateKRB5Conf(t *testing.T) {
	const conf = `[libdefaults]
    default_realm = CORP.EXAMPLE.TEST
    dns_lookup_kdc = false

[realms]
    OTHER.EXAMPLE.TEST = {
        kdc = dc9.other.example.test
    }
    CORP.EXAMPLE.TEST = {
        kdc = dc1.corp.example.test
        kdc = 127.0.0.1
        kdc = dc2.corp.example.test:750
        admin_server = dc1.corp.example.test
    }
`
	p := krb5Conf(t, conf)
	want := located{
		KDCs: []string{"dc1.corp.example.test:88", "127.0.0.1:88", "dc2.corp.example.test:750"},
		LDAP: []string{"dc1.corp.example.test", "dc2.corp.example.test"},
		How:  "kdc entries of " + p,
	}
	for _, tt := range []struct {
		name  string
		c     Config
		env   string // KRB5_CONFIG
		realm string
	}{
		{"krb5_conf", Config{DNSServer: closedDNS, KRB5Conf: p}, "", "CORP.EXAMPLE.TEST"},
		{"realm in another case", Config{DNSServer: closedDNS, KRB5Conf: p}, "", "corp.example.test"},
		{"KRB5_CONFIG", Config{DNSServer: closedDNS}, p, "CORP.EXAMPLE.TEST"},
		{"krb5_conf before KRB5_CONFIG", Config{DNSServer: closedDNS, KRB5Conf: p}, "/nonexistent/krb5.conf", "CORP.EXAMPLE.TEST"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KRB5_CONFIG", tt.env)
			got, err := locateIn(t, tt.c, "corp.example.test", tt.realm)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("locate (-want +got):\n%s", diff)
			}
		})
	}
}

// refused is how the Go resolver reports the closed DNS server.
func refused(domain string) string {
	return regexp.QuoteMeta("(lookup _kerberos._tcp."+domain+" on "+closedDNS+": read udp ") +
		`127\.0\.0\.1:\d+->` + regexp.QuoteMeta(closedDNS+": read: connection refused)")
}

func TestLocateErrors(t *testing.T) {
	t.Setenv("KRB5_CONFIG", "")
	onlyIPs := krb5Conf(t, "[realms]\n CORP.EXAMPLE.TEST = {\n  kdc = 127.0.0.1\n  kdc = 127.0.0.2:88\n  kdc = [::1]:88\n }\n")
	otherRealm := krb5Conf(t, "[realms]\n OTHER.EXAMPLE.TEST = {\n  kdc = dc1.other.example.test\n }\n")
	noKDC := krb5Conf(t, "[realms]\n CORP.EXAMPLE.TEST = {\n  admin_server = dc1.corp.example.test\n }\n")
	missing := filepath.Join(t.TempDir(), "krb5.conf")
	tests := []struct {
		name string
		conf string
		want string // a regular expression
	}{
		{
			"krb5.conf lists only addresses", onlyIPs,
			`no domain controller found: no dns srv records for corp\.example\.test ` + refused("corp.example.test") +
				regexp.QuoteMeta(", and "+onlyIPs+" gives the kdcs of CORP.EXAMPLE.TEST by address: the ldap service principal needs a domain controller's host name"),
		},
		{
			"krb5.conf without the realm", otherRealm,
			`no domain controller found: no dns srv records for corp\.example\.test ` + refused("corp.example.test") +
				regexp.QuoteMeta(" and no kdc for realm CORP.EXAMPLE.TEST in "+otherRealm),
		},
		{
			"realm without kdc entries", noKDC,
			`no domain controller found: no dns srv records for corp\.example\.test ` + refused("corp.example.test") +
				regexp.QuoteMeta(" and no kdc for realm CORP.EXAMPLE.TEST in "+noKDC),
		},
		{
			"no krb5.conf", missing,
			`no domain controller found: no dns srv records for corp\.example\.test ` + refused("corp.example.test") +
				regexp.QuoteMeta(" and krb5 config "+missing+" unreadable: ") + `.+`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := locateIn(t, Config{DNSServer: closedDNS, KRB5Conf: tt.conf}, "corp.example.test", "CORP.EXAMPLE.TEST")
			if !errors.Is(err, ErrNoDC) {
				t.Fatalf("error %v, want ErrNoDC", err)
			}
			if !regexp.MustCompile(`^` + tt.want + `$`).MatchString(err.Error()) {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

// TestLocateNoSuchDomain asks Samba's DNS about a domain it does not serve:
// NXDOMAIN, then the krb5.conf fallback.
func TestLocateNoSuchDomain(t *testing.T) {
	addr, _ := sambaDNS(t)
	conf := krb5Conf(t, "[realms]\n OTHER.EXAMPLE.TEST = {\n  kdc = dc1.other.example.test\n }\n")
	_, err := locateIn(t, Config{DNSServer: addr, KRB5Conf: conf}, "nosuch.example.test", "NOSUCH.EXAMPLE.TEST")
	want := "no domain controller found: no dns srv records for nosuch.example.test (lookup _kerberos._tcp.nosuch.example.test on " +
		net.JoinHostPort(addr, "53") + ": no such host) and no kdc for realm NOSUCH.EXAMPLE.TEST in " + conf
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}
	if !errors.Is(err, ErrNoDC) {
		t.Errorf("error %v does not wrap ErrNoDC", err)
	}
}
