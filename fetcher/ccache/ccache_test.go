package ccache

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const realm = "CORP.EXAMPLE.TEST"

// seq returns n bytes counting up from start: recognisable, not secret.
func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// ticketDER builds a syntactically valid Ticket for sname in realm whose
// encrypted part is filler: enough for klist, which does not decrypt it.
func ticketDER(t testing.TB, sname types.PrincipalName, kvno int) []byte {
	t.Helper()
	tkt := messages.Ticket{
		TktVNO: 5,
		Realm:  realm,
		SName:  sname,
		EncPart: types.EncryptedData{
			EType:  etypeID.AES256_CTS_HMAC_SHA1_96,
			KVNO:   kvno,
			Cipher: seq(0x40, 200),
		},
	}
	b, err := tkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	client = Principal{NameType: nametype.KRB_NT_PRINCIPAL, Realm: realm, Components: []string{"WebApp01$"}}
	krbtgt = Principal{NameType: nametype.KRB_NT_SRV_INST, Realm: realm, Components: []string{"krbtgt", realm}}
	// Kerberos times are whole seconds; these are fixed so goldens are stable.
	authTime  = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	endTime   = authTime.Add(10 * time.Hour)
	renewTill = authTime.Add(7 * 24 * time.Hour)
)

func tgtFlags() uint32 {
	f := types.NewKrbFlags()
	types.SetFlags(&f, []int{flags.Forwardable, flags.Renewable, flags.Initial, flags.PreAuthent})
	return FlagsFromBitString(f)
}

func tgt(t testing.TB) Credential {
	return Credential{
		Client:    client,
		Server:    krbtgt,
		Key:       types.EncryptionKey{KeyType: etypeID.AES256_CTS_HMAC_SHA1_96, KeyValue: seq(1, 32)},
		AuthTime:  authTime,
		StartTime: authTime,
		EndTime:   endTime,
		RenewTill: renewTill,
		Flags:     tgtFlags(),
		Ticket:    ticketDER(t, types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", realm}}, 2),
	}
}

func configEntry(key string, assoc *Principal, value string) Credential {
	// Name type 1 as MIT writes it (see mit-kinit.ccache).
	server := Principal{NameType: nametype.KRB_NT_PRINCIPAL, Realm: ConfigRealm, Components: []string{"krb5_ccache_conf_data", key}}
	if assoc != nil {
		server.Components = append(server.Components, assoc.String())
	}
	return Credential{Client: client, Server: server, Ticket: []byte(value)}
}

// goldenCaches are the caches whose bytes are pinned in testdata/<name>.golden.
func goldenCaches(t testing.TB) map[string]*Cache {
	srv := tgt(t)
	srv.Server = Principal{NameType: nametype.KRB_NT_SRV_INST, Realm: realm, Components: []string{"ldap", "dc1.corp.example.test"}}
	srv.Key = types.EncryptionKey{KeyType: etypeID.AES128_CTS_HMAC_SHA1_96, KeyValue: seq(0x81, 16)}
	srv.Flags &^= 1 << (31 - flags.Initial)
	srv.RenewTill = time.Time{}
	srv.Ticket = ticketDER(t, types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"ldap", "dc1.corp.example.test"}}, 7)
	srv.Addresses = []Address{{Type: 2, Data: []byte{127, 0, 0, 1}}}
	srv.AuthData = []AuthData{{Type: 1, Data: seq(0xa0, 5)}}
	return map[string]*Cache{
		"empty": {DefaultPrincipal: client},
		"tgt":   {DefaultPrincipal: client, Credentials: []Credential{tgt(t)}},
		"tgt-offset": {
			DefaultPrincipal: client,
			KDCOffset:        &KDCOffset{Seconds: 5, Microseconds: -300000},
			Credentials:      []Credential{tgt(t)},
		},
		"config-and-service": {
			DefaultPrincipal: client,
			KDCOffset:        &KDCOffset{},
			Credentials: []Credential{
				configEntry("pa_type", &krbtgt, "2"),
				tgt(t),
				srv,
			},
		},
	}
}

func TestGolden(t *testing.T) {
	for name, c := range goldenCaches(t) {
		t.Run(name, func(t *testing.T) {
			got, err := c.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("MarshalBinary differs from %s (run go test -update if the change is intended)\ngot  %x\nwant %x", path, got, want)
			}
			parsed, err := Parse(want)
			if err != nil {
				t.Fatalf("Parse(%s): %v", path, err)
			}
			if diff := cmp.Diff(c, parsed); diff != "" {
				t.Errorf("Parse(%s) mismatch (-want +got):\n%s", path, diff)
			}
			again, err := parsed.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, want) {
				t.Errorf("Marshal(Parse(Marshal(c))) differs from Marshal(c)")
			}
		})
	}
}

// TestGoldenLayout pins the start of a file field by field against the
// format description, so the golden files are not only self-consistent.
func TestGoldenLayout(t *testing.T) {
	c := &Cache{DefaultPrincipal: Principal{NameType: 1, Realm: "R", Components: []string{"ab"}}, KDCOffset: &KDCOffset{Seconds: -1, Microseconds: 2}}
	got, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x05, 0x04, // version 4
		0x00, 0x0c, // header length 12
		0x00, 0x01, 0x00, 0x08, // tag 1, length 8
		0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x02, // -1 s, 2 us
		0x00, 0x00, 0x00, 0x01, // name type
		0x00, 0x00, 0x00, 0x01, // one component
		0x00, 0x00, 0x00, 0x01, 'R',
		0x00, 0x00, 0x00, 0x02, 'a', 'b',
	}
	if !bytes.Equal(got, want) {
		t.Errorf("got  %x\nwant %x", got, want)
	}
}

func TestParseTruncated(t *testing.T) {
	for name := range goldenCaches(t) {
		t.Run(name, func(t *testing.T) {
			full, err := os.ReadFile(filepath.Join("testdata", name+".golden"))
			if err != nil {
				t.Fatal(err)
			}
			whole, err := Parse(full)
			if err != nil {
				t.Fatal(err)
			}
			for n := 0; n < len(full); n++ {
				c, err := Parse(full[:n])
				if err == nil {
					// A prefix that ends between credentials is a valid,
					// shorter cache: it must hold a prefix of them.
					if len(c.Credentials) >= len(whole.Credentials) ||
						!cmp.Equal(c.Credentials, whole.Credentials[:len(c.Credentials)], cmpopts.EquateEmpty()) {
						t.Fatalf("Parse(first %d bytes) succeeded with %d credentials", n, len(c.Credentials))
					}
					continue
				}
				if !errors.Is(err, ErrTruncated) {
					t.Fatalf("Parse(first %d bytes) = %v, want an error wrapping ErrTruncated", n, err)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	// head is a version 4 file with an empty header and the default
	// principal "ab@R"; cred is a minimal credential for it.
	head := []byte{5, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 'R', 0, 0, 0, 2, 'a', 'b'}
	princ := []byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 'R', 0, 0, 0, 2, 'a', 'b'}
	cred := func(skey byte) []byte {
		b := append(append([]byte{}, princ...), princ...)
		b = append(b, 0, 18, 0, 0, 0, 0) // enctype 18, empty key
		b = append(b, make([]byte, 16)...)
		b = append(b, skey, 0, 0, 0, 0)    // is_skey, flags
		b = append(b, make([]byte, 16)...) // addresses, authdata, ticket, second ticket
		return b
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "version: offset 0: need 2 bytes, have 0: unexpected end of data"},
		{"version 3", []byte{5, 3, 0, 0}, "unsupported version 0x0503, want 0x0504"},
		{"not a cache", []byte("{\"json\": true}"), "unsupported version 0x7b22, want 0x0504"},
		{"header length beyond end", []byte{5, 4, 0, 12, 0, 1}, "header: offset 4: need 12 bytes, have 2: unexpected end of data"},
		{"header field beyond header", cat([]byte{5, 4, 0, 6, 0, 1, 0, 8, 0, 0}, princ), "header: offset 4: need 8 bytes, have 2: unexpected end of data"},
		{"kdc offset too short", cat([]byte{5, 4, 0, 8, 0, 1, 0, 4, 0, 0, 0, 0}, princ), "header: kdc offset field: length 4, want 8"},
		{"duplicate kdc offset", cat([]byte{5, 4, 0, 24}, []byte{0, 1, 0, 8}, make([]byte, 8), []byte{0, 1, 0, 8}, make([]byte, 8), princ), "header: duplicate kdc offset field"},
		{"no default principal", []byte{5, 4, 0, 0}, "default principal: offset 4: need 4 bytes, have 0: unexpected end of data"},
		{"too many components", cat([]byte{5, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 65}), "default principal: offset 8: count 65 exceeds limit 64"},
		{"components beyond end", cat([]byte{5, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0}), "default principal: offset 8: count 3 needs at least 12 bytes, have 4: unexpected end of data"},
		{"huge realm", cat([]byte{5, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}), "default principal: offset 12: length 4294967295 exceeds limit 1048576"},
		{"realm beyond end", cat([]byte{5, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 'R'}), "default principal: offset 16: need 9 bytes, have 1: unexpected end of data"},
		{"component beyond end", cat([]byte{5, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 'R', 0, 0, 0, 3, 'a'}), "default principal: component 1: offset 21: need 3 bytes, have 1: unexpected end of data"},
		{"trailing byte", cat(head, []byte{0}), "credential 1 at offset 23: client: offset 23: need 4 bytes, have 1: unexpected end of data"},
		{"trailing byte after credential", cat(head, cred(0), []byte{7}), "credential 2 at offset 104: client: offset 104: need 4 bytes, have 1: unexpected end of data"},
		{"is_skey 2", cat(head, cred(2)), "credential 1 at offset 23: offset 83: is_skey 2, want 0 or 1"},
		{"ticket cut short", cat(head, cred(0)[:len(cred(0))-5]), "credential 1 at offset 23: ticket: offset 96: need 4 bytes, have 3: unexpected end of data"},
		{"too many addresses", cat(head, cred(0)[:65], []byte{0, 0, 1, 1}, make([]byte, 12)), "credential 1 at offset 23: addresses: offset 88: count 257 exceeds limit 256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			if c != nil {
				t.Errorf("Parse returned a cache beside the error")
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("error\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestParseAcceptsMinimal(t *testing.T) {
	// A credential of zeros for the default principal, and an unknown header
	// field, which the format says to skip.
	in := []byte{5, 4, 0, 6, 0, 9, 0, 2, 'x', 'y', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	c, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&Cache{}, c); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestMarshalErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Cache
		want string
	}{
		{"negative enctype", Cache{Credentials: []Credential{{Key: types.EncryptionKey{KeyType: -1}}}}, "credential 1: key: enctype -1 does not fit 16 bits"},
		{"time before 1970", Cache{Credentials: []Credential{{EndTime: time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)}}}, "credential 1: endtime: time 1969-01-01T00:00:00Z outside the 32-bit range of the format"},
		{"time after 2106", Cache{Credentials: []Credential{{AuthTime: time.Date(2107, 1, 1, 0, 0, 0, 0, time.UTC)}}}, "credential 1: authtime: time 2107-01-01T00:00:00Z outside the 32-bit range of the format"},
		{"too many components", Cache{DefaultPrincipal: Principal{Components: make([]string, 65)}}, "default principal: 65 components exceed limit 64"},
		{"huge ticket", Cache{Credentials: []Credential{{Ticket: make([]byte, maxData+1)}}}, "credential 1: ticket: length 1048577 exceeds limit 1048576"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.MarshalBinary()
			if err == nil || err.Error() != tc.want {
				t.Errorf("MarshalBinary error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTimes(t *testing.T) {
	// MIT reads the 32-bit times as unsigned; 2106 must survive.
	late := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &Cache{Credentials: []Credential{{AuthTime: late, EndTime: time.Unix(1<<32-1, 0).UTC(), StartTime: late.Add(1500 * time.Millisecond)}}}
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{late, time.Date(2106, 2, 7, 6, 28, 15, 0, time.UTC), late.Add(time.Second)}
	if diff := cmp.Diff(want, []time.Time{got.Credentials[0].AuthTime, got.Credentials[0].EndTime, got.Credentials[0].StartTime}); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestFlagsFromBitString(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   asn1.BitString
		want uint32
	}{
		{"forwardable renewable initial preauth", BitStringFromFlags(0x40e00000), 0x40e00000},
		{"from gokrb5 SetFlags", func() asn1.BitString {
			f := types.NewKrbFlags()
			types.SetFlags(&f, []int{flags.Forwardable, flags.OKAsDelegate})
			return f
		}(), 0x40040000},
		{"short string", asn1.BitString{Bytes: []byte{0x50}, BitLength: 4}, 0x50000000},
		{"padding bits ignored", asn1.BitString{Bytes: []byte{0x5f}, BitLength: 4}, 0x50000000},
		{"longer than 32 bits", asn1.BitString{Bytes: []byte{0, 0, 0, 1, 0xff}, BitLength: 40}, 1},
		{"empty", asn1.BitString{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FlagsFromBitString(tc.in); got != tc.want {
				t.Errorf("got %#08x, want %#08x", got, tc.want)
			}
		})
	}
}

func TestCredentialFormatRedacts(t *testing.T) {
	c := tgt(t)
	c.Key.KeyValue = []byte("KEYSECRETKEYSECRETKEYSECRETKEYSE")
	c.Ticket = []byte("TICKETSECRET")
	cache := &Cache{DefaultPrincipal: client, Credentials: []Credential{c}}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		for _, v := range []any{c, &c, cache, []Credential{c}} {
			out := fmt.Sprintf(verb, v)
			for _, secret := range []string{"KEYSECRET", "TICKETSECRET", fmt.Sprintf("%x", "KEYSECRET"), "75 69 89"} {
				if strings.Contains(out, secret) {
					t.Errorf("fmt.Sprintf(%q, %T) reveals a secret: %s", verb, v, out)
				}
			}
		}
	}
	if got, want := fmt.Sprint(c), "{client WebApp01$@CORP.EXAMPLE.TEST server krbtgt/CORP.EXAMPLE.TEST@CORP.EXAMPLE.TEST key etype 18 (redacted) authtime 2026-03-01T09:00:00Z starttime 2026-03-01T09:00:00Z endtime 2026-03-01T19:00:00Z renewtill 2026-03-08T09:00:00Z skey false flags 0x40e00000 ticket 12 bytes (redacted)}"; got != want {
		t.Errorf("fmt.Sprint(credential)\n got %s\nwant %s", got, want)
	}
}

func TestIsConfig(t *testing.T) {
	if !configEntry("pa_type", &krbtgt, "2").IsConfig() {
		t.Error("pa_type entry is not a config entry")
	}
	if tgt(t).IsConfig() {
		t.Error("a TGT is a config entry")
	}
}

func TestOffset(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    time.Duration
		want KDCOffset
	}{
		{"zero", 0, KDCOffset{}},
		{"ahead", 4*time.Second + 700*time.Millisecond, KDCOffset{4, 700000}},
		{"behind", -(4*time.Second + 700*time.Millisecond), KDCOffset{-4, -700000}},
		{"saturates", 1 << 62, KDCOffset{1<<31 - 1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := OffsetOf(tc.d)
			if got != tc.want {
				t.Errorf("OffsetOf(%v) = %+v, want %+v", tc.d, got, tc.want)
			}
		})
	}
	if got, want := (KDCOffset{5, -300000}).Duration(), 4700*time.Millisecond; got != want {
		t.Errorf("Duration = %v, want %v", got, want)
	}
}
