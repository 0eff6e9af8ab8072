// Package spec reads Windows credential specs (the CredSpec JSON that Docker on
// Windows, ECS and credentials-fetcher use), the domainless reader secrets they
// point to, and the sources both come from.
//
// A credential spec names the domain and the group Managed Service Account
// (gMSA) whose ticket a container gets. When it carries HostAccountConfig the
// spec is "domainless": the gMSA's password is read as a standard user whose
// name and password live in a secret named by PluginInput.CredentialArn.
// Otherwise the host's own machine account (its keytab) reads it.
package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrMalformed marks a credential spec or secret that cannot be used as given.
var ErrMalformed = errors.New("malformed credential spec")

// CredSpec is a Windows credential spec. Only the fields gmsa-hook uses are
// modelled; unknown fields are accepted, as Windows tools add their own.
type CredSpec struct {
	CmsPlugins            []string              `json:"CmsPlugins"`
	DomainJoinConfig      DomainJoinConfig      `json:"DomainJoinConfig"`
	ActiveDirectoryConfig ActiveDirectoryConfig `json:"ActiveDirectoryConfig"`
	// HostAccountConfig belongs inside ActiveDirectoryConfig, where
	// New-CredentialSpec and ECS put it; some hand-written specs put it at
	// the top level, which is accepted too.
	HostAccountConfig *HostAccountConfig `json:"HostAccountConfig,omitempty"`
}

// DomainJoinConfig describes the domain and the gMSA's account.
type DomainJoinConfig struct {
	Sid                string `json:"Sid"`
	MachineAccountName string `json:"MachineAccountName"`
	Guid               string `json:"Guid"`
	DnsTreeName        string `json:"DnsTreeName"`
	DnsName            string `json:"DnsName"`
	NetBiosName        string `json:"NetBiosName"`
}

// ActiveDirectoryConfig lists the gMSAs the spec may use.
type ActiveDirectoryConfig struct {
	GroupManagedServiceAccounts []GMSA             `json:"GroupManagedServiceAccounts"`
	HostAccountConfig           *HostAccountConfig `json:"HostAccountConfig,omitempty"`
}

// GMSA is one entry of GroupManagedServiceAccounts; Scope is the DNS or
// NetBIOS name of its domain.
type GMSA struct {
	Name  string `json:"Name"`
	Scope string `json:"Scope"`
}

// HostAccountConfig is present in domainless specs.
type HostAccountConfig struct {
	PortableCcgVersion string      `json:"PortableCcgVersion"`
	PluginGUID         string      `json:"PluginGUID"`
	PluginInput        PluginInput `json:"PluginInput"`
}

// PluginInput holds the secret's location. Windows tools write it either as
// an object or as a string holding that object's JSON; both are accepted.
type PluginInput struct {
	CredentialArn string `json:"CredentialArn"`
}

// UnmarshalJSON accepts PluginInput as an object or as a JSON string.
func (p *PluginInput) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(s)
	}
	type plain PluginInput
	var v plain
	if err := json.Unmarshal(b, &v); err != nil {
		// encoding/json's own error would name an internal type and, for
		// the string form, count bytes inside the string.
		return errors.New(`PluginInput: want {"CredentialArn": "..."}, as an object or as a JSON string holding one`)
	}
	*p = PluginInput(v)
	return nil
}

// MaxSize bounds a credential spec or secret document.
const MaxSize = 64 << 10

// Parse decodes and validates a credential spec.
func Parse(data []byte) (*CredSpec, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxSize)
	}
	var cs CredSpec
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&cs); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, jsonProblem(err))
	}
	// dec.More would miss a stray "}" or "]" after the object.
	if len(bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrMalformed)
	}
	if err := cs.validate(); err != nil {
		return nil, err
	}
	return &cs, nil
}

func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s: want %s, got JSON %s", te.Field, te.Type, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, err)
	}
	if errors.Is(err, io.EOF) {
		return "empty document"
	}
	return err.Error()
}

func (cs *CredSpec) validate() error {
	ad := false
	for _, p := range cs.CmsPlugins {
		if strings.EqualFold(p, "ActiveDirectory") {
			ad = true
		}
	}
	if !ad {
		return fmt.Errorf("%w: CmsPlugins must include \"ActiveDirectory\"", ErrMalformed)
	}
	if strings.TrimSuffix(cs.DomainJoinConfig.DnsName, ".") == "" {
		return fmt.Errorf("%w: DomainJoinConfig.DnsName is empty", ErrMalformed)
	}
	if strings.ContainsAny(cs.DomainJoinConfig.DnsName, " /\\@") {
		return fmt.Errorf("%w: DomainJoinConfig.DnsName %q is not a DNS name", ErrMalformed, cs.DomainJoinConfig.DnsName)
	}
	if len(cs.ActiveDirectoryConfig.GroupManagedServiceAccounts) == 0 {
		return fmt.Errorf("%w: ActiveDirectoryConfig.GroupManagedServiceAccounts is empty", ErrMalformed)
	}
	for i, g := range cs.ActiveDirectoryConfig.GroupManagedServiceAccounts {
		if strings.TrimSuffix(g.Name, "$") == "" {
			return fmt.Errorf("%w: ActiveDirectoryConfig.GroupManagedServiceAccounts[%d].Name is empty", ErrMalformed, i)
		}
		if strings.ContainsAny(g.Name, "()*\\\x00/@ ,=+<>#;\"") {
			return fmt.Errorf("%w: gMSA name %q has characters an account name cannot have", ErrMalformed, g.Name)
		}
	}
	if cs.HostAccountConfig != nil && cs.ActiveDirectoryConfig.HostAccountConfig != nil {
		return fmt.Errorf("%w: HostAccountConfig appears both inside ActiveDirectoryConfig and at the top level", ErrMalformed)
	}
	if h := cs.hostAccount(); h != nil && h.PluginInput.CredentialArn == "" {
		where := "ActiveDirectoryConfig.HostAccountConfig"
		if cs.HostAccountConfig != nil {
			where = "HostAccountConfig"
		}
		return fmt.Errorf("%w: %s.PluginInput.CredentialArn is empty", ErrMalformed, where)
	}
	return nil
}

// Account is the gMSA's sAMAccountName without the trailing "$", as the spec
// spells it (case matters for the Kerberos salt).
func (cs *CredSpec) Account() string {
	return strings.TrimSuffix(cs.ActiveDirectoryConfig.GroupManagedServiceAccounts[0].Name, "$")
}

// DNSDomain is the domain's DNS name in lower case.
func (cs *CredSpec) DNSDomain() string {
	return strings.ToLower(strings.TrimSuffix(cs.DomainJoinConfig.DnsName, "."))
}

// Realm is the Kerberos realm: the DNS domain in upper case.
func (cs *CredSpec) Realm() string { return strings.ToUpper(cs.DNSDomain()) }

// Domainless reports whether the spec reads the password as a standard user
// named by a secret rather than as the host's machine account.
func (cs *CredSpec) Domainless() bool { return cs.hostAccount() != nil }

func (cs *CredSpec) hostAccount() *HostAccountConfig {
	if h := cs.ActiveDirectoryConfig.HostAccountConfig; h != nil {
		return h
	}
	return cs.HostAccountConfig
}

// CredentialArn is where the domainless reader's secret lives ("" when the
// spec is not domainless).
func (cs *CredSpec) CredentialArn() string {
	if h := cs.hostAccount(); h != nil {
		return h.PluginInput.CredentialArn
	}
	return ""
}
