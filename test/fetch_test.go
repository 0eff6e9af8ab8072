package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/fetcher/kdc"
	"github.com/gmsa-hook/gmsa-hook/hook/config"
)

// baseConfig talks to the test DC only: nothing reaches the system resolver.
func baseConfig(d *Domain) map[string]any {
	return map[string]any{
		"domain_controllers": []string{d.DCHost},
		"dns_server":         "127.0.0.1:53",
		"keytab":             d.HostKeytab,
	}
}

func writeJSON(t *testing.T, dir, name string, v any, mode os.FileMode) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

type run struct {
	stdout, stderr string
	code           int
}

func runHook(t *testing.T, env []string, args ...string) run {
	t.Helper()
	return runHookInput(t, env, "", args...)
}

// runHookInput is runHook with stdin, e.g. a container state.
func runHookInput(t *testing.T, env []string, stdin string, args ...string) run {
	t.Helper()
	cmd := exec.Command(gmsaHook(t), args...)
	cmd.Env = env
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := run{stdout: o.String(), stderr: e.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// mit runs an MIT Kerberos or OpenLDAP tool with the cache at cc.
func mit(t *testing.T, d *Domain, cc string, args ...string) string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{"KRB5CCNAME=FILE:" + cc, "KRB5_CONFIG=" + d.KRB5Config, "PATH=/usr/bin:/bin:/usr/sbin:/sbin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// checkUsable proves the cache is accepted by MIT klist, gets a service
// ticket with kvno, and binds to LDAP as the gMSA.
func checkUsable(t *testing.T, d *Domain, cc, account string) {
	t.Helper()
	fi, err := os.Stat(cc)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("cache mode %04o, want 0600", fi.Mode().Perm())
	}
	principal := account + "@" + d.Realm
	if out := mit(t, d, cc, "klist", "-e"); !strings.Contains(out, "Default principal: "+principal) || !strings.Contains(out, "krbtgt/"+d.Realm+"@"+d.Realm) {
		t.Errorf("klist does not show %s's TGT:\n%s", principal, out)
	}
	if out := mit(t, d, cc, "kvno", "ldap/"+d.DCHost); !strings.Contains(out, "ldap/"+d.DCHost+"@"+d.Realm+": kvno = ") {
		t.Errorf("kvno ldap/%s:\n%s", d.DCHost, out)
	}
	if out := mit(t, d, cc, "ldapwhoami", "-N", "-Y", "GSSAPI", "-H", "ldap://"+d.DCHost); !strings.Contains(out, `u:CORP\`+account) {
		t.Errorf("ldapwhoami as the gMSA:\n%s", out)
	}
}

func TestFetchWorks(t *testing.T) {
	d := testDomain(t)
	krb5 := filepath.Join(t.TempDir(), "krb5.conf")
	os.WriteFile(krb5, []byte("[libdefaults]\n default_realm = "+d.Realm+"\n[realms]\n "+d.Realm+" = {\n  kdc = "+d.DCHost+"\n }\n"), 0o644)
	cases := []struct {
		name, credspec, account string
		config                  func(map[string]any)
		args                    []string
	}{
		{name: "domainless", credspec: "webapp01-domainless", account: "webapp01$"},
		{name: "domain-joined with the host keytab", credspec: "webapp01", account: "webapp01$"},
		{name: "mixed-case name, domainless", credspec: "webapp02-domainless", account: "WebApp02$"},
		{name: "mixed-case name, host keytab", credspec: "webapp02", account: "WebApp02$"},
		{name: "dcs from dns srv records", credspec: "webapp01-domainless", account: "webapp01$",
			config: func(c map[string]any) { delete(c, "domain_controllers") }},
		{name: "dcs from krb5.conf when dns has no srv records", credspec: "webapp01-domainless", account: "webapp01$",
			config: func(c map[string]any) { delete(c, "domain_controllers"); c["dns_server"] = "127.0.0.1:1" },
			args:   []string{"--krb5-conf", krb5}},
		{name: "ldaps", credspec: "webapp01-domainless", account: "webapp01$",
			config: func(c map[string]any) { c["ldaps"] = true; c["ldaps_ca_file"] = d.TLSCA }},
		{name: "allow_rc4 still logs in with aes", credspec: "webapp01", account: "webapp01$",
			config: func(c map[string]any) { c["allow_rc4"] = true }},
		{name: "failover past a dead dc", credspec: "webapp01-domainless", account: "webapp01$",
			config: func(c map[string]any) { c["domain_controllers"] = []string{"127.0.0.2", d.DCHost} }},
		{name: "ecs prefix and file url", credspec: "credentialspecdomainless:file://" + d.Credspec("webapp01-domainless"), account: "webapp01$"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := baseConfig(d)
			if tc.config != nil {
				tc.config(cfg)
			}
			src := tc.credspec
			if !strings.Contains(src, ":") {
				src = d.Credspec(src)
			}
			out := filepath.Join(dir, "krb5cc")
			args := append([]string{"fetch", "--credspec", src, "--out", out, "--config", writeJSON(t, dir, "config.json", cfg, 0o600)}, tc.args...)
			r := runHook(t, nil, args...)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			if r.stderr != "" {
				t.Errorf("stderr not empty: %s", r.stderr)
			}
			if !strings.Contains(r.stdout, "wrote ticket for "+tc.account+"@"+d.Realm) {
				t.Errorf("stdout: %s", r.stdout)
			}
			checkUsable(t, d, out, tc.account)
		})
	}
}

func TestFetchErrors(t *testing.T) {
	d := testDomain(t)
	dir := t.TempDir()
	spec := func(name string, mut func(map[string]any)) string {
		b, err := os.ReadFile(d.Credspec(name))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		mut(m)
		return writeJSON(t, dir, name+"-"+strings.ReplaceAll(t.Name(), "/", "_")+time.Now().Format("150405.000000000")+".json", m, 0o644)
	}
	withSecret := func(secret map[string]any, mode os.FileMode) string {
		p := writeJSON(t, dir, "secret-"+time.Now().Format("150405.000000000")+".json", secret, mode)
		return spec("webapp01-domainless", func(m map[string]any) {
			ad := m["ActiveDirectoryConfig"].(map[string]any)
			ad["HostAccountConfig"].(map[string]any)["PluginInput"] = map[string]any{"CredentialArn": "file://" + p}
		})
	}
	gmsa := func(name string) string {
		return spec("webapp01-domainless", func(m map[string]any) {
			m["ActiveDirectoryConfig"].(map[string]any)["GroupManagedServiceAccounts"] = []any{map[string]any{"Name": name, "Scope": d.DNSDomain}}
		})
	}
	malformed := filepath.Join(dir, "malformed.json")
	os.WriteFile(malformed, []byte(`{"CmsPlugins": ["ActiveDirectory"], `), 0o644)
	wrongKeytab := filepath.Join(dir, "wrong.keytab")
	kt := exec.Command("ktutil")
	kt.Stdin = strings.NewReader("addent -password -p " + d.HostPrincipal + " -k 1 -e aes256-cts-hmac-sha1-96\nNot-The-Machine-Passw0rd\nwkt " + wrongKeytab + "\nquit\n")
	if out, err := kt.CombinedOutput(); err != nil {
		t.Fatalf("ktutil: %v\n%s", err, out)
	}
	// A "DC" that accepts connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.3:88")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	cases := []struct {
		name, credspec string
		config         func(map[string]any)
		args           []string
		want, hint     string // regular expressions for the error and the hint
		noOutDir       bool   // --out names a file in a directory that does not exist
	}{
		{name: "output directory missing", credspec: d.Credspec("webapp01-domainless"), noOutDir: true,
			want: `^write credential cache /\S+/out/krb5cc: open /\S+/out/\.krb5cc\.tmp-\d+: no such file or directory$`, hint: `check the path`},
		{name: "malformed credspec", credspec: malformed,
			want: `^read credential spec: credential spec /\S+/malformed.json: malformed credential spec: `, hint: `CredSpec format`},
		{name: "incomplete credspec", credspec: spec("webapp01", func(m map[string]any) { delete(m, "ActiveDirectoryConfig") }),
			want: `malformed credential spec: ActiveDirectoryConfig.GroupManagedServiceAccounts is empty$`, hint: `CredSpec format`},
		{name: "missing credspec", credspec: filepath.Join(dir, "nope.json"),
			want: `^read credential spec: open /\S+/nope.json: no such file or directory$`, hint: `check the path`},
		{name: "domainless prefix on a domain-joined spec", credspec: "credentialspecdomainless:" + d.Credspec("webapp01"),
			want: `the credentialspecdomainless: prefix needs HostAccountConfig in the spec$`, hint: `CredSpec format`},
		{name: "secret readable by others", credspec: withSecret(map[string]any{"username": d.ReaderUser, "password": d.ReaderPassword, "domainName": d.DNSDomain}, 0o644),
			want: `^read reader secret for gMSA "webapp01\$": /\S+: secret file is readable by others \(mode 0644\)$`, hint: `chmod 600`},
		{name: "secret missing a key", credspec: withSecret(map[string]any{"username": d.ReaderUser, "domainName": d.DNSDomain}, 0o600),
			want: `secret has no "password" \(or "passwordOfStandardUserAccount"\)$`, hint: `CredSpec`},
		{name: "wrong reader password", credspec: d.Credspec("webapp01-wrongpw"),
			want: `^log in as "gmsa-reader@CORP.EXAMPLE.TEST" at dc1.corp.example.test:88: wrong password or key \(kerberos error 24 kdc_err_preauth_failed\)$`, hint: `reader's password`},
		{name: "unknown reader", credspec: withSecret(map[string]any{"username": "no-such-reader", "password": "x", "domainName": d.DNSDomain}, 0o600),
			want: `^log in as "no-such-reader@CORP.EXAMPLE.TEST" at dc1.corp.example.test:88: no such account \(kerberos error 6 kdc_err_c_principal_unknown\)$`, hint: `user name and domainName`},
		{name: "unknown gMSA", credspec: gmsa("webapp99"),
			want: `^read password of gMSA "webapp99\$" as "gmsa-reader@CORP.EXAMPLE.TEST" from dc1.corp.example.test: no such gMSA in DC=corp,DC=example,DC=test$`, hint: `check the gMSA name`},
		{name: "reader not permitted", credspec: d.Credspec("webapp03-domainless"),
			want: `^read password of gMSA "webapp03\$" as "gmsa-reader@CORP.EXAMPLE.TEST" from dc1.corp.example.test: not permitted to retrieve the managed password$`, hint: `PrincipalsAllowedToRetrieveManagedPassword`},
		{name: "outsider not permitted", credspec: d.Credspec("webapp01-outsider"),
			want: `^read password of gMSA "webapp01\$" as "gmsa-outsider@CORP.EXAMPLE.TEST" from dc1.corp.example.test: not permitted to retrieve the managed password$`, hint: `PrincipalsAllowedToRetrieveManagedPassword`},
		{name: "host not permitted", credspec: d.Credspec("webapp03"),
			want: `^read password of gMSA "webapp03\$" as "gmsahost\$@CORP.EXAMPLE.TEST" from dc1.corp.example.test: not permitted to retrieve the managed password$`, hint: `PrincipalsAllowedToRetrieveManagedPassword`},
		{name: "gMSA disabled", credspec: d.Credspec("webapp04-domainless"),
			want: `^read password of gMSA "webapp04\$" from dc1.corp.example.test: gMSA is disabled$`, hint: `enable the gMSA`},
		{name: "keytab missing", credspec: d.Credspec("webapp01"), args: []string{"--keytab", filepath.Join(dir, "none.keytab")},
			want: `^read host keytab for gMSA "webapp01\$": unusable keytab /\S+/none.keytab: `, hint: `join the host to the domain`},
		{name: "keytab with wrong keys", credspec: d.Credspec("webapp01"), args: []string{"--keytab", wrongKeytab},
			want: `^log in as "gmsahost\$@CORP.EXAMPLE.TEST" at dc1.corp.example.test:88: wrong password or key`, hint: `re-export the host keytab`},
		{name: "no dc reachable", credspec: d.Credspec("webapp01-domainless"),
			config: func(c map[string]any) { c["domain_controllers"] = []string{"127.0.0.2"} },
			want:   `^log in as "gmsa-reader@CORP.EXAMPLE.TEST" at 127.0.0.2:88: no kdc reachable \(127.0.0.2:88: dial tcp 127.0.0.2:88: connect: connection refused\)$`, hint: `answer on ports 88 and 389`},
		{name: "dc silent past the deadline", credspec: d.Credspec("webapp01-domainless"), args: []string{"--timeout", "1s"},
			config: func(c map[string]any) { c["domain_controllers"] = []string{"127.0.0.3"} },
			want:   `^log in as "gmsa-reader@CORP.EXAMPLE.TEST" at 127.0.0.3:88: gave up at the deadline of 1s: `, hint: `raise "timeout"`},
		{name: "no dc found", credspec: d.Credspec("webapp01-domainless"), args: []string{"--krb5-conf", filepath.Join(dir, "none.conf")},
			config: func(c map[string]any) { delete(c, "domain_controllers"); c["dns_server"] = "127.0.0.1:1" },
			want:   `^find domain controllers of corp.example.test: no domain controller found: no dns srv records for corp.example.test `, hint: `domain_controllers`},
		{name: "ldap refuses an unprotected bind", credspec: d.Credspec("webapp01-domainless"),
			config: func(c map[string]any) { c["ldap_security"] = "none" },
			want:   `^read password of gMSA "webapp01\$" as "gmsa-reader@CORP.EXAMPLE.TEST" from dc1.corp.example.test: ldap server refused the security layer: `, hint: `leave ldap_security unset`},
		{name: "ldap refuses the password over a signed-only bind", credspec: d.Credspec("webapp01-domainless"),
			config: func(c map[string]any) { c["ldap_security"] = "sign" },
			want:   `^read password of gMSA "webapp01\$" as "gmsa-reader@CORP.EXAMPLE.TEST" from dc1.corp.example.test: ldap server refused the security layer: .*encrypted connection`, hint: `leave ldap_security unset`},
		{name: "unknown config key", credspec: d.Credspec("webapp01-domainless"),
			config: func(c map[string]any) { c["domain_controler"] = "x" },
			want:   `^config /\S+: bad configuration: unknown key "domain_controler"$`, hint: `configuration keys`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cdir := t.TempDir()
			cfg := baseConfig(d)
			if tc.config != nil {
				tc.config(cfg)
			}
			out := filepath.Join(cdir, "out", "krb5cc")
			if !tc.noOutDir {
				os.Mkdir(filepath.Dir(out), 0o700)
			}
			args := append([]string{"fetch", "--credspec", tc.credspec, "--out", out, "--config", writeJSON(t, cdir, "config.json", cfg, 0o600)}, tc.args...)
			start := time.Now()
			r := runHook(t, nil, args...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			msg, ok := strings.CutPrefix(lines[0], "gmsa-hook: error: ")
			if !ok || !regexp.MustCompile(tc.want).MatchString(msg) {
				t.Errorf("error line:\n%s\nwant match for:\n%s", lines[0], tc.want)
			}
			hints := lines[1:]
			if len(hints) == 0 || !regexp.MustCompile(tc.hint).MatchString(strings.Join(hints, "\n")) {
				t.Errorf("hints:\n%s\nwant match for %q", strings.Join(hints, "\n"), tc.hint)
			}
			for _, h := range hints {
				if !strings.HasPrefix(h, "gmsa-hook: hint: ") {
					t.Errorf("not a hint line: %q", h)
				}
			}
			if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
				t.Errorf("left behind in the output directory: %v", ents)
			}
			if el := time.Since(start); el > 25*time.Second {
				t.Errorf("took %s, past the 20 s default deadline", el)
			}
			assertNoSecrets(t, d, r.stderr)
		})
	}
}

// TestFetchClockSkew shows a host clock an hour slow is reported as skew by
// the real KDC. The clock is moved for pre-authentication only.
func TestFetchClockSkew(t *testing.T) {
	d := testDomain(t)
	cfg := fetcher.Config{DomainControllers: []string{d.DCHost}, DNSServer: "127.0.0.1:53"}
	_, err := fetcher.Fetch(context.Background(), fetcher.Request{
		Source: d.Credspec("webapp01-domainless"), Config: cfg,
		Now: func() time.Time { return time.Now().Add(-time.Hour) },
	})
	if !errors.Is(err, kdc.ErrSkew) {
		t.Fatalf("err = %v, want clock skew", err)
	}
	want := regexp.MustCompile(`^log in as "gmsa-reader@CORP.EXAMPLE.TEST" at dc1.corp.example.test:88: clock skew too great: kdc time \S+, ours \S+ \(kerberos error 37 krb_ap_err_skew\)$`)
	if !want.MatchString(err.Error()) {
		t.Errorf("error:\n%s\nwant match for %s", err, want)
	}
}

// TestFetchFailsOverPastSilentDC: a DC that accepts connections and never
// answers gets only its share of the deadline; the next DC serves.
func TestFetchFailsOverPastSilentDC(t *testing.T) {
	d := testDomain(t)
	silent, err := net.Listen("tcp", "127.0.0.5:88")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	cfg := fetcher.Config{DomainControllers: []string{"127.0.0.5", d.DCHost}, DNSServer: "127.0.0.1:53", Timeout: config.Duration(4 * time.Second)}
	start := time.Now()
	res, err := fetcher.Fetch(context.Background(), fetcher.Request{Source: d.Credspec("webapp01-domainless"), Config: cfg})
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if res.Account != "webapp01$" || res.DC != d.DCHost {
		t.Errorf("got %s from %s", res.Account, res.DC)
	}
	// The silent KDC costs its share of the deadline once: the KDC that
	// answered is asked first afterwards.
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("served after %s, want the silent DC skipped after its first share (2s)", el)
	}
}

// TestFetchRefusesForeignSecret: a secret file owned by another user is
// refused even with mode 0600.
func TestFetchRefusesForeignSecret(t *testing.T) {
	d := testDomain(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	secret := writeJSON(t, dir, "secret.json", map[string]any{"username": d.ReaderUser, "password": d.ReaderPassword, "domainName": d.DNSDomain}, 0o600)
	if err := os.Chown(secret, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	var cs map[string]any
	b, _ := os.ReadFile(d.Credspec("webapp01-domainless"))
	json.Unmarshal(b, &cs)
	cs["ActiveDirectoryConfig"].(map[string]any)["HostAccountConfig"].(map[string]any)["PluginInput"] = map[string]any{"CredentialArn": "file://" + secret}
	spec := writeJSON(t, dir, "spec.json", cs, 0o644)
	out := filepath.Join(dir, "krb5cc")
	r := runHook(t, nil, "fetch", "--credspec", spec, "--out", out, "--config", writeJSON(t, dir, "config.json", baseConfig(d), 0o600))
	want := `gmsa-hook: error: read reader secret for gMSA "webapp01$": ` + secret + ": secret file belongs to another user (uid 1000)\ngmsa-hook: hint: the secret file must belong to root: chown root FILE\n"
	if r.code != 1 || r.stderr != want {
		t.Errorf("exit %d, stderr:\n%s\nwant:\n%s", r.code, r.stderr, want)
	}
	assertNoSecrets(t, d, r.stderr)
}

// TestFetchLog: with log_file set, each fetch appends one JSON line that
// says where the time went, and a failed one says why; neither holds a
// secret.
func TestFetchLog(t *testing.T) {
	d := testDomain(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "gmsa-hook.log")
	cfg := baseConfig(d)
	cfg["log_file"] = log
	cfgPath := writeJSON(t, dir, "config.json", cfg, 0o600)
	if r := runHook(t, nil, "fetch", "--credspec", d.Credspec("webapp01-domainless"), "--out", filepath.Join(dir, "cc"), "--config", cfgPath); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if r := runHook(t, nil, "fetch", "--credspec", d.Credspec("webapp03-domainless"), "--out", filepath.Join(dir, "cc3"), "--config", cfgPath); r.code == 0 {
		t.Fatal("fetch of webapp03 succeeded")
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecrets(t, d, string(b))
	if fi, err := os.Stat(log); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode: %v %v, want 0600", fi.Mode().Perm(), err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2:\n%s", len(lines), b)
	}
	type line struct {
		Level, Msg, Account, Credspec, Error string
		Steps                                map[string]float64 `json:"steps_ms"`
		Elapsed                              float64            `json:"elapsed_ms"`
	}
	var ok, failed line
	if err := json.Unmarshal([]byte(lines[0]), &ok); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &failed); err != nil {
		t.Fatal(err)
	}
	if ok.Msg != "fetch" || ok.Level != "INFO" || ok.Account != "webapp01$@"+d.Realm || ok.Credspec != d.Credspec("webapp01-domainless") {
		t.Errorf("success line: %+v", ok)
	}
	var sum float64
	for _, s := range []string{"credspec", "locate", "login", "ldap", "gmsa"} {
		v, found := ok.Steps[s]
		if !found || v <= 0 {
			t.Errorf("step %q: %v, %v in %v", s, v, found, ok.Steps)
		}
		sum += v
	}
	if sum > ok.Elapsed {
		t.Errorf("steps add up to %.2f ms, more than the fetch's %.2f ms", sum, ok.Elapsed)
	}
	if failed.Level != "ERROR" || !strings.Contains(failed.Error, "not permitted to retrieve the managed password") || failed.Steps != nil {
		t.Errorf("failure line: %+v", failed)
	}
}
