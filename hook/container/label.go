package container

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
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

// Label is a container's credential spec source and where it came from.
type Label struct {
	Source string
	Origin string
	// Labels are all the Docker or containerd labels of the container,
	// when the source came from them (the policy may match on them).
	Labels map[string]string
}

// LabelFromFiles looks for the credential spec where files say it, cheapest
// place first, and stops at the first answer: the state's annotations (runc
// copies config.json's there), config.json's, and Docker's labels
// (config.v2.json, only when the mounts say Docker). An empty value is no
// label. decided is false for a container of containerd (the bundle path
// says so) that has none of these: only containerd knows its labels.
func LabelFromFiles(st *State, cfg *Config) (lab Label, decided bool, err error) {
	if v := st.Annotations[Key]; v != "" {
		return Label{Source: v, Origin: FromState}, true, nil
	}
	if v := cfg.Annotations[Key]; v != "" {
		return Label{Source: v, Origin: FromConfig}, true, nil
	}
	if dir, ok := dockerContainerDir(cfg); ok {
		labels, found, err := dockerLabels(dir, st.ID)
		if err != nil {
			return Label{}, true, err
		}
		if found {
			// Docker keeps its labels out of containerd: do not ask it.
			return Label{Source: labels[Key], Origin: FromDocker, Labels: labels}, true, nil
		}
	}
	if _, ok := ContainerdNamespace(st.Bundle, st.ID); ok {
		return Label{}, false, nil
	}
	return Label{}, true, nil
}

// DockerLabels are a Docker container's labels (config.v2.json), when the
// bundle is Docker's; nil otherwise. The policy matches on them (the ECS
// agent's com.amazonaws.ecs.* labels) whichever place named the spec.
func DockerLabels(st *State, cfg *Config) map[string]string {
	dir, ok := dockerContainerDir(cfg)
	if !ok {
		return nil
	}
	labels, found, err := dockerLabels(dir, st.ID)
	if err != nil || !found {
		return nil
	}
	return labels
}

// dockerContainerDir is Docker's directory for the container
// (<data-root>/containers/<id>), the parent of the source of the
// /etc/hostname mount, which only Docker makes that way.
func dockerContainerDir(cfg *Config) (string, bool) {
	for _, m := range cfg.Mounts {
		if m.Destination == "/etc/hostname" && path.IsAbs(m.Source) && path.Base(m.Source) == "hostname" {
			return path.Dir(m.Source), true
		}
	}
	return "", false
}

// dockerLabels reads the labels of a Docker container from its
// config.v2.json. Asking the Docker API instead would deadlock: dockerd
// holds the container's lock while the runtime runs the hooks. found is
// false when dir holds no config.v2.json of this container.
func dockerLabels(dir, id string) (labels map[string]string, found bool, err error) {
	file := path.Join(dir, "config.v2.json")
	b, err := ReadSmall(file)
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read docker labels: %w", err)
	}
	c, err := parseDockerConfig(b)
	if err != nil {
		return nil, false, fmt.Errorf("read docker labels from %s: %w", file, err)
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
		return nil, fmt.Errorf("%v", JSONProblem(err))
	}
	return &c, nil
}

// ContainerdNamespace tells a bundle made by containerd's runtime v2 shim,
// <state>/io.containerd.runtime.v2.task/<namespace>/<id>, and its namespace.
func ContainerdNamespace(bundle, id string) (string, bool) {
	dir, base := path.Split(bundle)
	if base != id {
		return "", false
	}
	dir, ns := path.Split(path.Clean(dir))
	if path.Base(dir) != "io.containerd.runtime.v2.task" || ns == "" {
		return "", false
	}
	return ns, true
}

// ReadSmall reads a file of at most MaxState bytes.
func ReadSmall(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, tooLarge, err := readBounded(f)
	if err != nil {
		return nil, err
	}
	if tooLarge {
		return nil, fmt.Errorf("%s is larger than %d bytes", file, MaxState)
	}
	return b, nil
}
