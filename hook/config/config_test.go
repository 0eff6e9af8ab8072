package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// configFile writes data as a configuration file and returns its path.
func configFile(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gmsa-hook.json")
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Config
	}{
		{"empty object", `{}`, Config{}},
		{
			name: "every key",
			in: `{
  "domain_controllers": ["dc1.corp.example.test", "dc2.corp.example.test"],
  "dns_server": "127.0.0.1:53",
  "krb5_conf": "/etc/gmsa-hook/krb5.conf",
  "keytab": "/etc/gmsa-hook/host.keytab",
  "keytab_principal": "GMSAHOST$@CORP.EXAMPLE.TEST",
  "timeout": "1m30s",
  "ldaps": true,
  "ldaps_ca_file": "/etc/gmsa-hook/dc-ca.pem",
  "ldap_security": "sign",
  "ticket_lifetime": "8h",
  "renew_lifetime": "168h",
  "run_dir": "/run/gmsa-test",
  "log_file": "/var/log/gmsa-hook.log",
  "aws": {"region": "us-west-2", "endpoints": {"ssm": "http://127.0.0.1:4566"}, "max_attempts": 2}
}`,
			want: Config{
				DomainControllers: []string{"dc1.corp.example.test", "dc2.corp.example.test"},
				DNSServer:         "127.0.0.1:53",
				KRB5Conf:          "/etc/gmsa-hook/krb5.conf",
				Keytab:            "/etc/gmsa-hook/host.keytab",
				KeytabPrincipal:   "GMSAHOST$@CORP.EXAMPLE.TEST",
				Timeout:           Duration(90 * time.Second),
				LDAPS:             true,
				LDAPSCAFile:       "/etc/gmsa-hook/dc-ca.pem",
				LDAPSecurity:      "sign",
				TicketLifetime:    Duration(8 * time.Hour),
				RenewLifetime:     Duration(7 * 24 * time.Hour),
				RunDir:            "/run/gmsa-test",
				LogFile:           "/var/log/gmsa-hook.log",
				AWS:               AWS{Region: "us-west-2", Endpoints: map[string]string{"ssm": "http://127.0.0.1:4566"}, MaxAttempts: 2},
			},
		},
		{"ldap_security seal", `{"ldap_security":"seal"}`, Config{LDAPSecurity: "seal"}},
		{"ldap_security none", `{"ldap_security":"none"}`, Config{LDAPSecurity: "none"}},
		{"allow_rc4", `{"allow_rc4":true}`, Config{AllowRC4: true}},
		{"null duration is unset", `{"timeout":null,"ticket_lifetime":null}`, Config{}},
		{"trailing white space", "{\"timeout\":\"5s\"}\n\n", Config{Timeout: Duration(5 * time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(configFile(t, tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("LoadConfig (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // after "config PATH: "
	}{
		{"unknown key", `{"x":1}`, `bad configuration: unknown key "x"`},
		{"misspelt key", `{"domain_controler":["dc1"]}`, `bad configuration: unknown key "domain_controler"`},
		{"unknown key inside aws", `{"aws":{"bogus":1}}`, `bad configuration: unknown key "bogus"`},
		{"list as a string", `{"domain_controllers":"dc1.corp.example.test"}`, `bad configuration: key "domain_controllers": want []string`},
		{"list of numbers", `{"domain_controllers":[1]}`, `bad configuration: key "domain_controllers": want string`},
		{"bool as a string", `{"ldaps":"yes"}`, `bad configuration: key "ldaps": want bool`},
		{"allow_rc4 as a string", `{"allow_rc4":"yes"}`, `bad configuration: key "allow_rc4": want bool`},
		{"nested wrong type", `{"aws":{"region":5}}`, `bad configuration: key "aws.region": want string`},
		{"duration as a number", `{"timeout":20}`, `bad configuration: key "timeout": want a duration string such as "20s"`},
		{"duration without unit", `{"timeout":"20"}`, `bad configuration: key "timeout": "20" is not a positive duration such as "20s"`},
		{"bad duration", `{"ticket_lifetime":"ten hours"}`, `bad configuration: key "ticket_lifetime": "ten hours" is not a positive duration such as "20s"`},
		{"negative duration", `{"renew_lifetime":"-1h"}`, `bad configuration: key "renew_lifetime": "-1h" is not a positive duration such as "20s"`},
		{"zero duration", `{"timeout":"0s"}`, `bad configuration: key "timeout": "0s" is not a positive duration such as "20s"`},
		{"bad ldap_security", `{"ldap_security":"seal2"}`, `bad configuration: key "ldap_security": "seal2" is not one of seal, sign, none`},
		{"ldap_security in capitals", `{"ldap_security":"SEAL"}`, `bad configuration: key "ldap_security": "SEAL" is not one of seal, sign, none`},
		{"empty file", ``, `bad configuration: empty file`},
		{"truncated", `{"timeout":`, `bad configuration: unexpected EOF`},
		{"syntax error", `{"timeout" "20s"}`, `bad configuration: invalid character '"' after object key`},
		{"an array", `[]`, `bad configuration: want a JSON object`},
		{"two objects", `{} {}`, `bad configuration: trailing data after the JSON object`},
		{"trailing garbage", `{"timeout":"20s"} x`, `bad configuration: trailing data after the JSON object`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := configFile(t, tt.in)
			_, err := Load(p)
			if err == nil {
				t.Fatal("LoadConfig succeeded")
			}
			if want := "config " + p + ": " + tt.want; err.Error() != want {
				t.Errorf("error\n got %s\nwant %s", err, want)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
		})
	}
}

func TestLoadConfigMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "absent.json")
	_, err := Load(p)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error %v, want os.ErrNotExist", err)
	}
	if want := "config " + p + ": open " + p + ": no such file or directory"; err.Error() != want {
		t.Errorf("error\n got %s\nwant %s", err, want)
	}
}

func TestDurationJSON(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		json string
	}{
		{20 * time.Second, `"20s"`},
		{90 * time.Second, `"1m30s"`},
		{10 * time.Hour, `"10h0m0s"`},
		{1500 * time.Millisecond, `"1.5s"`},
	} {
		b, err := json.Marshal(Duration(tt.d))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.json {
			t.Errorf("Marshal(%v) = %s, want %s", tt.d, b, tt.json)
		}
		var back Duration
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if time.Duration(back) != tt.d {
			t.Errorf("Unmarshal(%s) = %v, want %v", b, time.Duration(back), tt.d)
		}
	}

	// A whole configuration survives a round trip.
	in := Config{Timeout: Duration(45 * time.Second), TicketLifetime: Duration(2 * time.Hour), DomainControllers: []string{"dc1"}, LDAPSecurity: "seal"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(configFile(t, string(b)))
	if err != nil {
		t.Fatalf("Load(%s): %v", b, err)
	}
	if diff := cmp.Diff(in, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestConfigDefaults(t *testing.T) {
	var c Config
	if got := c.TimeoutOrDefault(); got != DefaultTimeout {
		t.Errorf("TimeoutOrDefault() = %v, want %v", got, DefaultTimeout)
	}
	if got := c.RunDirOrDefault(); got != DefaultRunDir {
		t.Errorf("RunDirOrDefault() = %q, want %q", got, DefaultRunDir)
	}
	c = Config{Timeout: Duration(3 * time.Second), RunDir: "/run/x"}
	if c.TimeoutOrDefault() != 3*time.Second || c.RunDirOrDefault() != "/run/x" {
		t.Errorf("set values not used: %v, %q", c.TimeoutOrDefault(), c.RunDirOrDefault())
	}
}
