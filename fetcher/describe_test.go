package fetcher

import (
	"encoding/binary"
	"testing"
)

func TestSIDString(t *testing.T) {
	b := []byte{1, 4, 0, 0, 0, 0, 0, 5}
	for _, v := range []uint32{21, 3603911302, 1360721139, 2588248557} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	if got, err := SIDString(b); err != nil || got != "S-1-5-21-3603911302-1360721139-2588248557" {
		t.Errorf("SIDString = %q, %v", got, err)
	}
	for _, bad := range [][]byte{nil, b[:8], b[:len(b)-1], append([]byte{2}, b[1:]...)} {
		if got, err := SIDString(bad); err == nil {
			t.Errorf("SIDString(% x) = %q, want an error", bad, got)
		}
	}
}

func TestGUIDString(t *testing.T) {
	// f74ae2d8-4be5-49c4-8db9-34aeb71c455d as the directory stores it.
	b := []byte{0xd8, 0xe2, 0x4a, 0xf7, 0xe5, 0x4b, 0xc4, 0x49, 0x8d, 0xb9, 0x34, 0xae, 0xb7, 0x1c, 0x45, 0x5d}
	if got, err := GUIDString(b); err != nil || got != "f74ae2d8-4be5-49c4-8db9-34aeb71c455d" {
		t.Errorf("GUIDString = %q, %v", got, err)
	}
	if _, err := GUIDString(b[:15]); err == nil {
		t.Error("GUIDString of 15 bytes: no error")
	}
}

func TestDNSOf(t *testing.T) {
	if got := dnsOf("DC=Corp,DC=example, DC=test"); got != "corp.example.test" {
		t.Errorf("dnsOf = %q", got)
	}
}
