package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gmsa-hook/gmsa-hook/test/awsfake"
)

// sambaDomain is what Samba's own tools say about the test domain: the
// SID and objectGUID from its sam.ldb (through Samba's Python bindings, as
// samba-tool reads them), and the names from samba-tool domain info.
func sambaDomain(t *testing.T, d *Domain) map[string]string {
	t.Helper()
	py := exec.Command("/usr/bin/python3", "-c", `
import sys
from samba.samdb import SamDB
from samba.param import LoadParm
from samba.auth import system_session
from samba.dcerpc import misc
lp = LoadParm(); lp.load(sys.argv[1])
s = SamDB(url=sys.argv[2], session_info=system_session(), lp=lp)
r = s.search(base=s.domain_dn(), scope=0, attrs=["objectGUID"])
print(s.get_domain_sid()); print(misc.GUID(r[0]["objectGUID"][0]))
`, filepath.Join(d.Dir, "samba/etc/smb.conf"), filepath.Join(d.Dir, "samba/private/sam.ldb"))
	out, err := py.CombinedOutput()
	if err != nil {
		t.Fatalf("samba's python: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	m := map[string]string{"Sid": f[0], "Guid": f[1]}
	info, err := exec.Command("samba-tool", "domain", "info", "127.0.0.1").CombinedOutput()
	if err != nil {
		t.Fatalf("samba-tool domain info: %v\n%s", err, info)
	}
	for _, l := range strings.Split(string(info), "\n") {
		k, v, _ := strings.Cut(l, ":")
		switch strings.TrimSpace(k) {
		case "Forest":
			m["DnsTreeName"] = strings.TrimSpace(v)
		case "Domain":
			m["DnsName"] = strings.TrimSpace(v)
		case "Netbios domain":
			m["NetBiosName"] = strings.TrimSpace(v)
		}
	}
	return m
}

// TestCredspecCreate: specs made from Linux alone carry the domain's
// identifiers as Samba reports them, and the spec, unchanged, gives a
// usable ticket with gmsa-hook fetch: domainless (the reader's secret, a
// plain path, named as a file:// URL) and domain-joined, a lower- and a
// mixed-case gMSA, to a file, SSM and S3. A gMSA the reader may not read
// gets its spec with a warning and its hint on stderr.
func TestCredspecCreate(t *testing.T) {
	d := testDomain(t)
	want := sambaDomain(t, d)
	f := awsfake.Start(t, awsfake.Options{})
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	os.WriteFile(creds, []byte("[gmsa]\naws_access_key_id = "+awsfake.AccessKeyID+"\naws_secret_access_key = "+awsfake.SecretAccessKey+"\n"), 0o600)
	awsConfig := filepath.Join(dir, "aws-config")
	os.WriteFile(awsConfig, []byte("[profile gmsa]\nregion = "+awsfake.Region+"\n"), 0o600)
	cfg := baseConfig(d)
	cfg["aws"] = map[string]any{"profile": "gmsa", "config_files": []string{awsConfig}, "credentials_files": []string{creds},
		"endpoints": map[string]string{"ssm": f.URL, "s3": f.URL}}
	config := writeJSON(t, dir, "config.json", cfg, 0o600)
	secret := filepath.Join(d.Dir, "reader-secret.json")

	for _, tc := range []struct {
		name, gmsa, out string
		args            []string
		domainless      bool
	}{
		{name: "domainless to a file", gmsa: "webapp01", out: filepath.Join(dir, "webapp01-domainless.json"), args: []string{"--secret", secret, "--domainless"}, domainless: true},
		{name: "domain-joined read as the host", gmsa: "webapp01", out: filepath.Join(dir, "webapp01.json"), args: []string{"--keytab", d.HostKeytab}},
		{name: "mixed case, domain-joined read as the reader", gmsa: "webapp02$", out: filepath.Join(dir, "webapp02.json"), args: []string{"--secret", secret}},
		{name: "domainless to ssm", gmsa: "webapp01", out: f.SSM.ARN("/gmsa/created/webapp01"), args: []string{"--secret", secret, "--domainless"}, domainless: true},
		{name: "domainless to s3", gmsa: "webapp01", out: awsfake.ARNOfObject("gmsa-specs", "created/webapp01.json"), args: []string{"--secret", secret, "--domainless"}, domainless: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.S3.Put("gmsa-specs", "placeholder", []byte("{}")) // the bucket
			args := append([]string{"credspec", "create", "--gmsa", tc.gmsa, "--domain", d.DNSDomain, "--config", config, "--out", tc.out}, tc.args...)
			r := runHook(t, []string{}, args...)
			assertNoSecrets(t, d, r.stdout+r.stderr)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			account := map[string]string{"webapp01": "webapp01", "webapp02$": "WebApp02"}[tc.gmsa]
			if w := "wrote credential spec for gMSA \"" + account + "$\" of " + d.DNSDomain + " (read from " + d.DCHost + ") to " + tc.out + "\n"; r.stdout != w {
				t.Errorf("stdout %q, want %q", r.stdout, w)
			}
			var b []byte
			switch {
			case strings.HasPrefix(tc.out, "arn:aws:ssm:"):
				p, _ := f.SSM.Get("/gmsa/created/webapp01")
				b = []byte(p.Value)
			case strings.HasPrefix(tc.out, "arn:aws:s3:"):
				b, _ = f.S3.Get("gmsa-specs", "created/webapp01.json")
			default:
				var err error
				if b, err = os.ReadFile(tc.out); err != nil {
					t.Fatal(err)
				}
				if fi, _ := os.Stat(tc.out); fi.Mode().Perm() != 0o644 {
					t.Errorf("mode %v", fi.Mode())
				}
			}
			var cs struct {
				DomainJoinConfig      map[string]string
				ActiveDirectoryConfig struct {
					GroupManagedServiceAccounts []map[string]string
					HostAccountConfig           *struct {
						PluginGUID  string
						PluginInput struct{ CredentialArn string }
					}
				}
			}
			if err := json.Unmarshal(b, &cs); err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			for k, v := range want {
				if cs.DomainJoinConfig[k] != v {
					t.Errorf("DomainJoinConfig.%s = %q, samba says %q", k, cs.DomainJoinConfig[k], v)
				}
			}
			if cs.DomainJoinConfig["MachineAccountName"] != account {
				t.Errorf("MachineAccountName %q, want %q", cs.DomainJoinConfig["MachineAccountName"], account)
			}
			scopes := cs.ActiveDirectoryConfig.GroupManagedServiceAccounts
			if len(scopes) != 2 || scopes[0]["Scope"] != want["DnsName"] || scopes[1]["Scope"] != want["NetBiosName"] || scopes[0]["Name"] != account || scopes[1]["Name"] != account {
				t.Errorf("GroupManagedServiceAccounts %v", scopes)
			}
			hac := cs.ActiveDirectoryConfig.HostAccountConfig
			if tc.domainless != (hac != nil) || (hac != nil && (hac.PluginGUID != "{859E1386-BDB4-49E8-85C7-3070B13920E1}" || hac.PluginInput.CredentialArn != "file://"+secret)) {
				t.Errorf("HostAccountConfig %+v", hac)
			}
			// The spec as written, unchanged, gives a ticket.
			src := tc.out
			if tc.domainless {
				src = "credentialspecdomainless:" + src
			}
			cc := filepath.Join(t.TempDir(), "krb5cc")
			if r := runHook(t, []string{}, "fetch", "--credspec", src, "--out", cc, "--config", config); r.code != 0 {
				t.Fatalf("fetch: exit %d\n%s", r.code, r.stderr)
			}
			checkUsable(t, d, cc, account+"$")
		})
	}

	// A gMSA whose password the reader may not retrieve: the spec is
	// written (it does not depend on the permission, which may be granted
	// later), and a warning names the reader and the fix.
	t.Run("warns of a gMSA the reader may not read", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "webapp03.json")
		r := runHook(t, []string{}, "credspec", "create", "--gmsa", "webapp03", "--domain", d.DNSDomain, "--secret", secret, "--domainless", "--config", config, "--out", out)
		assertNoSecrets(t, d, r.stdout+r.stderr)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		if w := "wrote credential spec for gMSA \"webapp03$\" of " + d.DNSDomain + " (read from " + d.DCHost + ") to " + out + "\n"; r.stdout != w {
			t.Errorf("stdout %q, want %q", r.stdout, w)
		}
		want := "gmsa-hook: warning: " + d.ReaderUser + "@" + d.Realm + ` reading gMSA "webapp03$": not permitted to retrieve the managed password` + "\n" +
			"gmsa-hook: hint: add the reading account to PrincipalsAllowedToRetrieveManagedPassword (msDS-GroupMSAMembership) of the gMSA\n"
		if r.stderr != want {
			t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, want)
		}
		if _, err := os.Stat(out); err != nil {
			t.Errorf("no spec written: %v", err)
		}
	})

	// What is not an enabled gMSA is refused, and nothing is written.
	for _, tc := range []struct{ name, gmsa, want, hint string }{
		{"a user account", d.ReaderUser, `^create credential spec of "gmsa-reader" in corp.example.test: not a group managed service account: gmsa-reader is a user account \(CN=gmsa-reader,CN=Users,DC=corp,DC=example,DC=test\)$`, `name a group Managed Service Account`},
		{"a disabled gMSA", "webapp04", `^create credential spec of "webapp04" in corp.example.test: gMSA is disabled \(CN=webapp04,CN=Managed Service Accounts,DC=corp,DC=example,DC=test\)$`, `enable the gMSA account`},
		{"a missing name", "webapp99", `^create credential spec of "webapp99" in corp.example.test: no such gMSA: no account webapp99\$ or webapp99 in corp.example.test \(asked dc1.corp.example.test as "gmsa-reader@CORP.EXAMPLE.TEST"\)$`, `check the gMSA name`},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "spec.json")
			r := runHook(t, []string{}, "credspec", "create", "--gmsa", tc.gmsa, "--domain", d.DNSDomain, "--secret", secret, "--config", config, "--out", out)
			assertNoSecrets(t, d, r.stdout+r.stderr)
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if r.code != 1 || r.stdout != "" || len(lines) != 2 {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
			}
			if msg, ok := strings.CutPrefix(lines[0], "gmsa-hook: error: "); !ok || !regexp.MustCompile(tc.want).MatchString(msg) {
				t.Errorf("error line:\n%s\nwant match for\n%s", lines[0], tc.want)
			}
			if !strings.HasPrefix(lines[1], "gmsa-hook: hint: ") || !strings.Contains(lines[1], tc.hint) {
				t.Errorf("hint line %q, want %q", lines[1], tc.hint)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a spec was written")
			}
		})
	}
}

// TestCredspecCheck: a spec of the test domain passes (the missing SPNs
// are a warning); a gMSA the reader may not read and a spec with another
// domain's SID fail with the finding and its hint.
func TestCredspecCheck(t *testing.T) {
	d := testDomain(t)
	dir := t.TempDir()
	config := writeJSON(t, dir, "config.json", baseConfig(d), 0o600)
	b, _ := os.ReadFile(d.Credspec("webapp01-domainless"))
	var m map[string]any
	json.Unmarshal(b, &m)
	m["DomainJoinConfig"].(map[string]any)["Sid"] = "S-1-5-21-1-2-3"
	tampered := writeJSON(t, dir, "tampered.json", m, 0o644)
	for _, tc := range []struct {
		name, spec string
		code       int
		line, hint string
	}{
		{"good", d.Credspec("webapp01-domainless"), 0, `warn  SPNs  +gMSA "webapp01\$": the gMSA has no service principal names`, "samba-tool spn add"},
		{"not readable", d.Credspec("webapp03-domainless"), 1, `fail  password +gmsa-reader@CORP.EXAMPLE.TEST reading gMSA "webapp03\$": not permitted to retrieve the managed password`, "PrincipalsAllowedToRetrieveManagedPassword"},
		{"another domain's sid", tampered, 1, `fail  DomainJoinConfig.Sid +DomainJoinConfig.Sid "S-1-5-21-1-2-3" does not match the directory: it says "S-1-5-21-`, "gmsa-hook credspec create"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runHook(t, []string{}, "credspec", "check", tc.spec, "--config", config)
			assertNoSecrets(t, d, r.stdout+r.stderr)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\n%s", r.code, tc.code, r.stderr)
			}
			if !regexp.MustCompile(`(?m)^`+tc.line).MatchString(r.stdout) || !strings.Contains(r.stdout, "      hint: ") || !strings.Contains(r.stdout, tc.hint) {
				t.Errorf("stdout:\n%s\nwant a line matching %s and a hint with %q", r.stdout, tc.line, tc.hint)
			}
			if tc.code == 1 && !strings.HasPrefix(r.stderr, "gmsa-hook: error: credential spec "+tc.spec+": 1 of ") {
				t.Errorf("stderr:\n%s", r.stderr)
			}
		})
	}
}

// TestCredspecCreateInContainer: a spec that credspec create writes into a
// directory the policy admits, unchanged, gives a runc container labelled
// with it (file://NAME.json, as an operator labels one) a ticket its probe
// uses: domainless (the reader in a file:// secret) and domain-joined (the
// host keytab of the config).
func TestCredspecCreateInContainer(t *testing.T) {
	d := testDomain(t)
	rt := runtimeFor(t, "runc")
	specDir := t.TempDir()
	env := newHookEnv(t, d, map[string]any{"policy": map[string]any{
		"credspec_dirs": []string{specDir}, "secret_dirs": []string{d.Dir}, "domains": []string{d.DNSDomain}}})
	secret := filepath.Join(d.Dir, "reader-secret.json")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"domainless", []string{"--secret", secret, "--domainless"}},
		{"domain-joined", []string{"--keytab", d.HostKeytab}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := "created-" + tc.name + ".json"
			args := append([]string{"credspec", "create", "--gmsa", "webapp01", "--domain", d.DNSDomain, "--config", env.config,
				"--out", filepath.Join(specDir, file)}, tc.args...)
			if r := runHook(t, []string{}, args...); r.code != 0 || r.stderr != "" {
				t.Fatalf("credspec create: exit %d\n%s", r.code, r.stderr)
			}
			id := "created-" + tc.name
			b := env.bundle(t, container{args: []string{"/probe"}, uid: 1000, gid: 1000,
				annotations: map[string]string{"credentialspec": "file://" + file}})
			out, err := rt.exec(t, "run", "--bundle", b, id)
			assertNoSecrets(t, d, out)
			if err != nil {
				t.Fatalf("runc run %s: %v\n%s", id, err, out)
			}
			if !strings.Contains(out, "probe: uid=1000 read-only\n") || !strings.Contains(out, probeOK(d)) {
				t.Errorf("%s: the probe did not use the ticket:\n%s", id, out)
			}
			env.assertClean(t, rt, id)
		})
	}
}
