package spec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gmsa-hook/gmsa-hook/hook/store"
)

// PortablePluginGUID is the CCG plug-in ECS and credentials-fetcher name in
// domainless specs, braces included as Windows writes a COM CLSID.
const PortablePluginGUID = "{859E1386-BDB4-49E8-85C7-3070B13920E1}"

// DomainInfo is what New needs to know about the gMSA's domain.
type DomainInfo struct {
	SID, GUID                         string
	DNSName, DNSTreeName, NetBIOSName string
}

// New returns the credential spec Windows' New-CredentialSpec writes for
// the gMSA account (its sAMAccountName, with or without "$") of the domain:
// one GroupManagedServiceAccounts entry scoped by the DNS name and one by
// the NetBIOS name. A non-empty credentialArn makes it domainless: a
// HostAccountConfig with the portable CCG plug-in reading its reader from
// there.
func New(d DomainInfo, account, credentialArn string) *CredSpec {
	name := strings.TrimSuffix(account, "$")
	cs := &CredSpec{
		CmsPlugins: []string{"ActiveDirectory"},
		DomainJoinConfig: DomainJoinConfig{
			Sid: d.SID, MachineAccountName: name, Guid: d.GUID,
			DnsTreeName: d.DNSTreeName, DnsName: d.DNSName, NetBiosName: d.NetBIOSName,
		},
		ActiveDirectoryConfig: ActiveDirectoryConfig{GroupManagedServiceAccounts: []GMSA{
			{Name: name, Scope: d.DNSName}, {Name: name, Scope: d.NetBIOSName},
		}},
	}
	if credentialArn != "" {
		cs.ActiveDirectoryConfig.HostAccountConfig = &HostAccountConfig{
			PortableCcgVersion: "1", PluginGUID: PortablePluginGUID,
			PluginInput: PluginInput{CredentialArn: credentialArn},
		}
	}
	return cs
}

// Marshal writes the spec as Windows' examples show it: the fields in
// New-CredentialSpec's order, indented by four spaces, nothing escaped
// that JSON does not require, and a final newline.
func (cs *CredSpec) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "    ")
	if err := enc.Encode(cs); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Writer stores documents where a Remote reads them: awsremote.New's Remote is
// one (SSM PutParameter, S3 PutObject).
type Writer interface {
	Put(ctx context.Context, dst Source, data []byte) error
}

// ErrNoWriter is returned for AWS destinations when the Remote cannot write.
var ErrNoWriter = errors.New("no AWS access configured for writing")

// Store writes data to dst: a local file atomically (a reader sees the old
// file or the new one, never a part; mode 0644, as a spec holds no secret),
// an SSM parameter or an S3 object through remote.
func Store(ctx context.Context, dst Source, data []byte, remote Remote) error {
	if dst.Kind == File {
		if err := store.WriteFile(dst.Path, data, 0o644, -1, -1); err != nil {
			return fmt.Errorf("write %s: %w", dst.Path, err)
		}
		return nil
	}
	if dst.Kind != SSM && dst.Kind != S3 {
		return fmt.Errorf("%s: a credential spec is written to a file, an SSM parameter or an S3 object", dst.Raw)
	}
	w, ok := remote.(Writer)
	if !ok || remote == nil {
		return fmt.Errorf("%s: %w", dst.Raw, ErrNoWriter)
	}
	return w.Put(ctx, dst, data)
}
