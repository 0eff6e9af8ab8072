package install

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

// hooksd writes Podman's hooks.d files (HooksDir) and removes them.
type hooksd struct{}

func (hooksd) Install(o Options) ([]Change, error) {
	files, err := o.Hooks.Hooksd()
	if err != nil {
		return nil, err
	}
	var cs []Change
	for _, s := range o.Hooks.stages() {
		path := filepath.Join(o.HooksDir, HooksdName(s.name))
		old, err := readFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrHooksDir, err)
		}
		cs = append(cs, Change{Path: path, Old: old, New: files[HooksdName(s.name)], Mode: 0o644})
	}
	return cs, nil
}

func (hooksd) Uninstall(o Options) ([]Change, error) {
	var cs []Change
	for _, s := range o.Hooks.stages() {
		path := filepath.Join(o.HooksDir, HooksdName(s.name))
		old, err := readFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrHooksDir, err)
		}
		if old != nil {
			cs = append(cs, Change{Path: path, Old: old})
		}
	}
	return cs, nil
}

func (hooksd) Restart(o Options) string {
	return "nothing to restart: podman reads " + o.HooksDir + " at every podman run (give it hooks_dir = [\"" + o.HooksDir + "\"] in containers.conf if that is not its default)"
}

// crio writes the hooks.d files into CRI-O's hooks_dir and a drop-in file
// of its own in crio.conf.d: a runtime handler "gmsa" (runc itself; the
// hooks.d files select the containers) whose allowed_annotations let the
// credentialspec annotation through, for a RuntimeClass "gmsa". Not tested
// here: CRI-O is not in Debian 12's archive.
type crio struct{}

func (crio) dropIn(o Options) []byte {
	q := strconv.Quote
	return []byte("# Written by gmsa-hook install --runtime cri-o; gmsa-hook uninstall removes it.\n" +
		"[crio.runtime.runtimes.gmsa]\n" +
		"runtime_path = " + q(o.Runtime) + "\n" +
		"runtime_type = \"oci\"\n" +
		"allowed_annotations = [" + q(container.Key) + "]\n" +
		"\n[crio.runtime]\nhooks_dir = [" + q(o.HooksDir) + "]\n")
}

func (c crio) Install(o Options) ([]Change, error) {
	if !filepath.IsAbs(o.Runtime) {
		return nil, fmt.Errorf("%w: the real runtime %q is not an absolute path", ErrEngineConfig, o.Runtime)
	}
	cs, err := hooksd{}.Install(o)
	if err != nil {
		return nil, err
	}
	old, err := readFile(o.CrioDropIn)
	if err != nil {
		return nil, err
	}
	return append(cs, Change{Path: o.CrioDropIn, Old: old, New: c.dropIn(o), Mode: 0o644}), nil
}

func (crio) Uninstall(o Options) ([]Change, error) {
	cs, err := hooksd{}.Uninstall(o)
	if err != nil {
		return nil, err
	}
	old, err := readFile(o.CrioDropIn)
	if err != nil {
		return nil, err
	}
	if old != nil {
		cs = append(cs, Change{Path: o.CrioDropIn, Old: old})
	}
	return cs, nil
}

func (crio) Restart(o Options) string {
	return "restart CRI-O (systemctl restart crio) to read " + o.CrioDropIn + "; then apply a RuntimeClass with handler: gmsa"
}

// bundle adds the hooks to one runc bundle's config.json (Bundle) and
// takes them out again.
type bundle struct{}

func (bundle) change(o Options, add bool) ([]Change, error) {
	path := filepath.Join(o.Bundle, "config.json")
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrBundle, o.Bundle, err)
	}
	spec, err := Decode(old)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBundle, path, err)
	}
	if add {
		err = o.Hooks.Add(spec)
	} else {
		err = o.Hooks.Remove(spec)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out, err := Encode(spec)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBundle, path, err)
	}
	return []Change{{Path: path, Old: old, New: out}}, nil
}

func (b bundle) Install(o Options) ([]Change, error)   { return b.change(o, true) }
func (b bundle) Uninstall(o Options) ([]Change, error) { return b.change(o, false) }
func (bundle) Restart(Options) string {
	return "nothing to restart: runc reads config.json at runc create"
}
