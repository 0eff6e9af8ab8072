package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Key is the annotation or label that names a container's credential spec,
// e.g. credentialspec=file:///etc/gmsa/webapp01.json.
const Key = "credentialspec"

// Where a credential spec source was found.
const (
	FromState      = "state annotation"
	FromConfig     = "config.json annotation"
	FromDocker     = "docker label"
	FromContainerd = "containerd label"
)

// labelled is a container's credential spec source and where it came from.
type labelled struct {
	Source string
	Origin string
}

// find looks for the credential spec, cheapest place first, and stops at
// the first answer: the state's annotations (runc copies config.json's
// there), config.json's, Docker's labels (config.v2.json, only when the
// mounts say Docker) and containerd's labels (only when the bundle path
// says containerd). An empty value is no label.
func (r *Request) find(ctx context.Context, st *State, cfg *Config) (labelled, error) {
	if v := st.Annotations[Key]; v != "" {
		return labelled{v, FromState}, nil
	}
	if v := cfg.Annotations[Key]; v != "" {
		return labelled{v, FromConfig}, nil
	}
	if dir, ok := dockerContainerDir(cfg); ok {
		labels, found, err := dockerLabels(dir, st.ID)
		if err != nil {
			return labelled{}, err
		}
		if found {
			// Docker keeps its labels out of containerd: do not ask it.
			return labelled{labels[Key], FromDocker}, nil
		}
	}
	if ns, ok := containerdNamespace(st.Bundle, st.ID); ok {
		addr := r.ContainerdAddress
		if addr == "" {
			addr = shimAddress()
		}
		labels, err := containerdLabels(ctx, addr, ns, st.ID)
		if err != nil {
			return labelled{}, err
		}
		return labelled{labels[Key], FromContainerd}, nil
	}
	return labelled{}, nil
}

// dockerContainerDir is Docker's directory for the container
// (<data-root>/containers/<id>), the parent of the source of the
// /etc/hostname mount, which only Docker makes that way.
func dockerContainerDir(cfg *Config) (string, bool) {
	for _, m := range cfg.Mounts {
		if m.Destination == "/etc/hostname" && filepath.IsAbs(m.Source) && filepath.Base(m.Source) == "hostname" {
			return filepath.Dir(m.Source), true
		}
	}
	return "", false
}

// dockerLabels reads the labels of a Docker container from its
// config.v2.json. Asking the Docker API instead would deadlock: dockerd
// holds the container's lock while the runtime runs the hooks. found is
// false when dir holds no config.v2.json of this container.
func dockerLabels(dir, id string) (labels map[string]string, found bool, err error) {
	path := filepath.Join(dir, "config.v2.json")
	b, err := readSmall(path)
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read docker labels: %w", err)
	}
	c, err := parseDockerConfig(b)
	if err != nil {
		return nil, false, fmt.Errorf("read docker labels from %s: %w", path, err)
	}
	if c.ID != id {
		return nil, false, nil
	}
	return c.Config.Labels, true, nil
}

// dockerConfig is the part of Docker's config.v2.json the hook reads.
type dockerConfig struct {
	ID     string `json:"ID"`
	Config struct {
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
}

func parseDockerConfig(b []byte) (*dockerConfig, error) {
	var c dockerConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%v", jsonProblem(err))
	}
	return &c, nil
}

// containerdNamespace tells a bundle made by containerd's runtime v2 shim,
// <state>/io.containerd.runtime.v2.task/<namespace>/<id>, and its namespace.
func containerdNamespace(bundle, id string) (string, bool) {
	dir, base := filepath.Split(bundle)
	if base != id {
		return "", false
	}
	dir, ns := filepath.Split(filepath.Clean(dir))
	if filepath.Base(dir) != "io.containerd.runtime.v2.task" || ns == "" {
		return "", false
	}
	return ns, true
}

// DefaultContainerdAddress is containerd's socket when no other is known.
const DefaultContainerdAddress = "/run/containerd/containerd.sock"

// shimAddress is the containerd socket the container's shim talks to: the
// shim (containerd-shim-runc-v2 -namespace NS -id ID -address SOCKET) is the
// runtime's parent, and the runtime is the hook's parent. It falls back to
// containerd's default socket.
func shimAddress() string {
	pid := os.Getppid()
	for range 3 {
		if pid <= 1 {
			break
		}
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
			args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
			if strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
				for i, a := range args {
					if (a == "-address" || a == "--address") && i+1 < len(args) {
						return args[i+1]
					}
					if v, ok := strings.CutPrefix(a, "-address="); ok {
						return v
					}
				}
			}
		}
		pid = parentOf(pid)
	}
	return DefaultContainerdAddress
}

// parentOf reads a process's parent from /proc/PID/stat, or 0.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	var state byte
	var ppid int
	if _, err := fmt.Sscanf(string(b[i+1:]), " %c %d", &state, &ppid); err != nil {
		return 0
	}
	return ppid
}

// readSmall reads a file of at most maxState bytes.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxState+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxState {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxState)
	}
	return b, nil
}
