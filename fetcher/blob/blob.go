// Package blob decodes the msDS-ManagedPassword attribute of a group Managed
// Service Account (the MSDS-MANAGEDPASSWORD_BLOB of MS-ADTS 2.2.19) and turns
// the password in it into the account's Kerberos keys (AES256, AES128 and
// RC4, salted as MS-KILE says for computer accounts). The password is 256
// random bytes that Windows treats as UTF-16LE; the package keeps it as those
// raw bytes, because the RC4 key and the AES keys read them differently, and
// never prints it: Password and Key redact themselves under every fmt verb.
package blob

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrMalformed is wrapped by every Parse error.
var ErrMalformed = errors.New("malformed msDS-ManagedPassword blob")

const (
	headerSize = 16
	version    = 1
	// tick is the unit of the two intervals (a Windows FILETIME tick).
	tick = 100 * time.Nanosecond
	// maxTicks is the largest interval a time.Duration holds exactly; Parse
	// saturates larger ones to it (no real interval comes near 29,000 years).
	maxTicks = math.MaxInt64 / int64(tick)
	// maxPassword bounds each password. Windows makes them 256 bytes; the
	// bound keeps any blob Parse accepts within reach of 16-bit offsets.
	maxPassword = 4096
)

// ManagedPassword is the content of the blob.
type ManagedPassword struct {
	// Current is the current password, raw UTF-16LE without the terminating
	// NUL: the bytes AD hashes and derives keys from.
	Current Password
	// Previous is the password before the last change, nil when there is none.
	Previous Password
	// QueryPasswordInterval is how long until the reader should query the
	// password again (MS-ADTS 2.2.19).
	QueryPasswordInterval time.Duration
	// UnchangedPasswordInterval is how long queries are sure to keep
	// returning this password.
	UnchangedPasswordInterval time.Duration
}

// Wipe overwrites both passwords with zeros.
func (m *ManagedPassword) Wipe() {
	m.Current.Wipe()
	m.Previous.Wipe()
}

// String describes m without revealing the passwords.
func (m ManagedPassword) String() string {
	return fmt.Sprintf("{Current:%s Previous:%s QueryPasswordInterval:%s UnchangedPasswordInterval:%s}",
		m.Current, m.Previous, m.QueryPasswordInterval, m.UnchangedPasswordInterval)
}

// Format makes every fmt verb, %#v included, print String.
func (m ManagedPassword) Format(f fmt.State, verb rune) {
	fmt.Fprint(f, m.String())
}

// Parse decodes a blob the way Windows lays it out: a 16-byte header, then
// the fields at the offsets the header gives. Every offset is checked against
// Length, which must not exceed len(b); bytes beyond Length are ignored. The
// passwords must end with a UTF-16 NUL inside the blob. The returned
// passwords are copies, so b can be wiped afterwards.
func Parse(b []byte) (*ManagedPassword, error) {
	if len(b) < headerSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(b), headerSize)
	}
	if v := binary.LittleEndian.Uint16(b); v != version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, v, version)
	}
	// b[2:4] is Reserved; the specification gives it no meaning to check.
	length := binary.LittleEndian.Uint32(b[4:])
	if length < headerSize || uint64(length) > uint64(len(b)) {
		return nil, fmt.Errorf("%w: length field %d, blob is %d bytes", ErrMalformed, length, len(b))
	}
	b = b[:length]
	curOff := binary.LittleEndian.Uint16(b[8:])
	prevOff := binary.LittleEndian.Uint16(b[10:])
	queryOff := binary.LittleEndian.Uint16(b[12:])
	unchangedOff := binary.LittleEndian.Uint16(b[14:])

	m := &ManagedPassword{}
	if curOff == 0 {
		return nil, fmt.Errorf("%w: no current password", ErrMalformed)
	}
	if err := m.parseFields(b, curOff, prevOff, queryOff, unchangedOff); err != nil {
		m.Wipe()
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return m, nil
}

// span is the bytes a field occupies, for the overlap check.
type span struct {
	name       string
	start, end int // end exclusive
}

func (m *ManagedPassword) parseFields(b []byte, curOff, prevOff, queryOff, unchangedOff uint16) error {
	var spans []span
	var err error
	if m.Current, err = password(b, curOff); err != nil {
		return fmt.Errorf("current password %w", err)
	}
	if len(m.Current) == 0 {
		return errors.New("current password is empty")
	}
	spans = append(spans, span{"current password", int(curOff), int(curOff) + len(m.Current) + 2})
	if prevOff != 0 {
		if m.Previous, err = password(b, prevOff); err != nil {
			return fmt.Errorf("previous password %w", err)
		}
		spans = append(spans, span{"previous password", int(prevOff), int(prevOff) + len(m.Previous) + 2})
	}
	if m.QueryPasswordInterval, err = interval(b, queryOff); err != nil {
		return fmt.Errorf("query password interval %w", err)
	}
	spans = append(spans, span{"query password interval", int(queryOff), int(queryOff) + 8})
	if m.UnchangedPasswordInterval, err = interval(b, unchangedOff); err != nil {
		return fmt.Errorf("unchanged password interval %w", err)
	}
	spans = append(spans, span{"unchanged password interval", int(unchangedOff), int(unchangedOff) + 8})
	// Windows never lays fields over each other; a blob that does is
	// corrupt, and a password that runs into an interval found its NUL there.
	for i, a := range spans {
		for _, o := range spans[:i] {
			if a.start < o.end && o.start < a.end {
				return fmt.Errorf("%s (bytes %d to %d) overlaps %s (bytes %d to %d)",
					a.name, a.start, a.end-1, o.name, o.start, o.end-1)
			}
		}
	}
	return nil
}

// password returns a copy of the UTF-16LE string at off up to its NUL.
// Errors read as the continuation of "<field> ".
func password(b []byte, off uint16) (Password, error) {
	if off < headerSize || int(off) >= len(b) {
		return nil, fmt.Errorf("offset %d outside the data (%d to %d)", off, headerSize, len(b)-1)
	}
	for i := int(off); i+1 < len(b); i += 2 {
		if b[i] == 0 && b[i+1] == 0 {
			return append(Password{}, b[off:i]...), nil
		}
		if i-int(off) >= maxPassword {
			return nil, fmt.Errorf("at offset %d is longer than %d bytes", off, maxPassword)
		}
	}
	return nil, fmt.Errorf("at offset %d has no NUL terminator within the blob's %d bytes", off, len(b))
}

// interval reads the 64-bit count of 100 ns ticks at off.
func interval(b []byte, off uint16) (time.Duration, error) {
	if off < headerSize || int(off)+8 > len(b) {
		return 0, fmt.Errorf("offset %d outside the data (%d to %d)", off, headerSize, len(b)-8)
	}
	t := binary.LittleEndian.Uint64(b[off:])
	if t > uint64(maxTicks) {
		t = uint64(maxTicks)
	}
	return time.Duration(t) * tick, nil
}

// MarshalBinary encodes m in the layout Windows and Samba produce: header,
// current password and NUL, previous password and NUL when there is one,
// then the two intervals, unaligned (MS-ADTS asks for 8-byte alignment of
// the intervals, which Windows does not do). Intervals are whole ticks of
// 100 ns; anything finer is dropped.
func (m *ManagedPassword) MarshalBinary() ([]byte, error) {
	if len(m.Current) == 0 {
		return nil, errors.New("marshal blob: no current password")
	}
	if len(m.Current) > maxPassword || len(m.Previous) > maxPassword {
		return nil, fmt.Errorf("marshal blob: password longer than %d bytes", maxPassword)
	}
	for _, p := range []struct {
		name string
		pw   Password
	}{{"current", m.Current}, {"previous", m.Previous}} {
		if len(p.pw)%2 != 0 {
			return nil, fmt.Errorf("marshal blob: %s password is %d bytes, not whole UTF-16 code units", p.name, len(p.pw))
		}
		for i := 0; i+1 < len(p.pw); i += 2 {
			if p.pw[i] == 0 && p.pw[i+1] == 0 {
				return nil, fmt.Errorf("marshal blob: %s password holds a NUL code unit at byte %d", p.name, i)
			}
		}
	}
	if m.QueryPasswordInterval < 0 || m.UnchangedPasswordInterval < 0 {
		return nil, errors.New("marshal blob: negative interval")
	}
	size := headerSize + len(m.Current) + 2 + 16
	if m.Previous != nil {
		size += len(m.Previous) + 2
	}
	b := make([]byte, headerSize, size)
	binary.LittleEndian.PutUint16(b[0:], version)
	binary.LittleEndian.PutUint32(b[4:], uint32(size))
	binary.LittleEndian.PutUint16(b[8:], uint16(len(b)))
	b = append(append(b, m.Current...), 0, 0)
	if m.Previous != nil {
		binary.LittleEndian.PutUint16(b[10:], uint16(len(b)))
		b = append(append(b, m.Previous...), 0, 0)
	}
	binary.LittleEndian.PutUint16(b[12:], uint16(len(b)))
	b = binary.LittleEndian.AppendUint64(b, uint64(m.QueryPasswordInterval/tick))
	binary.LittleEndian.PutUint16(b[14:], uint16(len(b)))
	b = binary.LittleEndian.AppendUint64(b, uint64(m.UnchangedPasswordInterval/tick))
	return b, nil
}
