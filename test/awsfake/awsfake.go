// Package awsfake serves fakes of the three AWS services gmsa-hook reads
// credential specs and secrets from: SSM Parameter Store and Secrets Manager
// (awsJson1.1, GetParameter and GetSecretValue) and S3 (REST, through
// github.com/johannesboyne/gofakes3 with its in-memory backend). Every
// request must carry a valid SigV4 signature made with known credentials:
// the fakes re-sign each request with the SDK's own signer and compare.
// Errors come back in the shape and with the status AWS uses, and faults
// (throttling, access denied, 5xx) can be queued to test retries.
//
// From a Go test:
//
//	f := awsfake.Start(t, awsfake.Options{})
//	arn := f.SSM.Put("/gmsa/webapp01", awsfake.String, credspecJSON)
//	f.SetEnv(t) // AWS_ENDPOINT_URL, fake credentials, no IMDS
//
// From a shell script, the command in ./cmd/awsfake does the same.
package awsfake

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// The credentials, region and account every fake accepts unless told
// otherwise. They are test values, not secrets.
const (
	AccessKeyID     = "AKIAGMSAHOOKTEST0001"
	SecretAccessKey = "gmsa-hook/test/secret/access/key/0000001"
	Region          = "us-west-2"
	Account         = "111122223333"
)

// Options configures the fakes. The zero value is usable.
type Options struct {
	// Region of SSM and Secrets Manager: requests must be signed for it
	// and ARNs are built with it. Default Region.
	Region string
	// S3Region is the region of every bucket; a request signed for another
	// region gets AWS's redirect answer. Default Region.
	S3Region string
	// Account in ARNs. Default Account.
	Account string
	// Credentials accepted besides AccessKeyID/SecretAccessKey.
	Credentials []aws.Credentials
}

// Fakes is a running set of fakes behind one endpoint: requests with an
// X-Amz-Target header go to SSM or Secrets Manager, the rest to S3.
type Fakes struct {
	// URL is the base endpoint of all three services (AWS_ENDPOINT_URL).
	URL string

	SSM            *SSM
	SecretsManager *SecretsManager
	S3             *S3

	keys   *keyring
	server *httptest.Server
}

// New returns fakes that are not yet listening; serve Handler yourself (the
// command does) or use Start.
func New(opts Options) *Fakes {
	if opts.Region == "" {
		opts.Region = Region
	}
	if opts.S3Region == "" {
		opts.S3Region = opts.Region
	}
	if opts.Account == "" {
		opts.Account = Account
	}
	keys := &keyring{creds: map[string]aws.Credentials{}}
	keys.add(aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey})
	for _, c := range opts.Credentials {
		keys.add(c)
	}
	return &Fakes{
		SSM:            newSSM(opts.Region, opts.Account, keys),
		SecretsManager: newSecretsManager(opts.Region, opts.Account, keys),
		S3:             newS3(opts.S3Region, keys),
		keys:           keys,
	}
}

// Start serves the fakes on 127.0.0.1 until the test ends.
func Start(t testing.TB, opts Options) *Fakes {
	t.Helper()
	f := New(opts)
	f.server = httptest.NewServer(f.Handler())
	f.URL = f.server.URL
	t.Cleanup(f.server.Close)
	return f
}

// Handler routes a request to the service it is for.
func (f *Fakes) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.Header.Get("X-Amz-Target")
		switch {
		case strings.HasPrefix(target, "AmazonSSM."):
			f.SSM.ServeHTTP(w, r)
		case strings.HasPrefix(target, "secretsmanager."):
			f.SecretsManager.ServeHTTP(w, r)
		case target != "":
			writeJSONError(w, http.StatusBadRequest, "UnknownOperationException", "")
		default:
			f.S3.ServeHTTP(w, r)
		}
	})
}

// AddCredentials makes the fakes accept requests signed with c (and, when
// c has one, carrying its session token).
func (f *Fakes) AddCredentials(c aws.Credentials) { f.keys.add(c) }

// Env is the environment that points the AWS SDK and CLI at the fakes with
// the default test credentials, and keeps them away from IMDS and from the
// user's own AWS files.
func (f *Fakes) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL":            f.URL,
		"AWS_ACCESS_KEY_ID":           AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       SecretAccessKey,
		"AWS_REGION":                  f.SSM.region,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
	}
}

// SetEnv sets Env for the rest of the test (not in parallel tests).
func (f *Fakes) SetEnv(t testing.TB) {
	t.Helper()
	for k, v := range f.Env() {
		t.Setenv(k, v)
	}
}

// keyring holds the credentials the fakes accept, by access key ID.
type keyring struct {
	mu    sync.Mutex
	creds map[string]aws.Credentials
}

func (k *keyring) add(c aws.Credentials) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.creds[c.AccessKeyID] = c
}

func (k *keyring) get(id string) (aws.Credentials, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.creds[id]
	return c, ok
}
