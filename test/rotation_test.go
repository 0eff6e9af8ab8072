package test

// A real password rotation on the real Samba DC while a container runs: the
// domain rotates the gMSA's password (Samba's own rotation code, brought to
// now by test/testdomain/rotation.py, which moves the account's key back in
// time in the DC's database; the DC's clock cannot move without breaking
// Kerberos for every client), the container's ticket keeps working, the
// renewal pass's fresh fetch gets the new password, and while the KDC still
// holds only the previous password (a DC that has not applied the rotation)
// the previous-password fallback gets the ticket.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rotationDC drives test/testdomain/rotation.py and samba-tool against the
// test DC's local database (as root; no password on any command line).
type rotationDC struct {
	smbConf, samLDB string
}

func newRotationDC(t *testing.T, d *Domain) rotationDC {
	t.Helper()
	r := rotationDC{
		smbConf: filepath.Join(d.Dir, "samba", "etc", "smb.conf"),
		samLDB:  filepath.Join(d.Dir, "samba", "private", "sam.ldb"),
	}
	r.script(t, "root-key")
	return r
}

// script runs rotation.py with Samba's Python (the samba modules are
// Debian's python3-samba, for /usr/bin/python3 only).
func (r rotationDC) script(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", append([]string{"testdomain/rotation.py", r.smbConf}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("rotation.py %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (r rotationDC) tool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("samba-tool", append(args, "-s", r.smbConf, "-H", r.samLDB)...).CombinedOutput()
	if err != nil {
		t.Fatalf("samba-tool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// keys is what rotation.py show prints: the account's key version and the
// GKDI intervals its current and previous passwords derive from.
type gmsaKeys struct {
	KVNO     int    `json:"kvno"`
	Key      string `json:"key"`
	Previous string `json:"previous_key"`
}

func (r rotationDC) show(t *testing.T, sam string) gmsaKeys {
	t.Helper()
	var k gmsaKeys
	out := r.script(t, "show", sam)
	if err := json.Unmarshal([]byte(out), &k); err != nil {
		t.Fatalf("rotation.py show: %v\n%s", err, out)
	}
	return k
}

// newGMSA makes a gMSA of the test's own with the shortest interval Samba
// allows (1 day), readable by the test domain's reader group, and a
// domainless credential spec for it in dir. The account is deleted at the
// end.
func (r rotationDC) newGMSA(t *testing.T, d *Domain, name, dir string) string {
	t.Helper()
	r.tool(t, "service-account", "create", "--name="+name, "--dns-host-name="+name+"."+d.DNSDomain,
		"--managed-password-interval=1")
	t.Cleanup(func() {
		exec.Command("samba-tool", "service-account", "delete", "--name="+name, "-s", r.smbConf, "-H", r.samLDB).Run()
	})
	r.tool(t, "user", "enable", name+"$")
	r.tool(t, "service-account", "group-msa-membership", "add", "--name="+name,
		"--principal=CN="+d.Group+",CN=Users,"+d.BaseDN)
	tmpl, err := os.ReadFile(d.Credspec("webapp01-domainless"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name+".json")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(string(tmpl), "webapp01", name)), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestPasswordRotation: a detached uid-1000 container keeps working across
// a real rotation of its gMSA's password on Samba; the renewal pass's fresh
// fetch picks up the new password; while the KDC holds only the previous
// password, the fallback gets a working ticket and says so; once the KDC
// has the current password again, the next fetch uses it.
func TestPasswordRotation(t *testing.T) {
	d := testDomain(t)
	rt := runtimeFor(t, "runc")
	dc := newRotationDC(t, d)
	specs := t.TempDir()
	name := fmt.Sprintf("rot%d", os.Getpid()%100000)
	sam := name + "$"
	file := dc.newGMSA(t, d, name, specs)
	policy := testPolicy(d)
	policy["credspec_dirs"] = []string{specs}
	env := newHookEnv(t, d, map[string]any{"policy": policy})

	id := fmt.Sprintf("rotation-%d", os.Getpid())
	bundle := env.bundle(t, container{args: []string{"sleep", "3600"}, uid: 1000, gid: 1000,
		annotations: map[string]string{"credentialspec": "file://" + file}})
	rt.detach(t, bundle, id)
	ok := fmt.Sprintf("probe: ok client=%s@%s service=ldap/%s@%s", sam, d.Realm, d.DCHost, d.Realm)
	probe := func(when string) string {
		t.Helper()
		out := rt.mustExec(t, "exec", "--user", "1000:1000", id, "/probe")
		if !strings.Contains(out, ok) {
			t.Fatalf("%s: the container's ticket does not work:\n%s", when, out)
		}
		return out
	}
	auth0 := tgtAuth(t, probe("before the rotation"))
	k0 := dc.show(t, sam)

	// The domain rotates the password: its key is due, and the DC's next
	// look at the account (the container's service-ticket request below, or
	// the renewal's read) computes and stores the new one.
	dc.script(t, "age", sam)
	probe("after the rotation, with the ticket got before it")

	// A TGS renewal would keep the old login; a threshold beyond renew-till
	// makes the pass fetch anew: a password read, the new password's login.
	pastSecond(auth0)
	renewAll := func() string {
		t.Helper()
		out, err := gmsaHookCmd(t, "renew", "--config", env.config, "--threshold", "240h")
		if err != nil {
			t.Fatalf("gmsa-hook renew: %v\n%s", err, out)
		}
		if !strings.Contains(out, sam+"@"+d.Realm+": fetched") || !strings.Contains(out, "written to 1 containers") {
			t.Fatalf("renew said:\n%s", out)
		}
		return out
	}
	out := renewAll()
	k1 := dc.show(t, sam)
	if k1.KVNO <= k0.KVNO || k1.Key == k0.Key || k1.Previous == "" {
		t.Fatalf("the domain did not rotate the password: before %+v, after %+v", k0, k1)
	}
	t.Logf("rotated: before %+v, after %+v", k0, k1)
	if strings.Contains(out, "previous password") {
		t.Errorf("the fetch after the rotation used the previous password:\n%s", out)
	}
	auth1 := tgtAuth(t, probe("after the renewal"))
	if auth1 <= auth0 {
		t.Errorf("the container's ticket was not got anew (auth time %d, was %d)", auth1, auth0)
	}
	if e := cacheEntry(t, env, sam); e.Previous {
		t.Errorf("status says the previous password after a fetch with the current one: %+v", e)
	}

	// A DC that has not applied the rotation: LDAP gives the new password
	// as current, the KDC knows only the previous one.
	dc.script(t, "lag", sam)
	pastSecond(auth1)
	out = renewAll()
	if !strings.Contains(out, "with the previous password") {
		t.Errorf("renew did not say the ticket came with the previous password:\n%s", out)
	}
	auth2 := tgtAuth(t, probe("with the previous password's ticket"))
	if auth2 <= auth1 {
		t.Errorf("the container's ticket was not got anew (auth time %d, was %d)", auth2, auth1)
	}
	if e := cacheEntry(t, env, sam); !e.Previous || e.Outcome != "fetched" {
		t.Errorf("status does not say the previous password: %+v", e)
	}
	// gmsa-hook fetch says so too, with the key version the KDC used.
	kl := dc.show(t, sam)
	fout, err := gmsaHookCmd(t, "fetch", "--credspec", file, "--out", filepath.Join(t.TempDir(), "krb5cc"), "--config", env.config)
	if err != nil || !strings.Contains(fout, fmt.Sprintf("(kvno %d, from %s, with the previous password: ", kl.KVNO, d.DCHost)) {
		t.Errorf("gmsa-hook fetch while the KDC lags (its keys: %+v): %v\n%s", kl, err, fout)
	}
	st, err := gmsaHookCmd(t, "status", "--config", env.config)
	if err != nil || !strings.Contains(st, "fetched (previous password)") {
		t.Errorf("gmsa-hook status: %v\n%s", err, st)
	}

	// The KDC catches up: the next fetch uses the current password again.
	dc.script(t, "catch-up", sam)
	pastSecond(auth2)
	if out = renewAll(); strings.Contains(out, "previous password") {
		t.Errorf("after the KDC caught up, renew still used the previous password:\n%s", out)
	}
	probe("after the KDC caught up")
	if e := cacheEntry(t, env, sam); e.Previous {
		t.Errorf("status still says the previous password: %+v", e)
	}
	assertNoSecrets(t, d, out)
}

// cacheEntry is status --json's cache entry for a gMSA.
func cacheEntry(t *testing.T, env hookEnv, sam string) CacheStatus {
	t.Helper()
	for _, e := range statusOf(t, env).Cache {
		if e.Account == sam {
			return e
		}
	}
	t.Fatalf("no cache entry for %s in status", sam)
	return CacheStatus{}
}
