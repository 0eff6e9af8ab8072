package awsfake

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 is gofakes3 with its in-memory backend, behind signature checks and
// the fault queue. It answers path-style requests (http://HOST/BUCKET/KEY).
type S3 struct {
	Service
	backend *s3mem.Backend
	handler http.Handler
}

func newS3(region string, keys *keyring) *S3 {
	b := s3mem.New()
	return &S3{
		Service: Service{name: "s3", region: region, keys: keys},
		backend: b,
		handler: gofakes3.New(b, gofakes3.WithoutVersioning()).Server(),
	}
}

// Put stores an object, creating its bucket, and returns its ARN.
func (s *S3) Put(bucket, key string, body []byte) (arn string) {
	if err := s.backend.CreateBucket(bucket); err != nil && !gofakes3.HasErrorCode(err, gofakes3.ErrBucketAlreadyExists) {
		panic(fmt.Sprintf("awsfake: create bucket %q: %v", bucket, err))
	}
	if _, err := s.backend.PutObject(bucket, key, map[string]string{}, bytes.NewReader(body), int64(len(body)), nil); err != nil {
		panic(fmt.Sprintf("awsfake: put object %s/%s: %v", bucket, key, err))
	}
	return ARNOfObject(bucket, key)
}

// Get returns a stored object's bytes.
func (s *S3) Get(bucket, key string) ([]byte, bool) {
	obj, err := s.backend.GetObject(bucket, key, nil)
	if err != nil {
		return nil, false
	}
	defer obj.Contents.Close()
	b, err := io.ReadAll(obj.Contents)
	return b, err == nil
}

// ARNOfObject is the ARN of an S3 object.
func ARNOfObject(bucket, key string) string { return "arn:aws:s3:::" + bucket + "/" + key }

func (s *S3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		writeS3Error(w, http.StatusBadRequest, "IncompleteBody", "cannot read the request body", nil)
		return
	}
	if aerr := verify(r, body, s.keys, s.name, s.region, time.Now()); aerr != nil {
		s.reject()
		s.writeAuthError(w, aerr)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	switch s.admit() {
	case Throttle:
		writeS3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.", nil)
		return
	case AccessDenied:
		writeS3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied", nil)
		return
	case InternalError:
		writeS3Error(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.", nil)
		return
	case Unavailable:
		writeS3Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "Service is unable to handle request.", nil)
		return
	case Garbled:
		s.handler.ServeHTTP(&shortWriter{ResponseWriter: w}, r)
		return
	}
	s.handler.ServeHTTP(w, r)
}

// shortWriter announces the full Content-Length but sends half the body,
// so the client sees the connection end early.
type shortWriter struct {
	http.ResponseWriter
	left         int
	checked, set bool
}

func (w *shortWriter) WriteHeader(status int) {
	w.check()
	w.ResponseWriter.WriteHeader(status)
}

func (w *shortWriter) check() {
	if w.checked {
		return
	}
	w.checked = true
	if n, err := strconv.Atoi(w.Header().Get("Content-Length")); err == nil {
		w.left, w.set = n/2, true
	}
}

func (w *shortWriter) Write(b []byte) (int, error) {
	w.check()
	if w.set {
		if len(b) > w.left {
			b = b[:w.left]
		}
		w.left -= len(b)
	}
	return w.ResponseWriter.Write(b)
}

func (s *S3) writeAuthError(w http.ResponseWriter, e *authError) {
	switch e.problem {
	case authMissing:
		writeS3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied", nil)
	case authUnknownKey:
		writeS3Error(w, http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", nil)
	case authBadToken:
		writeS3Error(w, http.StatusBadRequest, "InvalidToken", "The provided token is malformed or otherwise invalid.", nil)
	case authWrongRegion:
		// S3 names the bucket's region so that clients can sign again for it.
		w.Header().Set("X-Amz-Bucket-Region", s.region)
		writeS3Error(w, http.StatusBadRequest, "AuthorizationHeaderMalformed",
			fmt.Sprintf("The authorization header is malformed; the region '%s' is wrong; expecting '%s'", e.region, s.region),
			map[string]string{"Region": s.region})
	case authSkewed:
		writeS3Error(w, http.StatusForbidden, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large.", nil)
	case authBadPayload:
		code := "XAmzContentSHA256Mismatch"
		if strings.HasPrefix(e.detail, "missing") {
			code = "InvalidRequest"
		}
		writeS3Error(w, http.StatusBadRequest, code, e.detail, nil)
	case authMalformed, authWrongScope:
		writeS3Error(w, http.StatusBadRequest, "AuthorizationHeaderMalformed", "The authorization header is malformed; "+e.detail, nil)
	default:
		writeS3Error(w, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.", nil)
	}
}

func writeS3Error(w http.ResponseWriter, status int, code, msg string, extra map[string]string) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString("<Error><Code>")
	xml.EscapeText(&b, []byte(code))
	b.WriteString("</Code><Message>")
	xml.EscapeText(&b, []byte(msg))
	b.WriteString("</Message>")
	for k, v := range extra {
		fmt.Fprintf(&b, "<%s>", k)
		xml.EscapeText(&b, []byte(v))
		fmt.Fprintf(&b, "</%s>", k)
	}
	id := requestID()
	fmt.Fprintf(&b, "<RequestId>%s</RequestId><HostId>%s</HostId></Error>", id, id)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("X-Amz-Request-Id", id)
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
