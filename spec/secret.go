package spec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Secret is a domainless reader's credentials: a standard AD user allowed to
// retrieve the gMSA's managed password.
type Secret struct {
	Username   string
	Password   string
	DomainName string
	// DistinguishedName of the gMSA, when given, skips looking it up.
	DistinguishedName string
}

// String never reveals the password.
func (s Secret) String() string {
	return fmt.Sprintf("secret{user %q, domain %q}", s.Username, s.DomainName)
}

// GoString never reveals the password.
func (s Secret) GoString() string { return s.String() }

// ParseSecret decodes the JSON ECS and credentials-fetcher use:
// {"username","password","domainName"} or
// {"usernameOfStandardUserAccount","passwordOfStandardUserAccount","domainName"},
// with an optional "distinguishedName" of the gMSA. Errors name the missing
// key and never quote the document.
func ParseSecret(data []byte) (Secret, error) {
	var raw struct {
		Username          string `json:"username"`
		Password          string `json:"password"`
		UsernameStd       string `json:"usernameOfStandardUserAccount"`
		PasswordStd       string `json:"passwordOfStandardUserAccount"`
		DomainName        string `json:"domainName"`
		DistinguishedName string `json:"distinguishedName"`
	}
	if len(data) > MaxSize {
		return Secret{}, fmt.Errorf("%w: secret larger than %d bytes", ErrMalformed, MaxSize)
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		// The error text of encoding/json can quote input: keep only its kind.
		return Secret{}, fmt.Errorf("%w: secret is not a JSON object with string values", ErrMalformed)
	}
	s := Secret{
		Username:          first(raw.Username, raw.UsernameStd),
		Password:          first(raw.Password, raw.PasswordStd),
		DomainName:        strings.TrimSuffix(raw.DomainName, "."),
		DistinguishedName: raw.DistinguishedName,
	}
	// "CORP\user" and "user@corp" name the same account as "user". This
	// comes before the checks so that "CORP\" is no user at all.
	if i := strings.LastIndexByte(s.Username, '\\'); i >= 0 {
		s.Username = s.Username[i+1:]
	}
	if i := strings.IndexByte(s.Username, '@'); i >= 0 {
		s.Username = s.Username[:i]
	}
	switch {
	case s.Username == "":
		return Secret{}, fmt.Errorf("%w: secret has no \"username\" (or \"usernameOfStandardUserAccount\")", ErrMalformed)
	case s.Password == "":
		return Secret{}, fmt.Errorf("%w: secret has no \"password\" (or \"passwordOfStandardUserAccount\")", ErrMalformed)
	case s.DomainName == "":
		return Secret{}, fmt.Errorf("%w: secret has no \"domainName\"", ErrMalformed)
	}
	return s, nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// LoadSecret reads and parses the secret at src. A local file must not be
// readable by group or others.
func LoadSecret(ctx context.Context, src Source, remote Remote) (Secret, error) {
	var b []byte
	var err error
	if src.Kind == File {
		b, err = readFile(src.Path, true)
	} else {
		b, err = Read(ctx, src, remote)
	}
	if err != nil {
		return Secret{}, err
	}
	s, err := ParseSecret(b)
	if err != nil {
		return Secret{}, fmt.Errorf("secret %s: %w", src.Raw, err)
	}
	return s, nil
}
