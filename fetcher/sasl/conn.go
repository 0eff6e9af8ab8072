package sasl

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
)

// Conn is a net.Conn that passes bytes through until Secure is called and
// from then on sends and receives every message as a SASL-framed wrap token
// (RFC 4422 section 3.7: a four-octet length, then the token).
type Conn struct {
	net.Conn
	client *Client
	active atomic.Bool
	seal   bool

	buf     []byte // received bytes not yet framed (when active)
	plain   []byte // bytes ready for Read
	scratch []byte
}

// NewConn wraps conn.
func NewConn(conn net.Conn) *Conn {
	return &Conn{Conn: conn, scratch: make([]byte, 32<<10)}
}

// Secure turns on the security layer cl negotiated. Call it after the bind
// succeeded and before sending anything else. It fails closed with a
// *LayerError when the bind did not negotiate cl.Layer: a bind that a
// server answers with success before offering its layers negotiated
// nothing, and the connection must not be used.
func (c *Conn) Secure(cl *Client) error {
	if cl.chosen == 0 || cl.chosen != cl.Layer {
		return &LayerError{Asked: cl.Layer, Negotiated: cl.chosen}
	}
	if cl.chosen == None {
		return nil
	}
	c.client, c.seal = cl, cl.chosen == Confidentiality
	c.active.Store(true)
	return nil
}

// Read returns plaintext.
func (c *Conn) Read(p []byte) (int, error) {
	for len(c.plain) == 0 {
		n, err := c.Conn.Read(c.scratch)
		// The layer is checked after the read returns: a read that was
		// already waiting when Secure ran still gets the wrapped bytes.
		if !c.active.Load() {
			c.plain = append(c.plain, c.scratch[:n]...)
		} else {
			c.buf = append(c.buf, c.scratch[:n]...)
			if ferr := c.unframe(); ferr != nil {
				return 0, ferr
			}
		}
		if len(c.plain) > 0 {
			break
		}
		if err != nil {
			if err == io.EOF && len(c.buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
	n := copy(p, c.plain)
	c.plain = c.plain[n:]
	return n, nil
}

func (c *Conn) unframe() error {
	for len(c.buf) >= 4 {
		n := binary.BigEndian.Uint32(c.buf)
		if n > maxRecv+64 {
			return fmt.Errorf("%w: wrapped message of %d bytes exceeds our buffer", ErrToken, n)
		}
		if uint32(len(c.buf)-4) < n {
			return nil
		}
		payload, sealed, err := c.client.unwrap(c.buf[4 : 4+n])
		if err != nil {
			return err
		}
		if sealed != c.seal {
			return fmt.Errorf("%w: server sent a token without the negotiated layer", ErrToken)
		}
		c.plain = append(c.plain, payload...)
		c.buf = c.buf[4+n:]
	}
	return nil
}

// Write sends p, wrapped once the layer is active. Messages longer than the
// server's buffer are split.
func (c *Conn) Write(p []byte) (int, error) {
	if !c.active.Load() {
		return c.Conn.Write(p)
	}
	// Leave room for the header, confounder and checksum of a token.
	chunk := c.client.serverMax - 64
	if chunk <= 0 {
		chunk = len(p)
	}
	for off := 0; off < len(p); off += chunk {
		end := min(off+chunk, len(p))
		tok, err := c.client.wrap(p[off:end], c.seal)
		if err != nil {
			return off, err
		}
		msg := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(tok)), uint32(len(tok)))
		if _, err := c.Conn.Write(append(msg, tok...)); err != nil {
			return off, err
		}
	}
	return len(p), nil
}
