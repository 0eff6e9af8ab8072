package blob

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf16"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/crypto/rfc3962"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/types"
	//lint:ignore SA1019 RC4-HMAC keys are MD4 by definition (RFC 4757).
	"golang.org/x/crypto/md4"
)

// Etypes are the encryption types Keys derives, strongest first: the ones AD
// issues for a gMSA (msDS-SupportedEncryptionTypes 0x1C by default).
var Etypes = []int32{
	etypeID.AES256_CTS_HMAC_SHA1_96,
	etypeID.AES128_CTS_HMAC_SHA1_96,
	etypeID.RC4_HMAC,
}

// aesIterations is the PBKDF2 count AD uses: RFC 3962's default, since AD
// sends no s2kparams in ETYPE-INFO2.
const aesIterations = 4096

// ErrUnsupportedEtype is returned by KeyFor for an etype other than Etypes.
var ErrUnsupportedEtype = errors.New("unsupported encryption type")

// Key is a long-term key of the account with its version number.
type Key struct {
	KVNO int
	Key  types.EncryptionKey
}

// Wipe overwrites the key value with zeros.
func (k Key) Wipe() { clear(k.Key.KeyValue) }

// String describes k without revealing the key value.
func (k Key) String() string {
	return fmt.Sprintf("{KVNO:%d Etype:%d Key:<redacted %d bytes>}", k.KVNO, k.Key.KeyType, len(k.Key.KeyValue))
}

// Format makes every fmt verb print String.
func (k Key) Format(f fmt.State, verb rune) { fmt.Fprint(f, k.String()) }

// LogValue keeps log/slog handlers from printing the key.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Salt returns the Kerberos salt of a computer or gMSA account (MS-KILE
// 3.1.1.2): the realm in upper case, "host", the sAMAccountName in lower case
// without its final "$", ".", and the DNS domain in lower case. For
// ("corp.example.test", "WebApp02$", "CORP.EXAMPLE.TEST") that is
// "CORP.EXAMPLE.TESThostwebapp02.corp.example.test". A KDC that announces a
// salt in ETYPE-INFO2 knows better.
func Salt(realm, account, dnsDomain string) string {
	return strings.ToUpper(realm) + "host" +
		strings.ToLower(strings.TrimSuffix(account, "$")) + "." + strings.ToLower(dnsDomain)
}

// Keys derives the account's keys for each of Etypes, in that order, all
// with version kvno (msDS-KeyVersionNumber).
func Keys(password []byte, salt string, kvno int) ([]Key, error) {
	keys := make([]Key, 0, len(Etypes))
	for _, et := range Etypes {
		k, err := KeyFor(et, password, salt)
		if err != nil {
			for _, k := range keys {
				k.Wipe()
			}
			return nil, err
		}
		keys = append(keys, Key{KVNO: kvno, Key: k})
	}
	return keys, nil
}

// KeyFor derives the key of one encryption type from a raw UTF-16LE password.
//
// The two families read the password differently, as AD does:
//   - RC4-HMAC (23) is the NT hash, MD4 over the raw bytes. Converting to a
//     string first (as gokrb5's rfc4757 and MIT's string-to-key do) changes
//     the bytes of a password with unpaired surrogates, which random gMSA
//     passwords nearly always have.
//   - AES (17, 18) is RFC 3962 string-to-key over the password as UTF-8,
//     with unpaired surrogates replaced by U+FFFD, and the salt.
func KeyFor(etype int32, password []byte, salt string) (types.EncryptionKey, error) {
	if len(password) == 0 {
		return types.EncryptionKey{}, errors.New("derive key: empty password")
	}
	if len(password)%2 != 0 {
		return types.EncryptionKey{}, fmt.Errorf("derive key: password is %d bytes, not whole UTF-16 code units", len(password))
	}
	switch etype {
	case etypeID.RC4_HMAC:
		h := md4.New()
		h.Write(password)
		return types.EncryptionKey{KeyType: etype, KeyValue: h.Sum(nil)}, nil
	case etypeID.AES128_CTS_HMAC_SHA1_96, etypeID.AES256_CTS_HMAC_SHA1_96:
		e, err := crypto.GetEtype(etype)
		if err != nil {
			return types.EncryptionKey{}, fmt.Errorf("derive key: %w", err)
		}
		k, err := rfc3962.StringToKeyIter(aesString(password), salt, aesIterations, e)
		if err != nil {
			return types.EncryptionKey{}, fmt.Errorf("derive key: etype %d: %w", etype, err)
		}
		return types.EncryptionKey{KeyType: etype, KeyValue: k}, nil
	default:
		return types.EncryptionKey{}, fmt.Errorf("derive key: etype %d: %w", etype, ErrUnsupportedEtype)
	}
}

// aesString decodes the UTF-16LE password, replacing unpaired surrogates by
// U+FFFD, as UTF-8. The PBKDF2 implementations at hand take a string, so this
// copy cannot be wiped; the intermediate ones are.
func aesString(password []byte) string {
	units := make([]uint16, len(password)/2)
	for i := range units {
		units[i] = uint16(password[2*i]) | uint16(password[2*i+1])<<8
	}
	runes := utf16.Decode(units)
	clear(units)
	s := string(runes)
	clear(runes)
	return s
}
