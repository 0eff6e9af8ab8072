// Package wrapper is gmsa-runc, the OCI runtime wrapper that Docker
// (daemon.json "runtimes") and containerd (a runtime handler's runc shim
// option BinaryName) call instead of runc.
//
// It acts only on "create" (and "run") of a container whose bundle asks for
// a ticket: the credentialspec annotation in config.json, or, for Docker,
// whose --label stays out of the annotations, the container's label in its
// config.v2.json. It then adds gmsa-hook's hooks (createRuntime,
// createContainer, poststop) and KRB5CCNAME to the bundle's config.json
// and replaces the file atomically. Once the hook has laid out its run
// directory on a memory file system, the wrapper makes the container's
// ticket directory itself and has the runtime bind it read-only
// (TicketMount) instead of the createContainer hook: one start of
// gmsa-hook fewer per container. Every other command and every other
// container goes straight to the real runtime with one exec, nothing parsed
// beyond the bundle's config.json. The wrapper adds no trust: the hook still
// checks the label against the policy at createRuntime.
//
// Its configuration, written by gmsa-hook install, is the file named like
// the wrapper with ".json" appended (/usr/local/lib/gmsa-hook/gmsa-runc.json):
// a runtime gives its runtime binary no flags of ours and no environment of
// ours, and the real runtime is found from there, never from $PATH.
//
// A run that only passes through is done before nearly all of gmsa-hook
// is initialised (package passthrough decides, cmd/gmsa-hook/internal/early
// execs); this package does the rest, and reports every problem. It imports
// only the standard library's basics, runtime-spec's plain types and
// hook/container: it runs before the rest of gmsa-hook is initialised
// (cmd/gmsa-hook/internal/quick).
package wrapper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gmsa-hook/gmsa-hook/hook/atomicfile"
	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/hook/wrapper/passthrough"
)

// Name is the name the gmsa-hook binary is linked under to be the wrapper.
const Name = passthrough.Name

// KRB5CCName is what a labelled container's process gets as KRB5CCNAME
// unless its image or its user set one.
const KRB5CCName = "KRB5CCNAME=FILE:" + container.MountPoint + "/krb5cc"

// ErrConfig marks a wrapper configuration that cannot be used.
var ErrConfig = errors.New("unusable runtime wrapper configuration")

// Config is the wrapper's configuration file.
type Config struct {
	// Runtime is the absolute path of the real runtime (runc).
	Runtime string `json:"runtime"`
	// Hooks are gmsa-hook's entries added to a labelled container.
	Hooks specs.Hooks `json:"hooks"`
}

// ConfigPath is the configuration file of the wrapper at path.
func ConfigPath(wrapper string) string { return passthrough.ConfigPath(wrapper) }

// Is tells a run as the wrapper from the name the binary was called by.
func Is(argv0 string) bool { return path.Base(argv0) == Name }

// ReadConfig reads and checks the wrapper's configuration.
func ReadConfig(file string) (*Config, error) {
	b, err := container.ReadSmall(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrConfig, file, container.JSONProblem(err))
	}
	if !path.IsAbs(c.Runtime) {
		return nil, fmt.Errorf("%w: %s: \"runtime\" must be the absolute path of the real runtime, not %q", ErrConfig, file, c.Runtime)
	}
	if path.Base(c.Runtime) == Name {
		return nil, fmt.Errorf("%w: %s: \"runtime\" %s is the wrapper itself", ErrConfig, file, c.Runtime)
	}
	return &c, nil
}

// Main is a run as the wrapper: args are os.Args. It returns only when it
// cannot exec the real runtime, with the exit status to use.
func Main(args []string, stderr io.Writer) int {
	runtime, argv, err := Prepare(args)
	if err == nil {
		err = syscall.Exec(runtime, argv, os.Environ())
		err = fmt.Errorf("exec %s: %w", runtime, err)
	}
	fmt.Fprintf(stderr, "%s: error: %s\n", Name, strings.ReplaceAll(err.Error(), "\n", " "))
	if errors.Is(err, ErrConfig) {
		fmt.Fprintf(stderr, "%s: hint: run gmsa-hook install --runtime docker (or containerd, kubernetes) again, which writes %s\n", Name, ConfigPath(args[0]))
	}
	return 1
}

// Prepare does the wrapper's work short of the exec: it reads the
// configuration, adds the hooks to a labelled container's bundle on create,
// and returns the real runtime and its arguments (args[1:], untouched).
func Prepare(args []string) (runtime string, argv []string, err error) {
	if len(args) == 0 || !path.IsAbs(args[0]) {
		return "", nil, fmt.Errorf("%w: called as %q: the wrapper finds its configuration beside itself, so it must be called by its absolute path", ErrConfig, strings.Join(args[:min(1, len(args))], ""))
	}
	cfg, err := ReadConfig(ConfigPath(args[0]))
	if err != nil {
		return "", nil, err
	}
	argv = append([]string{cfg.Runtime}, args[1:]...)
	inv, err := passthrough.ParseArgs(args[1:])
	if err != nil {
		return "", nil, err
	}
	if inv.Command != "create" && inv.Command != "run" {
		return cfg.Runtime, argv, nil
	}
	bundle := inv.Bundle
	if bundle == "" {
		if bundle, err = os.Getwd(); err != nil {
			return "", nil, err
		}
	}
	if err := Bundle(bundle, inv.ID, cfg.Hooks); err != nil {
		return "", nil, fmt.Errorf("container %s: %w", container.Short(inv.ID), err)
	}
	return cfg.Runtime, argv, nil
}

// Bundle adds hooks and KRB5CCNAME to the config.json of bundle when the
// container asks for a ticket, and leaves it alone otherwise. A label it
// cannot read (a broken config.v2.json) gets the hooks too: the hook then
// reports the problem, and the container does not start without it.
func Bundle(bundle, id string, hooks specs.Hooks) error {
	file := path.Join(bundle, "config.json")
	b, err := container.ReadSmall(file)
	if err != nil {
		return fmt.Errorf("read bundle: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("read %s: %w: %s", file, container.ErrBundle, container.JSONProblem(err))
	}
	if !Labelled(&spec, bundle, id) {
		return nil
	}
	var mount *specs.Mount
	if src, ok := ticketDir(bundle, id, hooks); ok {
		m := TicketMount(src)
		mount, hooks.CreateContainer = &m, nil
	}
	out, err := Edit(b, hooks, mount)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if bytes.Equal(out, b) {
		return nil
	}
	info, err := os.Stat(file)
	if err != nil {
		return err
	}
	if err := atomicfile.Replace(file, out, info); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

// Labelled tells a container that asks for a ticket, as files say: the
// annotation, or Docker's label. A containerd container whose label is only
// in containerd (not copied to the annotations, as ctr and the CRI plugin
// do) is not seen here.
func Labelled(spec *specs.Spec, bundle, id string) bool {
	if spec.Annotations[container.Key] != "" {
		return true
	}
	st := &container.State{ID: id, Bundle: bundle, Annotations: spec.Annotations}
	cfg := &container.Config{Annotations: spec.Annotations}
	for _, m := range spec.Mounts {
		cfg.Mounts = append(cfg.Mounts, container.Mount{Destination: m.Destination, Type: m.Type, Source: m.Source})
	}
	lab, _, err := container.LabelFromFiles(st, cfg)
	return err != nil || lab.Source != ""
}

// TicketMount is the read-only bind of a container's ticket directory
// (src) where the container looks for it: what the wrapper puts in
// config.json instead of the createContainer hook when it could make the
// directory before the runtime runs, so that the runtime mounts it
// itself, one start of gmsa-hook fewer. createRuntime places the ticket in
// that very directory and checks that the container sees it.
func TicketMount(src string) specs.Mount {
	return specs.Mount{Destination: container.MountPoint, Type: "bind", Source: src, Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}}
}

// ticketDir makes a labelled container's ticket directory before the
// runtime runs, empty and root's, where its createRuntime hook will place
// the ticket, and returns it. ok is false where it cannot be sure of the
// directory the hook will use, or cannot make it: a bundle path that is not
// absolute and clean, no createRuntime hook, a configuration file it
// cannot read, a run_dir not yet laid out by the hook or not on a memory
// file system. The createContainer hook then mounts the directory.
func ticketDir(bundle, id string, hooks specs.Hooks) (string, bool) {
	if !path.IsAbs(bundle) || path.Clean(bundle) != bundle || len(hooks.CreateRuntime) == 0 {
		return "", false
	}
	cfgPath, ok := configArg(hooks.CreateRuntime[0].Args)
	if !ok {
		return "", false
	}
	runDir, _, ok := config.QuickSettings(cfgPath, container.ReadSmall)
	if !ok || !path.IsAbs(runDir) {
		return "", false
	}
	containers := path.Join(runDir, container.ContainersDir)
	if fi, err := os.Lstat(containers); err != nil || !fi.IsDir() || !container.OnMemoryFS(containers) || container.CheckRunDir(runDir) != nil {
		return "", false
	}
	dir := container.Dir(runDir, id, bundle)
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o711}, {path.Join(dir, container.KrbDir), 0o700}} {
		if err := os.Mkdir(d.path, d.mode); err != nil && !errors.Is(err, os.ErrExist) {
			return "", false
		}
		if fi, err := os.Lstat(d.path); err != nil || !fi.IsDir() {
			return "", false
		}
	}
	return path.Join(dir, container.KrbDir), true
}

// configArg is the --config of a hook's arguments ("" without one, as the
// hook then reads none); ok is false for one without a value.
func configArg(args []string) (string, bool) {
	for i, a := range args {
		if v, found := strings.CutPrefix(a, "--config="); found {
			return v, v != ""
		}
		if a == "--config" {
			if i+1 >= len(args) || args[i+1] == "" {
				return "", false
			}
			return args[i+1], true
		}
	}
	return "", true
}

// Edit adds hooks to a config.json, the mount when not nil, and
// KRB5CCNAME to its process's environment unless set, and returns the new
// file. gmsa-hook's earlier entries (the same path, or args "gmsa-hook
// hook ..."; the same mount) are replaced; every field runtime-spec's
// types do not model, at any level it touches (the top level, process,
// hooks, other hook entries, other mounts), is kept as written.
func Edit(configJSON []byte, hooks specs.Hooks, mount *specs.Mount) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(configJSON, &top); err != nil {
		return nil, fmt.Errorf("%w: %s", container.ErrBundle, container.JSONProblem(err))
	}
	if top == nil {
		return nil, fmt.Errorf("%w: not a JSON object", container.ErrBundle)
	}
	if err := editHooks(top, hooks); err != nil {
		return nil, err
	}
	if mount != nil {
		if err := editMounts(top, *mount); err != nil {
			return nil, err
		}
	}
	if err := editEnv(top); err != nil {
		return nil, err
	}
	return marshal(top)
}

// editMounts appends mount, last so that nothing mounts over it, after
// removing an earlier copy of it.
func editMounts(top map[string]json.RawMessage, mount specs.Mount) error {
	var list []json.RawMessage
	if raw, ok := top["mounts"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("%w: \"mounts\" is not a list", container.ErrBundle)
		}
	}
	list = slices.DeleteFunc(list, func(e json.RawMessage) bool {
		var m specs.Mount
		return json.Unmarshal(e, &m) == nil && m.Destination == mount.Destination && m.Source == mount.Source
	})
	b, err := marshal(mount)
	if err != nil {
		return err
	}
	if top["mounts"], err = marshal(append(list, b)); err != nil {
		return err
	}
	return nil
}

// marshal is json.Marshal without HTML escaping: strings of the file keep
// their bytes.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// stageList is one stage's hooks in our configuration.
func stageList(h *specs.Hooks) map[string][]specs.Hook {
	return map[string][]specs.Hook{
		//lint:ignore SA1019 prestart is deprecated but older runtimes still run it, and a config.json may name it
		"prestart": h.Prestart, "createRuntime": h.CreateRuntime, "createContainer": h.CreateContainer,
		"startContainer": h.StartContainer, "poststart": h.Poststart, "poststop": h.Poststop,
	}
}

var stageOrder = []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}

func editHooks(top map[string]json.RawMessage, hooks specs.Hooks) error {
	stages := map[string]json.RawMessage{}
	if raw, ok := top["hooks"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &stages); err != nil {
			return fmt.Errorf("%w: \"hooks\" is not an object", container.ErrBundle)
		}
	}
	ours := stageList(&hooks)
	binaries := map[string]bool{}
	for _, list := range ours {
		for _, h := range list {
			binaries[h.Path] = true
		}
	}
	for _, stage := range stageOrder {
		var list []json.RawMessage
		if raw, ok := stages[stage]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &list); err != nil {
				return fmt.Errorf("%w: \"hooks.%s\" is not a list", container.ErrBundle, stage)
			}
		}
		list = slices.DeleteFunc(list, func(e json.RawMessage) bool { return isOurs(e, binaries) })
		for _, h := range ours[stage] {
			b, err := marshal(h)
			if err != nil {
				return err
			}
			list = append(list, b)
		}
		if len(list) == 0 {
			delete(stages, stage)
			continue
		}
		b, err := marshal(list)
		if err != nil {
			return err
		}
		stages[stage] = b
	}
	b, err := marshal(stages)
	if err != nil {
		return err
	}
	top["hooks"] = b
	return nil
}

// isOurs tells a hook entry of gmsa-hook: one of our binaries, or args
// "gmsa-hook hook ...".
func isOurs(raw json.RawMessage, binaries map[string]bool) bool {
	var h specs.Hook
	if json.Unmarshal(raw, &h) != nil {
		return false
	}
	if binaries[h.Path] {
		return true
	}
	return len(h.Args) >= 2 && path.Base(h.Args[0]) == "gmsa-hook" && h.Args[1] == "hook"
}

func editEnv(top map[string]json.RawMessage) error {
	raw, ok := top["process"]
	if !ok || string(raw) == "null" {
		return nil // runc refuses such a bundle at create with its own message
	}
	var process map[string]json.RawMessage
	if err := json.Unmarshal(raw, &process); err != nil {
		return fmt.Errorf("%w: \"process\" is not an object", container.ErrBundle)
	}
	var env []string
	if raw, ok := process["env"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &env); err != nil {
			return fmt.Errorf("%w: \"process.env\" is not a list of strings", container.ErrBundle)
		}
	}
	for _, e := range env {
		if strings.HasPrefix(e, "KRB5CCNAME=") {
			return nil
		}
	}
	b, err := marshal(append(env, KRB5CCName))
	if err != nil {
		return err
	}
	process["env"] = b
	if top["process"], err = marshal(process); err != nil {
		return err
	}
	return nil
}
