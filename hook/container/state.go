// Package container is what gmsa-hook knows of a container before it does
// anything: the OCI state a runtime writes on a hook's stdin, the part of
// the bundle's config.json the hook reads, the credentialspec label as
// files show it, and the container's directory under the run directory.
//
// It imports nothing beyond the standard library's basics, so that a hook
// run for a container without the label can decide so (QuickRun) before the
// rest of gmsa-hook (AWS SDK, LDAP, Kerberos) is even initialised.
package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// ErrState marks standard input that is not an OCI container state.
var ErrState = errors.New("not an OCI container state")

// ErrBundle marks a bundle config.json the hook cannot use.
var ErrBundle = errors.New("unusable bundle config.json")

// State is the part of the OCI state (runtime-spec "State") the hook uses.
// Runtimes write it on the hook's standard input at every stage.
type State struct {
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// MaxState bounds what is read from stdin and from a bundle: a runtime's
// state is a few hundred bytes, a config.json a few kilobytes.
const MaxState = 1 << 20

// ValidID reports whether id can name a per-container directory: runc's
// rule for container IDs ([A-Za-z0-9_+.-]+, which every runtime we support
// follows), never "." or "..", and at most 255 bytes, one path element.
// (A loop, not a regexp: nothing is compiled at start-up.)
func ValidID(id string) bool {
	if id == "" || len(id) > 255 || id == "." || id == ".." {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '_' || c == '+' || c == '-' || c == '.':
		default:
			return false
		}
	}
	return true
}

// ReadState reads a container state from r, a hook's stdin: at most
// MaxState bytes, then ParseState.
func ReadState(r io.Reader) (*State, error) {
	b, tooLarge, err := readBounded(r)
	if err != nil {
		return nil, err
	}
	if tooLarge {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrState, MaxState)
	}
	return ParseState(b)
}

// readBounded reads r to its end, or to one byte past MaxState, which it
// reports as tooLarge.
func readBounded(r io.Reader) (b []byte, tooLarge bool, err error) {
	b, err = io.ReadAll(io.LimitReader(r, MaxState+1))
	if err != nil {
		return nil, false, err
	}
	return b, len(b) > MaxState, nil
}

// ParseState reads a container state. The ID must be valid and the bundle
// an absolute path.
func ParseState(b []byte) (*State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrState, JSONProblem(err))
	}
	if s.ID == "" {
		return nil, fmt.Errorf("%w: no container id", ErrState)
	}
	if !ValidID(s.ID) {
		return nil, fmt.Errorf("%w: container id %q is not [A-Za-z0-9_+.-]+", ErrState, Short(s.ID))
	}
	if s.Bundle == "" || !path.IsAbs(s.Bundle) {
		return nil, fmt.Errorf("%w: bundle %q is not an absolute path", ErrState, s.Bundle)
	}
	if s.Pid < 0 {
		return nil, fmt.Errorf("%w: negative pid %d", ErrState, s.Pid)
	}
	s.Bundle = path.Clean(s.Bundle)
	return &s, nil
}

// Config is the part of a bundle's config.json (runtime-spec "Spec") the
// hook uses: where the rootfs is, the annotations, the process user, the
// mounts (Docker's labels are found through them) and the user namespace.
type Config struct {
	Root        *Root             `json:"root,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Process     *Process          `json:"process,omitempty"`
	Mounts      []Mount           `json:"mounts,omitempty"`
	Linux       *Linux            `json:"linux,omitempty"`
}

// Root is config.json's root.
type Root struct {
	Path     string `json:"path"`
	Readonly bool   `json:"readonly,omitempty"`
}

// Process is config.json's process, as far as the user goes.
type Process struct {
	User User `json:"user"`
}

// User is the container process's user.
type User struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// Mount is one of config.json's mounts.
type Mount struct {
	Destination string `json:"destination"`
	Type        string `json:"type,omitempty"`
	Source      string `json:"source,omitempty"`
}

// Linux is config.json's linux section, as far as users go.
type Linux struct {
	UIDMappings []IDMapping `json:"uidMappings,omitempty"`
	GIDMappings []IDMapping `json:"gidMappings,omitempty"`
	Namespaces  []Namespace `json:"namespaces,omitempty"`
}

// IDMapping maps Size IDs from ContainerID in the container to HostID.
type IDMapping struct {
	ContainerID uint32 `json:"containerID"`
	HostID      uint32 `json:"hostID"`
	Size        uint32 `json:"size"`
}

// Namespace is one of linux.namespaces.
type Namespace struct {
	Type string `json:"type"`
	Path string `json:"path,omitempty"`
}

// ParseConfig reads a bundle's config.json.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBundle, JSONProblem(err))
	}
	return &c, nil
}

// Rootfs is the host path of the container's root file system: root.path,
// taken relative to the bundle unless absolute. It does not depend on the
// hook's working directory, which runc sets to the rootfs and crun to the
// bundle at createContainer.
func (c *Config) Rootfs(bundle string) (string, error) {
	if c.Root == nil || c.Root.Path == "" {
		return "", fmt.Errorf("%w: no root.path", ErrBundle)
	}
	if path.IsAbs(c.Root.Path) {
		return path.Clean(c.Root.Path), nil
	}
	return path.Join(bundle, c.Root.Path), nil
}

// userNamespace reports whether the container gets a user namespace.
func (c *Config) userNamespace() bool {
	if c.Linux == nil {
		return false
	}
	for _, ns := range c.Linux.Namespaces {
		if ns.Type == "user" {
			return true
		}
	}
	return false
}

// JSONProblem makes encoding/json's messages fit in one operator line.
func JSONProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("key %q: want %s", te.Field, te.Type)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// Short is how an operator sees a container ID: the 12 characters Docker,
// containerd and Kubernetes show of a 64-digit hex ID; other names whole.
func Short(id string) string {
	if len(id) != 64 {
		return id
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return id
		}
	}
	return id[:12]
}
