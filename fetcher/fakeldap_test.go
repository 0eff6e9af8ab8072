package fetcher

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/gmsa-hook/gmsa-hook/fetcher/kdc"
)

// fakeLDAP is a hostile domain controller's LDAP port on 127.0.0.1:0. It
// holds the session key of the reader's (made-up) service ticket, so it
// can answer the AP exchange as a man in the middle relaying it to the real
// DC would, and then do what its script says.
type fakeLDAP struct {
	t      *testing.T
	ln     net.Listener
	key    types.EncryptionKey // the service ticket's session key
	subkey types.EncryptionKey // the acceptor subkey of its AP-REP
	script fakeScript
	sealed uint64 // wrap tokens sent after the offer; serve's only

	mu      sync.Mutex
	ops     []string // protocol operations received, in order
	entries int      // search result entries written before the client hung up
	done    chan struct{}

	clientRead atomic.Int64 // bytes the client read from its connection
}

// countingConn counts the bytes the client reads.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type fakeScript int

const (
	// skipLayers answers the bind's empty second step with success: no
	// security layer negotiation, then answers a search with a forged
	// entry in plaintext.
	skipLayers fakeScript = iota
	// streamEntries negotiates confidentiality as Samba does and answers
	// the (sealed) search with up to streamCap entries.
	streamEntries
	// hugeEntry negotiates confidentiality and answers the search with one
	// entry whose password is hugeSize bytes.
	hugeEntry
)

const hugeSize = 2 << 20

// streamCap bounds what streamEntries sends: many times the socket buffers
// of a loopback connection, so a fake that reaches it was read to the end.
const streamCap = 100_000

const fakeAcceptorSeq = 7000

func startLDAP(t *testing.T, script fakeScript) *fakeLDAP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLDAP{t: t, ln: ln, script: script, done: make(chan struct{}),
		key:    types.EncryptionKey{KeyType: etypeID.AES256_CTS_HMAC_SHA1_96, KeyValue: bytes.Repeat([]byte{0x11}, 32)},
		subkey: types.EncryptionKey{KeyType: etypeID.AES256_CTS_HMAC_SHA1_96, KeyValue: bytes.Repeat([]byte{0x22}, 32)},
	}
	go func() {
		defer close(f.done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		f.serve(c)
	}()
	t.Cleanup(func() { ln.Close(); <-f.done })
	return f
}

// dcs is the fake as the only domain controller: every dial reaches it.
func (f *fakeLDAP) dcs() *dcs {
	return &dcs{ldap: []string{"dc1.corp.example.test"}, how: "test",
		dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, f.ln.Addr().String())
			if err != nil {
				return nil, err
			}
			return countingConn{c, &f.clientRead}, nil
		}}
}

// ticket is the reader's service ticket for the fake: opaque to the
// client, with the session key the fake knows.
func (f *fakeLDAP) ticket(context.Context, string) (*kdc.Ticket, error) {
	return &kdc.Ticket{
		Client:      types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, "gmsa-reader"),
		ClientRealm: "CORP.EXAMPLE.TEST",
		Ticket: messages.Ticket{TktVNO: 5, Realm: "CORP.EXAMPLE.TEST",
			SName:   types.NewPrincipalName(nametype.KRB_NT_SRV_INST, "ldap/dc1.corp.example.test"),
			EncPart: types.EncryptedData{EType: etypeID.AES256_CTS_HMAC_SHA1_96, KVNO: 2, Cipher: bytes.Repeat([]byte{0x42}, 64)}},
		SessionKey: f.key,
	}, nil
}

func (f *fakeLDAP) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ops...)
}

func (f *fakeLDAP) record(op string) {
	f.mu.Lock()
	f.ops = append(f.ops, op)
	f.mu.Unlock()
}

var ldapOps = map[ber.Tag]string{0: "bind", 2: "unbind", 3: "search", 16: "abandon"}

// serve runs the script on one connection. It returns on any error: the
// client hanging up is how every script ends.
func (f *fakeLDAP) serve(c net.Conn) {
	sealed := false
	send := func(p *ber.Packet) error {
		b := p.Bytes()
		if sealed {
			b = saslFrame(f.seal(b))
		}
		_, err := c.Write(b)
		return err
	}
	binds := 0
	for {
		var p *ber.Packet
		var err error
		if sealed {
			p, err = f.readSealed(c)
		} else {
			p, err = ber.ReadPacket(c)
		}
		if err != nil || len(p.Children) < 2 {
			return
		}
		id, _ := p.Children[0].Value.(int64)
		op := p.Children[1]
		name, ok := ldapOps[op.Tag]
		if !ok {
			name = "op"
		}
		f.record(name)
		switch name {
		case "bind":
			binds++
			switch {
			case binds == 1:
				err = send(ldapMsg(id, bindResponse(14, f.apRep())))
			case f.script == skipLayers:
				// What a relaying man in the middle does once it has the
				// AP-REP: declare the bind done.
				err = send(ldapMsg(id, bindResponse(0, nil)))
			case binds == 2:
				err = send(ldapMsg(id, bindResponse(14, f.offer())))
			default:
				err = send(ldapMsg(id, bindResponse(0, nil)))
				sealed = true
			}
		case "search":
			if f.script == skipLayers {
				if err = send(ldapMsg(id, searchEntry("CN=webapp01,CN=Managed Service Accounts,DC=corp,DC=example,DC=test", "forged"))); err == nil {
					err = send(ldapMsg(id, searchDone()))
				}
				break
			}
			if f.script == hugeEntry {
				e := searchEntry("CN=webapp01,CN=Managed Service Accounts,DC=corp,DC=example,DC=test", string(bytes.Repeat([]byte{'x'}, hugeSize)))
				if err = send(ldapMsg(id, e)); err == nil {
					err = send(ldapMsg(id, searchDone()))
				}
				break
			}
			for range streamCap {
				if err = send(ldapMsg(id, searchEntry("CN=webapp01,CN=Managed Service Accounts,DC=corp,DC=example,DC=test", "forged"))); err != nil {
					return
				}
				f.mu.Lock()
				f.entries++
				f.mu.Unlock()
			}
			err = send(ldapMsg(id, searchDone()))
		}
		if err != nil {
			return
		}
	}
}

// apRep answers the client's AP-REQ with the fake's subkey and sequence
// number, encrypted with the session key.
func (f *fakeLDAP) apRep() []byte {
	now := time.Now().UTC().Truncate(time.Second)
	b, err := asn1.Marshal(messages.EncAPRepPart{CTime: now, Subkey: f.subkey, SequenceNumber: fakeAcceptorSeq})
	if err != nil {
		f.t.Errorf("fake ldap: %v", err)
		return nil
	}
	ed, err := crypto.GetEncryptedData(asn1tools.AddASNAppTag(b, 27), f.key, keyusage.AP_REP_ENCPART, 0)
	if err != nil {
		f.t.Errorf("fake ldap: %v", err)
		return nil
	}
	rep, err := asn1.Marshal(struct {
		PVNO    int                 `asn1:"explicit,tag:0"`
		MsgType int                 `asn1:"explicit,tag:1"`
		EncPart types.EncryptedData `asn1:"explicit,tag:2"`
	}{5, 15, ed})
	if err != nil {
		f.t.Errorf("fake ldap: %v", err)
		return nil
	}
	oid := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x02, 0x00}
	inner := append(oid, asn1tools.AddASNAppTag(rep, 15)...)
	return append([]byte{0x60, 0x82, byte(len(inner) >> 8), byte(len(inner))}, inner...)
}

// RFC 4121 wrap token header from the acceptor, with the subkey flag.
func acceptorHeader(sealed bool, ec uint16, seq uint64) []byte {
	flags := byte(0x05)
	if sealed {
		flags |= 0x02
	}
	h := []byte{0x05, 0x04, flags, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(h[4:], ec)
	binary.BigEndian.PutUint64(h[8:], seq)
	return h
}

// offer is the layer offer Samba sends: confidentiality, integrity or
// none, with a 64 KiB buffer, signed with the subkey.
func (f *fakeLDAP) offer() []byte {
	et, _ := crypto.GetEtype(f.subkey.KeyType)
	payload := []byte{0x07, 0x01, 0x00, 0x00}
	sum, err := et.GetChecksumHash(f.subkey.KeyValue, append(append([]byte{}, payload...), acceptorHeader(false, 0, fakeAcceptorSeq)...), 22)
	if err != nil {
		f.t.Errorf("fake ldap: %v", err)
		return nil
	}
	return append(append(acceptorHeader(false, uint16(len(sum)), fakeAcceptorSeq), payload...), sum...)
}

// seal wraps one message as the acceptor, the next sequence number each
// time (the offer had fakeAcceptorSeq).
func (f *fakeLDAP) seal(payload []byte) []byte {
	f.sealed++
	seq := fakeAcceptorSeq + f.sealed
	et, _ := crypto.GetEtype(f.subkey.KeyType)
	_, ct, err := et.EncryptMessage(f.subkey.KeyValue, append(append([]byte{}, payload...), acceptorHeader(true, 0, seq)...), 22)
	if err != nil {
		f.t.Errorf("fake ldap: %v", err)
		return nil
	}
	return append(acceptorHeader(true, 0, seq), ct...)
}

// readSealed reads one sealed message from the client (RRC 0, EC 0).
func (f *fakeLDAP) readSealed(c net.Conn) (*ber.Packet, error) {
	var n [4]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return nil, err
	}
	tok := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(c, tok); err != nil {
		return nil, err
	}
	if len(tok) < 16 || tok[2]&0x02 == 0 {
		return nil, errors.New("client sent an unsealed token")
	}
	et, _ := crypto.GetEtype(f.subkey.KeyType)
	plain, err := et.DecryptMessage(f.subkey.KeyValue, tok[16:], 24)
	if err != nil || len(plain) < 16 {
		return nil, errors.New("client token does not decrypt")
	}
	return ber.ReadPacket(bytes.NewReader(plain[:len(plain)-16]))
}

func saslFrame(tok []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(tok))), tok...)
}

func ldapMsg(id int64, op *ber.Packet) *ber.Packet {
	env := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	env.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, ""))
	env.AppendChild(op)
	return env
}

func result(tag ber.Tag, code int64) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, code, ""))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", ""))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", ""))
	return op
}

func bindResponse(code int64, creds []byte) *ber.Packet {
	op := result(1, code)
	if creds != nil {
		op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 7, string(creds), ""))
	}
	return op
}

func searchDone() *ber.Packet { return result(5, 0) }

// searchEntry is a gMSA entry with a forged managed password.
func searchEntry(dn, password string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 4, nil, "")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, ""))
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	for _, kv := range [][2]string{{"sAMAccountName", "webapp01$"}, {"msDS-ManagedPassword", password}, {"msDS-KeyVersionNumber", "2"}, {"userAccountControl", "4096"}} {
		a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		a.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, kv[0], ""))
		vals := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "")
		vals.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, kv[1], ""))
		a.AppendChild(vals)
		attrs.AppendChild(a)
	}
	op.AppendChild(attrs)
	return op
}
