package spec

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// ecsSpec is a domainless credential spec as ECS and New-CredentialSpec
// write it: HostAccountConfig inside ActiveDirectoryConfig.
const ecsSpec = `{
  "CmsPlugins": ["ActiveDirectory"],
  "DomainJoinConfig": {
    "Sid": "S-1-5-21-2236879525-1626705197-3931787077",
    "MachineAccountName": "webapp01",
    "Guid": "f7057b70-744b-4adc-9bb0-544009bb2348",
    "DnsTreeName": "corp.example.test",
    "DnsName": "corp.example.test",
    "NetBiosName": "CORP"
  },
  "ActiveDirectoryConfig": {
    "GroupManagedServiceAccounts": [
      {"Name": "webapp01", "Scope": "corp.example.test"},
      {"Name": "webapp01", "Scope": "CORP"}
    ],
    "HostAccountConfig": {
      "PortableCcgVersion": "1",
      "PluginGUID": "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
      "PluginInput": {
        "CredentialArn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-reader"
      }
    }
  }
}`

// joinedSpec is a domain-joined spec: no HostAccountConfig.
const joinedSpec = `{
  "CmsPlugins": ["ActiveDirectory"],
  "DomainJoinConfig": {
    "Sid": "S-1-5-21-2236879525-1626705197-3931787077",
    "MachineAccountName": "WebApp01",
    "Guid": "f7057b70-744b-4adc-9bb0-544009bb2348",
    "DnsTreeName": "Corp.Example.Test",
    "DnsName": "Corp.Example.Test.",
    "NetBiosName": "CORP"
  },
  "ActiveDirectoryConfig": {
    "GroupManagedServiceAccounts": [{"Name": "WebApp01$", "Scope": "Corp.Example.Test"}]
  },
  "SomethingWindowsAdded": {"x": 1}
}`

// topLevelSpec has HostAccountConfig at the top level, as some hand-written
// specs do, and PluginInput as a JSON string, as Windows tools write it.
const topLevelSpec = `{
  "CmsPlugins": ["activedirectory"],
  "DomainJoinConfig": {"DnsName": "corp.example.test", "NetBiosName": "CORP"},
  "ActiveDirectoryConfig": {"GroupManagedServiceAccounts": [{"Name": "webapp02", "Scope": "CORP"}]},
  "HostAccountConfig": {
    "PortableCcgVersion": "1",
    "PluginGUID": "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
    "PluginInput": "{\"CredentialArn\": \"arn:aws:ssm:us-west-2:123456789012:parameter/gmsa/reader\"}"
  }
}`

var ecsHostAccount = &HostAccountConfig{
	PortableCcgVersion: "1",
	PluginGUID:         "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
	PluginInput:        PluginInput{CredentialArn: "arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-reader"},
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *CredSpec
	}{
		{
			name: "ecs domainless, HostAccountConfig inside ActiveDirectoryConfig",
			in:   ecsSpec,
			want: &CredSpec{
				CmsPlugins: []string{"ActiveDirectory"},
				DomainJoinConfig: DomainJoinConfig{
					Sid: "S-1-5-21-2236879525-1626705197-3931787077", MachineAccountName: "webapp01",
					Guid: "f7057b70-744b-4adc-9bb0-544009bb2348", DnsTreeName: "corp.example.test",
					DnsName: "corp.example.test", NetBiosName: "CORP",
				},
				ActiveDirectoryConfig: ActiveDirectoryConfig{
					GroupManagedServiceAccounts: []GMSA{{Name: "webapp01", Scope: "corp.example.test"}, {Name: "webapp01", Scope: "CORP"}},
					HostAccountConfig:           ecsHostAccount,
				},
			},
		},
		{
			name: "domain joined, unknown fields kept out",
			in:   joinedSpec,
			want: &CredSpec{
				CmsPlugins: []string{"ActiveDirectory"},
				DomainJoinConfig: DomainJoinConfig{
					Sid: "S-1-5-21-2236879525-1626705197-3931787077", MachineAccountName: "WebApp01",
					Guid: "f7057b70-744b-4adc-9bb0-544009bb2348", DnsTreeName: "Corp.Example.Test",
					DnsName: "Corp.Example.Test.", NetBiosName: "CORP",
				},
				ActiveDirectoryConfig: ActiveDirectoryConfig{
					GroupManagedServiceAccounts: []GMSA{{Name: "WebApp01$", Scope: "Corp.Example.Test"}},
				},
			},
		},
		{
			name: "HostAccountConfig at top level, PluginInput as a JSON string",
			in:   topLevelSpec,
			want: &CredSpec{
				CmsPlugins:       []string{"activedirectory"},
				DomainJoinConfig: DomainJoinConfig{DnsName: "corp.example.test", NetBiosName: "CORP"},
				ActiveDirectoryConfig: ActiveDirectoryConfig{
					GroupManagedServiceAccounts: []GMSA{{Name: "webapp02", Scope: "CORP"}},
				},
				HostAccountConfig: &HostAccountConfig{
					PortableCcgVersion: "1",
					PluginGUID:         "{859E1386-BDB4-49E8-85C7-3070B13920E1}",
					PluginInput:        PluginInput{CredentialArn: "arn:aws:ssm:us-west-2:123456789012:parameter/gmsa/reader"},
				},
			},
		},
		{
			name: "PluginInput as a JSON string inside ActiveDirectoryConfig",
			in: strings.Replace(ecsSpec,
				`{
        "CredentialArn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-reader"
      }`,
				`"{\"CredentialArn\":\"arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-reader\"}"`, 1),
			want: &CredSpec{
				CmsPlugins: []string{"ActiveDirectory"},
				DomainJoinConfig: DomainJoinConfig{
					Sid: "S-1-5-21-2236879525-1626705197-3931787077", MachineAccountName: "webapp01",
					Guid: "f7057b70-744b-4adc-9bb0-544009bb2348", DnsTreeName: "corp.example.test",
					DnsName: "corp.example.test", NetBiosName: "CORP",
				},
				ActiveDirectoryConfig: ActiveDirectoryConfig{
					GroupManagedServiceAccounts: []GMSA{{Name: "webapp01", Scope: "corp.example.test"}, {Name: "webapp01", Scope: "CORP"}},
					HostAccountConfig:           ecsHostAccount,
				},
			},
		},
		{
			name: "trailing white space",
			in:   joinedSpec + "\n\t \r\n",
			want: &CredSpec{
				CmsPlugins: []string{"ActiveDirectory"},
				DomainJoinConfig: DomainJoinConfig{
					Sid: "S-1-5-21-2236879525-1626705197-3931787077", MachineAccountName: "WebApp01",
					Guid: "f7057b70-744b-4adc-9bb0-544009bb2348", DnsTreeName: "Corp.Example.Test",
					DnsName: "Corp.Example.Test.", NetBiosName: "CORP",
				},
				ActiveDirectoryConfig: ActiveDirectoryConfig{
					GroupManagedServiceAccounts: []GMSA{{Name: "WebApp01$", Scope: "Corp.Example.Test"}},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

// specAccessors is what the accessors of a parsed spec say.
type specAccessors struct {
	Account, DNSDomain, Realm, CredentialArn string
	Domainless                               bool
}

func accessorsOf(cs *CredSpec) specAccessors {
	return specAccessors{
		Account: cs.Account(), DNSDomain: cs.DNSDomain(), Realm: cs.Realm(),
		CredentialArn: cs.CredentialArn(), Domainless: cs.Domainless(),
	}
}

func TestCredSpecAccessors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want specAccessors
	}{
		{
			name: "ecs domainless",
			in:   ecsSpec,
			want: specAccessors{
				Account: "webapp01", DNSDomain: "corp.example.test", Realm: "CORP.EXAMPLE.TEST",
				CredentialArn: "arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-reader", Domainless: true,
			},
		},
		{
			// The account keeps its case (it is part of the salt); the
			// domain loses its final dot and its case.
			name: "domain joined, mixed case, trailing dollar and dot",
			in:   joinedSpec,
			want: specAccessors{Account: "WebApp01", DNSDomain: "corp.example.test", Realm: "CORP.EXAMPLE.TEST"},
		},
		{
			name: "top-level HostAccountConfig",
			in:   topLevelSpec,
			want: specAccessors{
				Account: "webapp02", DNSDomain: "corp.example.test", Realm: "CORP.EXAMPLE.TEST",
				CredentialArn: "arn:aws:ssm:us-west-2:123456789012:parameter/gmsa/reader", Domainless: true,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, accessorsOf(cs)); diff != "" {
				t.Errorf("accessors (-want +got):\n%s", diff)
			}
		})
	}
}

// specWith is a valid domain-joined spec with one part replaced.
func specWith(plugins, domainJoin, adConfig, extra string) string {
	s := `{"CmsPlugins":` + plugins + `,"DomainJoinConfig":` + domainJoin + `,"ActiveDirectoryConfig":` + adConfig
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

const (
	okPlugins = `["ActiveDirectory"]`
	okJoin    = `{"DnsName":"corp.example.test"}`
	okAD      = `{"GroupManagedServiceAccounts":[{"Name":"webapp01","Scope":"CORP"}]}`
	okHost    = `{"PluginInput":{"CredentialArn":"file:///etc/gmsa/reader.json"}}`
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty document", "", "malformed credential spec: empty document"},
		{"only white space", " \n\t", "malformed credential spec: empty document"},
		{"truncated", `{"CmsPlugins":`, "malformed credential spec: unexpected EOF"},
		{"syntax error", `{"CmsPlugins" ["x"]}`, "malformed credential spec: invalid JSON at byte 15: invalid character '[' after object key"},
		{"array document", `[]`, "malformed credential spec: field : want spec.CredSpec, got JSON array"},
		{"CmsPlugins a string", `{"CmsPlugins":"ActiveDirectory"}`, "malformed credential spec: field CmsPlugins: want []string, got JSON string"},
		{"DnsName a number", `{"DomainJoinConfig":{"DnsName":5}}`, "malformed credential spec: field DomainJoinConfig.DnsName: want string, got JSON number"},
		{"gMSA name a number", `{"ActiveDirectoryConfig":{"GroupManagedServiceAccounts":[{"Name":1}]}}`, "malformed credential spec: field ActiveDirectoryConfig.GroupManagedServiceAccounts.Name: want string, got JSON number"},
		{"null document", `null`, `malformed credential spec: CmsPlugins must include "ActiveDirectory"`},
		{"no CmsPlugins", specWith(`[]`, okJoin, okAD, ""), `malformed credential spec: CmsPlugins must include "ActiveDirectory"`},
		{"other plugin only", specWith(`["Other"]`, okJoin, okAD, ""), `malformed credential spec: CmsPlugins must include "ActiveDirectory"`},
		{"no DnsName", specWith(okPlugins, `{"NetBiosName":"CORP"}`, okAD, ""), "malformed credential spec: DomainJoinConfig.DnsName is empty"},
		{"DnsName only a dot", specWith(okPlugins, `{"DnsName":"."}`, okAD, ""), "malformed credential spec: DomainJoinConfig.DnsName is empty"},
		{"DnsName with a space", specWith(okPlugins, `{"DnsName":"corp example"}`, okAD, ""), `malformed credential spec: DomainJoinConfig.DnsName "corp example" is not a DNS name`},
		{"DnsName with a slash", specWith(okPlugins, `{"DnsName":"corp/example"}`, okAD, ""), `malformed credential spec: DomainJoinConfig.DnsName "corp/example" is not a DNS name`},
		{"DnsName with a backslash", specWith(okPlugins, `{"DnsName":"CORP\\x"}`, okAD, ""), `malformed credential spec: DomainJoinConfig.DnsName "CORP\\x" is not a DNS name`},
		{"DnsName with an at", specWith(okPlugins, `{"DnsName":"a@corp.example.test"}`, okAD, ""), `malformed credential spec: DomainJoinConfig.DnsName "a@corp.example.test" is not a DNS name`},
		{"no gMSAs", specWith(okPlugins, okJoin, `{"GroupManagedServiceAccounts":[]}`, ""), "malformed credential spec: ActiveDirectoryConfig.GroupManagedServiceAccounts is empty"},
		{"no ActiveDirectoryConfig", `{"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"DnsName":"corp.example.test"}}`, "malformed credential spec: ActiveDirectoryConfig.GroupManagedServiceAccounts is empty"},
		{"empty gMSA name", specWith(okPlugins, okJoin, `{"GroupManagedServiceAccounts":[{"Name":"a"},{"Name":""}]}`, ""), "malformed credential spec: ActiveDirectoryConfig.GroupManagedServiceAccounts[1].Name is empty"},
		{"gMSA name only a dollar", specWith(okPlugins, okJoin, `{"GroupManagedServiceAccounts":[{"Name":"$"}]}`, ""), "malformed credential spec: ActiveDirectoryConfig.GroupManagedServiceAccounts[0].Name is empty"},
		{"gMSA name with a filter character", specWith(okPlugins, okJoin, `{"GroupManagedServiceAccounts":[{"Name":"web*"}]}`, ""), `malformed credential spec: gMSA name "web*" has characters an account name cannot have`},
		{"gMSA name with a NUL", specWith(okPlugins, okJoin, `{"GroupManagedServiceAccounts":[{"Name":"web\u0000x"}]}`, ""), `malformed credential spec: gMSA name "web\x00x" has characters an account name cannot have`},
		{"gMSA name as a UPN", specWith(okPlugins, okJoin, `{"GroupManagedServiceAccounts":[{"Name":"webapp01@corp"}]}`, ""), `malformed credential spec: gMSA name "webapp01@corp" has characters an account name cannot have`},
		{"gMSA name as a DN", specWith(okPlugins, okJoin, `{"GroupManagedServiceAccounts":[{"Name":"CN=webapp01,CN=Users"}]}`, ""), `malformed credential spec: gMSA name "CN=webapp01,CN=Users" has characters an account name cannot have`},
		{
			"HostAccountConfig twice",
			specWith(okPlugins, okJoin, `{"GroupManagedServiceAccounts":[{"Name":"webapp01"}],"HostAccountConfig":`+okHost+`}`, `"HostAccountConfig":`+okHost),
			"malformed credential spec: HostAccountConfig appears both inside ActiveDirectoryConfig and at the top level",
		},
		{
			"no CredentialArn inside ActiveDirectoryConfig",
			specWith(okPlugins, okJoin, `{"GroupManagedServiceAccounts":[{"Name":"webapp01"}],"HostAccountConfig":{"PluginInput":{}}}`, ""),
			"malformed credential spec: ActiveDirectoryConfig.HostAccountConfig.PluginInput.CredentialArn is empty",
		},
		{
			"no PluginInput inside ActiveDirectoryConfig",
			specWith(okPlugins, okJoin, `{"GroupManagedServiceAccounts":[{"Name":"webapp01"}],"HostAccountConfig":{"PluginGUID":"x"}}`, ""),
			"malformed credential spec: ActiveDirectoryConfig.HostAccountConfig.PluginInput.CredentialArn is empty",
		},
		{
			"no CredentialArn at top level",
			specWith(okPlugins, okJoin, okAD, `"HostAccountConfig":{"PluginInput":"{}"}`),
			"malformed credential spec: HostAccountConfig.PluginInput.CredentialArn is empty",
		},
		{
			"PluginInput null",
			specWith(okPlugins, okJoin, okAD, `"HostAccountConfig":{"PluginInput":null}`),
			"malformed credential spec: HostAccountConfig.PluginInput.CredentialArn is empty",
		},
		{
			"PluginInput a number",
			specWith(okPlugins, okJoin, okAD, `"HostAccountConfig":{"PluginInput":5}`),
			`malformed credential spec: PluginInput: want {"CredentialArn": "..."}, as an object or as a JSON string holding one`,
		},
		{
			"PluginInput a string that is not JSON",
			specWith(okPlugins, okJoin, okAD, `"HostAccountConfig":{"PluginInput":"arn:aws:ssm:us-west-2:1:parameter/x"}`),
			`malformed credential spec: PluginInput: want {"CredentialArn": "..."}, as an object or as a JSON string holding one`,
		},
		{
			"PluginInput string with a number CredentialArn",
			specWith(okPlugins, okJoin, okAD, `"HostAccountConfig":{"PluginInput":"{\"CredentialArn\":5}"}`),
			`malformed credential spec: PluginInput: want {"CredentialArn": "..."}, as an object or as a JSON string holding one`,
		},
		{
			"CredentialArn a number",
			specWith(okPlugins, okJoin, okAD, `"HostAccountConfig":{"PluginInput":{"CredentialArn":5}}`),
			`malformed credential spec: PluginInput: want {"CredentialArn": "..."}, as an object or as a JSON string holding one`,
		},
		{"trailing object", joinedSpec + `{}`, "malformed credential spec: trailing data after the JSON object"},
		{"trailing garbage", joinedSpec + ` x`, "malformed credential spec: trailing data after the JSON object"},
		{"trailing close brace", joinedSpec + "\n}", "malformed credential spec: trailing data after the JSON object"},
		{"trailing close bracket", joinedSpec + `]`, "malformed credential spec: trailing data after the JSON object"},
		{"trailing comma", joinedSpec + `,`, "malformed credential spec: trailing data after the JSON object"},
		{"larger than MaxSize", joinedSpec + strings.Repeat(" ", MaxSize), "malformed credential spec: larger than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", cs)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error\n got %s\nwant %s", got, tt.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if cs != nil {
				t.Errorf("Parse returned a spec with its error: %+v", cs)
			}
		})
	}
}

func TestParseMaxSizeExactly(t *testing.T) {
	// MaxSize bytes are accepted; the limit is on the document, padding
	// included.
	in := joinedSpec + strings.Repeat(" ", MaxSize-len(joinedSpec))
	if _, err := Parse([]byte(in)); err != nil {
		t.Fatalf("a document of exactly MaxSize bytes: %v", err)
	}
}

// TestParseRemarshal shows a parsed spec written back by encoding/json reads
// the same (PluginInput then as an object).
func TestParseRemarshal(t *testing.T) {
	for _, in := range []string{ecsSpec, joinedSpec, topLevelSpec} {
		cs, err := Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(cs)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(%s): %v", b, err)
		}
		if diff := cmp.Diff(cs, again); diff != "" {
			t.Errorf("round trip (-first +second):\n%s", diff)
		}
	}
}
