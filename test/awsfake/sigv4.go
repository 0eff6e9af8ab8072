package awsfake

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// authProblem is why a request's signature was refused; each service turns
// it into its own error shape.
type authProblem int

const (
	authMissing     authProblem = iota + 1 // no Authorization header
	authMalformed                          // not AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...
	authUnknownKey                         // access key ID not known
	authBadToken                           // session token missing or wrong
	authWrongScope                         // scope names another service or a bad date
	authWrongRegion                        // scope names another region
	authSkewed                             // X-Amz-Date too far from now
	authMismatch                           // signature does not match
	authBadPayload                         // S3: x-amz-content-sha256 missing or wrong
)

type authError struct {
	problem authProblem
	detail  string
	region  string // the region the request was signed for
}

func (e *authError) Error() string { return e.detail }

// maxSkew is how far a request's X-Amz-Date may be from the fake's clock, as
// in AWS.
const maxSkew = 15 * time.Minute

// verify checks r's SigV4 signature by signing the same canonical request
// again with the SDK's signer and the known secret key, and comparing.
func verify(r *http.Request, body []byte, keys *keyring, service, region string, now time.Time) *authError {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return &authError{problem: authMissing, detail: "missing Authorization header"}
	}
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, algo) {
		return &authError{problem: authMalformed, detail: "authorization is not AWS4-HMAC-SHA256"}
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(strings.TrimPrefix(auth, algo), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return &authError{problem: authMalformed, detail: "authorization field without '='"}
		}
		fields[k] = v
	}
	cred, signedHeaders, sig := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || signedHeaders == "" || sig == "" {
		return &authError{problem: authMalformed, detail: "authorization needs Credential=KEY/DATE/REGION/SERVICE/aws4_request, SignedHeaders and Signature"}
	}
	keyID, date, scopeRegion, scopeService, term := scope[0], scope[1], scope[2], scope[3], scope[4]
	c, ok := keys.get(keyID)
	if !ok {
		return &authError{problem: authUnknownKey, detail: "unknown access key " + keyID}
	}
	if term != "aws4_request" || scopeService != service {
		return &authError{problem: authWrongScope, detail: fmt.Sprintf("credential should be scoped to correct service: '%s'", service)}
	}
	if scopeRegion != region {
		return &authError{problem: authWrongRegion, detail: fmt.Sprintf("credential should be scoped to a valid region, not '%s'", scopeRegion), region: scopeRegion}
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return &authError{problem: authMalformed, detail: "missing or malformed X-Amz-Date"}
	}
	if t.Format("20060102") != date {
		return &authError{problem: authWrongScope, detail: "credential date does not match X-Amz-Date"}
	}
	if d := now.Sub(t); d > maxSkew || d < -maxSkew {
		return &authError{problem: authSkewed, detail: fmt.Sprintf("signature expired: %s is now earlier than %s", amzDate, now.Add(-maxSkew).UTC().Format("20060102T150405Z"))}
	}
	if r.Header.Get("X-Amz-Security-Token") != c.SessionToken {
		return &authError{problem: authBadToken, detail: "the security token included in the request is invalid"}
	}
	list := strings.Split(signedHeaders, ";")
	if !contains(list, "host") || !contains(list, "x-amz-date") {
		return &authError{problem: authMalformed, detail: "host and x-amz-date must be signed"}
	}

	payloadHash := sha256Hex(body)
	if service == "s3" {
		h := r.Header.Get("X-Amz-Content-Sha256")
		switch {
		case h == "":
			return &authError{problem: authBadPayload, detail: "missing required header for this request: x-amz-content-sha256"}
		case h == "UNSIGNED-PAYLOAD" || strings.HasPrefix(h, "STREAMING-"):
			payloadHash = h
		case h != payloadHash:
			return &authError{problem: authBadPayload, detail: "the provided 'x-amz-content-sha256' header does not match what was computed"}
		}
	}

	// Sign a copy holding only what the client says it signed.
	u := &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	again := &http.Request{Method: r.Method, URL: u, Host: r.Host, Header: http.Header{}}
	for _, h := range list {
		switch h {
		case "host":
		case "content-length":
			again.ContentLength = r.ContentLength
		default:
			vs := r.Header.Values(h)
			if len(vs) == 0 {
				return &authError{problem: authMismatch, detail: "signed header " + h + " is not in the request"}
			}
			again.Header[textproto.CanonicalMIMEHeaderKey(h)] = vs
		}
	}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = service == "s3" })
	if err := signer.SignHTTP(context.Background(), c, again, payloadHash, service, region, t); err != nil {
		return &authError{problem: authMismatch, detail: "cannot sign again: " + err.Error()}
	}
	want := again.Header.Get("Authorization")
	if subtle.ConstantTimeCompare([]byte(want), []byte(auth)) != 1 {
		return &authError{problem: authMismatch, detail: "the request signature we calculated does not match the signature you provided"}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
