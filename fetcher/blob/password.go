package blob

import (
	"fmt"
	"log/slog"
)

// Password is a gMSA password: raw UTF-16LE bytes without a terminating NUL.
// It converts to and from []byte freely; its own methods never reveal the
// bytes, so a Password that reaches a log or an error prints as its length.
type Password []byte

// Wipe overwrites the password with zeros.
func (p Password) Wipe() {
	clear(p)
}

// String returns a redacted description.
func (p Password) String() string {
	if p == nil {
		return "<none>"
	}
	return fmt.Sprintf("<redacted %d bytes>", len(p))
}

// GoString returns the same redacted description as String.
func (p Password) GoString() string { return p.String() }

// Format makes every fmt verb (%v, %+v, %#v, %s, %x, %q, %d...) print String.
func (p Password) Format(f fmt.State, verb rune) {
	fmt.Fprint(f, p.String())
}

// LogValue keeps log/slog handlers from printing the bytes.
func (p Password) LogValue() slog.Value {
	return slog.StringValue(p.String())
}
