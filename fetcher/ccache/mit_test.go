package ccache

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/messages"
)

// TestParseMITKinitCache reads a cache MIT kinit 1.20.1 wrote after logging
// in gmsa-reader against the test domain's Samba 4.22 KDC (it holds only
// that test account's TGT). It has what MIT adds and we do not: the KDC
// offset header field (zero here), and fast_avail and pa_type configuration
// entries. Parse must read it and write it back byte for byte.
func TestParseMITKinitCache(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "mit-kinit.ccache"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	reader := Principal{NameType: nametype.KRB_NT_PRINCIPAL, Realm: realm, Components: []string{"gmsa-reader"}}
	tgtName := "krbtgt/CORP.EXAMPLE.TEST@CORP.EXAMPLE.TEST"
	want := &Cache{
		DefaultPrincipal: reader,
		KDCOffset:        &KDCOffset{},
		Credentials: []Credential{
			{Client: reader, Server: Principal{NameType: nametype.KRB_NT_PRINCIPAL, Realm: ConfigRealm, Components: []string{"krb5_ccache_conf_data", "fast_avail", tgtName}}, Ticket: []byte("yes")},
			{Client: reader, Server: Principal{NameType: nametype.KRB_NT_PRINCIPAL, Realm: ConfigRealm, Components: []string{"krb5_ccache_conf_data", "pa_type", tgtName}}, Ticket: []byte("2")},
			{
				Client: reader,
				Server: Principal{NameType: nametype.KRB_NT_SRV_INST, Realm: realm, Components: []string{"krbtgt", realm}},
				// renewable, initial, pre-authent (klist shows "RIA") and enc-pa-rep
				// (bit 15, RFC 6806), which klist does not show.
				Flags: 0x00e10000,
			},
		},
	}
	// Times, key and ticket differ per kinit; they are checked below.
	ignore := cmpopts.IgnoreFields(Credential{}, "Key", "AuthTime", "StartTime", "EndTime", "RenewTill", "Ticket")
	if diff := cmp.Diff(want, c, ignore); diff != "" {
		t.Errorf("Parse mismatch (-want +got):\n%s", diff)
	}
	if len(c.Credentials) != 3 {
		t.FailNow()
	}
	for i, cred := range c.Credentials {
		if got, want := cred.IsConfig(), i < 2; got != want {
			t.Errorf("credential %d: IsConfig %t, want %t", i+1, got, want)
		}
	}
	tgt := c.Credentials[2]
	if tgt.Key.KeyType != etypeID.AES256_CTS_HMAC_SHA1_96 || len(tgt.Key.KeyValue) != 32 {
		t.Errorf("session key etype %d, %d bytes; want aes256, 32 bytes", tgt.Key.KeyType, len(tgt.Key.KeyValue))
	}
	if !tgt.StartTime.Equal(tgt.AuthTime) || tgt.EndTime.Sub(tgt.AuthTime) != 10*time.Hour || tgt.RenewTill.Sub(tgt.AuthTime) != 24*time.Hour {
		t.Errorf("times: auth %v start %v end %v renew %v; want 10 h life, 1 day renewal", tgt.AuthTime, tgt.StartTime, tgt.EndTime, tgt.RenewTill)
	}
	var tkt messages.Ticket
	if err := tkt.Unmarshal(tgt.Ticket); err != nil {
		t.Fatalf("ticket does not decode: %v", err)
	}
	if tkt.Realm != realm || tkt.SName.PrincipalNameString() != "krbtgt/"+realm || tkt.EncPart.EType != etypeID.AES256_CTS_HMAC_SHA1_96 {
		t.Errorf("ticket for %s@%s etype %d", tkt.SName.PrincipalNameString(), tkt.Realm, tkt.EncPart.EType)
	}
	out, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, b) {
		t.Errorf("MarshalBinary(Parse(MIT cache)) differs from the MIT bytes\n got %x\nwant %x", out, b)
	}
}
