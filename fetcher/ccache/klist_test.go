package ccache

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needTool skips when a tool is missing on a developer machine; in CI (CI
// set) a missing tool fails the test, so the real-tool checks always run there.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "" {
		t.Skipf("%s not on PATH (install MIT krb5-user); this test is required in CI", name)
	}
	t.Fatalf("%s not on PATH: %v", name, err)
	return ""
}

// klist runs MIT klist in a fixed locale and time zone so its dates can be
// compared, with a krb5.conf that names no realm.
func klist(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := needTool(t, "klist")
	conf := filepath.Join(t.TempDir(), "krb5.conf")
	if err := os.WriteFile(conf, []byte("[libdefaults]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"LC_ALL=C", "TZ=UTC", "KRB5_CONFIG=" + conf, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestMITKlistReadsWrittenCache writes a cache with WriteFile and has MIT
// klist list it: the principal, the krbtgt service, the expiry, the
// enctypes, the flags and the configuration entry must be what we wrote.
func TestMITKlistReadsWrittenCache(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	cred := tgt(t)
	cred.AuthTime, cred.StartTime = now, now
	cred.EndTime = now.Add(10 * time.Hour)
	cred.RenewTill = now.Add(7 * 24 * time.Hour)
	c := &Cache{
		DefaultPrincipal: client,
		KDCOffset:        &KDCOffset{Seconds: 1, Microseconds: -250000},
		Credentials:      []Credential{configEntry("pa_type", &krbtgt, "2"), cred},
	}
	path := filepath.Join(t.TempDir(), "krb5cc")
	if err := WriteFile(path, c, -1, -1); err != nil {
		t.Fatal(err)
	}

	out, err := klist(t, "-e", "-f", "-c", path)
	if err != nil {
		t.Fatalf("klist -e -f: %v\n%s", err, out)
	}
	t.Logf("klist -e -f -c FILE:\n%s", out)
	const stamp = "01/02/06 15:04:05" // klist's %x %X in the C locale
	for _, want := range []string{
		"Ticket cache: FILE:" + path,
		"Default principal: WebApp01$@CORP.EXAMPLE.TEST",
		now.Format(stamp) + "  " + cred.EndTime.Format(stamp) + "  krbtgt/CORP.EXAMPLE.TEST@CORP.EXAMPLE.TEST",
		"renew until " + cred.RenewTill.Format(stamp),
		"Flags: FRIA",
		"Etype (skey, tkt): aes256-cts-hmac-sha1-96, aes256-cts-hmac-sha1-96",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("klist output lacks %q", want)
		}
	}
	if strings.Contains(out, "X-CACHECONF") {
		t.Errorf("klist without -C shows the configuration entry")
	}

	out, err = klist(t, "-C", "-c", path)
	if err != nil {
		t.Fatalf("klist -C: %v\n%s", err, out)
	}
	if want := "config: pa_type(krbtgt/CORP.EXAMPLE.TEST@CORP.EXAMPLE.TEST) = 2"; !strings.Contains(out, want) {
		t.Errorf("klist -C output lacks %q:\n%s", want, out)
	}

	// -s: exit status 0 only when the cache holds an unexpired ticket.
	if out, err := klist(t, "-s", "-c", path); err != nil {
		t.Errorf("klist -s: %v %s", err, out)
	}
}

// TestMITKlistExpired checks klist sees our endtime: a ticket that ended an
// hour ago makes klist -s fail.
func TestMITKlistExpired(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	cred := tgt(t)
	cred.AuthTime, cred.StartTime = now.Add(-11*time.Hour), now.Add(-11*time.Hour)
	cred.EndTime = now.Add(-time.Hour)
	cred.RenewTill = time.Time{}
	path := filepath.Join(t.TempDir(), "krb5cc")
	if err := WriteFile(path, &Cache{DefaultPrincipal: client, Credentials: []Credential{cred}}, -1, -1); err != nil {
		t.Fatal(err)
	}
	if out, err := klist(t, "-s", "-c", path); err == nil {
		t.Errorf("klist -s succeeded on an expired cache: %s", out)
	}
}

// TestMITKlistRejectsTruncated makes sure the klist checks above can fail:
// MIT refuses a cache cut inside a credential.
func TestMITKlistRejectsTruncated(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "tgt.golden"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "krb5cc")
	if err := os.WriteFile(path, b[:len(b)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := klist(t, "-c", path)
	if err == nil && strings.Contains(out, "krbtgt/") {
		t.Errorf("klist listed a truncated cache:\n%s", out)
	}
}

// TestMITKlistReadsGolden has MIT klist list each golden file, so the pinned
// bytes are checked against the reference reader and not only against Parse.
func TestMITKlistReadsGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"empty", []string{"Default principal: WebApp01$@CORP.EXAMPLE.TEST"}},
		{"tgt", []string{
			"03/01/26 09:00:00  03/01/26 19:00:00  krbtgt/CORP.EXAMPLE.TEST@CORP.EXAMPLE.TEST",
			"renew until 03/08/26 09:00:00, Flags: FRIA",
		}},
		{"tgt-offset", []string{"03/01/26 09:00:00  03/01/26 19:00:00  krbtgt/CORP.EXAMPLE.TEST@CORP.EXAMPLE.TEST"}},
		{"config-and-service", []string{
			"config: pa_type(krbtgt/CORP.EXAMPLE.TEST@CORP.EXAMPLE.TEST) = 2",
			"03/01/26 09:00:00  03/01/26 19:00:00  ldap/dc1.corp.example.test@CORP.EXAMPLE.TEST",
			"Flags: FRA, Etype (skey, tkt): aes128-cts-hmac-sha1-96, aes256-cts-hmac-sha1-96",
			"Addresses: 127.0.0.1",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := klist(t, "-e", "-f", "-a", "-n", "-C", "-c", filepath.Join("testdata", tc.name+".golden"))
			if err != nil {
				t.Fatalf("klist: %v\n%s", err, out)
			}
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("klist output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
