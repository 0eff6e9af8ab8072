package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gmsa-hook/gmsa-hook/test/awsfake"
)

// TestFetchFromAWS is the ECS path end to end: the credential spec in SSM
// Parameter Store (or S3), the reader's secret in Secrets Manager, the
// ticket from the Samba DC. gmsa-hook runs with no environment at all, as a
// runtime starts a hook: AWS settings come from its config file only.
func TestFetchFromAWS(t *testing.T) {
	d := testDomain(t)
	f := awsfake.Start(t, awsfake.Options{})
	secret, err := os.ReadFile(filepath.Join(d.Dir, "reader-secret.json"))
	if err != nil {
		t.Fatal(err)
	}
	secretARN := f.SecretsManager.Put("gmsa/reader", string(secret))
	var cs map[string]any
	b, err := os.ReadFile(d.Credspec("webapp01-domainless"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &cs)
	ad := cs["ActiveDirectoryConfig"].(map[string]any)
	ad["HostAccountConfig"].(map[string]any)["PluginInput"] = map[string]any{"CredentialArn": secretARN}
	spec, _ := json.Marshal(cs)
	ssmSecure := f.SSM.Put("/gmsa/webapp01", awsfake.SecureString, string(spec))
	ssmPlain := f.SSM.Put("/gmsa/webapp01-plain", awsfake.String, string(spec))
	s3 := f.S3.Put("gmsa-specs", "webapp01.json", spec)

	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	os.WriteFile(creds, []byte("[gmsa]\naws_access_key_id = "+awsfake.AccessKeyID+"\naws_secret_access_key = "+awsfake.SecretAccessKey+"\n"), 0o600)
	awsConfig := filepath.Join(dir, "config")
	os.WriteFile(awsConfig, []byte("[profile gmsa]\nregion = "+awsfake.Region+"\n"), 0o600)
	cfg := baseConfig(d)
	cfg["aws"] = map[string]any{
		"profile":           "gmsa",
		"config_files":      []string{awsConfig},
		"credentials_files": []string{creds},
		"endpoints":         map[string]string{"ssm": f.URL, "secretsmanager": f.URL, "s3": f.URL},
	}
	config := writeJSON(t, dir, "config.json", cfg, 0o600)

	for _, src := range []string{"credentialspecdomainless:" + ssmSecure, ssmPlain, "credentialspecdomainless:" + s3} {
		t.Run(strings.SplitN(strings.TrimPrefix(src, "credentialspecdomainless:"), ":", 4)[2], func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "krb5cc")
			r := runHook(t, []string{}, "fetch", "--config", config, "--credspec", src, "--out", out)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			checkUsable(t, d, out, "webapp01$")
			assertNoSecrets(t, d, r.stdout+r.stderr)
		})
	}
	if n := f.SecretsManager.Requests(); n != 3 {
		t.Errorf("secrets manager saw %d requests, want 3", n)
	}

	t.Run("secret not found", func(t *testing.T) {
		delete(ad["HostAccountConfig"].(map[string]any), "PluginInput")
		ad["HostAccountConfig"].(map[string]any)["PluginInput"] = map[string]any{"CredentialArn": f.SecretsManager.ARN("gmsa/missing")}
		spec, _ := json.Marshal(cs)
		src := f.SSM.Put("/gmsa/missing-secret", awsfake.SecureString, string(spec))
		out := filepath.Join(t.TempDir(), "krb5cc")
		r := runHook(t, []string{}, "fetch", "--config", config, "--credspec", src, "--out", out)
		if r.code != 1 || !strings.HasPrefix(r.stderr, `gmsa-hook: error: read reader secret for gMSA "webapp01$": secretsmanager secret `+f.SecretsManager.ARN("gmsa/missing")+`: not found`) {
			t.Errorf("exit %d\n%s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "gmsa-hook: hint: ") {
			t.Errorf("no hint:\n%s", r.stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Error("a cache was written")
		}
	})
}
