package spec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readerPassword is the secret no error or string form may show.
const readerPassword = "S3cret-Reader-Passw0rd!"

func TestParseSecret(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Secret
	}{
		{
			name: "ecs keys",
			in:   `{"username":"gmsa-reader","password":"` + readerPassword + `","domainName":"corp.example.test"}`,
			want: Secret{Username: "gmsa-reader", Password: readerPassword, DomainName: "corp.example.test"},
		},
		{
			name: "credentials-fetcher keys with distinguishedName",
			in: `{"usernameOfStandardUserAccount":"gmsa-reader","passwordOfStandardUserAccount":"` + readerPassword +
				`","domainName":"corp.example.test","distinguishedName":"CN=webapp01,CN=Managed Service Accounts,DC=corp,DC=example,DC=test"}`,
			want: Secret{
				Username: "gmsa-reader", Password: readerPassword, DomainName: "corp.example.test",
				DistinguishedName: "CN=webapp01,CN=Managed Service Accounts,DC=corp,DC=example,DC=test",
			},
		},
		{
			name: "short keys win over the long ones",
			in:   `{"username":"a","usernameOfStandardUserAccount":"b","password":"p1","passwordOfStandardUserAccount":"p2","domainName":"corp.example.test"}`,
			want: Secret{Username: "a", Password: "p1", DomainName: "corp.example.test"},
		},
		{
			name: "mixed key spellings",
			in:   `{"usernameOfStandardUserAccount":"b","password":"p1","domainName":"corp.example.test"}`,
			want: Secret{Username: "b", Password: "p1", DomainName: "corp.example.test"},
		},
		{
			name: "keys in another case, unknown keys ignored",
			in:   `{"UserName":"gmsa-reader","Password":"p","DomainName":"corp.example.test.","extra":[1,2]}`,
			want: Secret{Username: "gmsa-reader", Password: "p", DomainName: "corp.example.test"},
		},
		{
			name: "down-level logon name",
			in:   `{"username":"CORP\\gmsa-reader","password":"p","domainName":"corp.example.test"}`,
			want: Secret{Username: "gmsa-reader", Password: "p", DomainName: "corp.example.test"},
		},
		{
			name: "user principal name",
			in:   `{"username":"gmsa-reader@corp.example.test","password":"p","domainName":"corp.example.test"}`,
			want: Secret{Username: "gmsa-reader", Password: "p", DomainName: "corp.example.test"},
		},
		{
			name: "both forms at once",
			in:   `{"username":"CORP\\gmsa-reader@corp.example.test","password":"p","domainName":"corp.example.test"}`,
			want: Secret{Username: "gmsa-reader", Password: "p", DomainName: "corp.example.test"},
		},
		{
			name: "password kept exactly, spaces and all",
			in:   `{"username":"u","password":" p\"w\u00e9 ","domainName":"corp.example.test"}`,
			want: Secret{Username: "u", Password: " p\"w\u00e9 ", DomainName: "corp.example.test"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecret([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseSecret (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSecretErrors(t *testing.T) {
	const (
		notObject  = `malformed credential spec: secret is not a JSON object with string values`
		noUser     = `malformed credential spec: secret has no "username" (or "usernameOfStandardUserAccount")`
		noPassword = `malformed credential spec: secret has no "password" (or "passwordOfStandardUserAccount")`
		noDomain   = `malformed credential spec: secret has no "domainName"`
	)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", ``, notObject},
		{"not JSON: a bare password", readerPassword, notObject},
		{"a JSON string", `"` + readerPassword + `"`, notObject},
		{"truncated after the password", `{"username":"u","password":"` + readerPassword, notObject},
		{"password a number", `{"username":"u","password":12345678,"domainName":"d"}`, notObject},
		{"password an array of the secret", `{"username":"u","password":["` + readerPassword + `"],"domainName":"d"}`, notObject},
		{"password an object", `{"username":"u","password":{"v":"` + readerPassword + `"},"domainName":"d"}`, notObject},
		{"username a number beside the password", `{"username":5,"password":"` + readerPassword + `","domainName":"d"}`, notObject},
		{"syntax error after the password", `{"password":"` + readerPassword + `" "username":"u"}`, notObject},
		{"null", `null`, noUser},
		{"empty object", `{}`, noUser},
		{"no username", `{"password":"` + readerPassword + `","domainName":"d"}`, noUser},
		{"empty username", `{"username":"","password":"` + readerPassword + `","domainName":"d"}`, noUser},
		{"username only a domain", `{"username":"CORP\\","password":"` + readerPassword + `","domainName":"d"}`, noUser},
		{"username only a realm", `{"username":"@corp.example.test","password":"` + readerPassword + `","domainName":"d"}`, noUser},
		{"no password", `{"username":"u","domainName":"d"}`, noPassword},
		{"empty long password", `{"usernameOfStandardUserAccount":"u","passwordOfStandardUserAccount":"","domainName":"d"}`, noPassword},
		{"no domain", `{"username":"u","password":"` + readerPassword + `"}`, noDomain},
		{"domain only a dot", `{"username":"u","password":"` + readerPassword + `","domainName":"."}`, noDomain},
		{"larger than MaxSize", `{"username":"u","password":"` + readerPassword + `","domainName":"d"}` + strings.Repeat(" ", MaxSize), "malformed credential spec: secret larger than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSecret([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseSecret succeeded: %v", s)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error\n got %s\nwant %s", got, tt.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if diff := cmp.Diff(Secret{}, s); diff != "" {
				t.Errorf("ParseSecret returned a secret with its error:\n%s", diff)
			}
			for _, part := range []string{readerPassword, "12345678"} {
				if strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, err), part) {
					t.Errorf("error %q shows the password", err)
				}
			}
		})
	}
}

func TestSecretStringHidesPassword(t *testing.T) {
	s := Secret{Username: "gmsa-reader", Password: readerPassword, DomainName: "corp.example.test"}
	const want = `secret{user "gmsa-reader", domain "corp.example.test"}`
	for _, format := range []string{"%v", "%+v", "%s", "%#v", "%q"} {
		if got := fmt.Sprintf(format, s); strings.Contains(got, readerPassword) {
			t.Errorf("Sprintf(%s) = %s: shows the password", format, got)
		}
		if got := fmt.Sprintf(format, &s); strings.Contains(got, readerPassword) {
			t.Errorf("Sprintf(%s, &s) = %s: shows the password", format, got)
		}
	}
	if got := s.String(); got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	if got := s.GoString(); got != want {
		t.Errorf("GoString() = %s, want %s", got, want)
	}
}

// secretFile writes data to a new file of mode perm in a temporary
// directory and returns its path.
func secretFile(t *testing.T, data string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret.json")
	if err := os.WriteFile(p, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	// The umask may have taken bits away; set exactly what the test says.
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSecretFile(t *testing.T) {
	const doc = `{"username":"CORP\\gmsa-reader","password":"` + readerPassword + `","domainName":"corp.example.test"}`
	want := Secret{Username: "gmsa-reader", Password: readerPassword, DomainName: "corp.example.test"}
	for _, tt := range []struct {
		name string
		raw  func(path string) string
	}{
		{"path", func(p string) string { return p }},
		{"file url", func(p string) string { return "file://" + p }},
		{"file url with localhost", func(p string) string { return "file://localhost" + p }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src, err := ParseSecretSource(tt.raw(secretFile(t, doc, 0o600)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := LoadSecret(context.Background(), src, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("LoadSecret (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadSecretErrors(t *testing.T) {
	const doc = `{"username":"gmsa-reader","password":"` + readerPassword + `","domainName":"corp.example.test"}`
	tests := []struct {
		name   string
		data   string
		perm   os.FileMode
		want   string // %s is the file's path
		target error
	}{
		{"world readable", doc, 0o644, "%s: secret file is readable by others (mode 0644)", ErrInsecureFile},
		{"group readable", doc, 0o640, "%s: secret file is readable by others (mode 0640)", ErrInsecureFile},
		{"other writable", doc, 0o602, "%s: secret file is readable by others (mode 0602)", ErrInsecureFile},
		{"owner read only is fine but the document is not", `{"username":"u","password":"` + readerPassword + `"}`, 0o400,
			`secret %s: malformed credential spec: secret has no "domainName"`, ErrMalformed},
		{"password a number", `{"username":"u","password":1234,"domainName":"d"}`, 0o600,
			`secret %s: malformed credential spec: secret is not a JSON object with string values`, ErrMalformed},
		{"too large", doc + strings.Repeat(" ", MaxSize), 0o600, "%s: larger than 65536 bytes", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := secretFile(t, tt.data, tt.perm)
			src, err := ParseSecretSource(p)
			if err != nil {
				t.Fatal(err)
			}
			s, err := LoadSecret(context.Background(), src, nil)
			if err == nil {
				t.Fatalf("LoadSecret succeeded: %v", s)
			}
			if want := fmt.Sprintf(tt.want, p); err.Error() != want {
				t.Errorf("error\n got %s\nwant %s", err, want)
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Errorf("error %v does not wrap %v", err, tt.target)
			}
			if strings.Contains(err.Error(), readerPassword) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestLoadSecretMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "absent.json")
	src, err := ParseSecretSource("file://" + p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LoadSecret(context.Background(), src, nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadSecret of a missing file: %v, want os.ErrNotExist", err)
	}
	if want := "open " + p + ": no such file or directory"; err.Error() != want {
		t.Errorf("error\n got %s\nwant %s", err, want)
	}
}

func TestLoadSecretRemoteWithoutAWS(t *testing.T) {
	const raw = "arn:aws:secretsmanager:us-west-2:123456789012:secret:gmsa-reader"
	src, err := ParseSecretSource(raw)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LoadSecret(context.Background(), src, nil)
	if !errors.Is(err, ErrNoRemote) {
		t.Fatalf("LoadSecret without a Remote: %v, want ErrNoRemote", err)
	}
	if want := raw + ": no AWS access configured"; err.Error() != want {
		t.Errorf("error\n got %s\nwant %s", err, want)
	}
}
