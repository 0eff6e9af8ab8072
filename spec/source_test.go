package spec

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	ssmARN = "arn:aws:ssm:us-west-2:123456789012:parameter/gmsa/webapp01"
	s3ARN  = "arn:aws:s3:::gmsa-specs/webapp01.json"
	smARN  = "arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-reader-AbCdEf"

	unsupportedARN = `: unsupported ARN; want arn:aws:ssm:REGION:ACCOUNT:parameter/NAME, arn:aws:s3:::BUCKET/KEY or arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`
	malformedARN   = `: malformed ARN: want arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`
	unsupportedURL = `: unsupported scheme; want a path, file://, or an SSM or S3 ARN`
	wantFileURL    = `: want file:///absolute/path`
)

func TestParseSource(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want Source
	}{
		{"absolute path", "/etc/gmsa/webapp01.json", Source{Kind: File, Mode: AnyMode, Path: "/etc/gmsa/webapp01.json"}},
		{"relative path", "specs/webapp01.json", Source{Kind: File, Path: "specs/webapp01.json"}},
		{"file url", "file:///etc/gmsa/webapp01.json", Source{Kind: File, Path: "/etc/gmsa/webapp01.json"}},
		{"file url with localhost", "file://localhost/etc/gmsa/webapp01.json", Source{Kind: File, Path: "/etc/gmsa/webapp01.json"}},
		{"file url with an escape", "file:///etc/gmsa/web%20app.json", Source{Kind: File, Path: "/etc/gmsa/web app.json"}},
		{"credentialspec: file url", "credentialspec:file:///etc/gmsa/webapp01.json", Source{Kind: File, Mode: DomainJoined, Path: "/etc/gmsa/webapp01.json"}},
		{"credentialspec: path", "credentialspec:/etc/gmsa/webapp01.json", Source{Kind: File, Mode: DomainJoined, Path: "/etc/gmsa/webapp01.json"}},
		{"credentialspecdomainless: file url", "credentialspecdomainless:file:///etc/gmsa/webapp01.json", Source{Kind: File, Mode: DomainlessMode, Path: "/etc/gmsa/webapp01.json"}},
		{"ssm", ssmARN, Source{Kind: SSM, ARN: ssmARN}},
		{"credentialspecdomainless: ssm", "credentialspecdomainless:" + ssmARN, Source{Kind: SSM, Mode: DomainlessMode, ARN: ssmARN}},
		{"credentialspec: s3", "credentialspec:" + s3ARN, Source{Kind: S3, Mode: DomainJoined, ARN: s3ARN}},
		{"s3 in another partition", "arn:aws-cn:s3:::bucket/dir/key", Source{Kind: S3, ARN: "arn:aws-cn:s3:::bucket/dir/key"}},
		{"ssm name with colons kept", "arn:aws:ssm:us-west-2:1:parameter/a:b", Source{Kind: SSM, ARN: "arn:aws:ssm:us-west-2:1:parameter/a:b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSource(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Raw = tt.raw
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseSource(%q) (-want +got):\n%s", tt.raw, diff)
			}
			if got.String() != tt.raw {
				t.Errorf("String() = %q, want %q", got.String(), tt.raw)
			}
		})
	}
}

func TestParseSourceErrors(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{"empty", "", `source "": empty location`},
		{"prefix only", "credentialspec:", `source "credentialspec:": empty location`},
		{"domainless prefix only", "credentialspecdomainless:", `source "credentialspecdomainless:": empty location`},
		{"file url naming a host", "file://host/x", `source "file://host/x"` + wantFileURL},
		{"file url with a relative path", "file://etc/gmsa/x.json", `source "file://etc/gmsa/x.json"` + wantFileURL},
		{"file url without a path", "file://", `source "file://"` + wantFileURL},
		{"file url with a query", "file:///etc/gmsa/x.json?v=1", `source "file:///etc/gmsa/x.json?v=1"` + wantFileURL},
		{"file url with a fragment", "file:///etc/gmsa/x#1.json", `source "file:///etc/gmsa/x#1.json"` + wantFileURL},
		{"file url with a bad escape", "file:///etc/%zz", `source "file:///etc/%zz"` + wantFileURL},
		{"prefixed file url naming a host", "credentialspec:file://host/x", `source "credentialspec:file://host/x"` + wantFileURL},
		{"https", "https://example.com/spec.json", `source "https://example.com/spec.json"` + unsupportedURL},
		{"s3 url", "s3://gmsa-specs/webapp01.json", `source "s3://gmsa-specs/webapp01.json"` + unsupportedURL},
		{"prefix in another case", "CredentialSpec:file:///x", `source "CredentialSpec:file:///x"` + unsupportedURL},
		{"secrets manager", smARN, `credential spec source "` + smARN + `": a Secrets Manager ARN names a secret, not a credential spec; use an SSM parameter, an S3 object or a file`},
		{"prefixed secrets manager", "credentialspecdomainless:" + smARN, `credential spec source "credentialspecdomainless:` + smARN + `": a Secrets Manager ARN names a secret, not a credential spec; use an SSM parameter, an S3 object or a file`},
		{"arn too short", "arn:aws:ssm:us-west-2", `source "arn:aws:ssm:us-west-2"` + malformedARN},
		{"arn without partition", "arn::ssm:us-west-2:1:parameter/x", `source "arn::ssm:us-west-2:1:parameter/x"` + malformedARN},
		{"arn without service", "arn:aws::us-west-2:1:parameter/x", `source "arn:aws::us-west-2:1:parameter/x"` + malformedARN},
		{"arn without resource", "arn:aws:ssm:us-west-2:1:", `source "arn:aws:ssm:us-west-2:1:"` + malformedARN},
		{"ssm document", "arn:aws:ssm:us-west-2:1:document/x", `source "arn:aws:ssm:us-west-2:1:document/x"` + unsupportedARN},
		{"s3 bucket without key", "arn:aws:s3:::gmsa-specs", `source "arn:aws:s3:::gmsa-specs"` + unsupportedARN},
		{"other service", "arn:aws:iam::1:role/x", `source "arn:aws:iam::1:role/x"` + unsupportedARN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSource(tt.raw)
			if err == nil {
				t.Fatalf("ParseSource(%q) = %+v, want an error", tt.raw, got)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			if diff := cmp.Diff(Source{}, got); diff != "" {
				t.Errorf("ParseSource returned a source with its error:\n%s", diff)
			}
		})
	}
}

func TestParseSecretSource(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    Source
		wantErr string
	}{
		{name: "secrets manager", raw: smARN, want: Source{Kind: SecretsManager, ARN: smARN}},
		{name: "ssm", raw: ssmARN, want: Source{Kind: SSM, ARN: ssmARN}},
		{name: "file url", raw: "file:///etc/gmsa/reader.json", want: Source{Kind: File, Path: "/etc/gmsa/reader.json"}},
		{name: "absolute path", raw: "/etc/gmsa/reader.json", want: Source{Kind: File, Path: "/etc/gmsa/reader.json"}},
		{
			name:    "s3",
			raw:     s3ARN,
			wantErr: `secret source "` + s3ARN + `": S3 objects are not accepted for secrets; use Secrets Manager, SSM SecureString or a root-only file`,
		},
		{
			// The hook's working directory is the runtime's business: a
			// relative path would name a different file from run to run.
			name:    "relative path",
			raw:     "reader.json",
			wantErr: `secret source "reader.json": want an absolute path`,
		},
		{
			// The ECS prefixes belong to credential spec sources only.
			name:    "credentialspec prefix",
			raw:     "credentialspec:" + smARN,
			wantErr: `secret source "credentialspec:` + smARN + `": want an absolute path`,
		},
		{name: "empty", raw: "", wantErr: `source "": empty location`},
		{name: "file url naming a host", raw: "file://host/x", wantErr: `source "file://host/x"` + wantFileURL},
		{name: "https", raw: "https://vault/x", wantErr: `source "https://vault/x"` + unsupportedURL},
		{name: "malformed arn", raw: "arn:aws:secretsmanager", wantErr: `source "arn:aws:secretsmanager"` + malformedARN},
		{name: "secrets manager without secret:", raw: "arn:aws:secretsmanager:us-west-2:1:x", wantErr: `source "arn:aws:secretsmanager:us-west-2:1:x"` + unsupportedARN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecretSource(tt.raw)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseSecretSource(%q) = %+v, %v; want error %s", tt.raw, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Raw = tt.raw
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseSecretSource(%q) (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

func TestSplitARN(t *testing.T) {
	got, err := SplitARN("arn:aws:ssm:us-west-2:123456789012:parameter/a:b/c")
	if err != nil {
		t.Fatal(err)
	}
	want := ARN{Partition: "aws", Service: "ssm", Region: "us-west-2", Account: "123456789012", Resource: "parameter/a:b/c"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SplitARN (-want +got):\n%s", diff)
	}
}

func TestKindString(t *testing.T) {
	got := []string{File.String(), SSM.String(), S3.String(), SecretsManager.String(), Kind(0).String()}
	want := []string{"file", "ssm", "s3", "secretsmanager", "unknown"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Kind names (-want +got):\n%s", diff)
	}
}

// specFile writes a credential spec into a temporary directory.
func specFile(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "webapp01.json")
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	joined, domainless := specFile(t, joinedSpec), specFile(t, ecsSpec)
	tests := []struct {
		name       string
		raw        string
		domainless bool
	}{
		{"joined, no prefix", joined, false},
		{"joined, credentialspec:", "credentialspec:" + joined, false},
		{"joined, credentialspec: file url", "credentialspec:file://" + joined, false},
		{"domainless, no prefix", domainless, true},
		{"domainless, credentialspecdomainless:", "credentialspecdomainless:" + domainless, true},
		{"domainless, credentialspecdomainless: file url", "credentialspecdomainless:file://" + domainless, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := ParseSource(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := Load(context.Background(), src, nil)
			if err != nil {
				t.Fatal(err)
			}
			if cs.Domainless() != tt.domainless {
				t.Errorf("Domainless() = %v, want %v", cs.Domainless(), tt.domainless)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	joined, domainless := specFile(t, joinedSpec), specFile(t, ecsSpec)
	broken := specFile(t, `{"CmsPlugins":["ActiveDirectory"]}`)
	absent := filepath.Join(t.TempDir(), "absent.json")
	tests := []struct {
		name   string
		raw    string
		want   string
		target error
	}{
		{
			"domainless prefix on a joined spec", "credentialspecdomainless:" + joined,
			"credential spec credentialspecdomainless:" + joined + ": malformed credential spec: the credentialspecdomainless: prefix needs HostAccountConfig in the spec",
			ErrMalformed,
		},
		{
			"joined prefix on a domainless spec", "credentialspec:" + domainless,
			"credential spec credentialspec:" + domainless + ": malformed credential spec: the spec has HostAccountConfig (domainless) but the prefix is credentialspec:; use credentialspecdomainless: instead",
			ErrMalformed,
		},
		{
			"invalid spec", "credentialspec:file://" + broken,
			"credential spec credentialspec:file://" + broken + ": malformed credential spec: DomainJoinConfig.DnsName is empty",
			ErrMalformed,
		},
		{"missing file", absent, "open " + absent + ": no such file or directory", os.ErrNotExist},
		{"ssm without aws", "credentialspecdomainless:" + ssmARN, "credentialspecdomainless:" + ssmARN + ": no AWS access configured", ErrNoRemote},
		{"s3 without aws", s3ARN, s3ARN + ": no AWS access configured", ErrNoRemote},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := ParseSource(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := Load(context.Background(), src, nil)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", cs)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			if !errors.Is(err, tt.target) {
				t.Errorf("error %v does not wrap %v", err, tt.target)
			}
		})
	}
}

func TestLoadTooLarge(t *testing.T) {
	p := specFile(t, joinedSpec+strings.Repeat(" ", MaxSize))
	src, err := ParseSource(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(context.Background(), src, nil)
	if want := p + ": larger than 65536 bytes"; err == nil || err.Error() != want {
		t.Fatalf("Load of a large file: %v, want %s", err, want)
	}
}

// fakeRemote serves documents by ARN.
type fakeRemote map[string]string

func (f fakeRemote) Get(_ context.Context, src Source) ([]byte, error) {
	if d, ok := f[src.ARN]; ok {
		return []byte(d), nil
	}
	return nil, errors.New("not found: " + src.ARN)
}

func TestLoadRemote(t *testing.T) {
	remote := fakeRemote{ssmARN: ecsSpec, s3ARN: joinedSpec}
	for _, tt := range []struct {
		raw  string
		want string // the error, "" for none
	}{
		{"credentialspecdomainless:" + ssmARN, ""},
		{"credentialspec:" + s3ARN, ""},
		{"credentialspec:" + ssmARN, "credential spec credentialspec:" + ssmARN + ": malformed credential spec: the spec has HostAccountConfig (domainless) but the prefix is credentialspec:; use credentialspecdomainless: instead"},
	} {
		src, err := ParseSource(tt.raw)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Load(context.Background(), src, remote)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Load(%s): %v", tt.raw, err)
		case tt.want != "" && (err == nil || err.Error() != tt.want):
			t.Errorf("Load(%s): %v, want %s", tt.raw, err, tt.want)
		}
	}
}

// FuzzFileURLPath: fileURLPath accepts a file URL only when net/url's Parse
// does, to the same path with no other host, query or fragment; and every
// such URL without user info or a '#' (net/url reads "x#" as no fragment).
func FuzzFileURLPath(f *testing.F) {
	for _, s := range []string{"file:///etc/gmsa/x.json", "file://localhost/x", "file:///a%20b", "file:///%zz", "file://host/x",
		"file:///x?y", "file:///x#y", "file://", "file:///", "file://user@localhost/x", "file:///a\x7fb", "file:///%2F..%2Fshadow"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !strings.HasPrefix(s, "file://") {
			s = "file://" + s
		}
		got, ok := fileURLPath(s)
		u, err := url.Parse(s)
		urlOK := err == nil && (u.Host == "" || u.Host == "localhost") && u.Path != "" && u.RawQuery == "" && !u.ForceQuery && u.Fragment == ""
		if ok && (!urlOK || u.Path != got) {
			t.Fatalf("fileURLPath(%q) = %q, net/url: %+v %v", s, got, u, err)
		}
		if !ok && urlOK && u.User == nil && !strings.Contains(s, "#") {
			t.Fatalf("fileURLPath(%q) refused what net/url reads as path %q", s, u.Path)
		}
	})
}
