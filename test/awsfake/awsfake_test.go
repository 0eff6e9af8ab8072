package awsfake_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/gmsa-hook/gmsa-hook/test/awsfake"
)

var testCreds = aws.Credentials{AccessKeyID: awsfake.AccessKeyID, SecretAccessKey: awsfake.SecretAccessKey}

// sdkConfig is an SDK configuration that reaches only the fakes.
func sdkConfig(t *testing.T, f *awsfake.Fakes, creds aws.CredentialsProvider) aws.Config {
	t.Helper()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(awsfake.Region),
		config.WithBaseEndpoint(f.URL),
		config.WithCredentialsProvider(creds),
		config.WithSharedConfigFiles(nil), config.WithSharedCredentialsFiles(nil),
		config.WithRetryMaxAttempts(1),
	)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func static(c aws.Credentials) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
}

func TestSSM(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	plain := f.SSM.Put("/gmsa/plain", awsfake.String, "plain value")
	secure := f.SSM.Put("secure", awsfake.SecureString, "secure value")
	f.SSM.Put("/gmsa/list", awsfake.StringList, "a,b")
	c := ssm.NewFromConfig(sdkConfig(t, f, static(testCreds)))
	tests := []struct {
		name     string
		in       string
		decrypt  bool
		wantType ssmtypes.ParameterType
		want     string // "" for not the plain text
	}{
		{"string by arn", plain, true, ssmtypes.ParameterTypeString, "plain value"},
		{"string by name", "/gmsa/plain", false, ssmtypes.ParameterTypeString, "plain value"},
		{"securestring decrypted", secure, true, ssmtypes.ParameterTypeSecureString, "secure value"},
		{"securestring not decrypted", "secure", false, ssmtypes.ParameterTypeSecureString, ""},
		{"stringlist", "/gmsa/list", true, ssmtypes.ParameterTypeStringList, "a,b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(tt.in), WithDecryption: aws.Bool(tt.decrypt)})
			if err != nil {
				t.Fatal(err)
			}
			p := out.Parameter
			if p.Type != tt.wantType {
				t.Errorf("type = %s, want %s", p.Type, tt.wantType)
			}
			if tt.want != "" && *p.Value != tt.want {
				t.Errorf("value = %q, want %q", *p.Value, tt.want)
			}
			if tt.want == "" && *p.Value == "secure value" {
				t.Error("SecureString returned in clear without WithDecryption")
			}
		})
	}
	_, err := c.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String("/gmsa/nosuch")})
	var nf *ssmtypes.ParameterNotFound
	if !errors.As(err, &nf) {
		t.Errorf("missing parameter: %v, want ParameterNotFound", err)
	}
	// A parameter ARN of another account is not found here.
	_, err = c.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String("arn:aws:ssm:us-west-2:444455556666:parameter/gmsa/plain")})
	if !errors.As(err, &nf) {
		t.Errorf("other account: %v, want ParameterNotFound", err)
	}
}

func TestSecretsManager(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	arn := f.SecretsManager.Put("gmsa/reader", `{"username":"u"}`)
	bin := f.SecretsManager.PutBinary("gmsa/binary", []byte{0, 1, 2, 0xff})
	if want := "arn:aws:secretsmanager:us-west-2:111122223333:secret:gmsa/reader-"; !strings.HasPrefix(arn, want) || len(arn) != len(want)+6 {
		t.Errorf("ARN = %s, want %sXXXXXX", arn, want)
	}
	c := secretsmanager.NewFromConfig(sdkConfig(t, f, static(testCreds)))
	for _, id := range []string{arn, strings.TrimSuffix(arn, arn[len(arn)-7:]), "gmsa/reader"} {
		out, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if *out.SecretString != `{"username":"u"}` || *out.ARN != arn || *out.Name != "gmsa/reader" {
			t.Errorf("%s: got %q %q %q", id, *out.SecretString, *out.ARN, *out.Name)
		}
	}
	out, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(bin)})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]byte{0, 1, 2, 0xff}, out.SecretBinary); d != "" || out.SecretString != nil {
		t.Errorf("binary (-want +got):\n%s", d)
	}
	_, err = c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("nosuch")})
	var nf *smtypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("missing secret: %v, want ResourceNotFoundException", err)
	}
}

func TestS3(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	if got, want := f.S3.Put("bucket", "a/b.json", []byte("{}")), "arn:aws:s3:::bucket/a/b.json"; got != want {
		t.Errorf("ARN = %s, want %s", got, want)
	}
	c := s3.NewFromConfig(sdkConfig(t, f, static(testCreds)), func(o *s3.Options) { o.UsePathStyle = true })
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("a/b.json")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(b) != "{}" {
		t.Errorf("body = %q", b)
	}
	_, err = c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("nosuch")})
	var nk *s3types.NoSuchKey
	if !errors.As(err, &nk) {
		t.Errorf("missing key: %v, want NoSuchKey", err)
	}
	_, err = c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("nosuch"), Key: aws.String("k")})
	if code := apiCode(err); code != "NoSuchBucket" {
		t.Errorf("missing bucket: %v, want NoSuchBucket", err)
	}
}

func apiCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// TestUnsignedWithSDK: an SDK client with anonymous credentials sends no
// signature, and every fake refuses it.
func TestUnsignedWithSDK(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	arn := f.SSM.Put("p", awsfake.String, "v")
	sm := f.SecretsManager.Put("s", "v")
	f.S3.Put("b", "k", []byte("v"))
	cfg := sdkConfig(t, f, aws.AnonymousCredentials{})
	_, err := ssm.NewFromConfig(cfg).GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(arn)})
	if code := apiCode(err); code != "MissingAuthenticationTokenException" {
		t.Errorf("ssm: %v", err)
	}
	_, err = secretsmanager.NewFromConfig(cfg).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(sm)})
	if code := apiCode(err); code != "MissingAuthenticationTokenException" {
		t.Errorf("secretsmanager: %v", err)
	}
	_, err = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
	if code := apiCode(err); code != "AccessDenied" {
		t.Errorf("s3: %v", err)
	}
	for _, s := range []*awsfake.Service{&f.SSM.Service, &f.SecretsManager.Service, &f.S3.Service} {
		if s.Rejected() != 1 || s.Requests() != 0 {
			t.Errorf("rejected %d, admitted %d; want 1, 0", s.Rejected(), s.Requests())
		}
	}
}

// rawRequest is a request signed by hand, to break it on purpose.
type rawRequest struct {
	service, region string
	creds           aws.Credentials
	at              time.Time
	unsigned        bool
	// after signing
	tamper func(r *http.Request)
}

func (rr rawRequest) send(t *testing.T, f *awsfake.Fakes, target, body string) (status int, header http.Header, respBody []byte) {
	t.Helper()
	method, url := http.MethodPost, f.URL+"/"
	if target == "" { // S3 GET /BUCKET/KEY, body is the path
		method, url, body = http.MethodGet, f.URL+body, ""
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	}
	sum := sha256.Sum256([]byte(body))
	hash := hex.EncodeToString(sum[:])
	if rr.service == "s3" {
		req.Header.Set("X-Amz-Content-Sha256", hash)
	}
	if !rr.unsigned {
		at := rr.at
		if at.IsZero() {
			at = time.Now()
		}
		if err := v4.NewSigner().SignHTTP(context.Background(), rr.creds, req, hash, rr.service, rr.region, at); err != nil {
			t.Fatal(err)
		}
	}
	if rr.tamper != nil {
		rr.tamper(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// jsonType is the "__type" of an awsJson1.1 answer.
func jsonType(t *testing.T, b []byte) string {
	t.Helper()
	var v struct {
		Type string `json:"__type"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	return v.Type
}

func xmlCode(t *testing.T, b []byte) string {
	t.Helper()
	var v struct{ Code string }
	if err := xml.Unmarshal(b, &v); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	return v.Code
}

func TestSignatureChecks(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	arn := f.SSM.Put("/gmsa/p", awsfake.SecureString, "v")
	f.S3.Put("bucket", "key.json", []byte("{}"))
	imdsLike := aws.Credentials{AccessKeyID: "ASIATEMPORARY0000001", SecretAccessKey: "temporary-secret", SessionToken: "token-1"}
	f.AddCredentials(imdsLike)
	body := `{"Name":"` + arn + `","WithDecryption":true}`
	good := rawRequest{service: "ssm", region: awsfake.Region, creds: testCreds}
	with := func(mod func(*rawRequest)) rawRequest { r := good; mod(&r); return r }
	tests := []struct {
		name   string
		req    rawRequest
		status int
		want   string // __type or S3 Code; "" for success
	}{
		{"signed", good, 200, ""},
		{"unsigned", with(func(r *rawRequest) { r.unsigned = true }), 400, "com.amazon.coral.service#MissingAuthenticationTokenException"},
		{"wrong secret key", with(func(r *rawRequest) { r.creds.SecretAccessKey = "wrong" }), 400, "com.amazon.coral.service#InvalidSignatureException"},
		{"unknown access key", with(func(r *rawRequest) { r.creds.AccessKeyID = "AKIAUNKNOWN000000000" }), 400, "com.amazon.coral.service#UnrecognizedClientException"},
		{"wrong region", with(func(r *rawRequest) { r.region = "eu-west-1" }), 400, "com.amazon.coral.service#InvalidSignatureException"},
		{"wrong service", with(func(r *rawRequest) { r.service = "secretsmanager" }), 400, "com.amazon.coral.service#InvalidSignatureException"},
		{"signed 20 minutes ago", with(func(r *rawRequest) { r.at = time.Now().Add(-20 * time.Minute) }), 400, "com.amazon.coral.service#InvalidSignatureException"},
		{"body changed after signing", with(func(r *rawRequest) {
			r.tamper = func(req *http.Request) {
				b := strings.Replace(body, "true", "false", 1)
				req.Body, req.ContentLength = io.NopCloser(strings.NewReader(b)), int64(len(b))
			}
		}), 400, "com.amazon.coral.service#InvalidSignatureException"},
		{"signed header changed", with(func(r *rawRequest) {
			r.tamper = func(req *http.Request) {
				req.Header.Set("X-Amz-Date", time.Now().Add(time.Second).UTC().Format("20060102T150405Z"))
			}
		}), 400, "com.amazon.coral.service#InvalidSignatureException"},
		{"session token", with(func(r *rawRequest) { r.creds = imdsLike }), 200, ""},
		{"session token missing", with(func(r *rawRequest) {
			r.creds = imdsLike
			r.tamper = func(req *http.Request) { req.Header.Del("X-Amz-Security-Token") }
		}), 400, "com.amazon.coral.service#UnrecognizedClientException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.SSM.Clear()
			status, hdr, b := tt.req.send(t, f, "AmazonSSM.GetParameter", body)
			if status != tt.status {
				t.Errorf("status = %d, want %d (%s)", status, tt.status, b)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
				t.Errorf("Content-Type = %q", ct)
			}
			if tt.want == "" {
				if f.SSM.Requests() != 1 || f.SSM.Rejected() != 0 {
					t.Errorf("admitted %d, rejected %d; want 1, 0", f.SSM.Requests(), f.SSM.Rejected())
				}
				return
			}
			if got := jsonType(t, b); got != tt.want {
				t.Errorf("__type = %q, want %q", got, tt.want)
			}
			if f.SSM.Requests() != 0 || f.SSM.Rejected() != 1 {
				t.Errorf("admitted %d, rejected %d; want 0, 1", f.SSM.Requests(), f.SSM.Rejected())
			}
		})
	}

	s3good := rawRequest{service: "s3", region: awsfake.Region, creds: testCreds}
	s3with := func(mod func(*rawRequest)) rawRequest { r := s3good; mod(&r); return r }
	s3tests := []struct {
		name   string
		req    rawRequest
		status int
		want   string
	}{
		{"signed", s3good, 200, ""},
		{"unsigned", s3with(func(r *rawRequest) { r.unsigned = true }), 403, "AccessDenied"},
		{"wrong secret key", s3with(func(r *rawRequest) { r.creds.SecretAccessKey = "wrong" }), 403, "SignatureDoesNotMatch"},
		{"unknown access key", s3with(func(r *rawRequest) { r.creds.AccessKeyID = "AKIAUNKNOWN000000000" }), 403, "InvalidAccessKeyId"},
		{"wrong region", s3with(func(r *rawRequest) { r.region = "eu-west-1" }), 400, "AuthorizationHeaderMalformed"},
		{"signed 20 minutes ago", s3with(func(r *rawRequest) { r.at = time.Now().Add(-20 * time.Minute) }), 403, "RequestTimeTooSkewed"},
		{"no content hash", s3with(func(r *rawRequest) {
			r.tamper = func(req *http.Request) { req.Header.Del("X-Amz-Content-Sha256") }
		}), 400, "InvalidRequest"},
		{"path changed after signing", s3with(func(r *rawRequest) {
			r.tamper = func(req *http.Request) { req.URL.Path = "/bucket/other.json" }
		}), 403, "SignatureDoesNotMatch"},
	}
	for _, tt := range s3tests {
		t.Run("s3 "+tt.name, func(t *testing.T) {
			f.S3.Clear()
			status, hdr, b := tt.req.send(t, f, "", "/bucket/key.json")
			if status != tt.status {
				t.Errorf("status = %d, want %d (%s)", status, tt.status, b)
			}
			if tt.want == "" {
				if string(b) != "{}" {
					t.Errorf("body = %q", b)
				}
				return
			}
			if got := xmlCode(t, b); got != tt.want {
				t.Errorf("Code = %q, want %q", got, tt.want)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/xml" {
				t.Errorf("Content-Type = %q", ct)
			}
			if tt.want == "AuthorizationHeaderMalformed" && hdr.Get("X-Amz-Bucket-Region") != awsfake.Region {
				t.Errorf("X-Amz-Bucket-Region = %q", hdr.Get("X-Amz-Bucket-Region"))
			}
			if f.S3.Rejected() != 1 {
				t.Errorf("rejected = %d, want 1", f.S3.Rejected())
			}
		})
	}
}

// TestFaultShapes checks each fault's status and error code per service.
func TestFaultShapes(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	arn := f.SSM.Put("p", awsfake.String, "v")
	sm := f.SecretsManager.Put("s", "v")
	f.S3.Put("b", "k", []byte("v"))
	tests := []struct {
		fault     awsfake.Fault
		ssmStatus int
		ssmType   string
		smStatus  int
		smType    string
		s3Status  int
		s3Code    string
	}{
		{awsfake.Throttle, 400, "ThrottlingException", 400, "ThrottlingException", 503, "SlowDown"},
		{awsfake.AccessDenied, 400, "AccessDeniedException", 400, "AccessDeniedException", 403, "AccessDenied"},
		{awsfake.InternalError, 500, "InternalServerError", 500, "InternalServiceError", 500, "InternalError"},
		{awsfake.Unavailable, 503, "ServiceUnavailable", 503, "ServiceUnavailable", 503, "ServiceUnavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.fault.String(), func(t *testing.T) {
			f.SSM.Fail(tt.fault, 1)
			f.SecretsManager.Fail(tt.fault, 1)
			f.S3.Fail(tt.fault, 1)
			status, hdr, b := rawRequest{service: "ssm", region: awsfake.Region, creds: testCreds}.send(t, f, "AmazonSSM.GetParameter", `{"Name":"`+arn+`"}`)
			if status != tt.ssmStatus || jsonType(t, b) != tt.ssmType || hdr.Get("X-Amzn-RequestId") == "" {
				t.Errorf("ssm: %d %s, want %d %s", status, b, tt.ssmStatus, tt.ssmType)
			}
			if tt.fault == awsfake.AccessDenied && !strings.Contains(string(b), "is not authorized to perform: ssm:GetParameter on resource: "+arn) {
				t.Errorf("ssm access denied message: %s", b)
			}
			status, _, b = rawRequest{service: "secretsmanager", region: awsfake.Region, creds: testCreds}.send(t, f, "secretsmanager.GetSecretValue", `{"SecretId":"`+sm+`"}`)
			if status != tt.smStatus || jsonType(t, b) != tt.smType {
				t.Errorf("secretsmanager: %d %s, want %d %s", status, b, tt.smStatus, tt.smType)
			}
			status, _, b = rawRequest{service: "s3", region: awsfake.Region, creds: testCreds}.send(t, f, "", "/b/k")
			if status != tt.s3Status || xmlCode(t, b) != tt.s3Code {
				t.Errorf("s3: %d %s, want %d %s", status, b, tt.s3Status, tt.s3Code)
			}
		})
	}
}

func TestFaultQueue(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	arn := f.SSM.Put("p", awsfake.String, "v")
	f.SSM.Fail(awsfake.Throttle, 2)
	f.SSM.Fail(awsfake.InternalError, 1)
	var got []int
	for range 5 {
		status, _, _ := rawRequest{service: "ssm", region: awsfake.Region, creds: testCreds}.send(t, f, "AmazonSSM.GetParameter", `{"Name":"`+arn+`"}`)
		got = append(got, status)
	}
	if d := cmp.Diff([]int{400, 400, 500, 200, 200}, got); d != "" {
		t.Errorf("statuses (-want +got):\n%s", d)
	}
	if f.SSM.Requests() != 5 {
		t.Errorf("requests = %d, want 5", f.SSM.Requests())
	}
	f.SSM.Fail(awsfake.AccessDenied, 0)
	for range 3 {
		if status, _, _ := (rawRequest{service: "ssm", region: awsfake.Region, creds: testCreds}).send(t, f, "AmazonSSM.GetParameter", `{"Name":"`+arn+`"}`); status != 400 {
			t.Errorf("status = %d, want 400 while the fault lasts", status)
		}
	}
	f.SSM.Clear()
	if status, _, _ := (rawRequest{service: "ssm", region: awsfake.Region, creds: testCreds}).send(t, f, "AmazonSSM.GetParameter", `{"Name":"`+arn+`"}`); status != 200 || f.SSM.Requests() != 1 {
		t.Errorf("after Clear: status %d, requests %d", status, f.SSM.Requests())
	}
}

// TestRetriesWithSDK: the SDK's standard retryer retries the fakes'
// throttling and 5xx answers and not access denied.
func TestRetriesWithSDK(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	arn := f.SSM.Put("p", awsfake.String, "v")
	cfg := sdkConfig(t, f, static(testCreds))
	c := ssm.NewFromConfig(cfg, func(o *ssm.Options) {
		o.RetryMaxAttempts = 0
		o.Retryer = retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 5
			o.Backoff = noBackoff{}
			o.RateLimiter = ratelimit.None
		})
	})
	for _, tt := range []struct {
		fault    awsfake.Fault
		times    int
		requests int
		ok       bool
	}{
		{awsfake.Throttle, 2, 3, true},
		{awsfake.InternalError, 4, 5, true},
		{awsfake.Throttle, 5, 5, false},
		{awsfake.AccessDenied, 1, 1, false},
	} {
		f.SSM.Clear()
		f.SSM.Fail(tt.fault, tt.times)
		_, err := c.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(arn)})
		if (err == nil) != tt.ok || f.SSM.Requests() != tt.requests {
			t.Errorf("%v x%d: err %v, requests %d; want ok %v, requests %d", tt.fault, tt.times, err, f.SSM.Requests(), tt.ok, tt.requests)
		}
	}
}

type noBackoff struct{}

func (noBackoff) BackoffDelay(int, error) (time.Duration, error) { return 0, nil }

// TestIMDS: the default chain takes an instance profile's credentials from
// the fake IMDS, and the fakes accept them.
func TestIMDS(t *testing.T) {
	f := awsfake.Start(t, awsfake.Options{})
	arn := f.SSM.Put("p", awsfake.String, "v")
	imds := f.StartIMDS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion(awsfake.Region), config.WithBaseEndpoint(f.URL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ssm.NewFromConfig(cfg).GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	if imds.Requests() < 3 {
		t.Errorf("IMDS requests = %d, want token, role and credentials", imds.Requests())
	}
}
