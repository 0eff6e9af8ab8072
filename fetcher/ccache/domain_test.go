package ccache

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gmsa-hook/gmsa-hook/test/testdomain"
)

// TestMITUsesWrittenCache takes a TGT from the test domain's KDC with MIT
// kinit, writes it again with WriteFile the way the hook writes caches
// (just the ticket: no configuration entries, no header field), and has MIT
// use that file: kvno gets a service ticket with the TGT and session key and
// adds it to the file, and ldapwhoami authenticates with GSSAPI. Parse then
// reads the file MIT appended to.
func TestMITUsesWrittenCache(t *testing.T) {
	env := testdomain.Env(t)
	for _, tool := range []string{"kinit", "kvno", "ldapwhoami"} {
		needTool(t, tool)
	}
	dir := t.TempDir()
	mitCache := filepath.Join(dir, "kinit.cc")
	ourCache := filepath.Join(dir, "ours.cc")
	try := func(stdin string, name string, args ...string) (string, error) {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "KRB5_CONFIG="+env["KRB5_CONFIG"], "KRB5CCNAME=FILE:"+ourCache, "LDAPSASL_NOCANON=on", "LC_ALL=C")
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	run := func(stdin string, name string, args ...string) string {
		t.Helper()
		out, err := try(stdin, name, args...)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		t.Logf("%s: %s", name, strings.TrimSpace(out))
		return out
	}
	run(env["READER_PASSWORD"]+"\n", "kinit", "-c", "FILE:"+mitCache, env["READER_USER"])
	b, err := os.ReadFile(mitCache)
	if err != nil {
		t.Fatal(err)
	}
	mit, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(kinit cache): %v", err)
	}
	ours := &Cache{DefaultPrincipal: mit.DefaultPrincipal}
	for _, c := range mit.Credentials {
		if !c.IsConfig() {
			ours.Credentials = append(ours.Credentials, c)
		}
	}
	if len(ours.Credentials) != 1 {
		t.Fatalf("kinit cache holds %d tickets, want 1", len(ours.Credentials))
	}
	service := "ldap/" + env["DC_HOST"]

	// First with one bit of the session key flipped: kvno must fail, which
	// shows it really uses the key we wrote.
	bad := *ours
	bad.Credentials = []Credential{ours.Credentials[0]}
	bad.Credentials[0].Key.KeyValue = append([]byte(nil), ours.Credentials[0].Key.KeyValue...)
	bad.Credentials[0].Key.KeyValue[0] ^= 1
	if err := WriteFile(ourCache, &bad, -1, -1); err != nil {
		t.Fatal(err)
	}
	if out, err := try("", "kvno", "-c", "FILE:"+ourCache, service); err == nil {
		t.Fatalf("kvno succeeded with a wrong session key: %s", out)
	}

	if err := WriteFile(ourCache, ours, -1, -1); err != nil {
		t.Fatal(err)
	}
	out := run("", "kvno", "-c", "FILE:"+ourCache, service)
	if !strings.Contains(out, service) || !strings.Contains(out, "kvno = ") {
		t.Errorf("kvno output: %s", out)
	}
	out = run("", "ldapwhoami", "-Q", "-Y", "GSSAPI", "-H", "ldap://"+env["DC_HOST"])
	if want := "u:CORP\\" + env["READER_USER"]; !strings.Contains(out, want) {
		t.Errorf("ldapwhoami said %q, want %q", strings.TrimSpace(out), want)
	}

	b, err = os.ReadFile(ourCache)
	if err != nil {
		t.Fatal(err)
	}
	after, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(cache after MIT used it): %v", err)
	}
	var servers []string
	for _, c := range after.Credentials {
		if !c.IsConfig() {
			servers = append(servers, c.Server.String())
		}
	}
	if got := strings.Join(servers, " "); !strings.Contains(got, service+"@") {
		t.Errorf("cache after kvno holds tickets for %s, want one for %s", got, service)
	}
	if out, err := after.MarshalBinary(); err != nil || string(out) != string(b) {
		t.Errorf("cache MIT appended to does not write back byte for byte (%v)", err)
	}
}
