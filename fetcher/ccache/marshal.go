package ccache

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// MarshalBinary encodes c as a version 4 cache. It checks every value fits
// its field (and the limits Parse enforces), so whatever it returns Parse
// reads back to an equal Cache. Sub-second parts of times are dropped: the
// file holds whole seconds, as Kerberos times are.
func (c *Cache) MarshalBinary() ([]byte, error) {
	w := &writer{}
	w.u16(Version)
	if c.KDCOffset != nil {
		w.u16(12)
		w.u16(headerTagKDCOffset)
		w.u16(8)
		w.u32(uint32(c.KDCOffset.Seconds))
		w.u32(uint32(c.KDCOffset.Microseconds))
	} else {
		w.u16(0)
	}
	if err := w.principal(c.DefaultPrincipal); err != nil {
		return nil, fmt.Errorf("default principal: %w", err)
	}
	for i, cred := range c.Credentials {
		if err := w.credential(cred); err != nil {
			return nil, fmt.Errorf("credential %d: %w", i+1, err)
		}
	}
	return w.b, nil
}

type writer struct {
	b []byte
}

func (w *writer) u8(v uint8)   { w.b = append(w.b, v) }
func (w *writer) u16(v uint16) { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }

func (w *writer) data(d []byte) error {
	if len(d) > maxData {
		return fmt.Errorf("length %d exceeds limit %d", len(d), maxData)
	}
	w.u32(uint32(len(d)))
	w.b = append(w.b, d...)
	return nil
}

func (w *writer) principal(p Principal) error {
	if len(p.Components) > maxComponents {
		return fmt.Errorf("%d components exceed limit %d", len(p.Components), maxComponents)
	}
	w.u32(uint32(p.NameType))
	w.u32(uint32(len(p.Components)))
	if err := w.data([]byte(p.Realm)); err != nil {
		return fmt.Errorf("realm: %w", err)
	}
	for i, s := range p.Components {
		if err := w.data([]byte(s)); err != nil {
			return fmt.Errorf("component %d: %w", i+1, err)
		}
	}
	return nil
}

func (w *writer) credential(c Credential) error {
	if err := w.principal(c.Client); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := w.principal(c.Server); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if c.Key.KeyType < 0 || c.Key.KeyType > math.MaxUint16 {
		return fmt.Errorf("key: enctype %d does not fit 16 bits", c.Key.KeyType)
	}
	w.u16(uint16(c.Key.KeyType))
	if err := w.data(c.Key.KeyValue); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"authtime", c.AuthTime}, {"starttime", c.StartTime}, {"endtime", c.EndTime}, {"renew_till", c.RenewTill}} {
		s, err := fileTime(t.t)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		w.u32(s)
	}
	if c.IsSKey {
		w.u8(1)
	} else {
		w.u8(0)
	}
	w.u32(c.Flags)
	if len(c.Addresses) > maxAddresses {
		return fmt.Errorf("%d addresses exceed limit %d", len(c.Addresses), maxAddresses)
	}
	w.u32(uint32(len(c.Addresses)))
	for i, a := range c.Addresses {
		w.u16(a.Type)
		if err := w.data(a.Data); err != nil {
			return fmt.Errorf("address %d: %w", i+1, err)
		}
	}
	if len(c.AuthData) > maxAuthData {
		return fmt.Errorf("%d authdata elements exceed limit %d", len(c.AuthData), maxAuthData)
	}
	w.u32(uint32(len(c.AuthData)))
	for i, a := range c.AuthData {
		w.u16(a.Type)
		if err := w.data(a.Data); err != nil {
			return fmt.Errorf("authdata %d: %w", i+1, err)
		}
	}
	if err := w.data(c.Ticket); err != nil {
		return fmt.Errorf("ticket: %w", err)
	}
	if err := w.data(c.SecondTicket); err != nil {
		return fmt.Errorf("second ticket: %w", err)
	}
	return nil
}

// fileTime returns the 32-bit seconds for t: 0 for the zero time, else the
// Unix time, which must lie between 1970 and 2106.
func fileTime(t time.Time) (uint32, error) {
	if t.IsZero() {
		return 0, nil
	}
	s := t.Unix()
	if s < 0 || s > math.MaxUint32 {
		return 0, fmt.Errorf("time %s outside the 32-bit range of the format", t.UTC().Format(time.RFC3339))
	}
	return uint32(s), nil
}
