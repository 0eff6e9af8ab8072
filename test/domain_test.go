// Package test holds gmsa-hook's integration and end-to-end tests: a real
// Samba AD domain controller on loopback (test/setup-domain.sh), real
// runtimes, and the gmsa-hook binary built from this tree.
package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gmsa-hook/gmsa-hook/test/testdomain"
)

// Domain is the local test domain that test/setup-domain.sh provisions.
type Domain struct {
	Dir                            string // state dir, e.g. /var/lib/gmsa-hook-test
	Realm, DNSDomain, DCHost       string
	ReaderUser, ReaderPassword     string
	OutsiderUser, OutsiderPassword string
	AdminPassword                  string
	KRB5Config, HostKeytab         string
	HostPrincipal                  string
	TLSCA                          string // CA of the DC's LDAPS certificate
}

// Credspec is the path of a credential spec setup-domain.sh wrote.
func (d *Domain) Credspec(name string) string {
	return filepath.Join(d.Dir, "credspecs", name+".json")
}

// Secrets are the test domain's passwords: no output may contain them.
func (d *Domain) Secrets() []string {
	return []string{d.ReaderPassword, d.OutsiderPassword, d.AdminPassword}
}

// needCI skips a test run by hand without what it needs, and fails it in CI.
func needCI(t testing.TB, why string) {
	t.Helper()
	testdomain.Require(t, why)
}

// testDomain returns the test domain; it must be run as root.
func testDomain(t testing.TB) *Domain {
	t.Helper()
	env := testdomain.Env(t)
	if os.Geteuid() != 0 {
		needCI(t, "integration tests need root")
	}
	return &Domain{
		Dir: testdomain.Dir(), Realm: env["REALM"], DNSDomain: env["DOMAIN_DNS"], DCHost: env["DC_HOST"],
		ReaderUser: env["READER_USER"], ReaderPassword: env["READER_PASSWORD"],
		OutsiderUser: env["OUTSIDER_USER"], OutsiderPassword: env["OUTSIDER_PASSWORD"],
		AdminPassword: env["ADMIN_PASSWORD"], KRB5Config: env["KRB5_CONFIG"],
		HostKeytab: env["HOST_KEYTAB"], HostPrincipal: env["HOST_PRINCIPAL"],
		TLSCA: env["TLS_CA"],
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binOut  []byte
)

// gmsaHook builds the gmsa-hook binary from this tree once per test run.
func gmsaHook(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gmsa-hook-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "gmsa-hook")
		cmd := exec.Command("go", "build", "-o", binPath, "../cmd/gmsa-hook")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		binOut, binErr = cmd.CombinedOutput()
	})
	if binErr != nil {
		t.Fatalf("build gmsa-hook: %v\n%s", binErr, binOut)
	}
	return binPath
}

// assertNoSecrets fails when out holds one of the domain's passwords.
func assertNoSecrets(t testing.TB, d *Domain, out string) {
	t.Helper()
	for _, s := range d.Secrets() {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("output reveals a secret:\n%s", out)
		}
	}
}
