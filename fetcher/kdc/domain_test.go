package kdc

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/iana/patype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/gmsa-hook/gmsa-hook/test/testdomain"
)

// recorder dials only 127.0.0.0/8 and keeps every reply it reads, to show
// how many exchanges a call took and what the KDC said.
type recorder struct {
	mu      sync.Mutex
	dials   []string
	replies []*bytes.Buffer
}

func (r *recorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return nil, errors.New("test refuses to dial " + addr + ": not in 127.0.0.0/8")
	}
	r.mu.Lock()
	r.dials = append(r.dials, addr)
	r.mu.Unlock()
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	b := new(bytes.Buffer)
	r.mu.Lock()
	r.replies = append(r.replies, b)
	r.mu.Unlock()
	return &recordConn{Conn: c, r: r, b: b}, nil
}

type recordConn struct {
	net.Conn
	r *recorder
	b *bytes.Buffer
}

func (c *recordConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.r.mu.Lock()
	c.b.Write(p[:n])
	c.r.mu.Unlock()
	return n, err
}

// messages returns the KDC messages read, one per answered exchange.
func (r *recorder) messages() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for _, b := range r.replies {
		if b.Len() >= 4 {
			out = append(out, b.Bytes()[4:])
		}
	}
	return out
}

func readerName(env map[string]string) types.PrincipalName {
	return types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, env["READER_USER"])
}

func readerSalt(env map[string]string) string { return env["REALM"] + env["READER_USER"] }

func domainClient(env map[string]string, r *recorder, kdcs ...string) *Client {
	if len(kdcs) == 0 {
		kdcs = []string{net.JoinHostPort(env["DC_ADDR"], "88")}
	}
	return &Client{Realm: env["REALM"], KDCs: kdcs, Dial: r.dial}
}

func TestDomainLoginAndServiceTicket(t *testing.T) {
	env := testdomain.Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := &recorder{}
	c := domainClient(env, r)
	before := time.Now().Add(-time.Minute)
	tgt, err := c.Login(ctx, readerName(env), readerSalt(env), PasswordKeys(env["READER_PASSWORD"]))
	if err != nil {
		t.Fatal(err)
	}
	// The predictable salt put pre-authentication in the first request:
	// one exchange.
	if n := len(r.messages()); n != 1 {
		t.Errorf("login took %d exchanges, want 1", n)
	}
	kdcAddr := net.JoinHostPort(env["DC_ADDR"], "88")
	type names struct {
		Client, Server           string
		ClientRealm, ServerRealm string
		KeyType                  int32
		KDC                      string
	}
	got := names{tgt.Client.PrincipalNameString(), tgt.Server.PrincipalNameString(), tgt.ClientRealm, tgt.ServerRealm, tgt.SessionKey.KeyType, tgt.KDC}
	want := names{env["READER_USER"], "krbtgt/" + env["REALM"], env["REALM"], env["REALM"], etypeID.AES256_CTS_HMAC_SHA1_96, kdcAddr}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TGT (-want +got):\n%s", diff)
	}
	if tgt.AuthTime.Before(before) || !tgt.EndTime.After(time.Now()) || tgt.StartTime.IsZero() {
		t.Errorf("TGT times: auth %v start %v end %v", tgt.AuthTime, tgt.StartTime, tgt.EndTime)
	}
	var raw messages.Ticket
	if err := raw.Unmarshal(tgt.Raw); err != nil {
		t.Errorf("Raw does not decode: %v", err)
	}
	if len(tgt.Flags.Bytes) == 0 {
		t.Error("TGT without flags")
	}

	service := "ldap/" + env["DC_HOST"]
	st, err := c.ServiceTicket(ctx, tgt, service)
	if err != nil {
		t.Fatal(err)
	}
	got = names{st.Client.PrincipalNameString(), st.Server.PrincipalNameString(), st.ClientRealm, st.ServerRealm, st.SessionKey.KeyType, st.KDC}
	want = names{env["READER_USER"], service, env["REALM"], env["REALM"], etypeID.AES256_CTS_HMAC_SHA1_96, kdcAddr}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("service ticket (-want +got):\n%s", diff)
	}
	if bytes.Equal(st.SessionKey.KeyValue, tgt.SessionKey.KeyValue) {
		t.Error("service ticket reuses the TGT's session key")
	}

	_, err = c.ServiceTicket(ctx, tgt, "ldap/no-such-host."+strings.ToLower(env["REALM"]))
	if !errors.Is(err, ErrUnknownService) {
		t.Fatalf("unknown service: %v, want ErrUnknownService", err)
	}
	if want := "no such service principal (kerberos error 7 kdc_err_s_principal_unknown)"; err.Error() != want {
		t.Errorf("error\n got %s\nwant %s", err, want)
	}
}

// TestDomainLoginTo gets a service ticket straight from the AS exchange,
// as the reader does for ldap/<dc>: one exchange, a ticket for the service,
// and the KDC's verdicts on the password and the service principal.
func TestDomainLoginTo(t *testing.T) {
	env := testdomain.Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := &recorder{}
	c := domainClient(env, r)
	keys := PasswordKeys(env["READER_PASSWORD"])
	service := "ldap/" + env["DC_HOST"]
	st, err := c.LoginTo(ctx, readerName(env), readerSalt(env), keys, service)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(r.messages()); n != 1 {
		t.Errorf("login to %s took %d exchanges, want 1", service, n)
	}
	type names struct {
		Client, Server string
		KeyType        int32
	}
	got := names{st.Client.PrincipalNameString(), st.Server.PrincipalNameString(), st.SessionKey.KeyType}
	want := names{env["READER_USER"], service, etypeID.AES256_CTS_HMAC_SHA1_96}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("service ticket (-want +got):\n%s", diff)
	}
	var raw messages.Ticket
	if err := raw.Unmarshal(st.Raw); err != nil || raw.SName.PrincipalNameString() != service {
		t.Errorf("ticket is for %q (%v), want %s", raw.SName.PrincipalNameString(), err, service)
	}

	_, err = c.LoginTo(ctx, readerName(env), readerSalt(env), keys, "ldap/no-such-host."+strings.ToLower(env["REALM"]))
	if !errors.Is(err, ErrUnknownService) {
		t.Errorf("unknown service: %v, want ErrUnknownService", err)
	}
	_, err = c.LoginTo(ctx, readerName(env), readerSalt(env), PasswordKeys("Wrong-"+env["READER_PASSWORD"]), service)
	if !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong password: %v, want ErrBadCredentials", err)
	}
}

func TestPasswordKeysRemembers(t *testing.T) {
	keys := PasswordKeys("Reader-Test-Passw0rd1")
	k1, ok1, err1 := keys(etypeID.AES256_CTS_HMAC_SHA1_96, "CORP.EXAMPLE.TESTgmsa-reader")
	k2, ok2, err2 := keys(etypeID.AES256_CTS_HMAC_SHA1_96, "CORP.EXAMPLE.TESTgmsa-reader")
	k3, _, _ := keys(etypeID.AES256_CTS_HMAC_SHA1_96, "OTHER.REALMgmsa-reader")
	if !ok1 || !ok2 || err1 != nil || err2 != nil || !bytes.Equal(k1.KeyValue, k2.KeyValue) {
		t.Fatalf("same etype and salt: %v %v %v %v, keys differ: %v", ok1, ok2, err1, err2, !bytes.Equal(k1.KeyValue, k2.KeyValue))
	}
	if bytes.Equal(k1.KeyValue, k3.KeyValue) {
		t.Error("another salt gave the same key")
	}
}

func TestDomainWrongPassword(t *testing.T) {
	env := testdomain.Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := &recorder{}
	_, err := domainClient(env, r).Login(ctx, readerName(env), readerSalt(env), PasswordKeys("Wrong-"+env["READER_PASSWORD"]))
	if !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password: %v, want ErrBadCredentials", err)
	}
	if want := "wrong password or key (kerberos error 24 kdc_err_preauth_failed)"; err.Error() != want {
		t.Errorf("error\n got %s\nwant %s", err, want)
	}
	var kerr *Error
	if !errors.As(err, &kerr) || kerr.Server != net.JoinHostPort(env["DC_ADDR"], "88") {
		t.Errorf("error %#v does not name the KDC", kerr)
	}
	// The salt was right, so there is nothing to retry.
	if n := len(r.messages()); n != 1 {
		t.Errorf("wrong password took %d exchanges, want 1", n)
	}
	if strings.Contains(err.Error(), env["READER_PASSWORD"]) {
		t.Error("error shows the password")
	}
}

func TestDomainUnknownUser(t *testing.T) {
	env := testdomain.Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, "no-such-reader")
	_, err := domainClient(env, &recorder{}).Login(ctx, name, env["REALM"]+"no-such-reader", PasswordKeys(env["READER_PASSWORD"]))
	if !errors.Is(err, ErrUnknownPrincipal) {
		t.Fatalf("unknown user: %v, want ErrUnknownPrincipal", err)
	}
	if want := "no such account (kerberos error 6 kdc_err_c_principal_unknown)"; err.Error() != want {
		t.Errorf("error\n got %s\nwant %s", err, want)
	}
}

// TestDomainWrongSalt: a wrong first guess at the salt costs one more
// exchange, because the KDC's PREAUTH_FAILED error announces the salt in
// ETYPE-INFO2.
func TestDomainWrongSalt(t *testing.T) {
	env := testdomain.Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := &recorder{}
	tgt, err := domainClient(env, r).Login(ctx, readerName(env), env["REALM"]+"host"+env["READER_USER"], PasswordKeys(env["READER_PASSWORD"]))

	// Describe the first answer whatever the outcome: it is what the
	// retry depends on.
	msgs := r.messages()
	if len(msgs) == 0 {
		t.Fatalf("no answer recorded; login: %v", err)
	}
	var first messages.KRBError
	if uerr := first.Unmarshal(msgs[0]); uerr != nil {
		t.Fatalf("first answer is not a KRB-ERROR (%v); login: %v", uerr, err)
	}
	var pas types.PADataSequence
	var paTypes []int32
	var salts []string
	var etypes []int32
	if len(first.EData) > 0 {
		if perr := pas.Unmarshal(first.EData); perr != nil {
			t.Logf("e-data of error %d does not decode as METHOD-DATA: %v", first.ErrorCode, perr)
		}
	}
	for _, pa := range pas {
		paTypes = append(paTypes, pa.PADataType)
		if pa.PADataType == patype.PA_ETYPE_INFO2 {
			info, ierr := pa.GetETypeInfo2()
			if ierr != nil {
				t.Errorf("ETYPE-INFO2 does not decode: %v", ierr)
			}
			for _, e := range info {
				salts = append(salts, e.Salt)
				etypes = append(etypes, e.EType)
			}
		}
	}
	t.Logf("first answer: KRB-ERROR %d, %d bytes of e-data, pa-data types %v, ETYPE-INFO2 etypes %v salts %q", first.ErrorCode, len(first.EData), paTypes, etypes, salts)

	if err != nil {
		t.Fatalf("login with a wrong salt: %v (the retry with the announced salt is dead: see the first answer above)", err)
	}
	if first.ErrorCode != errorcode.KDC_ERR_PREAUTH_FAILED {
		t.Errorf("first answer is error %d, want %d", first.ErrorCode, errorcode.KDC_ERR_PREAUTH_FAILED)
	}
	if len(msgs) != 2 {
		t.Errorf("login took %d exchanges, want 2", len(msgs))
	}
	if len(salts) == 0 || salts[0] != readerSalt(env) {
		t.Errorf("ETYPE-INFO2 salts %q, want %q first", salts, readerSalt(env))
	}
	if tgt.Client.PrincipalNameString() != env["READER_USER"] {
		t.Errorf("TGT for %s", tgt.Client.PrincipalNameString())
	}
}

func TestDomainFailover(t *testing.T) {
	env := testdomain.Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := &recorder{}
	dc := net.JoinHostPort(env["DC_ADDR"], "88")
	// Nothing listens on 127.0.0.2:88 (Samba binds 127.0.0.1 only).
	c := domainClient(env, r, "127.0.0.2:88", dc)
	tgt, err := c.Login(ctx, readerName(env), readerSalt(env), PasswordKeys(env["READER_PASSWORD"]))
	if err != nil {
		t.Fatal(err)
	}
	if tgt.KDC != dc {
		t.Errorf("TGT from %s, want %s", tgt.KDC, dc)
	}
	if diff := cmp.Diff([]string{"127.0.0.2:88", dc}, r.dials); diff != "" {
		t.Errorf("dials (-want +got):\n%s", diff)
	}
	st, err := c.ServiceTicket(ctx, tgt, "ldap/"+env["DC_HOST"])
	if err != nil {
		t.Fatal(err)
	}
	if st.KDC != dc {
		t.Errorf("service ticket from %s, want %s", st.KDC, dc)
	}
}

// TestDomainPreauthRequired shows what Samba answers a request without
// pre-authentication: the case Login avoids by pre-authenticating at once.
func TestDomainPreauthRequired(t *testing.T) {
	env := testdomain.Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := domainClient(env, &recorder{})
	req, err := messages.NewASReqForTGT(c.Realm, c.config(), readerName(env))
	if err != nil {
		t.Fatal(err)
	}
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	reply, _, err := c.send(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	kerr, err := parseError(reply, "dc")
	if err != nil {
		t.Fatal(err)
	}
	if kerr.msg.ErrorCode != errorcode.KDC_ERR_PREAUTH_REQUIRED {
		t.Fatalf("error %d, want PREAUTH_REQUIRED", kerr.msg.ErrorCode)
	}
	e, s, ok, _ := c.announced(kerr, PasswordKeys("x"))
	if !ok || e != etypeID.AES256_CTS_HMAC_SHA1_96 || s != readerSalt(env) {
		t.Errorf("announced = %d, %q, %v; want aes256 with %q", e, s, ok, readerSalt(env))
	}
}
