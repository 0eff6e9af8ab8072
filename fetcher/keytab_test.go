package fetcher

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/gmsa-hook/gmsa-hook/fetcher/kdc"
)

// keytabFile writes a keytab for gmsahost$@CORP.EXAMPLE.TEST with one key
// of each etype given.
func keytabFile(t *testing.T, etypes ...int32) string {
	t.Helper()
	kt := keytab.New()
	for _, e := range etypes {
		if err := kt.AddEntry("gmsahost$", "CORP.EXAMPLE.TEST", "Passw0rd", time.Unix(1700000000, 0), 2, e); err != nil {
			t.Fatal(err)
		}
	}
	b, err := kt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "krb5.keytab")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeytabKeysRC4(t *testing.T) {
	rc4Only := keytabFile(t, etypeID.RC4_HMAC)
	both := keytabFile(t, etypeID.RC4_HMAC, etypeID.AES256_CTS_HMAC_SHA1_96)

	// RC4 disabled: an RC4-only keytab names the cause.
	c := conf{Keytab: rc4Only}
	_, _, err := c.keytabKeys()
	want := "unusable keytab " + rc4Only + ": gmsahost$ has only an rc4-hmac key: rc4-hmac is disabled (allow_rc4 is false)"
	if err == nil || err.Error() != want {
		t.Fatalf("keytabKeys = %v, want %s", err, want)
	}
	if !errors.Is(err, ErrKeytab) || !errors.Is(err, kdc.ErrRC4Disabled) {
		t.Errorf("error %v does not match ErrKeytab and kdc.ErrRC4Disabled", err)
	}

	// RC4 disabled: the RC4 key of a keytab with AES keys is left out.
	c = conf{Keytab: both}
	_, keys, err := c.keytabKeys()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int32{etypeID.AES256_CTS_HMAC_SHA1_96}, etypesOf(keys)); diff != "" {
		t.Errorf("keys without allow_rc4 (-want +got):\n%s", diff)
	}

	// allow_rc4: the old behaviour.
	for _, tt := range []struct {
		path string
		want []int32
	}{
		{rc4Only, []int32{etypeID.RC4_HMAC}},
		{both, []int32{etypeID.AES256_CTS_HMAC_SHA1_96, etypeID.RC4_HMAC}},
	} {
		c = conf{Keytab: tt.path, AllowRC4: true}
		_, keys, err := c.keytabKeys()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, etypesOf(keys)); diff != "" {
			t.Errorf("keys with allow_rc4 (-want +got):\n%s", diff)
		}
	}
}

func etypesOf(keys []types.EncryptionKey) []int32 {
	var out []int32
	for _, k := range keys {
		out = append(out, k.KeyType)
	}
	return out
}
