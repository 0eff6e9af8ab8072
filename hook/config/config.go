// Package config is gmsa-hook's configuration file: one JSON object, read
// the same way by every part of the program (the hook's quick path, the full
// hook run, fetch and policy check). It imports only the standard library,
// so the quick path can read run_dir before anything heavy is initialised.
//
// Unknown keys are errors, and every error names the key. Defaults are
// applied by the ...OrDefault methods, once, where a value is used.
//
// The quick path (cmd/gmsa-hook/internal/quick) imports this package and
// must be initialised before crypto/tls and net/http: Go initialises
// packages in import-path order as their imports are ready, so an import of
// a package that sorts after "github.com/" and is not already needed
// (net/url, path/filepath) would delay it. TestUnlabelledRunSkipsHeavyInit
// guards this.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Config is gmsa-hook's configuration file (JSON). Runtimes start hooks with
// no environment, so everything a hook needs can be set here.
type Config struct {
	// DomainControllers, when set, are used instead of DNS SRV records and
	// krb5.conf: host names (the LDAP service principal is ldap/<name>).
	DomainControllers []string `json:"domain_controllers,omitempty"`
	// DNSServer ("host:port") answers SRV and host lookups instead of the
	// system resolver.
	DNSServer string `json:"dns_server,omitempty"`
	// KRB5Conf is read for the realm's kdc entries when DNS has no SRV
	// records. Default: $KRB5_CONFIG, else /etc/krb5.conf.
	KRB5Conf string `json:"krb5_conf,omitempty"`
	// Keytab holds the host's machine account keys for domain-joined specs.
	// Default /etc/krb5.keytab.
	Keytab string `json:"keytab,omitempty"`
	// KeytabPrincipal picks the keytab entry; default the first machine
	// principal (one ending in "$").
	KeytabPrincipal string `json:"keytab_principal,omitempty"`
	// Timeout bounds one whole fetch. Default 20s.
	Timeout Duration `json:"timeout,omitempty"`
	// LDAPS reads the password over TLS on port 636 instead of a sealed
	// SASL layer on 389.
	LDAPS bool `json:"ldaps,omitempty"`
	// LDAPSCAFile verifies the DC's certificate; default the system roots.
	LDAPSCAFile string `json:"ldaps_ca_file,omitempty"`
	// LDAPSecurity is the SASL layer on 389: "seal" (default; what AD and
	// Samba require), or "sign" and "none", which exist only to diagnose a
	// DC's policy: AD refuses to send the password over them.
	LDAPSecurity string `json:"ldap_security,omitempty"`
	// AllowRC4 lets logins request and use RC4-HMAC (etype 23) keys. Off
	// by default: a KDC, or an attacker posing as one, that asks for RC4
	// would get a pre-authentication timestamp far cheaper to crack than
	// an AES one. Only for domains whose accounts have no AES keys.
	AllowRC4 bool `json:"allow_rc4,omitempty"`
	// TicketLifetime and RenewLifetime are requested for the gMSA's ticket;
	// the domain's policy may shorten them. Defaults 10h and 7 days.
	TicketLifetime Duration `json:"ticket_lifetime,omitempty"`
	RenewLifetime  Duration `json:"renew_lifetime,omitempty"`
	// RenewThreshold: a ticket ending sooner than this is renewed by the
	// renewal pass, and a cached ticket is handed to a new container only
	// when it is valid for longer. Default DefaultRenewThreshold.
	RenewThreshold Duration `json:"renew_threshold,omitempty"`
	// RunDir is where the hook keeps per-container tickets (a tmpfs).
	// Default /run/gmsa-hook.
	RunDir string `json:"run_dir,omitempty"`
	// LogFile, when set, receives one structured JSON line per hook run and
	// per fetch, with where the time went.
	LogFile string `json:"log_file,omitempty"`
	// AWS configures SSM, S3 and Secrets Manager access.
	AWS AWS `json:"aws,omitempty"`
	// Policy says what a container's label may name; see Policy. PolicyFile
	// names a file holding the same object instead.
	Policy     *Policy `json:"policy,omitempty"`
	PolicyFile string  `json:"policy_file,omitempty"`
}

// Defaults.
const (
	DefaultTimeout = 20 * time.Second
	DefaultKeytab  = "/etc/krb5.keytab"
	DefaultRunDir  = "/run/gmsa-hook"
	// DefaultRenewThreshold is what credentials-fetcher uses too: with the
	// renewal timer every 5 minutes, a ticket gets a dozen tries before it
	// ends, so a domain controller down for less than an hour costs no
	// container its ticket, and a new container always gets at least an
	// hour from the cache.
	DefaultRenewThreshold = time.Hour
)

// Duration is a time.Duration written as "20s" in JSON.
type Duration time.Duration

// UnmarshalJSON parses "1m30s" forms; null leaves d as it is.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	// The errors are *json.UnmarshalTypeError so that encoding/json adds
	// the key's name; configProblem prints Value as the problem.
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: `want a duration string such as "20s"`, Type: durationType}
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return &json.UnmarshalTypeError{Value: fmt.Sprintf(`%q is not a positive duration such as "20s"`, s), Type: durationType}
	}
	*d = Duration(v)
	return nil
}

var durationType = reflect.TypeFor[Duration]()

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// ErrConfig marks an unusable configuration file.
var ErrConfig = errors.New("bad configuration")

// Load reads a configuration file; unknown keys are errors.
func Load(path string) (Config, error) {
	var c Config
	f, err := os.Open(path)
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config %s: %w: %s", path, ErrConfig, configProblem(err))
	}
	if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) > 0 {
		return c, fmt.Errorf("config %s: %w: trailing data after the JSON object", path, ErrConfig)
	}
	if err := c.validate(); err != nil {
		return c, fmt.Errorf("config %s: %w: %v", path, ErrConfig, err)
	}
	if c.PolicyFile != "" {
		if c.Policy != nil {
			return c, fmt.Errorf("config %s: %w: keys \"policy\" and \"policy_file\" exclude each other", path, ErrConfig)
		}
		p, err := LoadPolicy(c.PolicyFile)
		if err != nil {
			return c, fmt.Errorf("config %s: key \"policy_file\": %w", path, err)
		}
		c.Policy = p
	}
	return c, nil
}

// decodeStrict decodes one JSON object with unknown keys refused.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New(configProblem(err))
	}
	if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) > 0 {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// QuickSettings is what a hook run that may have nothing to do reads of the
// file: run_dir, and whether a debug log is asked for. It reads leniently
// (no other key is checked): a mistake elsewhere in the file must not stop
// containers that never use that key; the full run reports it. ok is false
// when the file cannot be read or parsed.
func QuickSettings(path string, read func(string) ([]byte, error)) (runDir string, logFile bool, ok bool) {
	if path == "" {
		return DefaultRunDir, false, true
	}
	b, err := read(path)
	if err != nil {
		return "", false, false
	}
	var c struct {
		RunDir  string `json:"run_dir"`
		LogFile string `json:"log_file"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", false, false
	}
	c2 := Config{RunDir: c.RunDir}
	return c2.RunDirOrDefault(), c.LogFile != "", true
}

func configProblem(err error) string {
	msg := err.Error()
	if k, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown key " + k
	}
	if errors.Is(err, io.EOF) {
		return "empty file"
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		switch {
		case te.Field == "":
			return "want a JSON object"
		case te.Type == durationType:
			return fmt.Sprintf("key %q: %s", te.Field, te.Value)
		}
		return fmt.Sprintf("key %q: want %s", te.Field, te.Type)
	}
	if strings.Contains(msg, "Go struct field") || strings.HasPrefix(msg, "json: ") {
		return strings.TrimPrefix(msg, "json: ")
	}
	return msg
}

func (c *Config) validate() error {
	switch c.LDAPSecurity {
	case "", "seal", "sign", "none":
	default:
		return fmt.Errorf("key \"ldap_security\": %q is not one of seal, sign, none", c.LDAPSecurity)
	}
	if err := c.AWS.Validate(); err != nil {
		return fmt.Errorf("key \"aws\": %w", err)
	}
	if c.Policy != nil {
		if err := c.Policy.validate(); err != nil {
			return fmt.Errorf("key \"policy\": %w", err)
		}
	}
	return nil
}

func (c *Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return time.Duration(c.Timeout)
	}
	return DefaultTimeout
}

// TimeoutOrDefault is the whole-fetch deadline.
func (c *Config) TimeoutOrDefault() time.Duration { return c.timeout() }

// RenewThresholdOrDefault is the renewal threshold.
func (c *Config) RenewThresholdOrDefault() time.Duration {
	if c.RenewThreshold > 0 {
		return time.Duration(c.RenewThreshold)
	}
	return DefaultRenewThreshold
}

// KRB5ConfOrDefault is the krb5.conf read for realms and KDCs: krb5_conf,
// else $KRB5_CONFIG, else /etc/krb5.conf.
func (c *Config) KRB5ConfOrDefault() string {
	if c.KRB5Conf != "" {
		return c.KRB5Conf
	}
	if p := os.Getenv("KRB5_CONFIG"); p != "" {
		return p
	}
	return "/etc/krb5.conf"
}

// RunDirOrDefault is where per-container tickets live.
func (c *Config) RunDirOrDefault() string {
	if c.RunDir != "" {
		return c.RunDir
	}
	return DefaultRunDir
}

// AWS is the "aws" section of gmsa-hook's configuration file. The hook
// runs with no environment, so everything the SDK would otherwise take from
// AWS_* variables can be given here; when the variables are set (as for the
// CLI) the SDK still honours them, and these settings win.
type AWS struct {
	// Profile in the shared config and credentials files ("" for the
	// default profile, or AWS_PROFILE).
	Profile string `json:"profile,omitempty"`
	// Region for S3, and for SSM and Secrets Manager ARNs that name none.
	// SSM and Secrets Manager ARNs carry their own region.
	Region string `json:"region,omitempty"`
	// Endpoints overrides the base URL of "ssm", "s3" and "secretsmanager",
	// e.g. for a VPC endpoint or a test fake. S3 is then addressed path-style.
	Endpoints map[string]string `json:"endpoints,omitempty"`
	// MaxAttempts per request, retries of throttling and 5xx answers
	// included (default: the SDK reader's, or AWS_MAX_ATTEMPTS).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// S3MaxSize bounds an S3 object (default: a credential spec's limit).
	S3MaxSize int64 `json:"s3_max_size,omitempty"`
	// ConfigFiles and CredentialsFiles replace the SDK's default shared
	// files (~/.aws/config and ~/.aws/credentials of the user running the
	// hook, or AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE).
	ConfigFiles      []string `json:"config_files,omitempty"`
	CredentialsFiles []string `json:"credentials_files,omitempty"`
}

// awsServices are the keys of AWS.Endpoints.
var awsServices = []string{"s3", "secretsmanager", "ssm"}

// Validate checks the settings without touching files or the network.
func (c AWS) Validate() error {
	for k, v := range c.Endpoints {
		if !slices.Contains(awsServices, k) {
			return fmt.Errorf("aws: endpoints: unknown service %q; want ssm, s3 or secretsmanager", k)
		}
		// A scheme and a host; package config stays free of net/url (see
		// the package comment).
		rest, ok := strings.CutPrefix(v, "https://")
		if !ok {
			rest, ok = strings.CutPrefix(v, "http://")
		}
		if host, _, _ := strings.Cut(rest, "/"); !ok || host == "" || strings.ContainsAny(host, " \t") {
			return fmt.Errorf("aws: endpoints: %s: %q is not an http(s) URL", k, v)
		}
	}
	if c.MaxAttempts < 0 || c.MaxAttempts > 20 {
		return fmt.Errorf("aws: max_attempts: %d is not between 1 and 20", c.MaxAttempts)
	}
	if c.S3MaxSize < 0 {
		return fmt.Errorf("aws: s3_max_size: %d is negative", c.S3MaxSize)
	}
	return nil
}
