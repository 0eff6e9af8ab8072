package awsfake

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// IMDS is a fake EC2 instance metadata service (IMDSv2) that hands out an
// instance profile's temporary credentials, which the fakes accept. Point
// the SDK at it with AWS_EC2_METADATA_SERVICE_ENDPOINT=URL.
type IMDS struct {
	URL  string
	Role string
	// Credentials the instance profile hands out.
	Credentials aws.Credentials

	mu       sync.Mutex
	requests int
}

const imdsToken = "gmsa-hook-fake-imds-token"

// StartIMDS serves a fake IMDS until the test ends; requests signed with its
// credentials are accepted by f.
func (f *Fakes) StartIMDS(t testing.TB) *IMDS {
	t.Helper()
	m := &IMDS{
		Role: "gmsa-hook-instance-role",
		Credentials: aws.Credentials{
			AccessKeyID:     "ASIAGMSAHOOKIMDS0001",
			SecretAccessKey: "gmsa-hook/test/imds/secret/key/000000001",
			SessionToken:    "gmsa-hook-test-imds-session-token",
		},
	}
	f.AddCredentials(m.Credentials)
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	m.URL = srv.URL
	return m
}

// Requests is how many requests reached the fake IMDS.
func (m *IMDS) Requests() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests
}

func (m *IMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.requests++
	m.mu.Unlock()
	if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
		if r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == "" {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
		w.Write([]byte(imdsToken))
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-Aws-Ec2-Metadata-Token") != imdsToken {
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	const creds = "/latest/meta-data/iam/security-credentials/"
	switch r.URL.Path {
	case creds:
		w.Write([]byte(m.Role))
	case creds + m.Role:
		json.NewEncoder(w).Encode(map[string]string{
			"Code":            "Success",
			"LastUpdated":     time.Now().UTC().Format(time.RFC3339),
			"Type":            "AWS-HMAC",
			"AccessKeyId":     m.Credentials.AccessKeyID,
			"SecretAccessKey": m.Credentials.SecretAccessKey,
			"Token":           m.Credentials.SessionToken,
			"Expiration":      time.Now().Add(6 * time.Hour).UTC().Format(time.RFC3339),
		})
	case "/latest/meta-data/placement/region":
		w.Write([]byte(Region))
	default:
		http.NotFound(w, r)
	}
}
