package install

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

// ContainerdHandler is the runtime handler (and Kubernetes RuntimeClass
// handler) install adds to containerd's CRI plugin.
const ContainerdHandler = "gmsa"

// Markers around gmsa-hook's block in config.toml.
const (
	tomlBegin = "# BEGIN gmsa-hook: written by gmsa-hook install, removed by gmsa-hook uninstall\n"
	tomlEnd   = "# END gmsa-hook\n"
)

// containerd writes a runtime handler "gmsa" into containerd's config.toml:
// the runc v2 shim with BinaryName the wrapper, passing the credentialspec
// pod and container annotations through (the route of Kubernetes'
// RuntimeClass "gmsa", and of any CRI client).
//
// The file is edited, not re-encoded: gmsa-hook's tables go in one block
// between markers at the end, every other byte (comments, order, spacing,
// keys gmsa-hook does not know) stays as written, and uninstall removes the
// block. go-toml parses the file before and after, and the result must
// mean exactly the original plus gmsa-hook's keys (minus them, for
// uninstall): a file that defines the handler itself, or the tables as
// inline tables, is refused rather than broken.
type containerd struct{ kubernetes bool }

// criPlugin is the CRI plugin's table for a config.toml version.
func criPlugin(version int64) (string, error) {
	switch version {
	case 2:
		return `plugins."io.containerd.grpc.v1.cri"`, nil
	case 3:
		return `plugins."io.containerd.cri.v1.runtime"`, nil
	}
	return "", fmt.Errorf("%w: config.toml version %d: gmsa-hook writes versions 2 (containerd 1.x) and 3 (containerd 2.x); run containerd config migrate", ErrEngineConfig, version)
}

func decodeTOML(b []byte, path string) (map[string]any, error) {
	m := map[string]any{}
	if err := toml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrEngineConfig, path, err)
	}
	return m, nil
}

// splitBlock returns the file without gmsa-hook's block (and the blank
// line install put before it), and whether there was one.
func splitBlock(b []byte) ([]byte, bool) {
	i := bytes.Index(b, []byte(tomlBegin))
	if i < 0 {
		return b, false
	}
	j := bytes.Index(b[i:], []byte(tomlEnd))
	if j < 0 {
		return b, false
	}
	rest := b[i+j+len(tomlEnd):]
	head := b[:i]
	head = bytes.TrimSuffix(head, []byte("\n"))
	if len(head) > 0 && head[len(head)-1] != '\n' {
		head = append(head, '\n')
	}
	return append(append([]byte{}, head...), rest...), true
}

func (c containerd) block(o Options, m map[string]any, version int64, newFile bool) (string, error) {
	plugin, err := criPlugin(version)
	if err != nil {
		return "", err
	}
	runtimes := plugin + ".containerd.runtimes"
	q := strconv.Quote
	var sb strings.Builder
	sb.WriteString(tomlBegin)
	if newFile {
		sb.WriteString("version = 2\n")
	}
	fmt.Fprintf(&sb, "[%s.%s]\n", runtimes, ContainerdHandler)
	sb.WriteString("  runtime_type = \"io.containerd.runc.v2\"\n")
	fmt.Fprintf(&sb, "  pod_annotations = [%s]\n", q(container.Key))
	fmt.Fprintf(&sb, "  container_annotations = [%s]\n", q(container.Key))
	fmt.Fprintf(&sb, "[%s.%s.options]\n", runtimes, ContainerdHandler)
	fmt.Fprintf(&sb, "  BinaryName = %s\n", q(o.Wrapper))
	// runc's own handler decides the cgroup driver of the node: gmsa's
	// must agree with the kubelet's.
	if v, ok := lookup(m, "plugins", pluginName(plugin), "containerd", "runtimes", "runc", "options", "SystemdCgroup").(bool); ok {
		fmt.Fprintf(&sb, "  SystemdCgroup = %t\n", v)
	}
	sb.WriteString(tomlEnd)
	return sb.String(), nil
}

func pluginName(plugin string) string {
	_, name, _ := strings.Cut(plugin, ".")
	return strings.Trim(name, `"`)
}

func lookup(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func (c containerd) Install(o Options) ([]Change, error) {
	cs, err := wrapperInstall(o)
	if err != nil {
		return nil, err
	}
	old, err := readFile(o.ContainerdConfig)
	if err != nil {
		return nil, err
	}
	base, _ := splitBlock(old)
	newFile := len(bytes.TrimSpace(base)) == 0
	m, err := decodeTOML(base, o.ContainerdConfig)
	if err != nil {
		return nil, err
	}
	version, _ := m["version"].(int64)
	switch _, ok := m["version"]; {
	case newFile:
		version = 2
	case !ok:
		version = 1
	}
	blk, err := c.block(o, m, version, newFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.ContainerdConfig, err)
	}
	var out []byte
	if !newFile {
		out = append([]byte{}, base...)
		if out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		out = append(out, '\n')
	}
	out = append(out, blk...)
	if err := checkTOML(base, out, o.ContainerdConfig); err != nil {
		return nil, err
	}
	return append(cs, Change{Path: o.ContainerdConfig, Old: old, New: out, Mode: 0o644}), nil
}

// checkTOML proves that with the block is the file without it plus the
// handler, and nothing else changed.
func checkTOML(without, with []byte, path string) error {
	a, err := decodeTOML(without, path)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(without)) == 0 {
		a["version"] = int64(2)
	}
	m := map[string]any{}
	if err := toml.Unmarshal(with, &m); err != nil {
		return fmt.Errorf("%w: %s: adding the %q runtime handler at the end would make it invalid TOML (%v); does it define that handler, or the runtimes as an inline table?", ErrEngineConfig, path, ContainerdHandler, err)
	}
	version, _ := m["version"].(int64)
	plugin, _ := criPlugin(version)
	name := pluginName(plugin)
	if rts, ok := lookup(m, "plugins", name, "containerd", "runtimes").(map[string]any); ok {
		delete(rts, ContainerdHandler)
		pruneEmpty(m, "plugins", name, "containerd", "runtimes")
	}
	pruneEmpty(a, "plugins", name, "containerd", "runtimes")
	if !reflect.DeepEqual(a, m) {
		return fmt.Errorf("%w: %s: adding the %q handler at the end would change other settings (does the file define it itself?)", ErrEngineConfig, path, ContainerdHandler)
	}
	return nil
}

// pruneEmpty removes the tables of keys that are empty, deepest first.
func pruneEmpty(m map[string]any, keys ...string) {
	for n := len(keys); n > 0; n-- {
		parent, ok := lookup(m, keys[:n-1]...).(map[string]any)
		if !ok {
			continue
		}
		if t, ok := parent[keys[n-1]].(map[string]any); ok && len(t) == 0 {
			delete(parent, keys[n-1])
		}
	}
}

func (c containerd) Uninstall(o Options) ([]Change, error) {
	old, err := readFile(o.ContainerdConfig)
	if err != nil {
		return nil, err
	}
	var cs []Change
	if base, ok := splitBlock(old); ok {
		if err := checkTOML(base, old, o.ContainerdConfig); err != nil {
			return nil, err
		}
		out := base
		if len(bytes.TrimSpace(base)) == 0 {
			out = nil // the file install made
		}
		cs = append(cs, Change{Path: o.ContainerdConfig, Old: old, New: out})
	}
	w, err := wrapperUninstall(o, namesWrapper(o, o.ContainerdConfig))
	return append(cs, w...), err
}

func (c containerd) Restart(o Options) string {
	s := "restart containerd (systemctl restart containerd): it reads " + o.ContainerdConfig + " only at start; running containers keep running"
	if c.kubernetes {
		s += "; then apply the RuntimeClass above (kubectl apply -f -) and give pods runtimeClassName: " + ContainerdHandler
	} else {
		s += "; ctr uses the wrapper with ctr run --runc-binary " + o.Wrapper
	}
	return s
}

// RuntimeClass is the Kubernetes manifest of the handler.
const RuntimeClass = `apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: gmsa
handler: gmsa
`
