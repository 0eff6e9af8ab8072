// Package install writes gmsa-hook into runtime configuration: for plain
// runc users, the hook entries of a bundle's config.json. Writers keep every
// key they do not model and replace their own entries, so running one twice
// changes nothing.
package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gmsa-hook/gmsa-hook/hook/atomicfile"
)

// Errors an operator can fix.
var (
	// ErrBundle marks a bundle whose config.json cannot take the hooks.
	ErrBundle = errors.New("cannot add hooks to the bundle")
	// ErrRuntime marks a runtime install does not know yet.
	ErrRuntime = errors.New("not supported (docker, containerd, kubernetes, podman, cri-o or runc)")
)

// Hooks are gmsa-hook's entries in an OCI config.json.
type Hooks struct {
	// Binary is the absolute path of gmsa-hook.
	Binary string
	// Config is the absolute path of the configuration file given to every
	// stage; empty for none.
	Config string
	// FetchTimeout is the configured fetch timeout. createRuntime gets
	// 5 seconds more from the runtime, so the hook always gives up (and says
	// why) before the runtime kills it (and drops its stderr).
	FetchTimeout time.Duration
}

// Timeouts of the stages that do not fetch, in seconds.
const (
	mountTimeout  = 10
	removeTimeout = 10
	fetchMargin   = 5 * time.Second
)

// stages gmsa-hook installs itself at, in order, with their timeouts.
func (h Hooks) stages() []struct {
	name    string
	timeout int
} {
	fetch := int(math.Ceil((h.FetchTimeout + fetchMargin).Seconds()))
	return []struct {
		name    string
		timeout int
	}{{"createRuntime", fetch}, {"createContainer", mountTimeout}, {"poststop", removeTimeout}}
}

// allStages are config.json's hook stages: ours are removed from all.
var allStages = []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}

// entry is one hook entry for stage.
func (h Hooks) entry(stage string, timeout int) map[string]any {
	args := []any{"gmsa-hook", "hook", stage}
	if h.Config != "" {
		args = append(args, "--config", h.Config)
	}
	return map[string]any{"path": h.Binary, "args": args, "timeout": json.Number(fmt.Sprint(timeout))}
}

// ours tells gmsa-hook's entries: our binary, or args "gmsa-hook hook ...".
func (h Hooks) ours(e any) bool {
	m, ok := e.(map[string]any)
	if !ok {
		return false
	}
	if p, _ := m["path"].(string); p != "" && p == h.Binary {
		return true
	}
	args, _ := m["args"].([]any)
	if len(args) >= 2 {
		a0, _ := args[0].(string)
		a1, _ := args[1].(string)
		return filepath.Base(a0) == "gmsa-hook" && a1 == "hook"
	}
	return false
}

// Remove takes gmsa-hook's entries out of a decoded config.json, keeping
// everything else; a stage left empty goes, and "hooks" if it is empty.
func (h Hooks) Remove(spec map[string]any) error {
	if err := h.Add(spec); err != nil {
		return err
	}
	hooks := spec["hooks"].(map[string]any)
	for stage, list := range hooks {
		if l, ok := list.([]any); ok {
			l = slices.DeleteFunc(l, h.ours)
			if len(l) == 0 {
				delete(hooks, stage)
			} else {
				hooks[stage] = l
			}
		}
	}
	if len(hooks) == 0 {
		delete(spec, "hooks")
	}
	return nil
}

// Add puts gmsa-hook's entries into a decoded config.json, replacing any
// earlier ones and keeping everything else, other hooks included.
func (h Hooks) Add(spec map[string]any) error {
	if h.Binary == "" || !filepath.IsAbs(h.Binary) {
		return fmt.Errorf("%w: the hook binary %q is not an absolute path", ErrBundle, h.Binary)
	}
	if h.Config != "" && !filepath.IsAbs(h.Config) {
		return fmt.Errorf("%w: the config file %q is not an absolute path", ErrBundle, h.Config)
	}
	var hooks map[string]any
	switch v := spec["hooks"].(type) {
	case nil:
		hooks = map[string]any{}
	case map[string]any:
		hooks = v
	default:
		return fmt.Errorf("%w: \"hooks\" is not an object", ErrBundle)
	}
	for _, stage := range allStages {
		switch list := hooks[stage].(type) {
		case nil:
		case []any:
			list = slices.DeleteFunc(list, h.ours)
			if len(list) == 0 {
				delete(hooks, stage)
			} else {
				hooks[stage] = list
			}
		default:
			return fmt.Errorf("%w: \"hooks.%s\" is not a list", ErrBundle, stage)
		}
	}
	for _, s := range h.stages() {
		list, _ := hooks[s.name].([]any)
		hooks[s.name] = append(list, h.entry(s.name, s.timeout))
	}
	spec["hooks"] = hooks
	return nil
}

// Decode reads a config.json keeping every key and every number as written.
func Decode(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var spec map[string]any
	if err := dec.Decode(&spec); err != nil {
		return nil, err
	}
	if spec == nil {
		return nil, errors.New("not a JSON object")
	}
	if dec.More() {
		return nil, errors.New("data after the JSON object")
	}
	return spec, nil
}

// Encode writes a config.json the way runc spec does: tab-indented.
func Encode(spec map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "\t")
	if err := enc.Encode(spec); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Bundle adds the hooks to DIR/config.json, replacing the file atomically
// and keeping its mode and owner.
func Bundle(dir string, h Hooks) error {
	path := filepath.Join(dir, "config.json")
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrBundle, dir, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrBundle, dir, err)
	}
	spec, err := Decode(b)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBundle, path, err)
	}
	if err := h.Add(spec); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	out, err := Encode(spec)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBundle, path, err)
	}
	if err := atomicfile.Replace(path, out, info); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
