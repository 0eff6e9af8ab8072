package blob

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks that Parse never panics, returns a value or an error and
// not both, and that whatever it accepts marshals (to the canonical layout)
// and parses back to an equal value, whose bytes are then stable.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*.blob"))
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(header(1, 38, 16, 20, 22, 30, 'x', 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Parse(in)
		if err != nil {
			if m != nil {
				t.Fatal("Parse returned a value and an error")
			}
			return
		}
		out, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a parsed blob: %v", err)
		}
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(MarshalBinary(Parse(in))): %v", err)
		}
		if diff := cmp.Diff(m, m2); diff != "" {
			t.Fatalf("round trip changed the value (-first +second):\n%s", diff)
		}
		out2, err := m2.MarshalBinary()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("second MarshalBinary differs (%v)", err)
		}
	})
}
