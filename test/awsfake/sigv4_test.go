package awsfake

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// FuzzVerify: any Authorization header, date and body is refused without a
// panic, except the one the signer made.
func FuzzVerify(f *testing.F) {
	keys := &keyring{creds: map[string]aws.Credentials{}}
	creds := aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey}
	keys.add(creds)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	body := `{"Name":"/gmsa/webapp01"}`
	newReq := func(b string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1234/", strings.NewReader(b))
		r.Header.Set("X-Amz-Target", "AmazonSSM.GetParameter")
		r.Header.Set("Content-Type", "application/x-amz-json-1.1")
		return r
	}
	signed := newReq(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, signed, sha256Hex([]byte(body)), "ssm", Region, at); err != nil {
		f.Fatal(err)
	}
	good := signed.Header.Get("Authorization")
	if err := verify(signed, []byte(body), keys, "ssm", Region, at); err != nil {
		f.Fatalf("the signer's own request: %v", err)
	}
	f.Add(good, signed.Header.Get("X-Amz-Date"), body)
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host;x-amz-date, Signature=00", "20260102T030405Z", "")
	f.Add("AWS4-HMAC-SHA256 Credential=,SignedHeaders=,Signature=", "x", "{}")
	f.Add("AWS4-HMAC-SHA256 ===,,,", "", "")
	f.Fuzz(func(t *testing.T, auth, date, b string) {
		r := newReq(b)
		r.Header.Set("Authorization", auth)
		r.Header.Set("X-Amz-Date", date)
		err := verify(r, []byte(b), keys, "ssm", Region, at)
		if err == nil && (auth != good || b != body || date != signed.Header.Get("X-Amz-Date")) {
			t.Errorf("accepted Authorization %q, date %q, body %q", auth, date, b)
		}
	})
}
