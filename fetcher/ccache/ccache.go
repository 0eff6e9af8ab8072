// Package ccache reads and writes MIT Kerberos credential cache files, format
// version 4 (krb5 doc/formats/ccache_file_format.rst), the FILE: cache that
// MIT krb5, Heimdal, Java and gokrb5 clients in a container read through
// KRB5CCNAME. The hook writes one cache per container holding the ticket of a
// gMSA; the parser exists so that those files, and files written by MIT kinit,
// can be checked. Parse is strict and bounds-checked because a cache may come
// from a directory that someone else can write to.
package ccache

import (
	"fmt"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Version is the only file format version this package reads and writes:
// 0x05 followed by 0x04. Versions 1 and 2 use host byte order and version 3
// repeats the enctype; nothing current writes them.
const Version = 0x0504

// ConfigRealm is the realm of the server principal of configuration entries
// (krb5_ccache_conf_data/<key>[/<principal>]@X-CACHECONF:).
const ConfigRealm = "X-CACHECONF:"

// configComponent is the first server component of a configuration entry.
const configComponent = "krb5_ccache_conf_data"

// Limits that keep a hostile or corrupt file from making Parse allocate much
// more than the file's own size. Real caches hold names of one to three
// components and tickets of a few kilobytes (tens with a large PAC).
const (
	maxComponents = 64
	maxData       = 1 << 20 // one counted octet string: ticket, key, name part
	maxAddresses  = 256
	maxAuthData   = 256
)

// Principal is a Kerberos principal name as a cache stores it.
type Principal struct {
	NameType   int32
	Realm      string
	Components []string
}

// NewPrincipal returns the cache form of a gokrb5 principal name in realm.
func NewPrincipal(realm string, name types.PrincipalName) Principal {
	return Principal{
		NameType:   name.NameType,
		Realm:      realm,
		Components: append([]string(nil), name.NameString...),
	}
}

// String returns the principal in the usual a/b@REALM form, without quoting.
func (p Principal) String() string {
	s := ""
	for i, c := range p.Components {
		if i > 0 {
			s += "/"
		}
		s += c
	}
	return s + "@" + p.Realm
}

// Address is a host address (addrtype and contents) bound to a ticket.
type Address struct {
	Type uint16
	Data []byte
}

// AuthData is one authorization data element bound to a credential.
type AuthData struct {
	Type uint16
	Data []byte
}

// Credential is one entry of a cache: a ticket with its session key, or a
// configuration entry (see IsConfig). It holds secrets: its Format method
// leaves out the key and the ticket, so %v and friends are safe to log.
type Credential struct {
	Client, Server Principal
	// Key is the session key; KeyType is written as 16 bits.
	Key types.EncryptionKey
	// Times are whole seconds; the zero time.Time stands for 0 (unset, as
	// in starttime and renew_till of many tickets).
	AuthTime, StartTime, EndTime, RenewTill time.Time
	IsSKey                                  bool
	// Flags are the ticket flags as the first 32 bits of the ASN.1 bit
	// string, big-endian (forwardable is 0x40000000); see FlagsFromBitString.
	Flags     uint32
	Addresses []Address
	AuthData  []AuthData
	// Ticket is the DER encoding of the Ticket (or a configuration value).
	Ticket []byte
	// SecondTicket is the DER of the second ticket of a user-to-user
	// credential; normally empty.
	SecondTicket []byte
}

// IsConfig reports whether c is a configuration entry rather than a ticket.
func (c Credential) IsConfig() bool {
	return c.Server.Realm == ConfigRealm && len(c.Server.Components) >= 2 &&
		c.Server.Components[0] == configComponent
}

// Format prints the names, times and flags of c and never its key or ticket,
// so that a credential that ends up in an error or a log reveals nothing.
func (c Credential) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "{client %s server %s key etype %d (redacted) authtime %s starttime %s endtime %s renewtill %s skey %t flags %#08x ticket %d bytes (redacted)}",
		c.Client, c.Server, c.Key.KeyType, fmtTime(c.AuthTime), fmtTime(c.StartTime),
		fmtTime(c.EndTime), fmtTime(c.RenewTill), c.IsSKey, c.Flags, len(c.Ticket))
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return t.UTC().Format(time.RFC3339)
}

// KDCOffset is header field 1: the KDC's clock minus the local clock when
// the cache was made, as MIT records it. MIT computes the two parts
// separately, so they may have different signs (5 s and -300000 us); they are
// kept as found so that a cache reads and writes back byte for byte.
type KDCOffset struct {
	Seconds      int32
	Microseconds int32
}

// Duration returns the offset as one duration.
func (o KDCOffset) Duration() time.Duration {
	return time.Duration(o.Seconds)*time.Second + time.Duration(o.Microseconds)*time.Microsecond
}

// OffsetOf splits d into the seconds and microseconds of a header field,
// both with the sign of d. It saturates beyond the 68 years int32 seconds hold.
func OffsetOf(d time.Duration) KDCOffset {
	const limit = time.Duration(1<<31-1) * time.Second
	switch {
	case d > limit:
		d = limit
	case d < -limit:
		d = -limit
	}
	return KDCOffset{
		Seconds:      int32(d / time.Second),
		Microseconds: int32((d % time.Second) / time.Microsecond),
	}
}

// Cache is the content of a credential cache file.
type Cache struct {
	DefaultPrincipal Principal
	Credentials      []Credential
	// KDCOffset, when set, is written as header field 1; when nil the header
	// is empty. MIT writes it whenever it learnt the KDC's time (kdc_timesync).
	KDCOffset *KDCOffset
}

// FlagRenewable is the renewable ticket flag (RFC 4120 5.3, bit 8) in the
// 32-bit form a cache stores (bit 0 is the top bit).
const FlagRenewable uint32 = 1 << (31 - 8)

// FlagsFromBitString returns the ticket flags of a KDC reply or ticket (as
// gokrb5 decodes them) as the 32-bit value a cache stores: bit 0 of the
// string (reserved) is the top bit. Strings shorter than 32 bits are padded
// with zeros; bits beyond 32 are dropped, as MIT does.
func FlagsFromBitString(s asn1.BitString) uint32 {
	var v uint32
	for i := 0; i < 4 && i < len(s.Bytes); i++ {
		v |= uint32(s.Bytes[i]) << (24 - 8*i)
	}
	if s.BitLength < 32 {
		// Bits past BitLength are padding and must not count.
		v &^= uint32(1<<(32-max(s.BitLength, 0))) - 1
	}
	return v
}

// BitStringFromFlags is the inverse of FlagsFromBitString: a 32-bit string.
func BitStringFromFlags(v uint32) asn1.BitString {
	return asn1.BitString{
		Bytes:     []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)},
		BitLength: 32,
	}
}
