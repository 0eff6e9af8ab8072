// Package testdomain gives tests the settings of the local Samba AD test
// domain that test/setup-domain.sh provisions (its domain.env). Without the
// domain a test skips when run by hand and fails in CI, where
// ./test/run-tests.sh always sets it up.
package testdomain

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Dir is the domain's state directory: $GMSA_TEST_DIR, else
// /var/lib/gmsa-hook-test.
func Dir() string {
	if d := os.Getenv("GMSA_TEST_DIR"); d != "" {
		return d
	}
	return "/var/lib/gmsa-hook-test"
}

// Require skips a test run by hand, or fails it in CI, for want of why.
func Require(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI must provide it: run ./test/run-tests.sh)", why)
	}
	t.Skipf("%s; run ./test/run-tests.sh as root", why)
}

// Env returns domain.env as a map (REALM, DC_HOST, DC_ADDR, READER_USER,
// READER_PASSWORD, ...). The DC must be on the loopback: tests talk to
// nothing else.
func Env(t testing.TB) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(Dir(), "domain.env"))
	if err != nil {
		Require(t, "no test domain: "+err.Error())
	}
	defer f.Close()
	env := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			env[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `'"`)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"REALM", "DOMAIN_DNS", "DC_HOST", "DC_ADDR", "READER_USER", "READER_PASSWORD"} {
		if env[k] == "" {
			t.Fatalf("domain.env lacks %s", k)
		}
	}
	if ip := net.ParseIP(env["DC_ADDR"]); ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		t.Fatalf("DC_ADDR %q is not in 127.0.0.0/8; tests only talk to the loopback", env["DC_ADDR"])
	}
	return env
}
