package blob

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// password256 returns a fixed 256-byte password, random-looking like AD's
// (a seeded generator, so the golden blobs stay put), without NUL code units.
func password256(t *testing.T) Password {
	t.Helper()
	r := rand.NewChaCha8([32]byte{'g', 'm', 's', 'a'})
	p := make(Password, 256)
	for i := 0; i < len(p); i += 2 {
		for p[i] == 0 && p[i+1] == 0 {
			r.Read(p[i : i+2])
		}
	}
	return p
}

// previous256 is another 256-byte password without NUL code units.
func previous256() Password {
	p := make(Password, 256)
	for i := range p {
		p[i] = byte(0x80 + i%0x7f)
	}
	return p
}

// Intervals as AD reports them for a 30-day gMSA some hours after a change.
const (
	query     = 29*24*time.Hour + 17*time.Hour + 3*time.Minute + 12*time.Second + 345*time.Millisecond + 6700*time.Nanosecond
	unchanged = query + 24*time.Hour
)

func goldenBlobs(t *testing.T) map[string]*ManagedPassword {
	return map[string]*ManagedPassword{
		"current":          {Current: password256(t), QueryPasswordInterval: query, UnchangedPasswordInterval: query},
		"current-previous": {Current: password256(t), Previous: previous256(), QueryPasswordInterval: query, UnchangedPasswordInterval: unchanged},
	}
}

func TestGolden(t *testing.T) {
	// The headers Windows sends (and Samba 4.22 sent for webapp01): the
	// intervals right after the last password, not 8-byte aligned.
	headers := map[string]string{
		"current":          "0100" + "0000" + "22010000" + "1000" + "0000" + "1201" + "1a01",
		"current-previous": "0100" + "0000" + "24020000" + "1000" + "1201" + "1402" + "1c02",
	}
	for name, m := range goldenBlobs(t) {
		t.Run(name, func(t *testing.T) {
			got, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".blob")
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
				t.Fatalf("MarshalBinary differs from %s (run go test -update if intended)", path)
			}
			if h := hex.EncodeToString(got[:16]); h != headers[name] {
				t.Errorf("header %s, want %s", h, headers[name])
			}
			parsed, err := Parse(want)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(m, parsed); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if b, _ := goldenBlobs(t)["current"].MarshalBinary(); len(b) != 290 {
		t.Errorf("current-only blob is %d bytes, want 290 as AD sends", len(b))
	}
}

// header builds a blob header; body is appended.
func header(version uint16, length uint32, cur, prev, query, unchanged uint16, body ...byte) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b[0:], version)
	binary.LittleEndian.PutUint32(b[4:], length)
	binary.LittleEndian.PutUint16(b[8:], cur)
	binary.LittleEndian.PutUint16(b[10:], prev)
	binary.LittleEndian.PutUint16(b[12:], query)
	binary.LittleEndian.PutUint16(b[14:], unchanged)
	return append(b, body...)
}

func TestParseLayouts(t *testing.T) {
	pw := []byte{'a', 0, 0x3d, 0xd8, 'b', 0} // "a", unpaired high surrogate, "b"
	ticks := func(d time.Duration) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(d/100)) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name string
		in   []byte
		want *ManagedPassword
	}{
		{
			// MS-ADTS's own layout: padding so the intervals are 8-aligned.
			"aligned as the specification says",
			header(1, 48, 16, 0, 32, 40, cat(pw, []byte{0, 0}, make([]byte, 8), ticks(time.Hour), ticks(2*time.Hour))...),
			&ManagedPassword{Current: pw, QueryPasswordInterval: time.Hour, UnchangedPasswordInterval: 2 * time.Hour},
		},
		{
			"fields in another order",
			header(1, 48, 32, 16, 40, 24, cat([]byte{'p', 0, 0, 0}, make([]byte, 4), ticks(time.Minute), pw, []byte{0, 0}, ticks(time.Second))...),
			&ManagedPassword{Current: pw, Previous: Password{'p', 0}, QueryPasswordInterval: time.Second, UnchangedPasswordInterval: time.Minute},
		},
		{
			"bytes after length are ignored",
			cat(header(1, 36, 16, 0, 20, 28, cat([]byte{'x', 0, 0, 0}, ticks(0), ticks(0))...), []byte{0xff, 0xff}),
			&ManagedPassword{Current: Password{'x', 0}},
		},
		{
			"empty previous password",
			header(1, 38, 16, 20, 22, 30, cat([]byte{'x', 0, 0, 0}, []byte{0, 0}, ticks(0), ticks(0))...),
			&ManagedPassword{Current: Password{'x', 0}, Previous: Password{}},
		},
		{
			"interval beyond time.Duration saturates",
			header(1, 36, 16, 0, 20, 28, cat([]byte{'x', 0, 0, 0}, bytes.Repeat([]byte{0xff}, 8), ticks(time.Second))...),
			&ManagedPassword{Current: Password{'x', 0}, QueryPasswordInterval: time.Duration(maxTicks) * 100, UnchangedPasswordInterval: time.Second},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	good, err := goldenBlobs(t)["current"].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	with := func(off int, v ...byte) []byte {
		b := bytes.Clone(good)
		copy(b[off:], v)
		return b
	}
	const prefix = "malformed msDS-ManagedPassword blob: "
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "0 bytes, shorter than the 16-byte header"},
		{"short", good[:15], "15 bytes, shorter than the 16-byte header"},
		{"version 0", with(0, 0, 0), "version 0, want 1"},
		{"version 2", with(0, 2, 0), "version 2, want 1"},
		{"length beyond data", good[:289], "length field 290, blob is 289 bytes"},
		{"length inside header", with(4, 8, 0, 0, 0), "length field 8, blob is 290 bytes"},
		{"huge length", with(4, 0xff, 0xff, 0xff, 0xff), "length field 4294967295, blob is 290 bytes"},
		{"no current password", with(8, 0, 0), "no current password"},
		{"current offset inside header", with(8, 4, 0), "current password offset 4 outside the data (16 to 289)"},
		{"current offset beyond end", with(8, 0x22, 0x01), "current password offset 290 outside the data (16 to 289)"},
		{"current password missing NUL", header(1, 26, 16, 0, 18, 18, bytes.Repeat([]byte{'a'}, 10)...), "current password at offset 16 has no NUL terminator within the blob's 26 bytes"},
		{"current password runs into interval", with(272, 'x', 'x'), "query password interval (bytes 274 to 281) overlaps current password (bytes 16 to 281)"},
		{"current password empty", with(8, 0x10, 0x01), "current password is empty"},
		{"previous offset beyond end", with(10, 0xff, 0xff), "previous password offset 65535 outside the data (16 to 289)"},
		{"previous password missing NUL", header(1, 38, 16, 20, 30, 30, 'a', 0, 0, 0, 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b', 'b'), "previous password at offset 20 has no NUL terminator within the blob's 38 bytes"},
		{"previous password is the current one", with(10, 0x10, 0x00), "previous password (bytes 16 to 273) overlaps current password (bytes 16 to 273)"},
		{"intervals overlap", with(14, 0x13, 0x01), "unchanged password interval (bytes 275 to 282) overlaps query password interval (bytes 274 to 281)"},
		{"query offset beyond end", with(12, 0x1b, 0x01), "query password interval offset 283 outside the data (16 to 282)"},
		{"query offset zero", with(12, 0, 0), "query password interval offset 0 outside the data (16 to 282)"},
		{"unchanged offset beyond end", with(14, 0xff, 0x01), "unchanged password interval offset 511 outside the data (16 to 282)"},
		{"password too long", header(1, 16+4100, 16, 0, 16, 16, bytes.Repeat([]byte{'a'}, 4100)...), "current password at offset 16 is longer than 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse succeeded: %v", m)
			}
			if m != nil {
				t.Error("Parse returned a value beside the error")
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error does not wrap ErrMalformed")
			}
			if got := err.Error(); got != prefix+tc.want {
				t.Errorf("error\n got %q\nwant %q", got, prefix+tc.want)
			}
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    ManagedPassword
		want string
	}{
		{"no current", ManagedPassword{}, "marshal blob: no current password"},
		{"odd current", ManagedPassword{Current: Password{1, 2, 3}}, "marshal blob: current password is 3 bytes, not whole UTF-16 code units"},
		{"NUL in previous", ManagedPassword{Current: Password{1, 2}, Previous: Password{1, 2, 0, 0}}, "marshal blob: previous password holds a NUL code unit at byte 2"},
		{"negative interval", ManagedPassword{Current: Password{1, 2}, QueryPasswordInterval: -1}, "marshal blob: negative interval"},
		{"too long", ManagedPassword{Current: make(Password, 4098)}, "marshal blob: password longer than 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.m.MarshalBinary()
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseCopies(t *testing.T) {
	b, err := goldenBlobs(t)["current"].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(m.Current)
	clear(b)
	if !bytes.Equal(m.Current, want) {
		t.Error("wiping the input changed the parsed password: Parse aliases its input")
	}
}

func TestWipe(t *testing.T) {
	m := goldenBlobs(t)["current-previous"]
	m.Wipe()
	for _, p := range []Password{m.Current, m.Previous} {
		if len(p) != 256 || !bytes.Equal(p, make([]byte, 256)) {
			t.Errorf("after Wipe: %d bytes, not all zero", len(p))
		}
	}
	var empty ManagedPassword
	empty.Wipe() // nil passwords must not panic
}

// TestNothingPrintsSecrets formats passwords, blobs and keys with every
// common verb and through log/slog, and looks for the secret bytes in any
// encoding fmt might have used.
func TestNothingPrintsSecrets(t *testing.T) {
	m := goldenBlobs(t)["current-previous"]
	keys, err := Keys(m.Current, Salt("CORP.EXAMPLE.TEST", "WebApp02$", "corp.example.test"), 2)
	if err != nil {
		t.Fatal(err)
	}
	var needles []string
	for _, secret := range [][]byte{m.Current[:8], m.Previous[:8], keys[0].Key.KeyValue[:8], keys[2].Key.KeyValue[:8]} {
		needles = append(needles,
			hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)),
			fmt.Sprint([]byte(secret))[1:20], // decimal, as %v prints []byte
			string(secret), fmt.Sprintf("%q", string(secret))[1:10],
			base64.StdEncoding.EncodeToString(secret)[:8])
	}
	values := []any{m, *m, m.Current, &m.Current, keys, keys[0], &keys[0], []Password{m.Current}, struct{ P Password }{m.Current}}
	var out strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		for _, v := range values {
			out.WriteString(fmt.Sprintf(verb, v) + "\n")
		}
	}
	logger := slog.New(slog.NewTextHandler(&out, nil))
	logger.Info("x", "password", m.Current, "blob", m, "key", keys[0])
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "password", m.Current, "key", keys[0])
	for _, n := range needles {
		if strings.Contains(out.String(), n) {
			t.Fatalf("output reveals secret bytes (%q):\n%s", n, out.String())
		}
	}
	if got, want := m.String(), "{Current:<redacted 256 bytes> Previous:<redacted 256 bytes> QueryPasswordInterval:713h3m12.3450067s UnchangedPasswordInterval:737h3m12.3450067s}"; got != want {
		t.Errorf("String()\n got %s\nwant %s", got, want)
	}
	if got, want := fmt.Sprintf("%#v", keys[0]), "{KVNO:2 Etype:18 Key:<redacted 32 bytes>}"; got != want {
		t.Errorf("%%#v of a key = %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(Password(nil)), "<none>"; got != want {
		t.Errorf("nil password prints %q, want %q", got, want)
	}
}
