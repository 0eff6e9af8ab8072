package sasl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Sequence numbers of the secured test connections.
const (
	clientSeq = 100
	serverSeq = 500
)

// securedClient is a Client past the bind: the acceptor subkey is known
// and layer was negotiated with a server buffer of serverMax.
func securedClient(key types.EncryptionKey, layer Layer, serverMax int) *Client {
	return &Client{
		Layer: layer, key: key, subkey: true,
		sendSeq: clientSeq, recvSeq: serverSeq, recvSeqSet: true,
		serverMax: serverMax, chosen: layer,
	}
}

// pipe returns a Conn over one end of a net.Pipe and the other end, the
// server's.
func pipe(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	c, s := net.Pipe()
	t.Cleanup(func() { c.Close(); s.Close() })
	deadline := time.Now().Add(10 * time.Second)
	c.SetDeadline(deadline)
	s.SetDeadline(deadline)
	return NewConn(c), s
}

// goWrite writes chunks to w one Write each in a goroutine (net.Pipe
// blocks a writer until its bytes are read) and returns its result.
func goWrite(w io.Writer, chunks ...[]byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		for _, c := range chunks {
			if _, err := w.Write(c); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

// saslFrame is a wrap token with its RFC 4422 length.
func saslFrame(tok []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(tok))), tok...)
}

// readFrame reads one length-prefixed token from the server's end.
func readFrame(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		t.Fatal(err)
	}
	tok := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(r, tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestConnPassesThroughBeforeSecure(t *testing.T) {
	for _, tt := range []struct {
		name   string
		secure *Client // given to Secure before the exchange; nil: no call
	}{
		{"no Secure", nil},
		{"Secure with no layer", &Client{Layer: None, chosen: None}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, s := pipe(t)
			if tt.secure != nil {
				if err := c.Secure(tt.secure); err != nil {
					t.Fatal(err)
				}
			}
			done := goWrite(c, []byte("bind request"))
			got := make([]byte, len("bind request"))
			if _, err := io.ReadFull(s, got); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if string(got) != "bind request" {
				t.Errorf("server read %q", got)
			}
			done = goWrite(s, []byte("bind "), []byte("response"))
			got = make([]byte, len("bind response"))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if string(got) != "bind response" {
				t.Errorf("client read %q", got)
			}
		})
	}
}

func TestConnWritesWrapTokens(t *testing.T) {
	key := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	for _, tt := range []struct {
		name      string
		layer     Layer
		serverMax int
		msg       []byte
		chunks    []int // payload length of each token
		flags     byte
	}{
		{"sealed", Confidentiality, 65536, []byte("search request"), []int{14}, 0x06},
		{"integrity", Integrity, 65536, []byte("search request"), []int{14}, 0x04},
		{"sealed, split at the server's buffer", Confidentiality, 1000, bytes.Repeat([]byte("q"), 2500), []int{936, 936, 628}, 0x06},
		{"sealed, exactly one buffer", Confidentiality, 1000, bytes.Repeat([]byte("q"), 936), []int{936}, 0x06},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, s := pipe(t)
			if err := c.Secure(securedClient(key, tt.layer, tt.serverMax)); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				n, err := c.Write(tt.msg)
				if err == nil && n != len(tt.msg) {
					err = io.ErrShortWrite
				}
				done <- err
			}()
			var got []byte
			for i, want := range tt.chunks {
				tok := readFrame(t, s)
				if len(tok) > tt.serverMax {
					t.Errorf("token %d is %d bytes, more than the server's %d", i, len(tok), tt.serverMax)
				}
				payload, fl, seq := acceptorOpen(t, key, tok)
				if len(payload) != want {
					t.Errorf("token %d carries %d bytes, want %d", i, len(payload), want)
				}
				if fl != tt.flags {
					t.Errorf("token %d flags %#02x, want %#02x", i, fl, tt.flags)
				}
				if seq != clientSeq+uint64(i) {
					t.Errorf("token %d seq %d, want %d", i, seq, clientSeq+i)
				}
				got = append(got, payload...)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.msg) {
				t.Errorf("server got %q, want %q", got, tt.msg)
			}
		})
	}
}

func TestConnReadsWrapTokens(t *testing.T) {
	key := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	// Three LDAP-sized messages: the first two share a token (as Samba
	// sends an entry and its SearchResultDone), the third spans two.
	msg1 := append([]byte("entry:"), bytes.Repeat([]byte{1}, 300)...)
	msg2 := []byte("search result done")
	msg3 := append([]byte("next:"), bytes.Repeat([]byte{3}, 100)...)
	for _, tt := range []struct {
		name  string
		layer Layer
		tok   acceptorToken
	}{
		{"sealed", Confidentiality, sambaSealed},
		{"integrity", Integrity, sambaSigned},
	} {
		stream := append(saslFrame(tt.tok.make(t, key, serverSeq, append(append([]byte{}, msg1...), msg2...))),
			saslFrame(tt.tok.make(t, key, serverSeq+1, msg3[:40]))...)
		stream = append(stream, saslFrame(tt.tok.make(t, key, serverSeq+2, msg3[40:]))...)
		want := append(append(append([]byte{}, msg1...), msg2...), msg3...)
		for _, split := range []struct {
			name    string
			chunks  [][]byte
			oneByte bool // read with one-byte buffers
		}{
			{"one write", [][]byte{stream}, false},
			{"length split", [][]byte{stream[:2], stream[2:]}, false},
			{"token split across reads", [][]byte{stream[:50], stream[50:51], stream[51:400], stream[400:]}, false},
			{"every byte a read", func() [][]byte {
				var c [][]byte
				for i := range stream {
					c = append(c, stream[i:i+1])
				}
				return c
			}(), false},
			{"one-byte reads", [][]byte{stream}, true},
		} {
			t.Run(tt.name+"/"+split.name, func(t *testing.T) {
				c, s := pipe(t)
				if err := c.Secure(securedClient(key, tt.layer, 65536)); err != nil {
					t.Fatal(err)
				}
				done := goWrite(s, split.chunks...)
				var r io.Reader = c
				if split.oneByte {
					r = iotest.OneByteReader(c)
				}
				got := make([]byte, len(want))
				if _, err := io.ReadFull(r, got); err != nil {
					t.Fatal(err)
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("plaintext (-want +got):\n%s", diff)
				}
				s.Close()
				if n, err := c.Read(make([]byte, 10)); n != 0 || err != io.EOF {
					t.Errorf("Read after the server closed between tokens = %d, %v; want io.EOF", n, err)
				}
			})
		}
	}
}

func TestConnReadErrors(t *testing.T) {
	key := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	sealed := saslFrame(sambaSealed.make(t, key, serverSeq, []byte("x")))
	tests := []struct {
		name   string
		layer  Layer
		stream []byte
		close  bool // the server closes after the stream
		want   string
		target error
	}{
		{
			"integrity token on a sealed connection", Confidentiality,
			saslFrame(sambaSigned.make(t, key, serverSeq, []byte("x"))), false,
			"bad gss-api wrap token: server sent a token without the negotiated layer", ErrToken,
		},
		{
			"sealed token on an integrity connection", Integrity,
			sealed, false,
			"bad gss-api wrap token: server sent a token without the negotiated layer", ErrToken,
		},
		{
			"tampered token", Confidentiality,
			append(append([]byte{}, sealed[:len(sealed)-1]...), sealed[len(sealed)-1]^1), false,
			"bad gss-api wrap token: integrity verification failed", ErrToken,
		},
		{
			"out of sequence", Confidentiality,
			saslFrame(sambaSealed.make(t, key, serverSeq+1, []byte("x"))), false,
			"bad gss-api wrap token: sequence number 501, want 500", ErrToken,
		},
		{
			"length beyond our buffer", Confidentiality,
			[]byte{0x01, 0x00, 0x00, 0x40}, false,
			"bad gss-api wrap token: wrapped message of 16777280 bytes exceeds our buffer", ErrToken,
		},
		{
			"closed inside a token", Confidentiality,
			sealed[:len(sealed)-5], true,
			"unexpected EOF", io.ErrUnexpectedEOF,
		},
		{
			"closed inside a length", Confidentiality,
			sealed[:3], true,
			"unexpected EOF", io.ErrUnexpectedEOF,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := pipe(t)
			if err := c.Secure(securedClient(key, tt.layer, 65536)); err != nil {
				t.Fatal(err)
			}
			go func() {
				s.Write(tt.stream)
				if tt.close {
					s.Close()
				}
			}()
			n, err := c.Read(make([]byte, 100))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Read = %d, %v; want error %s", n, err, tt.want)
			}
			if !errors.Is(err, tt.target) {
				t.Errorf("error %v does not wrap %v", err, tt.target)
			}
		})
	}
}

// TestConnFullDuplex reads and writes at once, as go-ldap does, so that
// -race sees both halves.
func TestConnFullDuplex(t *testing.T) {
	key := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	c, s := pipe(t)
	if err := c.Secure(securedClient(key, Confidentiality, 65536)); err != nil {
		t.Fatal(err)
	}
	const rounds = 20
	var stream []byte
	for i := range rounds {
		stream = append(stream, saslFrame(sambaSealed.make(t, key, serverSeq+uint64(i), []byte{byte(i)}))...)
	}
	serverWrote := goWrite(s, stream)
	clientWrote := make(chan error, 1)
	go func() {
		for i := range rounds {
			if _, err := c.Write([]byte{byte(i)}); err != nil {
				clientWrote <- err
				return
			}
		}
		clientWrote <- nil
	}()
	serverRead := make(chan error, 1)
	go func() {
		for range rounds {
			var n [4]byte
			if _, err := io.ReadFull(s, n[:]); err != nil {
				serverRead <- err
				return
			}
			if _, err := io.ReadFull(s, make([]byte, binary.BigEndian.Uint32(n[:]))); err != nil {
				serverRead <- err
				return
			}
		}
		serverRead <- nil
	}()
	got := make([]byte, rounds)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan error{serverWrote, clientWrote, serverRead} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range got {
		if b != byte(i) {
			t.Fatalf("message %d is %d", i, b)
		}
	}
}

// TestSecureRefusesUnnegotiatedLayer: a server, or a man in the middle
// relaying the AP exchange, can answer the bind with success before it
// offers its layers. NegotiateSaslAuth then never ran and Secure must
// fail instead of leaving the connection in plaintext.
func TestSecureRefusesUnnegotiatedLayer(t *testing.T) {
	key := testKey(t, etypeID.AES256_CTS_HMAC_SHA1_96)
	for _, tt := range []struct {
		name string
		cl   *Client
		want string
	}{
		{"confidentiality never negotiated", &Client{Layer: Confidentiality, key: key, subkey: true},
			"asked for confidentiality, negotiated nothing: the bind succeeded before the server offered its layers"},
		{"integrity never negotiated", &Client{Layer: Integrity, key: key, subkey: true},
			"asked for integrity, negotiated nothing: the bind succeeded before the server offered its layers"},
		{"none never negotiated", &Client{Layer: None, key: key, subkey: true},
			"asked for none, negotiated nothing: the bind succeeded before the server offered its layers"},
		{"less than asked", &Client{Layer: Confidentiality, key: key, subkey: true, chosen: Integrity},
			"asked for confidentiality, negotiated integrity"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, s := pipe(t)
			err := c.Secure(tt.cl)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Secure = %v, want %s", err, tt.want)
			}
			if !errors.Is(err, ErrLayerRefused) {
				t.Errorf("error %v does not match ErrLayerRefused", err)
			}
			var le *LayerError
			if !errors.As(err, &le) || le.Asked != tt.cl.Layer || le.Negotiated != tt.cl.chosen {
				t.Errorf("error %#v, want a LayerError with asked %v, negotiated %v", err, tt.cl.Layer, tt.cl.chosen)
			}
			if c.active.Load() {
				t.Error("the layer is active after a refused Secure")
			}
			s.Close()
		})
	}
}
