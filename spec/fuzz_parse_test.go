package spec

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzParse: Parse never panics, returns a spec or an error, and a spec it
// accepts survives encoding/json and a second Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		ecsSpec, joinedSpec, topLevelSpec,
		specWith(okPlugins, okJoin, okAD, ""),
		specWith(okPlugins, okJoin, okAD, `"HostAccountConfig":`+okHost),
		specWith(okPlugins, okJoin, okAD, `"HostAccountConfig":{"PluginInput":"{\"CredentialArn\":\"x\"}"}`),
		specWith(okPlugins, `{"DnsName":"."}`, `{"GroupManagedServiceAccounts":[{"Name":"$"}]}`, ""),
		joinedSpec + "}", "", "null", "[]", `{"CmsPlugins":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := Parse(data)
		if err != nil {
			if cs != nil {
				t.Fatalf("Parse returned a spec with error %v", err)
			}
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if cs == nil {
			t.Fatal("Parse returned neither a spec nor an error")
		}
		if cs.Account() == "" {
			t.Fatalf("accepted spec with no account: %+v", cs)
		}
		if cs.DNSDomain() == "" || cs.Realm() != strings.ToUpper(cs.DNSDomain()) {
			t.Fatalf("accepted spec with DNS domain %q, realm %q", cs.DNSDomain(), cs.Realm())
		}
		if cs.Domainless() != (cs.CredentialArn() != "") {
			t.Fatalf("Domainless() = %v with CredentialArn %q", cs.Domainless(), cs.CredentialArn())
		}
		b, err := json.Marshal(cs)
		if err != nil {
			t.Fatalf("marshal accepted spec: %v", err)
		}
		again, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(json.Marshal(Parse(%q))) = %v\nmarshalled: %s", data, err, b)
		}
		if diff := cmp.Diff(accessorsOf(cs), accessorsOf(again)); diff != "" {
			t.Fatalf("accessors changed by a round trip (-first +second):\n%s", diff)
		}
		if diff := cmp.Diff(cs, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("spec changed by a round trip (-first +second):\n%s", diff)
		}
	})
}

// FuzzParseSource: ParseSource and ParseSecretSource never panic, and what
// they accept is consistent.
func FuzzParseSource(f *testing.F) {
	for _, s := range []string{
		"", "/etc/gmsa/webapp01.json", "relative.json", "file:///etc/x", "file://localhost/x", "file://host/x",
		"file://", "file:///a?b", "file:///a#b", "file:///%zz", "https://x/y",
		"credentialspec:file:///etc/x", "credentialspecdomainless:" + ssmARN, "credentialspec:" + s3ARN,
		ssmARN, s3ARN, smARN, "arn:aws", "arn::::::", "arn:aws:s3:::b", "credentialspec:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, p := range []struct {
			name  string
			parse func(string) (Source, error)
		}{{"ParseSource", ParseSource}, {"ParseSecretSource", ParseSecretSource}} {
			s, err := p.parse(raw)
			if err != nil {
				if diff := cmp.Diff(Source{}, s); diff != "" {
					t.Fatalf("%s(%q) returned a source with error %v", p.name, raw, err)
				}
				if !strings.Contains(err.Error(), "source ") {
					t.Fatalf("%s(%q): error %q does not say which source", p.name, raw, err)
				}
				continue
			}
			if s.Raw != raw {
				t.Fatalf("%s(%q).Raw = %q", p.name, raw, s.Raw)
			}
			switch s.Kind {
			case File:
				if s.Path == "" || s.ARN != "" {
					t.Fatalf("%s(%q) = %+v: a file source wants a path and no ARN", p.name, raw, s)
				}
			case SSM, S3, SecretsManager:
				if s.Path != "" || !strings.HasPrefix(raw, "credentialspec") && s.ARN != raw {
					t.Fatalf("%s(%q) = %+v: an ARN source wants the ARN and no path", p.name, raw, s)
				}
				if _, err := SplitARN(s.ARN); err != nil {
					t.Fatalf("%s(%q) accepted ARN %q that SplitARN refuses: %v", p.name, raw, s.ARN, err)
				}
			default:
				t.Fatalf("%s(%q) = %+v: kind %v", p.name, raw, s, s.Kind)
			}
			if p.name == "ParseSource" && s.Kind == SecretsManager {
				t.Fatalf("ParseSource(%q) accepted a Secrets Manager ARN", raw)
			}
			if p.name == "ParseSecretSource" {
				if s.Kind == S3 || s.Mode != AnyMode {
					t.Fatalf("ParseSecretSource(%q) = %+v", raw, s)
				}
				if s.Kind == File && !filepath.IsAbs(s.Path) {
					t.Fatalf("ParseSecretSource(%q) accepted relative path %q", raw, s.Path)
				}
			}
		}
	})
}

// secretErrors are all the errors ParseSecret returns: none depends on
// the document, so none can show its password.
var secretErrors = map[string]bool{
	`malformed credential spec: secret is not a JSON object with string values`:                true,
	`malformed credential spec: secret has no "username" (or "usernameOfStandardUserAccount")`: true,
	`malformed credential spec: secret has no "password" (or "passwordOfStandardUserAccount")`: true,
	`malformed credential spec: secret has no "domainName"`:                                    true,
	`malformed credential spec: secret larger than 65536 bytes`:                                true,
}

// FuzzParseSecret: ParseSecret never panics and its errors never contain
// the document's password. doc is a template: every "$PW" in it becomes
// password, raw, so that the password lands in valid and broken documents
// alike.
func FuzzParseSecret(f *testing.F) {
	for _, s := range []string{
		`{"username":"u","password":"$PW","domainName":"d"}`,
		`{"usernameOfStandardUserAccount":"CORP\\u","passwordOfStandardUserAccount":"$PW","domainName":"d."}`,
		`{"username":"u","password":"$PW"}`,
		`{"username":"u","password":$PW,"domainName":"d"}`,
		`{"username":"u","password":["$PW"],"domainName":"d"}`,
		`{"username":"u","password":"$PW`,
		`{"password":"$PW" "username":"u"}`,
		`{"username":"$PW@corp","password":"$PW","domainName":"d"}`,
		`$PW`,
	} {
		f.Add([]byte(s), readerPassword)
		f.Add([]byte(s), `12345678`)
		f.Add([]byte(s), `p"w\`)
	}
	known := strings.Join(func() []string {
		var m []string
		for k := range secretErrors {
			m = append(m, k)
		}
		return m
	}(), "\n")
	f.Fuzz(func(t *testing.T, doc []byte, password string) {
		data := []byte(strings.ReplaceAll(string(doc), "$PW", password))
		s, err := ParseSecret(data)
		if err == nil {
			if s.Username == "" || s.Password == "" || s.DomainName == "" {
				t.Fatalf("ParseSecret accepted %q with an empty part: user %q, domain %q, password empty %v", data, s.Username, s.DomainName, s.Password == "")
			}
			if strings.ContainsAny(s.Username, `\@`) {
				t.Fatalf("ParseSecret(%q): username %q keeps a domain", data, s.Username)
			}
			return
		}
		if diff := cmp.Diff(Secret{}, s); diff != "" {
			t.Fatalf("ParseSecret returned a secret with error %v", err)
		}
		if !secretErrors[err.Error()] {
			t.Fatalf("ParseSecret(%q): unexpected error text %q", data, err)
		}
		if password != "" && !strings.Contains(known, password) && strings.Contains(err.Error(), password) {
			t.Fatalf("ParseSecret error %q shows the password %q", err, password)
		}
	})
}
