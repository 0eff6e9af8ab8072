package blob

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/types"
	//lint:ignore SA1019 the NT hash is MD4.
	"golang.org/x/crypto/md4"

	"github.com/gmsa-hook/gmsa-hook/test/testdomain"
)

// domainTools runs MIT and OpenLDAP tools against the test domain with their
// own credential cache.
type domainTools struct {
	t   *testing.T
	env map[string]string
	cc  string
}

func (d domainTools) run(stdin string, name string, args ...string) (string, error) {
	return d.runConf(d.env["KRB5_CONFIG"], stdin, name, args...)
}

func (d domainTools) runConf(krb5Config, stdin string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "KRB5_CONFIG="+krb5Config, "KRB5CCNAME=FILE:"+d.cc, "LDAPSASL_NOCANON=on", "LC_ALL=C")
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// gmsa is what the reader sees of one gMSA over a sealed LDAP connection.
type gmsa struct {
	account string
	kvno    int
	blob    []byte
}

func (d domainTools) readGMSA(account string) gmsa {
	d.t.Helper()
	out, err := d.run("", "ldapsearch", "-LLL", "-Q", "-o", "ldif-wrap=no", "-Y", "GSSAPI",
		"-H", "ldap://"+d.env["DC_HOST"], "-b", d.env["BASE_DN"],
		"(sAMAccountName="+account+")", "sAMAccountName", "msDS-KeyVersionNumber", "msDS-ManagedPassword")
	if err != nil {
		d.t.Fatalf("ldapsearch: %v\n%s", err, out)
	}
	var g gmsa
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(line, ": ")
		switch k {
		case "sAMAccountName":
			g.account = v
		case "msDS-KeyVersionNumber":
			g.kvno, _ = strconv.Atoi(v)
		case "msDS-ManagedPassword:":
			if g.blob, err = base64.StdEncoding.DecodeString(v); err != nil {
				d.t.Fatal(err)
			}
		}
	}
	if g.account == "" || g.kvno == 0 || g.blob == nil {
		d.t.Fatalf("ldapsearch for %s: no account, kvno or msDS-ManagedPassword (is the reader allowed?)", account)
	}
	return g
}

// kinitWithKey writes key alone to a keytab and logs in as the gMSA with it.
func (d domainTools) kinitWithKey(g gmsa, key types.EncryptionKey) (string, error) {
	d.t.Helper()
	kt := keytab.New()
	// AddEntry derives its own key with the wrong salt for a machine
	// account; the entry's key is replaced with ours.
	if err := kt.AddEntry(g.account, d.env["REALM"], "unused", time.Now(), uint8(g.kvno), key.KeyType); err != nil {
		d.t.Fatal(err)
	}
	kt.Entries[0].Key = key
	kt.Entries[0].KVNO = uint32(g.kvno)
	b, err := kt.Marshal()
	if err != nil {
		d.t.Fatal(err)
	}
	path := filepath.Join(d.t.TempDir(), "gmsa.keytab")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		d.t.Fatal(err)
	}
	// Ask for this etype only: otherwise the KDC picks aes256 and kinit
	// finds no such key. MIT reads the files in KRB5_CONFIG in order, the
	// first setting of a relation winning.
	conf := filepath.Join(d.t.TempDir(), "krb5.conf")
	name := map[int32]string{
		etypeID.AES256_CTS_HMAC_SHA1_96: "aes256-cts-hmac-sha1-96",
		etypeID.AES128_CTS_HMAC_SHA1_96: "aes128-cts-hmac-sha1-96",
		etypeID.RC4_HMAC:                "arcfour-hmac",
	}[key.KeyType]
	if err := os.WriteFile(conf, []byte("[libdefaults]\n\tdefault_tkt_enctypes = "+name+"\n"), 0o644); err != nil {
		d.t.Fatal(err)
	}
	cc := filepath.Join(d.t.TempDir(), "gmsa.cc")
	return d.runConf(conf+":"+d.env["KRB5_CONFIG"], "", "kinit", "-k", "-t", path, "-c", "FILE:"+cc, g.account+"@"+d.env["REALM"])
}

// TestKeysAgainstDomain reads real blobs from the test domain's Samba AD DC
// and logs in as each gMSA with every key Keys derives, one at a time: the
// KDC is the judge of the layout, the salt (mixed-case WebApp02$ included),
// the U+FFFD rule for AES and the raw-bytes rule for RC4.
func TestKeysAgainstDomain(t *testing.T) {
	env := testdomain.Env(t)
	d := domainTools{t: t, env: env, cc: filepath.Join(t.TempDir(), "reader.cc")}
	if out, err := d.run(env["READER_PASSWORD"]+"\n", "kinit", env["READER_USER"]); err != nil {
		t.Fatalf("kinit %s: %v\n%s", env["READER_USER"], err, out)
	}
	for _, account := range []string{"webapp01$", "WebApp02$"} {
		t.Run(account, func(t *testing.T) {
			d := d
			d.t = t
			g := d.readGMSA(account)
			m, err := Parse(g.blob)
			if err != nil {
				t.Fatalf("Parse(real blob): %v", err)
			}
			defer m.Wipe()
			// The layout Samba sends is the one MarshalBinary writes.
			if out, err := m.MarshalBinary(); err != nil || !bytes.Equal(out, g.blob) {
				t.Errorf("MarshalBinary(Parse(blob)) differs from the %d bytes the DC sent (%v)", len(g.blob), err)
			}
			if len(g.blob) != 290 || m.Previous != nil || len(m.Current) != 256 {
				t.Errorf("blob %d bytes, current %d bytes, previous %v; want 290, 256, none", len(g.blob), len(m.Current), m.Previous)
			}
			salt := Salt(env["REALM"], g.account, env["DOMAIN_DNS"])
			keys, err := Keys(m.Current, salt, g.kvno)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if out, err := d.kinitWithKey(g, k.Key); err != nil {
					t.Errorf("kinit -k with our etype %d key failed: %v\n%s", k.Key.KeyType, err, out)
				}
				wrong := types.EncryptionKey{KeyType: k.Key.KeyType, KeyValue: bytes.Clone(k.Key.KeyValue)}
				wrong.KeyValue[0] ^= 1
				if _, err := d.kinitWithKey(g, wrong); err == nil {
					t.Errorf("kinit -k with a wrong etype %d key succeeded: the check proves nothing", k.Key.KeyType)
				}
			}
			// What MIT's and gokrb5's string-to-key would make: the NT hash
			// of the text after U+FFFD replacement. AD does not accept it.
			if hasUnpairedSurrogate(m.Current) {
				u := make([]uint16, len(m.Current)/2)
				for i := range u {
					u[i] = uint16(m.Current[2*i]) | uint16(m.Current[2*i+1])<<8
				}
				var re []byte
				for _, v := range utf16.Encode(utf16.Decode(u)) {
					re = append(re, byte(v), byte(v>>8))
				}
				h := md4.New()
				h.Write(re)
				if _, err := d.kinitWithKey(g, types.EncryptionKey{KeyType: etypeID.RC4_HMAC, KeyValue: h.Sum(nil)}); err == nil {
					t.Errorf("the KDC accepted the RC4 key of the U+FFFD text: the raw-bytes rule is not what it uses")
				}
			} else {
				t.Logf("%s: current password has no unpaired surrogate; RC4 rule not distinguished", g.account)
			}
		})
	}
}
