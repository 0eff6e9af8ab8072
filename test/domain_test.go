// Package test holds gmsa-hook's integration and end-to-end tests: a real
// Samba AD domain controller on loopback (test/setup-domain.sh), real
// runtimes, and the gmsa-hook binary built from this tree.
package test

import (
	"fmt"
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
	BaseDN, Group                  string // the domain's DN; the group that may read gMSA passwords
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
		BaseDN: env["BASE_DN"], Group: env["GMSA_GROUP"],
		ReaderUser: env["READER_USER"], ReaderPassword: env["READER_PASSWORD"],
		OutsiderUser: env["OUTSIDER_USER"], OutsiderPassword: env["OUTSIDER_PASSWORD"],
		AdminPassword: env["ADMIN_PASSWORD"], KRB5Config: env["KRB5_CONFIG"],
		HostKeytab: env["HOST_KEYTAB"], HostPrincipal: env["HOST_PRINCIPAL"],
		TLSCA: env["TLS_CA"],
	}
}

var builds sync.Map // package path -> func() (string, error)

// buildStatic builds the package at pkg (relative to test/) as a static
// binary, once per test run.
func buildStatic(t testing.TB, pkg string) string {
	t.Helper()
	f, _ := builds.LoadOrStore(pkg, sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "gmsa-hook-build-")
		if err != nil {
			return "", err
		}
		out := filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build %s: %v\n%s", pkg, err, b)
		}
		return out, nil
	}))
	path, err := f.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// gmsaHook is the gmsa-hook binary built from this tree.
func gmsaHook(t testing.TB) string { return buildStatic(t, "../cmd/gmsa-hook") }

// assertNoSecrets fails when out holds one of the domain's passwords.
func assertNoSecrets(t testing.TB, d *Domain, out string) {
	t.Helper()
	for _, s := range d.Secrets() {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("output reveals a secret:\n%s", out)
		}
	}
}
