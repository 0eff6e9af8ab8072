package kdc

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/iana/patype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// fakeKDC is a TCP KDC on the loopback that answers each request with
// answer(request); a nil answer means hold the connection and say nothing,
// closeEarly means close it unanswered.
type fakeKDC struct {
	addr     string
	mu       sync.Mutex
	requests [][]byte
	// accepted receives a value for each connection accepted.
	accepted chan struct{}
}

func startKDC(t *testing.T, addr string, answer func(n int, req []byte) []byte) *fakeKDC {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKDC{addr: l.Addr().String(), accepted: make(chan struct{}, 64)}
	var conns sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		l.Close()
		conns.Wait()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			select {
			case k.accepted <- struct{}{}:
			default:
			}
			go func() {
				defer conns.Done()
				defer c.Close()
				go func() { <-done; c.Close() }()
				if answer == nil {
					<-done
					return
				}
				var hdr [4]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				req := make([]byte, binary.BigEndian.Uint32(hdr[:]))
				if _, err := io.ReadFull(c, req); err != nil {
					return
				}
				k.mu.Lock()
				k.requests = append(k.requests, req)
				n := len(k.requests)
				k.mu.Unlock()
				if reply := answer(n, req); reply != nil {
					c.Write(reply)
				}
			}()
		}
	}()
	return k
}

func (k *fakeKDC) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.requests)
}

// framed is a TCP KDC message: its length, then the message.
func framed(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg...)
}

// krbErrorReply is a framed KRB-ERROR with e-data.
func krbErrorReply(t *testing.T, code int32, edata []byte) []byte {
	t.Helper()
	m := messages.NewKRBError(types.NewPrincipalName(nametype.KRB_NT_SRV_INST, "krbtgt/CORP.EXAMPLE.TEST"), "CORP.EXAMPLE.TEST", code, "")
	m.EData = edata
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return framed(b)
}

// etypeInfo2 is METHOD-DATA holding one ETYPE-INFO2 entry.
func etypeInfo2(t *testing.T, etype int32, salt string) []byte {
	t.Helper()
	info, err := asn1.Marshal(types.ETypeInfo2{{EType: etype, Salt: salt}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := asn1.Marshal(types.PADataSequence{{PADataType: patype.PA_ETYPE_INFO2, PADataValue: info}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// timestampKey reports whether the request's PA-ENC-TIMESTAMP decrypts
// with key.
func timestampKey(t *testing.T, req []byte, key types.EncryptionKey) bool {
	t.Helper()
	var as messages.ASReq
	if err := as.Unmarshal(req); err != nil {
		t.Errorf("request is not an AS-REQ: %v", err)
		return false
	}
	for _, pa := range as.PAData {
		if pa.PADataType != patype.PA_ENC_TIMESTAMP {
			continue
		}
		var ed types.EncryptedData
		if err := ed.Unmarshal(pa.PADataValue); err != nil {
			t.Errorf("PA-ENC-TIMESTAMP: %v", err)
			return false
		}
		_, err := crypto.DecryptEncPart(ed, key, keyusage.AS_REQ_PA_ENC_TIMESTAMP)
		return err == nil
	}
	t.Error("request without PA-ENC-TIMESTAMP")
	return false
}

var fakeReader = types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, "gmsa-reader")

const fakeSalt = "CORP.EXAMPLE.TESTgmsa-reader"

func key(t *testing.T, salt string) types.EncryptionKey {
	t.Helper()
	k, ok, err := PasswordKeys("Passw0rd")(etypeID.AES256_CTS_HMAC_SHA1_96, salt)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	return k
}

// fakeTGT is a ticket-granting ticket as Login returns it; the fake KDCs
// never look inside.
func fakeTGT(t *testing.T) *Ticket {
	return &Ticket{
		Client: fakeReader, ClientRealm: "CORP.EXAMPLE.TEST",
		Ticket: messages.Ticket{
			TktVNO: 5, Realm: "CORP.EXAMPLE.TEST",
			SName:   types.NewPrincipalName(nametype.KRB_NT_SRV_INST, "krbtgt/CORP.EXAMPLE.TEST"),
			EncPart: types.EncryptedData{EType: etypeID.AES256_CTS_HMAC_SHA1_96, KVNO: 1, Cipher: make([]byte, 64)},
		},
		SessionKey: key(t, fakeSalt),
	}
}

// heldDeadline is a context with a deadline that passes only when the test
// says so (expire): the tests below prove what the client does when its
// deadline passes while a KDC holds the connection, with no dependence on
// how long key derivation or a dial takes (under -race, PBKDF2 alone can
// take longer than any short real deadline).
type heldDeadline struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func newHeldDeadline() *heldDeadline {
	return &heldDeadline{Context: context.Background(), done: make(chan struct{})}
}

func (c *heldDeadline) Deadline() (time.Time, bool) { return time.Now().Add(time.Hour), true }
func (c *heldDeadline) Done() <-chan struct{}       { return c.done }
func (c *heldDeadline) expire()                     { c.once.Do(func() { close(c.done) }) }
func (c *heldDeadline) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// TestSilentKDCDeadline: a KDC that accepts and never answers holds the
// caller only until its deadline.
func TestSilentKDCDeadline(t *testing.T) {
	// 127.0.0.4:88 as a real KDC would be, when the test may bind it.
	addr := "127.0.0.4:88"
	if l, err := net.Listen("tcp", addr); err != nil {
		t.Logf("cannot listen on %s (%v); using another port", addr, err)
		addr = "127.0.0.4:0"
	} else {
		l.Close()
	}
	k := startKDC(t, addr, nil)
	c := &Client{Realm: "CORP.EXAMPLE.TEST", KDCs: []string{k.addr}}
	for _, tt := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"login", func(ctx context.Context) error {
			_, err := c.Login(ctx, fakeReader, fakeSalt, PasswordKeys("Passw0rd"))
			return err
		}},
		{"service ticket", func(ctx context.Context) error {
			_, err := c.ServiceTicket(ctx, fakeTGT(t), "ldap/dc1.corp.example.test")
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for range 5 {
				ctx := newHeldDeadline()
				// The deadline passes once the KDC holds the connection.
				go func() { <-k.accepted; ctx.expire() }()
				err := tt.call(ctx)
				ctx.expire()
				if !errors.Is(err, ErrUnreachable) {
					t.Fatalf("error %v, want ErrUnreachable", err)
				}
				if want := "no kdc reachable (" + k.addr + ": context deadline exceeded)"; err.Error() != want {
					t.Fatalf("error\n got %s\nwant %s", err, want)
				}
			}
		})
	}
}

func TestCanceledWhileWaiting(t *testing.T) {
	k := startKDC(t, "127.0.0.4:0", nil)
	c := &Client{Realm: "CORP.EXAMPLE.TEST", KDCs: []string{k.addr, "127.0.0.1:1"}}
	ctx, cancel := context.WithCancelCause(context.Background())
	// Canceled once the first KDC holds the connection.
	go func() { <-k.accepted; cancel(errors.New("container start aborted")) }()
	_, err := c.Login(ctx, fakeReader, fakeSalt, PasswordKeys("Passw0rd"))
	// The cause is reported, and no other KDC is tried once canceled.
	if want := "no kdc reachable (" + k.addr + ": container start aborted)"; err == nil || err.Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}
}

func TestSendErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("no kdc", func(t *testing.T) {
		c := &Client{Realm: "CORP.EXAMPLE.TEST"}
		_, err := c.Login(ctx, fakeReader, fakeSalt, PasswordKeys("Passw0rd"))
		if want := "realm CORP.EXAMPLE.TEST: no kdc reachable: no kdc configured or found"; err == nil || err.Error() != want {
			t.Fatalf("error\n got %v\nwant %s", err, want)
		}
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("error %v does not wrap ErrUnreachable", err)
		}
	})

	t.Run("all refused", func(t *testing.T) {
		c := &Client{Realm: "CORP.EXAMPLE.TEST", KDCs: []string{"127.0.0.2:1", "127.0.0.3:1"}}
		_, err := c.Login(ctx, fakeReader, fakeSalt, PasswordKeys("Passw0rd"))
		want := "no kdc reachable (127.0.0.2:1: dial tcp 127.0.0.2:1: connect: connection refused; 127.0.0.3:1: dial tcp 127.0.0.3:1: connect: connection refused)"
		if err == nil || err.Error() != want {
			t.Fatalf("error\n got %v\nwant %s", err, want)
		}
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("error %v does not wrap ErrUnreachable", err)
		}
	})

	t.Run("closed, then too large, then an answer", func(t *testing.T) {
		closer := startKDC(t, "127.0.0.5:0", func(int, []byte) []byte { return []byte{} })
		huge := startKDC(t, "127.0.0.5:0", func(int, []byte) []byte { return []byte{0x00, 0x10, 0x00, 0x01} })
		answer := startKDC(t, "127.0.0.5:0", func(int, []byte) []byte { return krbErrorReply(t, errorcode.KDC_ERR_C_PRINCIPAL_UNKNOWN, nil) })
		c := &Client{Realm: "CORP.EXAMPLE.TEST", KDCs: []string{closer.addr, huge.addr, answer.addr}}
		_, err := c.Login(ctx, fakeReader, fakeSalt, PasswordKeys("Passw0rd"))
		var kerr *Error
		if !errors.As(err, &kerr) || kerr.Server != answer.addr || !errors.Is(err, ErrUnknownPrincipal) {
			t.Fatalf("error %v (%#v), want no such account from %s", err, kerr, answer.addr)
		}
		for _, k := range []*fakeKDC{closer, huge, answer} {
			if k.count() != 1 {
				t.Errorf("kdc %s got %d requests, want 1", k.addr, k.count())
			}
		}
	})

	t.Run("all fail in different ways", func(t *testing.T) {
		closer := startKDC(t, "127.0.0.5:0", func(int, []byte) []byte { return []byte{} })
		huge := startKDC(t, "127.0.0.5:0", func(int, []byte) []byte { return []byte{0x00, 0x10, 0x00, 0x01} })
		short := startKDC(t, "127.0.0.5:0", func(int, []byte) []byte { return []byte{0x00, 0x00, 0x00, 0x10, 0x01} })
		c := &Client{Realm: "CORP.EXAMPLE.TEST", KDCs: []string{closer.addr, huge.addr, short.addr}}
		_, err := c.Login(ctx, fakeReader, fakeSalt, PasswordKeys("Passw0rd"))
		want := "no kdc reachable (" + closer.addr + ": read reply: EOF; " + huge.addr + ": reply of 1048577 bytes is too large; " + short.addr + ": read reply: unexpected EOF)"
		if err == nil || err.Error() != want {
			t.Fatalf("error\n got %v\nwant %s", err, want)
		}
	})

	t.Run("garbage", func(t *testing.T) {
		g := startKDC(t, "127.0.0.5:0", func(int, []byte) []byte { return framed([]byte("HTTP/1.1 400 Bad Request")) })
		c := &Client{Realm: "CORP.EXAMPLE.TEST", KDCs: []string{g.addr}}
		_, err := c.Login(ctx, fakeReader, fakeSalt, PasswordKeys("Passw0rd"))
		if err == nil || !regexp.MustCompile(`^kdc `+regexp.QuoteMeta(g.addr)+`: reply is neither a ticket nor an error: `).MatchString(err.Error()) {
			t.Fatalf("error %v", err)
		}
		_, err = c.ServiceTicket(ctx, fakeTGT(t), "ldap/dc1.corp.example.test")
		if err == nil || !strings.HasPrefix(err.Error(), "kdc "+g.addr+": reply is neither a ticket nor an error: ") {
			t.Fatalf("service ticket: error %v", err)
		}
	})
}

// TestLoginRetriesAnnouncedSalt plays a KDC that announces another salt.
func TestLoginRetriesAnnouncedSalt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const announcedSalt = "CORP.EXAMPLE.TESThostwebapp01.corp.example.test"
	for _, tt := range []struct {
		name     string
		code     int32
		salt     string // announced in the first answer; "" announces nothing
		requests int
	}{
		{"preauth failed, other salt", errorcode.KDC_ERR_PREAUTH_FAILED, announcedSalt, 2},
		{"preauth required, other salt", errorcode.KDC_ERR_PREAUTH_REQUIRED, announcedSalt, 2},
		{"etype not supported, other salt", errorcode.KDC_ERR_ETYPE_NOSUPP, announcedSalt, 2},
		{"preauth failed, same salt", errorcode.KDC_ERR_PREAUTH_FAILED, fakeSalt, 1},
		{"preauth failed, nothing announced", errorcode.KDC_ERR_PREAUTH_FAILED, "", 1},
		{"revoked, other salt", errorcode.KDC_ERR_CLIENT_REVOKED, announcedSalt, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := startKDC(t, "127.0.0.6:0", func(n int, req []byte) []byte {
				var ed []byte
				if tt.salt != "" {
					ed = etypeInfo2(t, etypeID.AES256_CTS_HMAC_SHA1_96, tt.salt)
				}
				if n == 1 {
					if !timestampKey(t, req, key(t, fakeSalt)) {
						t.Error("first request not made with the given salt")
					}
					return krbErrorReply(t, tt.code, ed)
				}
				if !timestampKey(t, req, key(t, tt.salt)) {
					t.Error("second request not made with the announced salt")
				}
				// Still wrong: Login must not loop.
				return krbErrorReply(t, errorcode.KDC_ERR_PREAUTH_FAILED, ed)
			})
			c := &Client{Realm: "CORP.EXAMPLE.TEST", KDCs: []string{k.addr}}
			_, err := c.Login(ctx, fakeReader, fakeSalt, PasswordKeys("Passw0rd"))
			var kerr *Error
			if !errors.As(err, &kerr) {
				t.Fatalf("error %v, want a KDC error", err)
			}
			if k.count() != tt.requests {
				t.Errorf("%d requests, want %d", k.count(), tt.requests)
			}
		})
	}
}

func TestLoginNoKey(t *testing.T) {
	c := &Client{Realm: "CORP.EXAMPLE.TEST", KDCs: []string{"127.0.0.2:1"}}
	_, err := c.Login(context.Background(), fakeReader, fakeSalt, FixedKeys(nil))
	if !errors.Is(err, ErrNoKey) {
		t.Fatalf("error %v, want ErrNoKey", err)
	}
}

// rc4Key is the RC4-HMAC key of the fake reader's password.
func rc4Key(t *testing.T) types.EncryptionKey {
	t.Helper()
	k, ok, err := PasswordKeys("Passw0rd")(etypeID.RC4_HMAC, fakeSalt)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	return k
}

// requestedEtypes is the etype list of an AS-REQ.
func requestedEtypes(t *testing.T, req []byte) []int32 {
	t.Helper()
	var as messages.ASReq
	if err := as.Unmarshal(req); err != nil {
		t.Errorf("request is not an AS-REQ: %v", err)
		return nil
	}
	return as.ReqBody.EType
}

// TestLoginRC4 plays a KDC (or an attacker posing as one) that asks for
// RC4-HMAC only: a timestamp encrypted with an RC4 key is far cheaper to
// crack than one with an AES key.
func TestLoginRC4(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tt := range []struct {
		name     string
		allow    bool
		etypes   []int32 // what every request must ask for
		requests int
		rc4      bool // the second request's timestamp is RC4
		want     string
	}{
		{name: "rc4 disabled", etypes: []int32{18, 17}, requests: 1,
			want: "rc4-hmac is disabled (allow_rc4 is false): the kdc offers only rc4-hmac (etype 23) for this account"},
		{name: "rc4 allowed", allow: true, etypes: []int32{18, 17, 23}, requests: 2, rc4: true,
			want: "wrong password or key (kerberos error 24 kdc_err_preauth_failed)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := startKDC(t, "127.0.0.6:0", func(n int, req []byte) []byte {
				if n > 1 {
					// Still wrong: Login must not loop.
					return krbErrorReply(t, errorcode.KDC_ERR_PREAUTH_FAILED, nil)
				}
				return krbErrorReply(t, errorcode.KDC_ERR_PREAUTH_REQUIRED, etypeInfo2(t, etypeID.RC4_HMAC, ""))
			})
			var derived []int32
			pw := PasswordKeys("Passw0rd")
			keys := func(etype int32, salt string) (types.EncryptionKey, bool, error) {
				derived = append(derived, etype)
				return pw(etype, salt)
			}
			c := &Client{Realm: "CORP.EXAMPLE.TEST", KDCs: []string{k.addr}, AllowRC4: tt.allow}
			_, err := c.Login(ctx, fakeReader, fakeSalt, keys)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %s", err, tt.want)
			}
			if errors.Is(err, ErrRC4Disabled) == tt.allow {
				t.Errorf("errors.Is(%v, ErrRC4Disabled) = %v", err, !tt.allow)
			}
			k.mu.Lock()
			reqs := k.requests
			k.mu.Unlock()
			if len(reqs) != tt.requests {
				t.Fatalf("%d requests, want %d", len(reqs), tt.requests)
			}
			for i, req := range reqs {
				if diff := cmp.Diff(tt.etypes, requestedEtypes(t, req)); diff != "" {
					t.Errorf("request %d etypes (-want +got):\n%s", i+1, diff)
				}
				if got := timestampKey(t, req, rc4Key(t)); got != (tt.rc4 && i == 1) {
					t.Errorf("request %d: timestamp encrypted with the rc4 key: %v", i+1, got)
				}
			}
			if !tt.allow && slices.Contains(derived, etypeID.RC4_HMAC) {
				t.Errorf("asked the key function for rc4 keys (etypes %v)", derived)
			}
		})
	}
}

// TestLoginRC4OnlyKeys: with RC4 disabled an RC4 key is no key at all.
// (fetcher's keytab reader names the disabled RC4 key of a keytab.)
func TestLoginRC4OnlyKeys(t *testing.T) {
	// Nothing reaches the KDC: there is no key to send a request with.
	k := startKDC(t, "127.0.0.6:0", func(int, []byte) []byte {
		t.Error("the client sent a request")
		return krbErrorReply(t, errorcode.KDC_ERR_PREAUTH_FAILED, nil)
	})
	c := &Client{Realm: "CORP.EXAMPLE.TEST", KDCs: []string{k.addr}}
	_, err := c.Login(context.Background(), fakeReader, fakeSalt, FixedKeys([]types.EncryptionKey{rc4Key(t)}))
	if want := "no key for aes256 or aes128"; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
	if !errors.Is(err, ErrNoKey) {
		t.Errorf("error %v does not match ErrNoKey", err)
	}
}
