package awsremote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	gmsaconfig "github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/spec"
)

// Init cost: every hook run pays the package initialisation of what it
// links. service/ssm from v1.80.0 and service/secretsmanager from v1.50.0
// build schema tables at init (about 10 ms and 1.5 MB for SSM alone), so
// go.mod holds them at v1.79.3 and v1.49.0; TestAWSInitCost guards it.

// Config is the "aws" section of gmsa-hook's configuration file.
type Config = gmsaconfig.AWS

// DefaultMaxAttempts is how many times a request is tried when nothing else
// says: the first try and three retries with jittered exponential backoff.
const DefaultMaxAttempts = 4

// maxBackoff caps one wait between tries, so that DefaultMaxAttempts fits in
// a hook's deadline.
const maxBackoff = 5 * time.Second

// New returns a Remote that reads SSM parameters, S3 objects and Secrets
// Manager secrets with the AWS SDK's default credential chain (environment,
// shared files, container and instance profile through IMDS). Nothing is
// loaded until the first Get, so a hook run that needs no AWS source pays
// nothing for it.
func New(cfg Config) spec.Remote { return &awsRemote{cfg: cfg} }

type awsRemote struct {
	cfg Config

	mu     sync.Mutex
	loaded *aws.Config

	// For tests: more load options, and a backoff that does not wait.
	loadOptions []func(*config.LoadOptions) error
	backoff     retry.BackoffDelayer
}

// awsService names what an error is about.
type awsService struct {
	id     string // endpoints key and message prefix
	noun   string // what the ARN names
	action string // the IAM action the read needs
}

var (
	ssmService     = awsService{"ssm", "parameter", "ssm:GetParameter"}
	s3Service      = awsService{"s3", "object", "s3:GetObject"}
	secretsService = awsService{"secretsmanager", "secret", "secretsmanager:GetSecretValue"}
)

// Get reads src from SSM, S3 or Secrets Manager.
func (a *awsRemote) Get(ctx context.Context, src spec.Source) ([]byte, error) {
	var svc awsService
	switch src.Kind {
	case spec.SSM:
		svc = ssmService
	case spec.S3:
		svc = s3Service
	case spec.SecretsManager:
		svc = secretsService
	default:
		return nil, fmt.Errorf("%s: not an AWS source", src.Raw)
	}
	arn, err := spec.SplitARN(src.ARN)
	if err != nil {
		return nil, fmt.Errorf("%s %s %s: %w", svc.id, svc.noun, src.ARN, err)
	}
	cfg, err := a.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s %s %s: %w", svc.id, svc.noun, src.ARN, err)
	}
	if cfg.Credentials == nil {
		return nil, a.fail(svc, src.ARN, spec.ErrNoCredentials, nil, "no credential source")
	}
	// A context already done says so the same way wherever it is noticed
	// (a static credential provider would not notice it at all).
	if ctx.Err() != nil {
		return nil, a.fail(svc, src.ARN, nil, ctx.Err(), "gave up: "+ctx.Err().Error())
	}
	// The cache keeps them for the clients below.
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, a.fail(svc, src.ARN, nil, ctx.Err(), "gave up getting AWS credentials: "+ctx.Err().Error())
		}
		return nil, a.fail(svc, src.ARN, spec.ErrNoCredentials, err, firstLine(err))
	}
	switch src.Kind {
	case spec.SSM:
		return a.getParameter(ctx, cfg, arn, src.ARN)
	case spec.S3:
		return a.getObject(ctx, cfg, arn, src.ARN)
	default:
		return a.getSecret(ctx, cfg, arn, src.ARN)
	}
}

// load reads the SDK's default configuration once.
func (a *awsRemote) load(ctx context.Context) (aws.Config, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.loaded != nil {
		return *a.loaded, nil
	}
	if err := a.cfg.Validate(); err != nil {
		return aws.Config{}, err
	}
	var opts []func(*config.LoadOptions) error
	if a.cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(a.cfg.Profile))
	}
	if len(a.cfg.ConfigFiles) > 0 {
		opts = append(opts, config.WithSharedConfigFiles(a.cfg.ConfigFiles))
	}
	if len(a.cfg.CredentialsFiles) > 0 {
		opts = append(opts, config.WithSharedCredentialsFiles(a.cfg.CredentialsFiles))
	}
	opts = append(opts, a.loadOptions...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		// The SDK's text names the profile or file that is wrong.
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	// Library code does not log: the SDK's warnings would land in the
	// runtime's error output.
	cfg.Logger = logging.Nop{}
	a.loaded = &cfg
	return cfg, nil
}

// region is where a request for arn goes: the ARN's own region, else the
// configured one, else the SDK's (AWS_REGION or the profile's region).
func (a *awsRemote) region(cfg aws.Config, arn spec.ARN) string {
	switch {
	case arn.Region != "":
		return arn.Region
	case a.cfg.Region != "":
		return a.cfg.Region
	}
	return cfg.Region
}

// retryer is the SDK's standard retryer: jittered exponential backoff,
// retries throttling, 5xx and connection errors, never access denied or
// not found. The client-side retry quota is off: a hook makes a handful of
// requests and a quota would only turn throttling into a different error.
func (a *awsRemote) retryer(fromSDK int) aws.Retryer {
	n := a.cfg.MaxAttempts
	if n == 0 {
		n = fromSDK
	}
	if n == 0 {
		n = DefaultMaxAttempts
	}
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = n
		o.MaxBackoff = maxBackoff
		o.RateLimiter = ratelimit.None
		if a.backoff != nil {
			o.Backoff = a.backoff
		}
	})
}

// endpoint sets a configured base URL; it wins over AWS_ENDPOINT_URL* and
// endpoint_url in shared config, which the SDK applied already.
func (a *awsRemote) endpoint(svc awsService, base **string) {
	if u := a.cfg.Endpoints[svc.id]; u != "" {
		*base = aws.String(u)
	}
}

func (a *awsRemote) getParameter(ctx context.Context, cfg aws.Config, arn spec.ARN, raw string) ([]byte, error) {
	region := a.region(cfg, arn)
	if region == "" {
		return nil, fmt.Errorf("ssm parameter %s: no region in the ARN or the configuration", raw)
	}
	c := ssm.NewFromConfig(cfg, func(o *ssm.Options) {
		o.Region = region
		a.endpoint(ssmService, &o.BaseEndpoint)
		o.Retryer, o.RetryMaxAttempts = a.retryer(o.RetryMaxAttempts), 0
	})
	// The full ARN, not the name: it is required for parameters shared
	// from another account and works for the caller's own.
	out, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(raw), WithDecryption: aws.Bool(true)})
	if err != nil {
		return nil, a.failSDK(ctx, ssmService, raw, err)
	}
	p := out.Parameter
	if p == nil || p.Value == nil {
		return nil, fmt.Errorf("ssm parameter %s: the answer has no value", raw)
	}
	switch p.Type {
	case ssmtypes.ParameterTypeString, ssmtypes.ParameterTypeSecureString:
	default:
		return nil, a.fail(ssmService, raw, spec.ErrParameterType, nil, fmt.Sprintf("%q; want String or SecureString", string(p.Type)))
	}
	if len(*p.Value) > spec.MaxSize {
		return nil, fmt.Errorf("ssm parameter %s: larger than %d bytes", raw, spec.MaxSize)
	}
	return []byte(*p.Value), nil
}

func (a *awsRemote) getSecret(ctx context.Context, cfg aws.Config, arn spec.ARN, raw string) ([]byte, error) {
	region := a.region(cfg, arn)
	if region == "" {
		return nil, fmt.Errorf("secretsmanager secret %s: no region in the ARN or the configuration", raw)
	}
	c := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.Region = region
		a.endpoint(secretsService, &o.BaseEndpoint)
		o.Retryer, o.RetryMaxAttempts = a.retryer(o.RetryMaxAttempts), 0
	})
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(raw)})
	if err != nil {
		return nil, a.failSDK(ctx, secretsService, raw, err)
	}
	var b []byte
	switch {
	case out.SecretString != nil:
		b = []byte(*out.SecretString)
	case out.SecretBinary != nil:
		b = out.SecretBinary
	default:
		return nil, fmt.Errorf("secretsmanager secret %s: the answer has neither SecretString nor SecretBinary", raw)
	}
	if len(b) > spec.MaxSize {
		return nil, fmt.Errorf("secretsmanager secret %s: larger than %d bytes", raw, spec.MaxSize)
	}
	return b, nil
}

func (a *awsRemote) getObject(ctx context.Context, cfg aws.Config, arn spec.ARN, raw string) ([]byte, error) {
	bucket, key, _ := strings.Cut(arn.Resource, "/")
	if arn.Region != "" || arn.Account != "" || bucket == "" || key == "" {
		return nil, fmt.Errorf("s3 object %s: want an object ARN arn:aws:s3:::BUCKET/KEY", raw)
	}
	limit := a.cfg.S3MaxSize
	if limit == 0 {
		limit = spec.MaxSize
	}
	region := a.region(cfg, arn)
	if region == "" {
		// S3 ARNs name no region. A request signed for the wrong one is
		// answered with the bucket's region, and tried again there.
		region = "us-east-1"
	}
	get := func(region string) (*s3.GetObjectOutput, error) {
		c := s3.NewFromConfig(cfg, func(o *s3.Options) {
			o.Region = region
			a.endpoint(s3Service, &o.BaseEndpoint)
			// Test fakes and most S3-compatible endpoints have no
			// per-bucket host names.
			o.UsePathStyle = o.UsePathStyle || o.BaseEndpoint != nil
			o.DisableLogOutputChecksumValidationSkipped = true
			o.Retryer, o.RetryMaxAttempts = a.retryer(o.RetryMaxAttempts), 0
		})
		return c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	}
	out, err := get(region)
	if r := bucketRegion(err); r != "" && r != region {
		out, err = get(r)
	}
	if err != nil {
		return nil, a.failSDK(ctx, s3Service, raw, err)
	}
	defer out.Body.Close()
	if out.ContentLength != nil && *out.ContentLength > limit {
		return nil, fmt.Errorf("s3 object %s: %d bytes is larger than the limit of %d bytes (s3_max_size)", raw, *out.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, a.fail(s3Service, raw, nil, err, "reading the object: "+firstLine(err))
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("s3 object %s: larger than the limit of %d bytes (s3_max_size)", raw, limit)
	}
	return b, nil
}

// bucketRegion is the region S3 says a bucket is in when a request was
// signed for another one.
func bucketRegion(err error) string {
	var re *smithyhttp.ResponseError
	if err == nil || !errors.As(err, &re) || re.Response == nil {
		return ""
	}
	return re.Response.Header.Get("X-Amz-Bucket-Region")
}

// awsError is an AWS read's failure: one line for the operator, and the
// sentinel and the SDK's error for errors.Is and errors.As.
type awsError struct {
	msg  string
	errs []error
}

func (e *awsError) Error() string   { return e.msg }
func (e *awsError) Unwrap() []error { return e.errs }

// fail builds an awsError: "SERVICE NOUN ARN: SENTINEL: DETAIL".
func (a *awsRemote) fail(svc awsService, arn string, sentinel, cause error, detail string) error {
	msg := svc.id + " " + svc.noun + " " + arn + ": "
	var errs []error
	if sentinel != nil {
		msg += sentinel.Error()
		errs = append(errs, sentinel)
		switch {
		case strings.HasPrefix(detail, "after "):
			msg += " " // "throttled after 4 tries"
		case detail != "":
			msg += ": "
		}
	}
	msg += detail
	if cause != nil {
		errs = append(errs, cause)
	}
	return &awsError{msg: msg, errs: errs}
}

var (
	notFoundCodes = []string{"ParameterNotFound", "ParameterVersionNotFound", "ResourceNotFoundException", "NoSuchKey", "NoSuchBucket", "NotFound"}
	deniedCodes   = []string{"AccessDeniedException", "AccessDenied", "AllAccessDisabled", "DecryptionFailure"}
	// Codes for credentials the service does not accept.
	credentialCodes = []string{"UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException", "SignatureDoesNotMatch",
		"InvalidAccessKeyId", "ExpiredToken", "ExpiredTokenException", "InvalidToken", "IncompleteSignatureException",
		"MissingAuthenticationTokenException", "AuthFailure", "RequestExpired", "RequestTimeTooSkewed"}
	// performRE finds the refused action in AWS's access denied message.
	performRE = regexp.MustCompile(`not authorized to perform: ([a-z0-9-]+:[A-Za-z0-9*]+)`)
)

// failSDK turns an SDK error into one operator line. Only codes, statuses
// and AWS's own messages are quoted: never a response body.
func (a *awsRemote) failSDK(ctx context.Context, svc awsService, arn string, err error) error {
	if ctx.Err() != nil {
		return a.fail(svc, arn, nil, errors.Join(ctx.Err(), err), "gave up: "+ctx.Err().Error())
	}
	tries := 1
	var maxed *retry.MaxAttemptsError
	if errors.As(err, &maxed) {
		tries = maxed.Attempt
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		code, msg := api.ErrorCode(), clean(api.ErrorMessage())
		status := 0
		var re *awshttp.ResponseError
		if errors.As(err, &re) {
			status = re.HTTPStatusCode()
		}
		codeMsg := code
		if msg != "" {
			codeMsg += ": " + msg
		}
		_, throttle := retry.DefaultThrottleErrorCodes[code]
		switch {
		case slices.Contains(notFoundCodes, code):
			what := svc.noun
			if code == "NoSuchBucket" {
				what = "bucket"
			}
			return a.fail(svc, arn, spec.ErrNotFound, err, fmt.Sprintf("no such %s (%s)", what, code))
		case slices.Contains(deniedCodes, code):
			action := svc.action
			if m := performRE.FindStringSubmatch(msg); m != nil {
				action = m[1]
			} else if code == "DecryptionFailure" {
				action = "kms:Decrypt"
			}
			detail := action + " refused"
			if msg != "" {
				detail += " (" + msg + ")"
			}
			if svc.id == "s3" {
				detail += "; S3 also answers this for a missing key when s3:ListBucket is not allowed"
			}
			return a.fail(svc, arn, spec.ErrAccessDenied, err, detail)
		case throttle || status == 429:
			return a.fail(svc, arn, spec.ErrThrottled, err, fmt.Sprintf("after %d %s (%s)", tries, plural(tries, "try", "tries"), codeMsg))
		case slices.Contains(credentialCodes, code):
			return a.fail(svc, arn, spec.ErrNoCredentials, err, "the service rejected them ("+codeMsg+")")
		case status >= 500:
			return a.fail(svc, arn, nil, err, fmt.Sprintf("service error after %d %s (%s, HTTP %d)", tries, plural(tries, "try", "tries"), codeMsg, status))
		case status != 0:
			return a.fail(svc, arn, nil, err, fmt.Sprintf("%s (HTTP %d)", codeMsg, status))
		}
		return a.fail(svc, arn, nil, err, codeMsg)
	}
	var dec *smithy.DeserializationError
	if errors.As(err, &dec) {
		// The decoder's text can quote the answer, which may be the secret.
		return a.fail(svc, arn, nil, err, "cannot decode the answer")
	}
	var send *smithyhttp.RequestSendError
	if errors.As(err, &send) {
		return a.fail(svc, arn, nil, err, fmt.Sprintf("cannot reach the service after %d %s: %s", tries, plural(tries, "try", "tries"), firstLine(send.Err)))
	}
	return a.fail(svc, arn, nil, err, firstLine(err))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// clean makes AWS's message one short line.
func clean(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
