// Command vectorgen is the Go half of gen-vectors.sh: it makes random gMSA
// style passwords and converts them to the UTF-8 text MIT ktutil is given.
// It lives under testdata so that go build ./... and go vet ./... skip it;
// run it as go run ./vectorgen from the testdata directory.
//
//	vectorgen password unpaired   random 256-byte UTF-16LE password (hex) with unpaired surrogates
//	vectorgen password wellformed random 256-byte UTF-16LE password (hex) with a surrogate pair and no unpaired surrogates
//	vectorgen password ascii TEXT TEXT as UTF-16LE (hex)
//	vectorgen utf8 HEX            the password as UTF-8, unpaired surrogates as U+FFFD, on stdout without newline
//
// The UTF-16 decoding here is written out by hand on purpose, apart from the
// package's use of unicode/utf16, so the vectors check one against the other.
package main

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"unicode/utf8"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "vectorgen: error:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 2 && args[0] == "password" && (args[1] == "unpaired" || args[1] == "wellformed"):
		fmt.Println(hex.EncodeToString(randomPassword(args[1] == "unpaired")))
		return nil
	case len(args) == 3 && args[0] == "password" && args[1] == "ascii":
		var b []byte
		for _, c := range []byte(args[2]) {
			b = append(b, c, 0)
		}
		fmt.Println(hex.EncodeToString(b))
		return nil
	case len(args) == 2 && args[0] == "utf8":
		b, err := hex.DecodeString(args[1])
		if err != nil || len(b)%2 != 0 {
			return fmt.Errorf("bad password hex")
		}
		_, err = os.Stdout.Write(toUTF8(b))
		return err
	}
	return fmt.Errorf("usage: vectorgen password unpaired|wellformed | password ascii TEXT | utf8 HEX")
}

const (
	units   = 128 // 256 bytes, the size of every gMSA password
	hiFirst = 0xd800
	loFirst = 0xdc00
	loLast  = 0xdfff
)

func isHigh(u uint16) bool { return u >= hiFirst && u < loFirst }
func isLow(u uint16) bool  { return u >= loFirst && u <= loLast }

// ttySafe excludes code units whose UTF-8 is an ASCII control character: the
// password reaches ktutil through a terminal in canonical mode, which would
// act on them (erase, kill, interrupt, end of line).
func ttySafe(u uint16) bool { return u >= 0x20 && u != 0x7f }

func randomUnit() uint16 {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return binary.LittleEndian.Uint16(b[:])
}

// randomPassword draws 128 random code units (as AD does: 256 random bytes)
// and redraws those a terminal cannot carry, until the password has the
// shape asked for.
func randomPassword(unpaired bool) []byte {
	for {
		u := make([]uint16, units)
		for i := range u {
			for u[i] = randomUnit(); !ttySafe(u[i]); u[i] = randomUnit() {
			}
		}
		if !unpaired {
			// Redraw unpaired surrogates, then plant one valid pair.
			for i := 0; i < len(u); i++ {
				if isHigh(u[i]) && i+1 < len(u) && isLow(u[i+1]) {
					i++
					continue
				}
				for isHigh(u[i]) || isLow(u[i]) || !ttySafe(u[i]) {
					u[i] = randomUnit()
				}
			}
			u[10], u[11] = 0xd83d, 0xde00 // U+1F600
		}
		var lone, pairs int
		for i := 0; i < len(u); i++ {
			switch {
			case isHigh(u[i]) && i+1 < len(u) && isLow(u[i+1]):
				pairs++
				i++
			case isHigh(u[i]) || isLow(u[i]):
				lone++
			}
		}
		if (unpaired && lone >= 2) || (!unpaired && lone == 0 && pairs >= 1) {
			b := make([]byte, 2*len(u))
			for i, v := range u {
				binary.LittleEndian.PutUint16(b[2*i:], v)
			}
			return b
		}
	}
}

// toUTF8 decodes UTF-16LE, replacing each unpaired surrogate by U+FFFD.
func toUTF8(b []byte) []byte {
	var out []byte
	for i := 0; i+1 < len(b); i += 2 {
		u := binary.LittleEndian.Uint16(b[i:])
		switch {
		case isHigh(u) && i+3 < len(b) && isLow(binary.LittleEndian.Uint16(b[i+2:])):
			lo := binary.LittleEndian.Uint16(b[i+2:])
			r := 0x10000 + (rune(u)-hiFirst)<<10 + (rune(lo) - loFirst)
			out = utf8.AppendRune(out, r)
			i += 2
		case isHigh(u) || isLow(u):
			out = utf8.AppendRune(out, utf8.RuneError)
		default:
			out = utf8.AppendRune(out, rune(u))
		}
	}
	return out
}
