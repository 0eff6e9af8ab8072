package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/rogpeppe/go-internal/diff"

	"github.com/gmsa-hook/gmsa-hook/hook/store"
	"github.com/gmsa-hook/gmsa-hook/hook/wrapper"
)

// ErrEngineConfig marks an engine configuration file install cannot change
// without losing what is in it.
var ErrEngineConfig = errors.New("cannot change the engine's configuration")

// Change is one file install or uninstall writes: New nil removes it; Link
// makes it a symbolic link to Link instead of a file.
type Change struct {
	Path     string
	Old, New []byte
	Link     string
	// OldLink is the present link's target, "" for none.
	OldLink string
	Mode    fs.FileMode
}

// Noop tells a change that changes nothing.
func (c Change) Noop() bool {
	if c.Link != "" {
		return c.Link == c.OldLink
	}
	return c.OldLink == "" && bytes.Equal(c.Old, c.New) && (c.Old == nil) == (c.New == nil)
}

// Engine is one engine's configuration writer. Install and Uninstall read
// the engine's files as they are and return what to write, in the order to
// write it; they change nothing themselves.
type Engine interface {
	Install(o Options) ([]Change, error)
	Uninstall(o Options) ([]Change, error)
	// Restart says what to restart or reload for the change to apply.
	Restart(o Options) string
}

// Options are what the engine writers need, from the command line.
type Options struct {
	Hooks Hooks
	// Wrapper is the path the binary is linked under as gmsa-runc; Runtime
	// the real runtime it execs.
	Wrapper, Runtime string
	DaemonJSON       string // Docker's daemon.json
	Default          bool   // Docker: make gmsa the default runtime
	ContainerdConfig string // containerd's config.toml
	HooksDir         string // Podman's and CRI-O's hooks.d
	CrioDropIn       string // CRI-O: gmsa-hook's file in crio.conf.d
	Bundle           string // runc: the bundle
}

// Engines are the engine writers by --runtime name.
var Engines = map[string]Engine{
	"docker":     docker{},
	"containerd": containerd{},
	"kubernetes": containerd{kubernetes: true},
	"podman":     hooksd{},
	"cri-o":      crio{},
	"runc":       bundle{},
}

// Apply writes changes in order, or under dryRun prints each as a unified
// diff and writes nothing. It returns the paths changed.
func Apply(changes []Change, dryRun bool, out io.Writer) ([]string, error) {
	var paths []string
	for _, c := range changes {
		if c.Noop() {
			continue
		}
		paths = append(paths, c.Path)
		if dryRun {
			printDiff(out, c)
			continue
		}
		if err := apply(c); err != nil {
			return paths, fmt.Errorf("write %s: %w", c.Path, err)
		}
	}
	return paths, nil
}

func printDiff(out io.Writer, c Change) {
	switch {
	case c.Link != "":
		if c.OldLink != "" {
			fmt.Fprintf(out, "--- %s -> %s\n", c.Path, c.OldLink)
		} else {
			fmt.Fprintf(out, "--- /dev/null\n")
		}
		fmt.Fprintf(out, "+++ %s -> %s (symbolic link)\n", c.Path, c.Link)
	case c.New == nil && c.OldLink != "":
		fmt.Fprintf(out, "--- %s -> %s (symbolic link)\n+++ /dev/null\n", c.Path, c.OldLink)
	default:
		oldName, newName := c.Path, c.Path
		if c.Old == nil {
			oldName = "/dev/null"
		}
		if c.New == nil {
			newName = "/dev/null"
		}
		out.Write(diff.Diff(oldName, c.Old, newName, c.New))
	}
}

func apply(c Change) error {
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o755); err != nil {
		return err
	}
	switch {
	case c.Link != "":
		// A new link beside, then a rename: the path is never missing.
		tmp := filepath.Join(filepath.Dir(c.Path), "."+filepath.Base(c.Path)+".tmp-link")
		os.Remove(tmp)
		if err := os.Symlink(c.Link, tmp); err != nil {
			return err
		}
		return os.Rename(tmp, c.Path)
	case c.New == nil:
		err := os.Remove(c.Path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	info, err := os.Lstat(c.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		mode := c.Mode
		if mode == 0 {
			mode = 0o644
		}
		return store.WriteFile(c.Path, c.New, mode, -1, -1)
	case err != nil:
		return err
	case !info.Mode().IsRegular():
		return fmt.Errorf("%w: %s is not a regular file", ErrEngineConfig, c.Path)
	}
	return store.ReplaceFile(c.Path, c.New, info)
}

// readFile reads a file that may be absent (nil, no error).
func readFile(path string) ([]byte, error) {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrEngineConfig, path)
	}
	return os.ReadFile(path)
}

// readLink is the target of a symbolic link, "" when path is none.
func readLink(path string) string {
	t, err := os.Readlink(path)
	if err != nil {
		return ""
	}
	return t
}

// OCIHooks are the hooks as runtime-spec types, as the wrapper adds them.
func (h Hooks) OCIHooks() specs.Hooks {
	var out specs.Hooks
	for _, s := range h.stages() {
		args := []string{"gmsa-hook", "hook", s.name}
		if h.Config != "" {
			args = append(args, "--config", h.Config)
		}
		timeout := s.timeout
		e := []specs.Hook{{Path: h.Binary, Args: args, Timeout: &timeout}}
		switch s.name {
		case "createRuntime":
			out.CreateRuntime = e
		case "createContainer":
			out.CreateContainer = e
		case "poststop":
			out.Poststop = e
		}
	}
	return out
}

// wrapperInstall links the binary as the wrapper and writes the wrapper's
// configuration: these come first, before any engine file names them.
func wrapperInstall(o Options) ([]Change, error) {
	if !filepath.IsAbs(o.Wrapper) || filepath.Base(o.Wrapper) != wrapper.Name {
		return nil, fmt.Errorf("%w: the wrapper %q must be an absolute path ending in /%s", ErrEngineConfig, o.Wrapper, wrapper.Name)
	}
	if !filepath.IsAbs(o.Runtime) {
		return nil, fmt.Errorf("%w: the real runtime %q is not an absolute path", ErrEngineConfig, o.Runtime)
	}
	if o.Hooks.Binary == "" || !filepath.IsAbs(o.Hooks.Binary) {
		return nil, fmt.Errorf("%w: the hook binary %q is not an absolute path", ErrEngineConfig, o.Hooks.Binary)
	}
	cfg := wrapper.Config{Runtime: o.Runtime, Hooks: o.Hooks.OCIHooks()}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	cfgPath := wrapper.ConfigPath(o.Wrapper)
	old, err := readFile(cfgPath)
	if err != nil {
		return nil, err
	}
	return []Change{
		{Path: o.Wrapper, Link: o.Hooks.Binary, OldLink: readLink(o.Wrapper)},
		{Path: cfgPath, Old: old, New: b, Mode: 0o644},
	}, nil
}

// wrapperUninstall removes the wrapper's link and configuration, unless
// stillUsed (another engine's file names the wrapper).
func wrapperUninstall(o Options, stillUsed bool) ([]Change, error) {
	if stillUsed || o.Wrapper == "" {
		return nil, nil
	}
	cfgPath := wrapper.ConfigPath(o.Wrapper)
	old, err := readFile(cfgPath)
	if err != nil {
		return nil, err
	}
	var cs []Change
	if l := readLink(o.Wrapper); l != "" {
		cs = append(cs, Change{Path: o.Wrapper, OldLink: l})
	}
	if old != nil {
		cs = append(cs, Change{Path: cfgPath, Old: old})
	}
	return cs, nil
}

// namesWrapper tells whether the engine files other than skip name the
// wrapper, so uninstalling one engine keeps it for the other.
func namesWrapper(o Options, skip string) bool {
	for _, f := range []string{o.DaemonJSON, o.ContainerdConfig} {
		if f == "" || f == skip {
			continue
		}
		if b, _ := readFile(f); bytes.Contains(b, []byte(o.Wrapper)) {
			return true
		}
	}
	return false
}
