package blob

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf16"

	"github.com/google/go-cmp/cmp"
	"github.com/jcmturner/gokrb5/v8/crypto/rfc4757"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/types"
)

// vector is one entry of testdata/vectors.json, written by gen-vectors.sh.
type vector struct {
	Name      string `json:"name"`
	Account   string `json:"account"`
	Realm     string `json:"realm"`
	DNSDomain string `json:"dns_domain"`
	Salt      string `json:"salt"`
	KVNO      int    `json:"kvno"`
	Password  string `json:"password_utf16le_hex"`
	Keytab    string `json:"keytab"`
	NTHash    string `json:"nt_hash_raw_md4"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 3 {
		t.Fatalf("testdata/vectors.json holds %d vectors, want 3 (run testdata/gen-vectors.sh)", len(vs))
	}
	return vs
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hasUnpairedSurrogate reports whether decoding p loses information.
func hasUnpairedSurrogate(p []byte) bool {
	u := make([]uint16, len(p)/2)
	for i := range u {
		u[i] = uint16(p[2*i]) | uint16(p[2*i+1])<<8
	}
	again := utf16.Encode(utf16.Decode(u))
	if len(again) != len(u) {
		return true
	}
	for i := range u {
		if u[i] != again[i] {
			return true
		}
	}
	return false
}

// ktutilKeys returns the keys MIT ktutil wrote for a vector, by etype.
func ktutilKeys(t *testing.T, v vector) map[int32][][]byte {
	t.Helper()
	kt, err := keytab.Load(filepath.Join("testdata", v.Keytab))
	if err != nil {
		t.Fatal(err)
	}
	byEtype := map[int32][][]byte{}
	for _, e := range kt.Entries {
		if int(e.KVNO) != v.KVNO {
			t.Errorf("keytab %s: kvno %d, want %d", v.Keytab, e.KVNO, v.KVNO)
		}
		byEtype[e.Key.KeyType] = append(byEtype[e.Key.KeyType], e.Key.KeyValue)
	}
	return byEtype
}

// TestKeysMatchMIT compares Keys with the keys MIT ktutil derived from the
// same password (as UTF-8 with U+FFFD for unpaired surrogates) and salt, and
// the RC4 key with OpenSSL's MD4 of the raw UTF-16LE bytes.
func TestKeysMatchMIT(t *testing.T) {
	sawUnpaired := false
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			if got := Salt(v.Realm, v.Account, v.DNSDomain); got != v.Salt {
				t.Errorf("Salt(%q, %q, %q) = %q, want %q (gen-vectors.sh)", v.Realm, v.Account, v.DNSDomain, got, v.Salt)
			}
			pw := unhex(t, v.Password)
			keys, err := Keys(pw, v.Salt, v.KVNO)
			if err != nil {
				t.Fatal(err)
			}
			mit := ktutilKeys(t, v)
			var gotEtypes []int32
			for _, k := range keys {
				gotEtypes = append(gotEtypes, k.Key.KeyType)
				if k.KVNO != v.KVNO {
					t.Errorf("etype %d: kvno %d, want %d", k.Key.KeyType, k.KVNO, v.KVNO)
				}
				if n := len(mit[k.Key.KeyType]); n != 1 {
					t.Fatalf("keytab %s has %d keys of etype %d, want 1", v.Keytab, n, k.Key.KeyType)
				}
				mitKey := mit[k.Key.KeyType][0]
				switch k.Key.KeyType {
				case etypeID.RC4_HMAC:
					if want := unhex(t, v.NTHash); !bytes.Equal(k.Key.KeyValue, want) {
						t.Errorf("RC4 key %x, want the NT hash of the raw bytes %x", k.Key.KeyValue, want)
					}
					// MIT re-encodes the U+FFFD text: it agrees only when
					// nothing was replaced.
					unpaired := hasUnpairedSurrogate(pw)
					sawUnpaired = sawUnpaired || unpaired
					if agree := bytes.Equal(k.Key.KeyValue, mitKey); agree == unpaired {
						t.Errorf("RC4 key %x, ktutil arcfour-hmac %x: agreement %t, want %t (unpaired surrogates: %t)",
							k.Key.KeyValue, mitKey, agree, !unpaired, unpaired)
					}
				default:
					if !bytes.Equal(k.Key.KeyValue, mitKey) {
						t.Errorf("etype %d key %x, ktutil wrote %x", k.Key.KeyType, k.Key.KeyValue, mitKey)
					}
				}
			}
			if diff := cmp.Diff(Etypes, gotEtypes); diff != "" {
				t.Errorf("etypes (-want +got):\n%s", diff)
			}
		})
	}
	if !sawUnpaired {
		t.Error("no vector has an unpaired surrogate: regenerate with testdata/gen-vectors.sh")
	}
}

// TestGokrb5RC4IsWrongForNonASCII pins why KeyFor does not use gokrb5's
// rfc4757.StringToKey: for a well-formed non-ASCII password, where MIT and
// the NT hash agree, gokrb5 gets another key.
func TestGokrb5RC4IsWrongForNonASCII(t *testing.T) {
	for _, v := range loadVectors(t) {
		pw := unhex(t, v.Password)
		if hasUnpairedSurrogate(pw) {
			continue
		}
		want := unhex(t, v.NTHash)
		got, err := rfc4757.StringToKey(aesString(pw))
		ascii := v.Name == "webapp01-ascii"
		if ascii && (err != nil || !bytes.Equal(got, want)) {
			t.Errorf("%s: gokrb5 rfc4757 = %x, %v; want %x for ASCII", v.Name, got, err, want)
		}
		if !ascii && err == nil && bytes.Equal(got, want) {
			t.Errorf("%s: gokrb5 rfc4757 now agrees with the NT hash; KeyFor could use it", v.Name)
		}
	}
}

func TestSalt(t *testing.T) {
	for _, tc := range []struct {
		name, realm, account, domain, want string
	}{
		{"notes example", "CORP.EXAMPLE.TEST", "webapp01$", "corp.example.test", "CORP.EXAMPLE.TESThostwebapp01.corp.example.test"},
		{"mixed case account", "CORP.EXAMPLE.TEST", "WebApp02$", "corp.example.test", "CORP.EXAMPLE.TESThostwebapp02.corp.example.test"},
		{"lower-case realm, upper-case domain", "corp.example.test", "WEBAPP03$", "CORP.EXAMPLE.TEST", "CORP.EXAMPLE.TESThostwebapp03.corp.example.test"},
		{"no dollar", "CORP.EXAMPLE.TEST", "webapp04", "corp.example.test", "CORP.EXAMPLE.TESThostwebapp04.corp.example.test"},
		{"only one dollar removed", "CORP.EXAMPLE.TEST", "odd$$", "corp.example.test", "CORP.EXAMPLE.TESThostodd$.corp.example.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Salt(tc.realm, tc.account, tc.domain); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestKeyForErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		etype    int32
		password []byte
		want     string
		is       error
	}{
		{"empty", etypeID.AES256_CTS_HMAC_SHA1_96, nil, "derive key: empty password", nil},
		{"odd length", etypeID.RC4_HMAC, []byte{1, 2, 3}, "derive key: password is 3 bytes, not whole UTF-16 code units", nil},
		{"des", etypeID.DES_CBC_MD5, []byte{1, 2}, "derive key: etype 3: unsupported encryption type", ErrUnsupportedEtype},
		{"aes sha2", etypeID.AES256_CTS_HMAC_SHA384_192, []byte{1, 2}, "derive key: etype 20: unsupported encryption type", ErrUnsupportedEtype},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := KeyFor(tc.etype, tc.password, "salt")
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error does not wrap %v", tc.is)
			}
			if diff := cmp.Diff(types.EncryptionKey{}, k); diff != "" {
				t.Errorf("key beside the error:\n%s", diff)
			}
		})
	}
}

func TestKeysErrorLeavesNoKeys(t *testing.T) {
	keys, err := Keys([]byte{1}, "salt", 1)
	if err == nil || keys != nil {
		t.Fatalf("Keys(odd password) = %v, %v", keys, err)
	}
}
