package ccache

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks that Parse never panics, returns a cache or an error and
// not both, and that what it accepts writes back to bytes that parse to the
// same cache. Inputs without unknown header fields (all that MIT writes) must
// come back byte for byte.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range seeds {
		if filepath.Ext(path) != ".golden" && filepath.Ext(path) != ".ccache" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Parse(in)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned a cache and an error")
			}
			return
		}
		out, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a parsed cache: %v", err)
		}
		c2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(MarshalBinary(Parse(in))): %v", err)
		}
		if diff := cmp.Diff(c, c2); diff != "" {
			t.Fatalf("round trip changed the cache (-first +second):\n%s", diff)
		}
		if !hasUnknownHeaderField(in) && !bytes.Equal(in, out) {
			t.Fatalf("round trip changed the bytes\n in %x\nout %x", in, out)
		}
	})
}

// hasUnknownHeaderField reports whether the header of a cache that Parse
// accepted holds a field other than the KDC offset; Parse drops those.
func hasUnknownHeaderField(b []byte) bool {
	n := int(b[2])<<8 | int(b[3])
	h := b[4 : 4+n]
	for len(h) >= 4 {
		tag, l := int(h[0])<<8|int(h[1]), int(h[2])<<8|int(h[3])
		if tag != headerTagKDCOffset {
			return true
		}
		h = h[4+l:]
	}
	return false
}
