package awsremote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/google/go-cmp/cmp"

	"github.com/gmsa-hook/gmsa-hook/spec"
	"github.com/gmsa-hook/gmsa-hook/test/awsfake"
)

// Test documents. The reader's password and the SecureString value are
// what no error may ever print.
const (
	testPassword = "Rdr-Pa55w0rd!xyzzy"
	testSecret   = `{"username":"gmsa-reader","password":"` + testPassword + `","domainName":"corp.example.test"}`

	testCredSpec = `{"CmsPlugins":["ActiveDirectory"],
"DomainJoinConfig":{"Sid":"S-1-5-21-1-2-3","MachineAccountName":"webapp01","Guid":"8a4e3e9b-1c2d-4f5e-8a9b-0c1d2e3f4a5b","DnsTreeName":"corp.example.test","DnsName":"corp.example.test","NetBiosName":"CORP"},
"ActiveDirectoryConfig":{"GroupManagedServiceAccounts":[{"Name":"webapp01","Scope":"corp.example.test"},{"Name":"webapp01","Scope":"CORP"}]}}`
)

// domainlessSpec is testCredSpec with HostAccountConfig naming arn.
func domainlessSpec(arn string) string {
	return strings.TrimSuffix(testCredSpec, "}") + `,
"HostAccountConfig":{"PortableCcgVersion":"1","PluginGUID":"{859E1386-BDB4-49E8-85C7-3070B13920E1}","PluginInput":{"CredentialArn":"` + arn + `"}}}`
}

// isolate removes every AWS_* variable and HOME's ~/.aws for the test,
// and keeps the SDK away from IMDS.
func isolate(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// noBackoff retries at once, to keep retry tests fast.
type noBackoff struct{}

func (noBackoff) BackoffDelay(int, error) (time.Duration, error) { return 0, nil }

// world is the fakes with every document the tests read.
type world struct {
	f *awsfake.Fakes

	ssmString, ssmSecure, ssmList, ssmDomainless, ssmSecret string
	s3Spec, s3Big                                           string
	smSecret, smStd, smBinary, smNoPassword, smNotJSON      string
	file                                                    string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	isolate(t)
	f := awsfake.Start(t, awsfake.Options{})
	f.SetEnv(t)
	w := &world{f: f}
	w.smSecret = f.SecretsManager.Put("gmsa/reader", testSecret)
	w.smStd = f.SecretsManager.Put("gmsa/reader-std", `{"usernameOfStandardUserAccount":"CORP\\gmsa-reader","passwordOfStandardUserAccount":"`+testPassword+`","domainName":"corp.example.test.","distinguishedName":"CN=webapp01,CN=Managed Service Accounts,DC=corp,DC=example,DC=test"}`)
	w.smBinary = f.SecretsManager.PutBinary("gmsa/reader-binary", []byte(testSecret))
	w.smNoPassword = f.SecretsManager.Put("gmsa/reader-nopassword", `{"username":"gmsa-reader","domainName":"corp.example.test","note":"`+testPassword+`"}`)
	w.smNotJSON = f.SecretsManager.Put("gmsa/reader-notjson", "password="+testPassword)
	w.ssmString = f.SSM.Put("/gmsa/webapp01", awsfake.String, testCredSpec)
	w.ssmSecure = f.SSM.Put("/gmsa/webapp01-secure", awsfake.SecureString, testCredSpec)
	w.ssmDomainless = f.SSM.Put("gmsa-domainless", awsfake.SecureString, domainlessSpec(w.smSecret))
	w.ssmList = f.SSM.Put("/gmsa/list", awsfake.StringList, testPassword+",b")
	w.ssmSecret = f.SSM.Put("/gmsa/reader", awsfake.SecureString, testSecret)
	w.s3Spec = f.S3.Put("gmsa-specs", "specs/webapp01.json", []byte(testCredSpec))
	w.s3Big = f.S3.Put("gmsa-specs", "big.json", []byte(strings.Repeat(" ", spec.MaxSize)+testPassword))
	dir := t.TempDir()
	w.file = filepath.Join(dir, "webapp01.json")
	if err := os.WriteFile(w.file, []byte(testCredSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) clear() {
	w.f.SSM.Clear()
	w.f.SecretsManager.Clear()
	w.f.S3.Clear()
}

func testRemote(cfg Config) *awsRemote {
	r := New(cfg).(*awsRemote)
	r.backoff = noBackoff{}
	return r
}

func wantSpec(t *testing.T) *spec.CredSpec {
	t.Helper()
	cs, err := spec.Parse([]byte(testCredSpec))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestAWSLoadCredSpec(t *testing.T) {
	w := newWorld(t)
	plain := wantSpec(t)
	domainless, err := spec.Parse([]byte(domainlessSpec(w.smSecret)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		raw  string
		want *spec.CredSpec
		ssm  int // requests SSM saw
		s3   int
	}{
		{"ssm string", w.ssmString, plain, 1, 0},
		{"ssm string credentialspec", "credentialspec:" + w.ssmString, plain, 1, 0},
		{"ssm securestring", w.ssmSecure, plain, 1, 0},
		{"ssm securestring credentialspec", "credentialspec:" + w.ssmSecure, plain, 1, 0},
		{"ssm domainless", w.ssmDomainless, domainless, 1, 0},
		{"ssm credentialspecdomainless", "credentialspecdomainless:" + w.ssmDomainless, domainless, 1, 0},
		{"s3", w.s3Spec, plain, 0, 1},
		{"s3 credentialspec", "credentialspec:" + w.s3Spec, plain, 0, 1},
		{"file url", "file://" + w.file, plain, 0, 0},
		{"file url credentialspec", "credentialspec:file://" + w.file, plain, 0, 0},
		{"plain path", w.file, plain, 0, 0},
		{"plain path credentialspec", "credentialspec:" + w.file, plain, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.clear()
			src, err := spec.ParseSource(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			r := testRemote(Config{})
			got, err := spec.Load(context.Background(), src, r)
			if err != nil {
				t.Fatalf("Load(%q): %v", tt.raw, err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("Load(%q) (-want +got):\n%s", tt.raw, d)
			}
			if g := w.f.SSM.Requests(); g != tt.ssm {
				t.Errorf("SSM requests = %d, want %d", g, tt.ssm)
			}
			if g := w.f.S3.Requests(); g != tt.s3 {
				t.Errorf("S3 requests = %d, want %d", g, tt.s3)
			}
			if tt.ssm == 0 && tt.s3 == 0 && r.loaded != nil {
				t.Errorf("a local source loaded the AWS configuration")
			}
		})
	}
}

func TestAWSLoadSecret(t *testing.T) {
	w := newWorld(t)
	reader := spec.Secret{Username: "gmsa-reader", Password: testPassword, DomainName: "corp.example.test"}
	tests := []struct {
		name string
		raw  string
		want spec.Secret
	}{
		{"secretsmanager", w.smSecret, reader},
		{"secretsmanager partial arn", strings.TrimSuffix(w.smSecret, w.smSecret[len(w.smSecret)-7:]), reader},
		{"secretsmanager standard user keys and dn", w.smStd, spec.Secret{
			Username: "gmsa-reader", Password: testPassword, DomainName: "corp.example.test",
			DistinguishedName: "CN=webapp01,CN=Managed Service Accounts,DC=corp,DC=example,DC=test",
		}},
		{"secretsmanager binary", w.smBinary, reader},
		{"ssm securestring", w.ssmSecret, reader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := spec.ParseSecretSource(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := spec.LoadSecret(context.Background(), src, testRemote(Config{}))
			if err != nil {
				t.Fatalf("LoadSecret(%q): %v", tt.raw, err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("LoadSecret(%q) (-want +got):\n%s", tt.raw, d)
			}
		})
	}
}

// TestAWSDomainlessChain reads a domainless spec from SSM and then the
// reader secret it names from Secrets Manager, as the hook does.
func TestAWSDomainlessChain(t *testing.T) {
	w := newWorld(t)
	r := testRemote(Config{})
	src, err := spec.ParseSource("credentialspecdomainless:" + w.ssmDomainless)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := spec.Load(context.Background(), src, r)
	if err != nil {
		t.Fatal(err)
	}
	ssrc, err := spec.ParseSecretSource(cs.CredentialArn())
	if err != nil {
		t.Fatal(err)
	}
	sec, err := spec.LoadSecret(context.Background(), ssrc, r)
	if err != nil {
		t.Fatal(err)
	}
	if sec.Username != "gmsa-reader" || sec.Password != testPassword {
		t.Errorf("secret = %v", sec)
	}
}

// failure is one failing read: what to set up, what to read, and the exact
// line an operator sees.
type failure struct {
	name     string
	cfg      Config
	setup    func(w *world)
	raw      func(w *world) string
	secret   bool // read with spec.LoadSecret
	load     bool // read with spec.Load (prefix checks)
	want     func(w *world) string
	sentinel error
	requests func(w *world) int // requests the service saw; nil: don't check
	prefix   bool               // want is only the start of the message
}

func failures() []failure {
	return []failure{
		{
			name: "ssm not found",
			raw:  func(w *world) string { return w.f.SSM.ARN("/gmsa/nosuch") },
			want: func(w *world) string {
				return "ssm parameter " + w.f.SSM.ARN("/gmsa/nosuch") + ": not found: no such parameter (ParameterNotFound)"
			},
			sentinel: spec.ErrNotFound,
			requests: func(w *world) int { return w.f.SSM.Requests() - 1 }, // not retried
		},
		{
			name:   "secretsmanager not found",
			raw:    func(w *world) string { return w.f.SecretsManager.ARN("gmsa/nosuch") },
			secret: true,
			want: func(w *world) string {
				return "secretsmanager secret " + w.f.SecretsManager.ARN("gmsa/nosuch") + ": not found: no such secret (ResourceNotFoundException)"
			},
			sentinel: spec.ErrNotFound,
			requests: func(w *world) int { return w.f.SecretsManager.Requests() - 1 },
		},
		{
			name: "s3 no such key",
			raw:  func(w *world) string { return "arn:aws:s3:::gmsa-specs/nosuch.json" },
			want: func(w *world) string {
				return "s3 object arn:aws:s3:::gmsa-specs/nosuch.json: not found: no such object (NoSuchKey)"
			},
			sentinel: spec.ErrNotFound,
			requests: func(w *world) int { return w.f.S3.Requests() - 1 },
		},
		{
			name: "s3 no such bucket",
			raw:  func(w *world) string { return "arn:aws:s3:::nosuch-bucket/webapp01.json" },
			want: func(w *world) string {
				return "s3 object arn:aws:s3:::nosuch-bucket/webapp01.json: not found: no such bucket (NoSuchBucket)"
			},
			sentinel: spec.ErrNotFound,
		},
		{
			name:  "ssm access denied",
			setup: func(w *world) { w.f.SSM.Fail(awsfake.AccessDenied, 0) },
			raw:   func(w *world) string { return w.ssmSecure },
			want: func(w *world) string {
				return "ssm parameter " + w.ssmSecure + ": access denied: ssm:GetParameter refused (User: arn:aws:sts::111122223333:assumed-role/gmsa-hook-test/i-0123456789abcdef0 is not authorized to perform: ssm:GetParameter on resource: " + w.ssmSecure + " because no identity-based policy allows the ssm:GetParameter action)"
			},
			sentinel: spec.ErrAccessDenied,
			requests: func(w *world) int { return w.f.SSM.Requests() - 1 },
		},
		{
			name:   "secretsmanager access denied",
			setup:  func(w *world) { w.f.SecretsManager.Fail(awsfake.AccessDenied, 0) },
			raw:    func(w *world) string { return w.smSecret },
			secret: true,
			want: func(w *world) string {
				return "secretsmanager secret " + w.smSecret + ": access denied: secretsmanager:GetSecretValue refused (User: arn:aws:sts::111122223333:assumed-role/gmsa-hook-test/i-0123456789abcdef0 is not authorized to perform: secretsmanager:GetSecretValue on resource: " + w.smSecret + " because no identity-based policy allows the secretsmanager:GetSecretValue action)"
			},
			sentinel: spec.ErrAccessDenied,
			requests: func(w *world) int { return w.f.SecretsManager.Requests() - 1 },
		},
		{
			name:  "s3 access denied",
			setup: func(w *world) { w.f.S3.Fail(awsfake.AccessDenied, 0) },
			raw:   func(w *world) string { return w.s3Spec },
			want: func(w *world) string {
				return "s3 object " + w.s3Spec + ": access denied: s3:GetObject refused (Access Denied); S3 also answers this for a missing key when s3:ListBucket is not allowed"
			},
			sentinel: spec.ErrAccessDenied,
			requests: func(w *world) int { return w.f.S3.Requests() - 1 },
		},
		{
			name:  "ssm throttled past max attempts",
			cfg:   Config{MaxAttempts: 3},
			setup: func(w *world) { w.f.SSM.Fail(awsfake.Throttle, 0) },
			raw:   func(w *world) string { return w.ssmString },
			want: func(w *world) string {
				return "ssm parameter " + w.ssmString + ": throttled after 3 tries (ThrottlingException: Rate exceeded)"
			},
			sentinel: spec.ErrThrottled,
			requests: func(w *world) int { return w.f.SSM.Requests() - 3 },
		},
		{
			name:   "secretsmanager throttled past default attempts",
			setup:  func(w *world) { w.f.SecretsManager.Fail(awsfake.Throttle, 0) },
			raw:    func(w *world) string { return w.smSecret },
			secret: true,
			want: func(w *world) string {
				return "secretsmanager secret " + w.smSecret + ": throttled after 4 tries (ThrottlingException: Rate exceeded)"
			},
			sentinel: spec.ErrThrottled,
			requests: func(w *world) int { return w.f.SecretsManager.Requests() - DefaultMaxAttempts },
		},
		{
			name:  "s3 slow down past max attempts",
			cfg:   Config{MaxAttempts: 2},
			setup: func(w *world) { w.f.S3.Fail(awsfake.Throttle, 0) },
			raw:   func(w *world) string { return w.s3Spec },
			want: func(w *world) string {
				return "s3 object " + w.s3Spec + ": throttled after 2 tries (SlowDown: Please reduce your request rate.)"
			},
			sentinel: spec.ErrThrottled,
			requests: func(w *world) int { return w.f.S3.Requests() - 2 },
		},
		{
			name:  "ssm 500 past max attempts",
			cfg:   Config{MaxAttempts: 3},
			setup: func(w *world) { w.f.SSM.Fail(awsfake.InternalError, 0) },
			raw:   func(w *world) string { return w.ssmString },
			want: func(w *world) string {
				return "ssm parameter " + w.ssmString + ": service error after 3 tries (InternalServerError, HTTP 500)"
			},
			requests: func(w *world) int { return w.f.SSM.Requests() - 3 },
		},
		{
			name: "ssm wrong parameter type",
			raw:  func(w *world) string { return w.ssmList },
			want: func(w *world) string {
				return "ssm parameter " + w.ssmList + `: unsupported parameter type: "StringList"; want String or SecureString`
			},
			sentinel: spec.ErrParameterType,
		},
		{
			name: "s3 object past the size limit",
			raw:  func(w *world) string { return w.s3Big },
			want: func(w *world) string {
				return fmt.Sprintf("s3 object %s: %d bytes is larger than the limit of %d bytes (s3_max_size)", w.s3Big, spec.MaxSize+len(testPassword), spec.MaxSize)
			},
		},
		{
			name: "s3 object past a configured size limit",
			cfg:  Config{S3MaxSize: 100},
			raw:  func(w *world) string { return w.s3Spec },
			want: func(w *world) string {
				return fmt.Sprintf("s3 object %s: %d bytes is larger than the limit of 100 bytes (s3_max_size)", w.s3Spec, len(testCredSpec))
			},
		},
		{
			name:   "secret without password",
			raw:    func(w *world) string { return w.smNoPassword },
			secret: true,
			want: func(w *world) string {
				return "secret " + w.smNoPassword + `: malformed credential spec: secret has no "password" (or "passwordOfStandardUserAccount")`
			},
			sentinel: spec.ErrMalformed,
		},
		{
			name:   "secret not json",
			raw:    func(w *world) string { return w.smNotJSON },
			secret: true,
			want: func(w *world) string {
				return "secret " + w.smNotJSON + ": malformed credential spec: secret is not a JSON object with string values"
			},
			sentinel: spec.ErrMalformed,
		},
		{
			name: "domainless prefix on a domain-joined spec",
			raw:  func(w *world) string { return "credentialspecdomainless:" + w.ssmString },
			load: true,
			want: func(w *world) string {
				return "credential spec credentialspecdomainless:" + w.ssmString + ": malformed credential spec: the credentialspecdomainless: prefix needs HostAccountConfig in the spec"
			},
			sentinel: spec.ErrMalformed,
		},
		{
			name: "domain-joined prefix on a domainless spec",
			raw:  func(w *world) string { return "credentialspec:" + w.ssmDomainless },
			load: true,
			want: func(w *world) string {
				return "credential spec credentialspec:" + w.ssmDomainless + ": malformed credential spec: the spec has HostAccountConfig (domainless) but the prefix is credentialspec:; use credentialspecdomainless: instead"
			},
			sentinel: spec.ErrMalformed,
		},
		{
			name:  "ssm garbled answer",
			setup: func(w *world) { w.f.SSM.Fail(awsfake.Garbled, 0) },
			raw:   func(w *world) string { return w.ssmSecret },
			want:  func(w *world) string { return "ssm parameter " + w.ssmSecret + ": cannot decode the answer" },
		},
		{
			name:   "secretsmanager garbled answer",
			setup:  func(w *world) { w.f.SecretsManager.Fail(awsfake.Garbled, 0) },
			raw:    func(w *world) string { return w.smSecret },
			secret: true,
			want:   func(w *world) string { return "secretsmanager secret " + w.smSecret + ": cannot decode the answer" },
		},
		{
			name:   "s3 cut short",
			setup:  func(w *world) { w.f.S3.Fail(awsfake.Garbled, 0) },
			raw:    func(w *world) string { return w.s3Spec },
			want:   func(w *world) string { return "s3 object " + w.s3Spec + ": reading the object: unexpected EOF" },
			prefix: true,
		},
		{
			name: "unknown access key",
			setup: func(w *world) {
				os.Setenv("AWS_ACCESS_KEY_ID", "AKIANOTKNOWNTOFAKES0")
			},
			raw: func(w *world) string { return w.ssmString },
			want: func(w *world) string {
				return "ssm parameter " + w.ssmString + ": no usable AWS credentials: the service rejected them (UnrecognizedClientException: The security token included in the request is invalid.)"
			},
			sentinel: spec.ErrNoCredentials,
		},
		{
			name:   "wrong secret key",
			setup:  func(w *world) { os.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-key") },
			raw:    func(w *world) string { return w.smSecret },
			secret: true,
			want: func(w *world) string {
				return "secretsmanager secret " + w.smSecret + ": no usable AWS credentials: the service rejected them (InvalidSignatureException: the request signature we calculated does not match the signature you provided)"
			},
			sentinel: spec.ErrNoCredentials,
		},
		{
			name:  "s3 wrong secret key",
			setup: func(w *world) { os.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-key") },
			raw:   func(w *world) string { return w.s3Spec },
			want: func(w *world) string {
				return "s3 object " + w.s3Spec + ": no usable AWS credentials: the service rejected them (SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided. Check your key and signing method.)"
			},
			sentinel: spec.ErrNoCredentials,
		},
		{
			name: "no credentials anywhere",
			setup: func(w *world) {
				os.Unsetenv("AWS_ACCESS_KEY_ID")
				os.Unsetenv("AWS_SECRET_ACCESS_KEY")
			},
			raw:      func(w *world) string { return w.ssmString },
			want:     func(w *world) string { return "ssm parameter " + w.ssmString + ": no usable AWS credentials: " },
			prefix:   true,
			sentinel: spec.ErrNoCredentials,
			requests: func(w *world) int { return w.f.SSM.Requests() },
		},
		{
			name: "unreachable endpoint",
			cfg:  Config{Endpoints: map[string]string{"ssm": "http://127.0.0.1:1"}, MaxAttempts: 2},
			raw:  func(w *world) string { return w.ssmString },
			want: func(w *world) string {
				return "ssm parameter " + w.ssmString + ": cannot reach the service after 2 tries: "
			},
			prefix: true,
		},
		{
			name: "missing profile",
			cfg:  Config{Profile: "nosuch"},
			raw:  func(w *world) string { return w.ssmString },
			want: func(w *world) string {
				return "ssm parameter " + w.ssmString + ": loading AWS configuration: failed to get shared config profile, nosuch"
			},
			prefix: true,
		},
		{
			name: "invalid configuration",
			cfg:  Config{Endpoints: map[string]string{"sts": "http://127.0.0.1:1"}},
			raw:  func(w *world) string { return w.ssmString },
			want: func(w *world) string {
				return "ssm parameter " + w.ssmString + `: aws: endpoints: unknown service "sts"; want ssm, s3 or secretsmanager`
			},
		},
		{
			name: "s3 access point arn",
			raw: func(w *world) string {
				return "arn:aws:s3:us-west-2:111122223333:accesspoint/specs/object/webapp01.json"
			},
			want: func(w *world) string {
				return "s3 object arn:aws:s3:us-west-2:111122223333:accesspoint/specs/object/webapp01.json: want an object ARN arn:aws:s3:::BUCKET/KEY"
			},
		},
	}
}

func (tt failure) run(t *testing.T, w *world) error {
	t.Helper()
	w.clear()
	if tt.setup != nil {
		t.Setenv("AWS_ACCESS_KEY_ID", os.Getenv("AWS_ACCESS_KEY_ID")) // restored after the test
		t.Setenv("AWS_SECRET_ACCESS_KEY", os.Getenv("AWS_SECRET_ACCESS_KEY"))
		tt.setup(w)
	}
	raw := tt.raw(w)
	r := testRemote(tt.cfg)
	ctx := context.Background()
	var err error
	switch {
	case tt.secret:
		var src spec.Source
		if src, err = spec.ParseSecretSource(raw); err != nil {
			t.Fatal(err)
		}
		_, err = spec.LoadSecret(ctx, src, r)
	case tt.load:
		var src spec.Source
		if src, err = spec.ParseSource(raw); err != nil {
			t.Fatal(err)
		}
		_, err = spec.Load(ctx, src, r)
	default:
		var src spec.Source
		if src, err = spec.ParseSource(raw); err != nil {
			t.Fatal(err)
		}
		_, err = spec.Read(ctx, src, r)
	}
	return err
}

func TestAWSErrors(t *testing.T) {
	w := newWorld(t)
	for _, tt := range failures() {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(t, w)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			want := tt.want(w)
			if got := err.Error(); got != want && !(tt.prefix && strings.HasPrefix(got, want)) {
				t.Errorf("error:\n got %s\nwant %s", got, want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is more than one line: %q", err)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(err, %v) = false", tt.sentinel)
			}
			if tt.requests != nil {
				if n := tt.requests(w); n != 0 {
					t.Errorf("service saw %+d requests more than expected", n)
				}
			}
		})
	}
}

// TestAWSNoSecretsInErrors checks that no failure's message, nor its
// wrapped errors' messages, quote the password or a document holding it.
func TestAWSNoSecretsInErrors(t *testing.T) {
	w := newWorld(t)
	cases := failures()
	// Failures of documents that hold the password, in every way a
	// read can fail.
	for _, f := range []awsfake.Fault{awsfake.Garbled, awsfake.AccessDenied, awsfake.Throttle, awsfake.InternalError, awsfake.Unavailable} {
		for _, doc := range []struct {
			name   string
			svc    func(w *world) *awsfake.Service
			raw    func(w *world) string
			secret bool
		}{
			{"ssm secret", func(w *world) *awsfake.Service { return &w.f.SSM.Service }, func(w *world) string { return w.ssmSecret }, true},
			{"secretsmanager", func(w *world) *awsfake.Service { return &w.f.SecretsManager.Service }, func(w *world) string { return w.smSecret }, true},
			{"secretsmanager binary", func(w *world) *awsfake.Service { return &w.f.SecretsManager.Service }, func(w *world) string { return w.smBinary }, true},
			{"s3 big", func(w *world) *awsfake.Service { return &w.f.S3.Service }, func(w *world) string { return w.s3Big }, false},
		} {
			cases = append(cases, failure{
				name:   doc.name + " " + f.String(),
				cfg:    Config{MaxAttempts: 2},
				setup:  func(w *world) { doc.svc(w).Fail(f, 0) },
				raw:    doc.raw,
				secret: doc.secret,
			})
		}
	}
	cases = append(cases, failure{name: "stringlist holding the password", raw: func(w *world) string { return w.ssmList }})
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(t, w)
			if err == nil {
				t.Fatal("no error")
			}
			for e := range walk(err) {
				for _, s := range []string{testPassword, testSecret, strings.Repeat(" ", 64)} {
					if strings.Contains(e.Error(), s) {
						t.Errorf("error %T quotes a secret: %q", e, e.Error())
					}
				}
			}
		})
	}
}

// walk yields err and every error it wraps.
func walk(err error) func(func(error) bool) {
	return func(yield func(error) bool) {
		var rec func(error) bool
		rec = func(e error) bool {
			if e == nil {
				return true
			}
			if !yield(e) {
				return false
			}
			switch u := e.(type) {
			case interface{ Unwrap() error }:
				return rec(u.Unwrap())
			case interface{ Unwrap() []error }:
				for _, x := range u.Unwrap() {
					if !rec(x) {
						return false
					}
				}
			}
			return true
		}
		rec(err)
	}
}

func TestAWSRetriesThenSuccess(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		name  string
		svc   func(w *world) *awsfake.Service
		fault awsfake.Fault
		times int
		raw   func(w *world) string
	}{
		{"ssm throttled twice", func(w *world) *awsfake.Service { return &w.f.SSM.Service }, awsfake.Throttle, 2, func(w *world) string { return w.ssmSecure }},
		{"ssm 500 three times", func(w *world) *awsfake.Service { return &w.f.SSM.Service }, awsfake.InternalError, 3, func(w *world) string { return w.ssmString }},
		{"ssm 503 once", func(w *world) *awsfake.Service { return &w.f.SSM.Service }, awsfake.Unavailable, 1, func(w *world) string { return w.ssmString }},
		{"secretsmanager throttled three times", func(w *world) *awsfake.Service { return &w.f.SecretsManager.Service }, awsfake.Throttle, 3, func(w *world) string { return w.smSecret }},
		{"secretsmanager 500 once", func(w *world) *awsfake.Service { return &w.f.SecretsManager.Service }, awsfake.InternalError, 1, func(w *world) string { return w.smSecret }},
		{"s3 slow down twice", func(w *world) *awsfake.Service { return &w.f.S3.Service }, awsfake.Throttle, 2, func(w *world) string { return w.s3Spec }},
		{"s3 500 once", func(w *world) *awsfake.Service { return &w.f.S3.Service }, awsfake.InternalError, 1, func(w *world) string { return w.s3Spec }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.clear()
			svc := tt.svc(w)
			svc.Fail(tt.fault, tt.times)
			src, err := spec.ParseSource(tt.raw(w))
			if err != nil {
				src, err = spec.ParseSecretSource(tt.raw(w))
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := spec.Read(context.Background(), src, testRemote(Config{}))
			if err != nil {
				t.Fatal(err)
			}
			if len(b) == 0 {
				t.Error("empty document")
			}
			if got, want := svc.Requests(), tt.times+1; got != want {
				t.Errorf("requests = %d, want %d", got, want)
			}
		})
	}
}

func TestAWSEndpoints(t *testing.T) {
	w := newWorld(t)
	const dead = "http://127.0.0.1:1"
	tests := []struct {
		name string
		env  map[string]string
		cfg  Config
	}{
		{"AWS_ENDPOINT_URL", map[string]string{"AWS_ENDPOINT_URL": w.f.URL}, Config{}},
		{"per-service variables win over AWS_ENDPOINT_URL", map[string]string{
			"AWS_ENDPOINT_URL":                 dead,
			"AWS_ENDPOINT_URL_SSM":             w.f.URL,
			"AWS_ENDPOINT_URL_S3":              w.f.URL,
			"AWS_ENDPOINT_URL_SECRETS_MANAGER": w.f.URL,
		}, Config{}},
		{"configuration wins over the variables", map[string]string{
			"AWS_ENDPOINT_URL":     dead,
			"AWS_ENDPOINT_URL_SSM": dead,
			"AWS_ENDPOINT_URL_S3":  dead,
		}, Config{Endpoints: map[string]string{"ssm": w.f.URL, "s3": w.f.URL, "secretsmanager": w.f.URL}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			tt.cfg.MaxAttempts = 1
			r := testRemote(tt.cfg)
			for _, raw := range []string{w.ssmString, w.s3Spec, w.smSecret} {
				src, err := spec.ParseSource(raw)
				if err != nil {
					src, err = spec.ParseSecretSource(raw)
				}
				if err != nil {
					t.Fatal(err)
				}
				if _, err := spec.Read(context.Background(), src, r); err != nil {
					t.Errorf("Read(%s): %v", raw, err)
				}
			}
		})
	}
}

// TestAWSConfigFileWithoutEnvironment is the hook's situation: no
// environment at all; profile, region, endpoints and keys come from files
// named in the configuration.
func TestAWSConfigFileWithoutEnvironment(t *testing.T) {
	w := newWorld(t)
	imds := w.f.StartIMDS(t)
	saved := os.Environ()
	t.Cleanup(func() {
		os.Clearenv()
		for _, kv := range saved {
			k, v, _ := strings.Cut(kv, "=")
			os.Setenv(k, v)
		}
	})
	os.Clearenv()
	dir := t.TempDir()
	conf := filepath.Join(dir, "config")
	creds := filepath.Join(dir, "credentials")
	writeFile(t, conf, `[profile gmsa]
region = us-west-2
endpoint_url = `+w.f.URL+`
services = fakes

[services fakes]
s3 =
  endpoint_url = `+w.f.URL+`
`)
	writeFile(t, creds, "[gmsa]\naws_access_key_id = "+awsfake.AccessKeyID+"\naws_secret_access_key = "+awsfake.SecretAccessKey+"\n")
	r := testRemote(Config{Profile: "gmsa", ConfigFiles: []string{conf}, CredentialsFiles: []string{creds}})
	// Not an environment variable: if the chain went past the files it
	// would ask this IMDS, and the test would see it.
	r.loadOptions = append(r.loadOptions, config.WithEC2IMDSEndpoint(imds.URL))
	for _, raw := range []string{w.ssmString, w.s3Spec, w.smSecret} {
		src, err := spec.ParseSource(raw)
		if err != nil {
			src, err = spec.ParseSecretSource(raw)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := spec.Read(context.Background(), src, r); err != nil {
			t.Errorf("Read(%s): %v", raw, err)
		}
	}
	if n := imds.Requests(); n != 0 {
		t.Errorf("IMDS saw %d requests, want none", n)
	}
	if got := len(os.Environ()); got != 0 {
		t.Errorf("environment has %d variables", got)
	}
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAWSInstanceProfile checks that with no keys anywhere the default
// chain asks IMDS for the instance profile's credentials, as on EC2.
func TestAWSInstanceProfile(t *testing.T) {
	w := newWorld(t)
	imds := w.f.StartIMDS(t)
	os.Unsetenv("AWS_ACCESS_KEY_ID")
	os.Unsetenv("AWS_SECRET_ACCESS_KEY")
	os.Unsetenv("AWS_EC2_METADATA_DISABLED")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
	src, err := spec.ParseSource(w.ssmSecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spec.Load(context.Background(), src, testRemote(Config{})); err != nil {
		t.Fatal(err)
	}
	if imds.Requests() == 0 {
		t.Error("IMDS was not asked")
	}
	if w.f.SSM.Requests() != 1 {
		t.Errorf("SSM requests = %d, want 1", w.f.SSM.Requests())
	}
}

// TestAWSS3BucketRegion: S3 ARNs carry no region; without one configured
// the request is signed for us-east-1 and S3's answer names the bucket's.
func TestAWSS3BucketRegion(t *testing.T) {
	isolate(t)
	f := awsfake.Start(t, awsfake.Options{S3Region: "eu-west-1"})
	f.SetEnv(t)
	os.Unsetenv("AWS_REGION")
	arn := f.S3.Put("gmsa-specs-eu", "webapp01.json", []byte(testCredSpec))
	src, err := spec.ParseSource(arn)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		region   string
		rejected int
	}{
		{"found from the answer", "", 1},
		{"configured", "eu-west-1", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.S3.Clear()
			if _, err := spec.Load(context.Background(), src, testRemote(Config{Region: tt.region})); err != nil {
				t.Fatal(err)
			}
			if got := f.S3.Rejected(); got != tt.rejected {
				t.Errorf("rejected = %d, want %d", got, tt.rejected)
			}
			if got := f.S3.Requests(); got != 1 {
				t.Errorf("requests = %d, want 1", got)
			}
		})
	}
}

// TestNewIsLazy: building the remote touches nothing; a broken profile
// shows only when an AWS source is read.
func TestNewIsLazy(t *testing.T) {
	w := newWorld(t)
	r := New(Config{Profile: "nosuch"}).(*awsRemote)
	src, err := spec.ParseSource(w.file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spec.Load(context.Background(), src, r); err != nil {
		t.Fatal(err)
	}
	if r.loaded != nil {
		t.Error("configuration loaded for a file source")
	}
	if n := w.f.SSM.Requests() + w.f.S3.Requests() + w.f.SecretsManager.Requests(); n != 0 {
		t.Errorf("%d requests", n)
	}
}

// cancelBackoff cancels the read's context when the first retry waits.
type cancelBackoff struct{ cancel context.CancelFunc }

func (b cancelBackoff) BackoffDelay(int, error) (time.Duration, error) {
	b.cancel()
	return time.Minute, nil
}

func TestAWSCanceled(t *testing.T) {
	w := newWorld(t)
	src, err := spec.ParseSource(w.ssmString)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		// cancel before reading; else when the first retry waits
		before bool
		want   string
	}{
		{"before reading", true, "ssm parameter " + w.ssmString + ": gave up: context canceled"},
		{"waiting to retry", false, "ssm parameter " + w.ssmString + ": gave up: context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.clear()
			w.f.SSM.Fail(awsfake.Throttle, 0)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := testRemote(Config{})
			r.backoff = cancelBackoff{cancel}
			if tt.before {
				cancel()
			}
			start := time.Now()
			_, err = spec.Read(ctx, src, r)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v, want %s", err, tt.want)
			}
			if !errors.Is(err, context.Canceled) {
				t.Error("not context.Canceled")
			}
			if time.Since(start) > 10*time.Second {
				t.Error("did not stop at once")
			}
		})
	}
}

func TestAWSRetryer(t *testing.T) {
	isolate(t)
	tests := []struct {
		name    string
		cfg     Config
		fromSDK int
		want    int
	}{
		{"default", Config{}, 0, DefaultMaxAttempts},
		{"AWS_MAX_ATTEMPTS", Config{}, 6, 6},
		{"configured wins", Config{MaxAttempts: 2}, 6, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(tt.cfg).(*awsRemote).retryer(tt.fromSDK)
			if got := r.MaxAttempts(); got != tt.want {
				t.Errorf("MaxAttempts = %d, want %d", got, tt.want)
			}
			for attempt := 1; attempt < 10; attempt++ {
				d, err := r.RetryDelay(attempt, errors.New("throttled"))
				if err != nil || d > maxBackoff {
					t.Errorf("RetryDelay(%d) = %v, %v; want at most %v", attempt, d, err, maxBackoff)
				}
			}
		})
	}
}

func TestAWSConfigJSON(t *testing.T) {
	in := `{"profile":"gmsa","region":"us-west-2","endpoints":{"ssm":"https://vpce-1.ssm.us-west-2.vpce.amazonaws.com"},"max_attempts":5,"s3_max_size":1024,"config_files":["/etc/gmsa-hook/aws/config"],"credentials_files":["/etc/gmsa-hook/aws/credentials"]}`
	want := Config{
		Profile: "gmsa", Region: "us-west-2",
		Endpoints:   map[string]string{"ssm": "https://vpce-1.ssm.us-west-2.vpce.amazonaws.com"},
		MaxAttempts: 5, S3MaxSize: 1024,
		ConfigFiles: []string{"/etc/gmsa-hook/aws/config"}, CredentialsFiles: []string{"/etc/gmsa-hook/aws/credentials"},
	}
	dec := json.NewDecoder(strings.NewReader(in))
	dec.DisallowUnknownFields()
	var got Config
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("decoded (-want +got):\n%s", d)
	}
	out, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("encoded:\n got %s\nwant %s", out, in)
	}
	if out, _ := json.Marshal(Config{}); string(out) != "{}" {
		t.Errorf("zero value encodes as %s", out)
	}
}

func TestAWSConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"zero", Config{}, ""},
		{"all endpoints", Config{Endpoints: map[string]string{"ssm": "https://a", "s3": "http://127.0.0.1:9000", "secretsmanager": "https://b:443/"}}, ""},
		{"unknown service", Config{Endpoints: map[string]string{"sts": "https://a"}}, `aws: endpoints: unknown service "sts"; want ssm, s3 or secretsmanager`},
		{"not a url", Config{Endpoints: map[string]string{"ssm": "ssm.example"}}, `aws: endpoints: ssm: "ssm.example" is not an http(s) URL`},
		{"max attempts negative", Config{MaxAttempts: -1}, "aws: max_attempts: -1 is not between 1 and 20"},
		{"max attempts large", Config{MaxAttempts: 21}, "aws: max_attempts: 21 is not between 1 and 20"},
		{"s3 max size negative", Config{S3MaxSize: -1}, "aws: s3_max_size: -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if err := tt.cfg.Validate(); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestAWSS3SizeWithoutLength: an object sent without Content-Length is
// still cut at the limit.
func TestAWSS3SizeWithoutLength(t *testing.T) {
	w := newWorld(t)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		for range 20 {
			rw.Write([]byte(strings.Repeat("x", 10)))
			rw.(http.Flusher).Flush() // chunked: no Content-Length
		}
	}))
	t.Cleanup(srv.Close)
	src, err := spec.ParseSource(w.s3Spec)
	if err != nil {
		t.Fatal(err)
	}
	_, err = spec.Read(context.Background(), src, testRemote(Config{S3MaxSize: 100, Endpoints: map[string]string{"s3": srv.URL}}))
	want := "s3 object " + w.s3Spec + ": larger than the limit of 100 bytes (s3_max_size)"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

// TestAWSInitCost keeps out the SDK packages that build large tables at
// init: the hook links spec, and every container start would pay for them.
func TestAWSInitCost(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/aws/aws-sdk-go-v2/service/") && strings.HasSuffix(pkg, "/schemas") &&
			(strings.Contains(pkg, "/ssm/") || strings.Contains(pkg, "/secretsmanager/")) {
			t.Errorf("spec links %s, which costs milliseconds at every start; keep service/ssm < v1.80.0 and service/secretsmanager < v1.50.0 (check with GODEBUG=inittrace=1)", pkg)
		}
	}
}

// TestAWSPutCredSpec: credspec create's writes go through the real SDK to
// SSM (PutParameter by name, replacing) and S3 (PutObject), and read back
// unchanged; a refused write names the IAM action.
func TestAWSPutCredSpec(t *testing.T) {
	w := newWorld(t)
	r := testRemote(Config{})
	ctx := context.Background()
	ssmDst, _ := spec.ParseSource(w.f.SSM.ARN("/gmsa/created"))
	s3Dst, _ := spec.ParseSource(awsfake.ARNOfObject("gmsa-specs", "created/webapp01.json"))
	for _, content := range []string{testCredSpec, strings.Replace(testCredSpec, "webapp01", "webapp02", -1)} {
		for _, dst := range []spec.Source{ssmDst, s3Dst} {
			if err := spec.Store(ctx, dst, []byte(content), r); err != nil {
				t.Fatalf("store %s: %v", dst, err)
			}
			got, err := r.Get(ctx, dst)
			if err != nil || string(got) != content {
				t.Errorf("%s reads back %q, %v", dst, got, err)
			}
		}
	}
	if p, ok := w.f.SSM.Get("/gmsa/created"); !ok || p.Type != awsfake.String {
		t.Errorf("parameter %+v, %v; want a String", p, ok)
	}
	w.f.SSM.Fail(awsfake.AccessDenied, 0)
	defer w.clear()
	err := spec.Store(ctx, ssmDst, []byte(testCredSpec), r)
	want := "ssm parameter " + ssmDst.ARN + ": access denied: ssm:PutParameter refused"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, spec.ErrAccessDenied) {
		t.Errorf("err = %v, want prefix %q", err, want)
	}
}
