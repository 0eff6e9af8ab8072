package ccache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// ErrTruncated is wrapped by Parse errors for input that ends inside a field.
var ErrTruncated = errors.New("unexpected end of data")

// headerTagKDCOffset is the only header field the format defines.
const headerTagKDCOffset = 1

// Parse decodes a version 4 credential cache. It accepts what MIT writes
// (the KDC offset header field, configuration entries) and skips header
// fields with unknown tags, as the format asks; anything else that does not
// follow the grammar exactly, including bytes after the last complete
// credential, is an error. Parse never panics and allocates at most a small
// multiple of len(b).
func Parse(b []byte) (*Cache, error) {
	r := &reader{b: b}
	v := r.u16()
	if r.err != nil {
		return nil, fmt.Errorf("version: %w", r.err)
	}
	if v != Version {
		return nil, fmt.Errorf("unsupported version %#04x, want %#04x", v, Version)
	}
	c := &Cache{}
	if err := r.header(c); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	p, err := r.principal()
	if err != nil {
		return nil, fmt.Errorf("default principal: %w", err)
	}
	c.DefaultPrincipal = p
	for i := 1; r.off < len(r.b); i++ {
		start := r.off
		cred, err := r.credential()
		if err != nil {
			return nil, fmt.Errorf("credential %d at offset %d: %w", i, start, err)
		}
		c.Credentials = append(c.Credentials, cred)
	}
	return c, nil
}

// reader walks b; the first failure sticks in err and every later read
// returns zero values, so callers check err once per field group.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = fmt.Errorf("offset %d: need %d bytes, have %d: %w", r.off, n, len(r.b)-r.off, ErrTruncated)
		return nil
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s
}

func (r *reader) u8() uint8 {
	if s := r.take(1); s != nil {
		return s[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if s := r.take(2); s != nil {
		return binary.BigEndian.Uint16(s)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if s := r.take(4); s != nil {
		return binary.BigEndian.Uint32(s)
	}
	return 0
}

// data reads a counted octet string and returns a copy, so a Cache never
// aliases the caller's buffer, or nil when it is empty.
func (r *reader) data() []byte {
	off := r.off
	n := r.u32()
	if r.err != nil {
		return nil
	}
	if n > maxData {
		r.err = fmt.Errorf("offset %d: length %d exceeds limit %d", off, n, maxData)
		return nil
	}
	s := r.take(int(n))
	if len(s) == 0 {
		return nil
	}
	return append([]byte(nil), s...)
}

// count reads a 32-bit element count, bounded by limit and by what the
// remaining bytes can hold at minSize bytes per element.
func (r *reader) count(limit, minSize int) int {
	off := r.off
	n := r.u32()
	if r.err != nil {
		return 0
	}
	if n > uint32(limit) {
		r.err = fmt.Errorf("offset %d: count %d exceeds limit %d", off, n, limit)
		return 0
	}
	if int(n)*minSize > len(r.b)-r.off {
		r.err = fmt.Errorf("offset %d: count %d needs at least %d bytes, have %d: %w",
			off, n, int(n)*minSize, len(r.b)-r.off, ErrTruncated)
		return 0
	}
	return int(n)
}

func (r *reader) header(c *Cache) error {
	n := int(r.u16())
	h := r.take(n)
	if r.err != nil {
		return r.err
	}
	hr := &reader{b: h}
	for hr.off < len(h) && hr.err == nil {
		tag := hr.u16()
		val := hr.take(int(hr.u16()))
		if hr.err != nil {
			break
		}
		if tag != headerTagKDCOffset {
			continue // unknown tags are to be ignored
		}
		if c.KDCOffset != nil {
			return errors.New("duplicate kdc offset field")
		}
		if len(val) != 8 {
			return fmt.Errorf("kdc offset field: length %d, want 8", len(val))
		}
		c.KDCOffset = &KDCOffset{
			Seconds:      int32(binary.BigEndian.Uint32(val)),
			Microseconds: int32(binary.BigEndian.Uint32(val[4:])),
		}
	}
	return hr.err
}

func (r *reader) principal() (Principal, error) {
	var p Principal
	p.NameType = int32(r.u32())
	n := r.count(maxComponents, 4)
	p.Realm = string(r.data())
	if r.err != nil {
		return Principal{}, r.err
	}
	if n > 0 {
		p.Components = make([]string, n)
	}
	for i := range p.Components {
		p.Components[i] = string(r.data())
		if r.err != nil {
			return Principal{}, fmt.Errorf("component %d: %w", i+1, r.err)
		}
	}
	return p, nil
}

func (r *reader) credential() (Credential, error) {
	var c Credential
	var err error
	if c.Client, err = r.principal(); err != nil {
		return Credential{}, fmt.Errorf("client: %w", err)
	}
	if c.Server, err = r.principal(); err != nil {
		return Credential{}, fmt.Errorf("server: %w", err)
	}
	c.Key.KeyType = int32(r.u16())
	c.Key.KeyValue = r.data()
	if r.err != nil {
		return Credential{}, fmt.Errorf("key: %w", r.err)
	}
	c.AuthTime = readTime(r.u32())
	c.StartTime = readTime(r.u32())
	c.EndTime = readTime(r.u32())
	c.RenewTill = readTime(r.u32())
	skeyOff := r.off
	skey := r.u8()
	c.Flags = r.u32()
	if r.err != nil {
		return Credential{}, fmt.Errorf("times and flags: %w", r.err)
	}
	switch skey {
	case 0:
	case 1:
		c.IsSKey = true
	default:
		return Credential{}, fmt.Errorf("offset %d: is_skey %d, want 0 or 1", skeyOff, skey)
	}
	if n := r.count(maxAddresses, 6); n > 0 {
		c.Addresses = make([]Address, n)
		for i := range c.Addresses {
			c.Addresses[i] = Address{Type: r.u16(), Data: r.data()}
		}
	}
	if r.err != nil {
		return Credential{}, fmt.Errorf("addresses: %w", r.err)
	}
	if n := r.count(maxAuthData, 6); n > 0 {
		c.AuthData = make([]AuthData, n)
		for i := range c.AuthData {
			c.AuthData[i] = AuthData{Type: r.u16(), Data: r.data()}
		}
	}
	if r.err != nil {
		return Credential{}, fmt.Errorf("authdata: %w", r.err)
	}
	if c.Ticket = r.data(); r.err != nil {
		return Credential{}, fmt.Errorf("ticket: %w", r.err)
	}
	if c.SecondTicket = r.data(); r.err != nil {
		return Credential{}, fmt.Errorf("second ticket: %w", r.err)
	}
	return c, nil
}

// readTime maps the unsigned 32-bit seconds of the file to a time; MIT reads
// them as unsigned since 1.17, which carries the format to 2106.
func readTime(s uint32) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(int64(s), 0).UTC()
}
