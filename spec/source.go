package spec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Kind is where a document lives.
type Kind int

const (
	File           Kind = iota + 1 // a local file: a path or a file:// URL
	SSM                            // an SSM Parameter Store parameter ARN
	S3                             // an S3 object ARN
	SecretsManager                 // a Secrets Manager secret ARN (secrets only)
)

func (k Kind) String() string {
	switch k {
	case File:
		return "file"
	case SSM:
		return "ssm"
	case S3:
		return "s3"
	case SecretsManager:
		return "secretsmanager"
	}
	return "unknown"
}

// Mode is what an ECS-style prefix says about the spec.
type Mode int

const (
	AnyMode        Mode = iota // no prefix
	DomainJoined               // "credentialspec:"
	DomainlessMode             // "credentialspecdomainless:"
)

// Source is a parsed credential spec location, e.g.
// "credentialspecdomainless:arn:aws:ssm:us-west-2:123456789012:parameter/gmsa/webapp01".
type Source struct {
	Raw  string // as given, for messages
	Kind Kind
	Mode Mode
	Path string // File: the local path
	ARN  string // SSM, S3, SecretsManager: the ARN
}

func (s Source) String() string { return s.Raw }

// ParseSource parses a credential spec location. It accepts a plain path,
// a file:// URL and SSM or S3 ARNs, each optionally prefixed with
// "credentialspec:" or "credentialspecdomainless:" as in ECS task definitions.
func ParseSource(raw string) (Source, error) {
	s := Source{Raw: raw}
	rest := raw
	switch {
	case strings.HasPrefix(rest, "credentialspecdomainless:"):
		s.Mode, rest = DomainlessMode, strings.TrimPrefix(rest, "credentialspecdomainless:")
	case strings.HasPrefix(rest, "credentialspec:"):
		s.Mode, rest = DomainJoined, strings.TrimPrefix(rest, "credentialspec:")
	}
	if err := s.setLocation(rest); err != nil {
		return Source{}, err
	}
	if s.Kind == SecretsManager {
		return Source{}, fmt.Errorf("credential spec source %q: a Secrets Manager ARN names a secret, not a credential spec; use an SSM parameter, an S3 object or a file", raw)
	}
	return s, nil
}

// ParseSecretSource parses HostAccountConfig.PluginInput.CredentialArn: a
// Secrets Manager ARN, an SSM parameter ARN, a file:// URL or an absolute path.
func ParseSecretSource(raw string) (Source, error) {
	s := Source{Raw: raw}
	if err := s.setLocation(raw); err != nil {
		return Source{}, err
	}
	if s.Kind == S3 {
		return Source{}, fmt.Errorf("secret source %q: S3 objects are not accepted for secrets; use Secrets Manager, SSM SecureString or a root-only file", raw)
	}
	// A relative path would depend on the hook's working directory.
	if s.Kind == File && !filepath.IsAbs(s.Path) {
		return Source{}, fmt.Errorf("secret source %q: want an absolute path", raw)
	}
	return s, nil
}

func (s *Source) setLocation(rest string) error {
	switch {
	case rest == "":
		return fmt.Errorf("source %q: empty location", s.Raw)
	case strings.HasPrefix(rest, "arn:"):
		a, err := SplitARN(rest)
		if err != nil {
			return fmt.Errorf("source %q: %w", s.Raw, err)
		}
		switch {
		case a.Service == "ssm" && strings.HasPrefix(a.Resource, "parameter/"):
			s.Kind = SSM
		case a.Service == "s3" && strings.Contains(a.Resource, "/"):
			s.Kind = S3
		case a.Service == "secretsmanager" && strings.HasPrefix(a.Resource, "secret:"):
			s.Kind = SecretsManager
		default:
			return fmt.Errorf("source %q: unsupported ARN; want arn:aws:ssm:REGION:ACCOUNT:parameter/NAME, arn:aws:s3:::BUCKET/KEY or arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME", s.Raw)
		}
		s.ARN = rest
	case strings.HasPrefix(rest, "file://"):
		path, ok := fileURLPath(rest)
		if !ok {
			return fmt.Errorf("source %q: want file:///absolute/path", s.Raw)
		}
		s.Kind, s.Path = File, path
	case strings.Contains(rest, "://"):
		return fmt.Errorf("source %q: unsupported scheme; want a path, file://, or an SSM or S3 ARN", s.Raw)
	default:
		s.Kind, s.Path = File, rest
	}
	return nil
}

// fileURLPath is the path of file:///PATH or file://localhost/PATH, its
// %XX escapes decoded; ok is false for any other host (user info too), a
// query or fragment (they would silently name another file), an empty
// path, a bad escape or a control character. It accepts what net/url's
// Parse does with that result, and no more (FuzzFileURLPath), without
// net/url, which Go would initialise late with all of net: package warm
// reads labels before that (cmd/gmsa-hook/internal/warm).
func fileURLPath(u string) (path string, ok bool) {
	rest := strings.TrimPrefix(u, "file://")
	host, p, found := strings.Cut(rest, "/")
	if !found || (host != "" && host != "localhost") || strings.ContainsAny(p, "?#") {
		return "", false
	}
	var b strings.Builder
	b.WriteByte('/')
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return "", false
		case c == '%':
			if i+2 >= len(p) || unhex(p[i+1]) < 0 || unhex(p[i+2]) < 0 {
				return "", false
			}
			c = byte(unhex(p[i+1])<<4 | unhex(p[i+2]))
			i += 2
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// ARN is the parsed form of an Amazon Resource Name.
type ARN struct {
	Partition, Service, Region, Account, Resource string
}

// SplitARN returns an ARN's parts.
func SplitARN(s string) (ARN, error) {
	p := strings.SplitN(s, ":", 6)
	if len(p) != 6 || p[0] != "arn" || p[1] == "" || p[2] == "" || p[5] == "" {
		return ARN{}, errors.New("malformed ARN: want arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE")
	}
	return ARN{Partition: p[1], Service: p[2], Region: p[3], Account: p[4], Resource: p[5]}, nil
}

// Conditions of AWS reads that an operator can fix; test with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrAccessDenied  = errors.New("access denied")
	ErrThrottled     = errors.New("throttled")
	ErrNoCredentials = errors.New("no usable AWS credentials")
	ErrParameterType = errors.New("unsupported parameter type")
)

// Remote fetches documents that do not live in local files. The AWS
// implementation lives in this package's aws.go; a nil Remote means only
// local files are available.
type Remote interface {
	// Get returns the document at src (SSM, S3 or Secrets Manager), at most
	// MaxSize bytes.
	Get(ctx context.Context, src Source) ([]byte, error)
}

// ErrNoRemote is returned for AWS sources when no AWS access is configured.
var ErrNoRemote = errors.New("no AWS access configured")

// Read returns the bytes at src.
func Read(ctx context.Context, src Source, remote Remote) ([]byte, error) {
	if src.Kind == File {
		return readFile(src.Path, false)
	}
	if remote == nil {
		return nil, fmt.Errorf("%s: %w", src.Raw, ErrNoRemote)
	}
	return remote.Get(ctx, src)
}

// Load reads and parses the credential spec at src and checks it against
// the source's prefix.
func Load(ctx context.Context, src Source, remote Remote) (*CredSpec, error) {
	b, err := Read(ctx, src, remote)
	if err != nil {
		return nil, err
	}
	return Decode(src, b)
}

// Decode parses the credential spec read from src and checks it against
// the source's prefix.
func Decode(src Source, b []byte) (*CredSpec, error) {
	cs, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("credential spec %s: %w", src.Raw, err)
	}
	switch {
	case src.Mode == DomainlessMode && !cs.Domainless():
		return nil, fmt.Errorf("credential spec %s: %w: the credentialspecdomainless: prefix needs HostAccountConfig in the spec", src.Raw, ErrMalformed)
	case src.Mode == DomainJoined && cs.Domainless():
		return nil, fmt.Errorf("credential spec %s: %w: the spec has HostAccountConfig (domainless) but the prefix is credentialspec:; use credentialspecdomainless: instead", src.Raw, ErrMalformed)
	}
	return cs, nil
}

// ErrInsecureFile marks a secret file that others than its owner can read.
var ErrInsecureFile = errors.New("secret file is readable by others")

// ErrForeignFile marks a secret file owned by another user than root or
// the one running gmsa-hook.
var ErrForeignFile = errors.New("secret file belongs to another user")

// ErrNotRegular marks a source that is not a regular file (a FIFO, a
// device, a directory): reading one could block past the hook's deadline
// or have side effects.
var ErrNotRegular = errors.New("not a regular file")

// openFlags open a file without blocking on a FIFO and without giving the
// opened file to a child.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_CLOEXEC

// readFile reads a local file that root's operator named (a flag, the
// configuration): symlinks are followed, but only a regular file is read.
func readFile(path string, secret bool) ([]byte, error) {
	f, err := os.OpenFile(path, openFlags, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readOpened(f, path, secret)
}

// readOpened checks what f is (a regular file; for a secret, private to
// its owner, root or the user running gmsa-hook) and reads at most MaxSize
// bytes of it. name is how messages call it.
func readOpened(f *os.File, name string, secret bool) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", name, ErrNotRegular)
	}
	if secret {
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%s: %w (mode %04o)", name, ErrInsecureFile, fi.Mode().Perm())
		}
		// Owned by root or by whoever runs gmsa-hook: another user who
		// owns the file could swap the reader's identity.
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
			return nil, fmt.Errorf("%s: %w (uid %d)", name, ErrForeignFile, st.Uid)
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, MaxSize)
	}
	return b, nil
}
