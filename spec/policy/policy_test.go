package policy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/spec"
)

// credspec is a valid spec of gMSA name in domain; secret, when set, makes
// it domainless with that CredentialArn.
func credspec(name, domain, secret string) string {
	hac := ""
	if secret != "" {
		hac = fmt.Sprintf(`,"HostAccountConfig":{"PortableCcgVersion":"1","PluginGUID":"{859E1386-BDB4-49E8-85C7-3070B13920E1}","PluginInput":{"CredentialArn":%q}}`, secret)
	}
	return fmt.Sprintf(`{"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"Sid":"S-1-5-21-1-2-3","MachineAccountName":%q,"Guid":"f74ae2d8-4be5-49c4-8db9-34aeb71c455d","DnsTreeName":%q,"DnsName":%q,"NetBiosName":"CORP"},"ActiveDirectoryConfig":{"GroupManagedServiceAccounts":[{"Name":%q,"Scope":%q}]%s}}`,
		name, domain, domain, name, domain, hac)
}

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// fixture is a host with a credential spec directory, a secret directory
// and a krb5.conf naming CORP.EXAMPLE.TEST, as an operator sets one up.
type fixture struct {
	specs, secrets, outside string
	cfg                     config.Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{specs: filepath.Join(root, "credspecs"), secrets: filepath.Join(root, "secrets"), outside: filepath.Join(root, "outside")}
	for _, d := range []string{f.specs, f.secrets, f.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(f.secrets, "reader.json")
	write(t, secret, `{"username":"gmsa-reader","password":"Passw0rd-not-printed","domainName":"corp.example.test"}`, 0o600)
	write(t, filepath.Join(f.specs, "webapp01.json"), credspec("webapp01", "corp.example.test", ""), 0o644)
	write(t, filepath.Join(f.specs, "team/webapp02.json"), credspec("webapp02", "corp.example.test", "file://"+secret), 0o644)
	write(t, filepath.Join(f.specs, "evil-domain.json"), credspec("webapp01", "attacker.example", ""), 0o644)
	write(t, filepath.Join(f.specs, "secret-outside.json"), credspec("webapp01", "corp.example.test", "file://"+filepath.Join(f.outside, "reader.json")), 0o644)
	write(t, filepath.Join(f.specs, "secret-arn.json"), credspec("webapp01", "corp.example.test", "arn:aws:secretsmanager:us-east-1:123456789012:secret:reader"), 0o644)
	write(t, filepath.Join(f.outside, "reader.json"), `{"username":"u","password":"p","domainName":"corp.example.test"}`, 0o600)
	write(t, filepath.Join(f.outside, "webapp01.json"), credspec("webapp01", "corp.example.test", ""), 0o644)
	write(t, filepath.Join(f.outside, "other-secret.json"), `{"username":"u","password":"p","domainName":"other.example"}`, 0o600)
	write(t, filepath.Join(f.specs, "other-reader.json"), credspec("webapp01", "corp.example.test", "file://"+filepath.Join(f.secrets, "other.json")), 0o644)
	write(t, filepath.Join(f.secrets, "other.json"), `{"username":"u","password":"p","domainName":"other.example"}`, 0o600)
	if err := os.Symlink(filepath.Join(f.outside, "webapp01.json"), filepath.Join(f.specs, "link-out.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("webapp01.json", filepath.Join(f.specs, "link-in.json")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(f.specs, "fifo.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	krb5 := filepath.Join(root, "krb5.conf")
	write(t, krb5, "[libdefaults]\n\tdefault_realm = CORP.EXAMPLE.TEST\n[realms]\n\tCORP.EXAMPLE.TEST = {\n\t\tkdc = dc1.corp.example.test\n\t}\n", 0o644)
	f.cfg = config.Config{KRB5Conf: krb5, Policy: &config.Policy{CredSpecDirs: []string{f.specs}, SecretDirs: []string{f.secrets}}}
	return f
}

// admit runs every step the hook runs for a label.
func admit(c *Checker, raw string, ct Container) (string, error) {
	l, err := c.Source(raw)
	if err != nil {
		return "", err
	}
	cs, err := c.Load(context.Background(), l, nil)
	if err != nil {
		return "", err
	}
	rule, err := c.Decide(cs, ct)
	if err != nil {
		return "", err
	}
	if cs.Domainless() {
		if _, err := c.Secret(context.Background(), cs, nil); err != nil {
			return "", err
		}
	}
	return rule, nil
}

func TestLabels(t *testing.T) {
	f := newFixture(t)
	c := New(f.cfg)
	dirRule := "a label may name a credential spec only as file://NAME.json in " + f.specs + ", or an absolute path inside it"
	tests := []struct {
		name, label string
		want        string // "" for allowed; else the exact error
		refused     bool   // the error is a policy refusal
	}{
		{name: "file url name", label: "file://webapp01.json"},
		{name: "file url name with ecs prefix", label: "credentialspec:file://webapp01.json"},
		{name: "file url in a subdirectory, domainless", label: "credentialspecdomainless:file://team/webapp02.json"},
		{name: "absolute path inside", label: f.specs + "/webapp01.json"},
		{name: "file url of an absolute path inside", label: "file://" + f.specs + "/webapp01.json"},
		{name: "symlink staying inside", label: "file://link-in.json"},
		{name: "relative path from the image", label: "rootfs/app/spec.json", refused: true,
			want: `credential spec "rootfs/app/spec.json" refused by policy: ` + dirRule},
		{name: "valid spec outside the directory", label: f.outside + "/webapp01.json", refused: true,
			want: fmt.Sprintf(`credential spec %q refused by policy: `+dirRule, f.outside+"/webapp01.json")},
		{name: "host file", label: "file:///etc/shadow", refused: true,
			want: `credential spec "file:///etc/shadow" refused by policy: ` + dirRule},
		{name: "dot dot in a name", label: "file://../outside/webapp01.json", refused: true,
			want: `credential spec "file://../outside/webapp01.json" refused by policy: ` + dirRule + ` (no "..", no query)`},
		{name: "dot dot in an absolute path", label: f.specs + "/../outside/webapp01.json", refused: true,
			want: fmt.Sprintf(`credential spec %q refused by policy: `+dirRule, f.specs+"/../outside/webapp01.json")},
		{name: "ssm arn not allowed", label: "arn:aws:ssm:us-east-1:123456789012:parameter/gmsa/webapp01", refused: true,
			want: `credential spec "arn:aws:ssm:us-east-1:123456789012:parameter/gmsa/webapp01" refused by policy: the policy allows no such ARN from labels (policy key "credspec_arns")`},
		{name: "symlink leading out", label: "file://link-out.json",
			want: "credential spec file://link-out.json: link-out.json: leads outside the directory " + f.specs},
		{name: "fifo", label: "file://fifo.json",
			want: "credential spec file://fifo.json: " + f.specs + "/fifo.json: not a regular file"},
		{name: "missing", label: "file://nope.json",
			want: "credential spec file://nope.json: " + f.specs + "/nope.json: file does not exist"},
		{name: "unconfigured domain", label: "file://evil-domain.json", refused: true,
			want: `gMSA "webapp01" of attacker.example refused by policy: the domain is neither in the policy's "domains" nor a realm of ` + f.cfg.KRB5Conf},
		{name: "secret outside the secret directory", label: "file://secret-outside.json", refused: true,
			want: fmt.Sprintf(`reader secret %q refused by policy: a label spec's secret must lie in %s (policy key "secret_dirs")`, "file://"+f.outside+"/reader.json", f.secrets)},
		{name: "secret arn not allowed", label: "file://secret-arn.json", refused: true,
			want: `reader secret "arn:aws:secretsmanager:us-east-1:123456789012:secret:reader" refused by policy: the policy allows no such ARN for secrets of label specs (policy key "secret_arns")`},
		{name: "reader of another domain", label: "file://other-reader.json", refused: true,
			want: fmt.Sprintf(`reader domain "other.example" of secret %s refused by policy: the domain is neither in the policy's "domains" nor a realm of %s`, "file://"+f.secrets+"/other.json", f.cfg.KRB5Conf)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { _, err := admit(c, tt.label, Container{}); done <- err }()
			err := <-done
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got %v\nwant %s", err, tt.want)
			}
			if errors.Is(err, ErrRefused) != tt.refused {
				t.Errorf("errors.Is(err, ErrRefused) = %v", !tt.refused)
			}
			if strings.Contains(err.Error(), "Passw0rd") {
				t.Errorf("error shows a password: %v", err)
			}
		})
	}
}

func TestUntrustedDirectory(t *testing.T) {
	f := newFixture(t)
	if err := os.Chmod(f.specs, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := admit(New(f.cfg), "file://webapp01.json", Container{})
	if want := fmt.Sprintf("credential spec file://webapp01.json: %s: directory is writable by others than its owner, or not owned by root (mode 0777)", f.specs); err == nil || err.Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}
	if !errors.Is(err, spec.ErrUntrustedDir) {
		t.Error("error does not match spec.ErrUntrustedDir")
	}
}

func TestSecretModes(t *testing.T) {
	f := newFixture(t)
	if err := os.Chmod(filepath.Join(f.secrets, "reader.json"), 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := admit(New(f.cfg), "file://team/webapp02.json", Container{})
	if !errors.Is(err, spec.ErrInsecureFile) {
		t.Fatalf("error %v, want spec.ErrInsecureFile", err)
	}
}

func TestDefaults(t *testing.T) {
	c := New(config.Config{KRB5Conf: filepath.Join(t.TempDir(), "absent.conf")})
	_, err := c.Source("file:///var/lib/specs/webapp01.json")
	want := `credential spec "file:///var/lib/specs/webapp01.json" refused by policy: a label may name a credential spec only as file://NAME.json in /etc/gmsa-hook/credspecs, or an absolute path inside it`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}
	l, err := c.Source("file://webapp01.json")
	if err != nil || l.Dir != config.DefaultCredSpecDir || l.Name != "webapp01.json" {
		t.Fatalf("Source(file://webapp01.json) = %+v, %v", l, err)
	}
}

func TestARNPatterns(t *testing.T) {
	f := newFixture(t)
	f.cfg.Policy.CredSpecARNs = []string{"arn:aws:ssm:us-east-1:123456789012:parameter/gmsa/*", "arn:aws:s3:::specs-bucket/prod/*.json"}
	c := New(f.cfg)
	for arn, ok := range map[string]bool{
		"arn:aws:ssm:us-east-1:123456789012:parameter/gmsa/webapp01":         true,
		"credentialspec:arn:aws:ssm:us-east-1:123456789012:parameter/gmsa/a": true,
		"arn:aws:ssm:us-east-1:123456789012:parameter/other/webapp01":        false,
		"arn:aws:ssm:us-west-2:123456789012:parameter/gmsa/webapp01":         false,
		"arn:aws:ssm:us-east-1:999999999999:parameter/gmsa/webapp01":         false,
		"arn:aws:s3:::specs-bucket/prod/team/webapp01.json":                  true,
		"arn:aws:s3:::specs-bucket/dev/webapp01.json":                        false,
	} {
		_, err := c.Source(arn)
		if (err == nil) != ok {
			t.Errorf("Source(%s): %v, want allowed %v", arn, err, ok)
		}
	}
}

func TestRules(t *testing.T) {
	f := newFixture(t)
	f.cfg.Policy.Rules = []config.Rule{
		{Name: "payments-web", GMSAs: []string{"webapp01"}, Match: config.Match{KubernetesNamespaces: []string{"payments"}}},
		{Name: "ecs-billing", GMSAs: []string{"webapp0*"}, Match: config.Match{Labels: map[string]string{"com.amazonaws.ecs.cluster": "prod", "com.amazonaws.ecs.task-definition-family": "billing-*"}}},
		{Name: "docker-only", GMSAs: []string{"webapp02$"}, Match: config.Match{ContainerdNamespaces: []string{"moby"}}},
	}
	c := New(f.cfg)
	tests := []struct {
		name, label string
		ct          Container
		rule, want  string
	}{
		{"allowed namespace", "file://webapp01.json",
			Container{Annotations: map[string]string{"io.kubernetes.cri.sandbox-namespace": "payments"}}, "payments-web", ""},
		{"allowed namespace, cri-o annotation", "file://webapp01.json",
			Container{Annotations: map[string]string{"io.kubernetes.pod.namespace": "payments"}}, "payments-web", ""},
		{"other namespace", "file://webapp01.json",
			Container{Annotations: map[string]string{"io.kubernetes.cri.sandbox-namespace": "default"}}, "",
			`gMSA "webapp01" of corp.example.test refused by policy: rule "payments-web" grants it only to containers with kubernetes_namespace payments, not "default"`},
		{"ecs labels", "file://webapp01.json",
			Container{Labels: map[string]string{"com.amazonaws.ecs.cluster": "prod", "com.amazonaws.ecs.task-definition-family": "billing-api"}}, "ecs-billing", ""},
		{"ecs labels of another cluster", "file://team/webapp02.json",
			Container{Labels: map[string]string{"com.amazonaws.ecs.cluster": "dev", "com.amazonaws.ecs.task-definition-family": "billing-api"}}, "",
			`gMSA "webapp02" of corp.example.test refused by policy: rule "ecs-billing" grants it only to containers with label com.amazonaws.ecs.cluster=prod`},
		{"containerd namespace", "file://team/webapp02.json", Container{ContainerdNamespace: "moby"}, "docker-only", ""},
		{"no rule grants the gMSA", "file://evil-domain.json", Container{}, "",
			`gMSA "webapp01" of attacker.example refused by policy: the domain is neither in the policy's "domains" nor a realm of ` + f.cfg.KRB5Conf},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule, err := admit(c, tt.label, tt.ct)
			if tt.want == "" {
				if err != nil || rule != tt.rule {
					t.Fatalf("rule %q, err %v; want rule %q", rule, err, tt.rule)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got %v\nwant %s", err, tt.want)
			}
		})
	}
	f.cfg.Policy.Rules = []config.Rule{{Name: "only-02", GMSAs: []string{"webapp02"}}}
	_, err := admit(New(f.cfg), "file://webapp01.json", Container{})
	if want := `gMSA "webapp01" of corp.example.test refused by policy: no policy rule grants it`; err == nil || err.Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}
}

func TestMatch(t *testing.T) {
	for _, tt := range []struct {
		pattern, s string
		want       bool
	}{
		{"a", "a", true}, {"a", "ab", false}, {"*", "", true}, {"a*", "abc", true}, {"*c", "abc", true},
		{"a*c", "abc", true}, {"a*c", "ab", false}, {"a*b*c", "aXbYc", true}, {"a*b*c", "aXcYb", false},
		{"arn:*:ssm:*", "arn:aws:ssm:x", true}, {"ab*ba", "aba", false},
	} {
		if got := match(tt.pattern, tt.s); got != tt.want {
			t.Errorf("match(%q, %q) = %v", tt.pattern, tt.s, got)
		}
	}
}

func TestKRB5Realms(t *testing.T) {
	got := krb5Realms([]byte(`# comment
[libdefaults]
  default_realm = CORP.EXAMPLE.TEST
  dns_lookup_kdc = false
[realms]
  CORP.EXAMPLE.TEST = {
    kdc = dc1.corp.example.test
    v4_name_convert = {
      host = {
        rcmd = host
      }
    }
  }
  OTHER.EXAMPLE = {
    kdc = dc.other.example
  }
[domain_realm]
  .corp.example.test = CORP.EXAMPLE.TEST
`))
	if want := "corp.example.test other.example"; strings.Join(got[1:], " ") != want || got[0] != "corp.example.test" || len(got) != 3 {
		t.Errorf("realms %q", got)
	}
}
