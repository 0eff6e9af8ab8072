package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gmsa-hook/gmsa-hook/hook/atomicfile"
)

// ErrHooksDir marks a hooks.d directory the files cannot be written to.
var ErrHooksDir = errors.New("cannot write the hooks.d files")

// AnnotationKey is the anchored regular expression of the annotation that
// selects a container in a hooks.d file. Podman matches its regexes
// unanchored (Go RE2): "credentialspec" alone would also select
// "x-credentialspec-old".
const AnnotationKey = "^credentialspec$"

// hooksdFile is one OCI hooks.d file (version 1.0.0 of the format podman and
// CRI-O read from their hooks directories), fields in a fixed order.
type hooksdFile struct {
	Version string     `json:"version"`
	Hook    hooksdHook `json:"hook"`
	When    hooksdWhen `json:"when"`
	Stages  []string   `json:"stages"`
}

type hooksdHook struct {
	Path    string   `json:"path"`
	Args    []string `json:"args"`
	Timeout int      `json:"timeout"`
}

type hooksdWhen struct {
	Annotations map[string]string `json:"annotations"`
}

// HooksdName is the file name of stage's hooks.d file, e.g.
// gmsa-hook-createruntime.json.
func HooksdName(stage string) string {
	return "gmsa-hook-" + strings.ToLower(stage) + ".json"
}

// Hooksd returns the hooks.d files for the hooks, by file name: one per
// stage, each run only for containers with a non-empty credentialspec
// annotation, so an unannotated container never runs gmsa-hook.
func (h Hooks) Hooksd() (map[string][]byte, error) {
	if h.Binary == "" || !filepath.IsAbs(h.Binary) {
		return nil, fmt.Errorf("%w: the hook binary %q is not an absolute path", ErrHooksDir, h.Binary)
	}
	if h.Config != "" && !filepath.IsAbs(h.Config) {
		return nil, fmt.Errorf("%w: the config file %q is not an absolute path", ErrHooksDir, h.Config)
	}
	files := map[string][]byte{}
	for _, s := range h.stages() {
		args := []string{"gmsa-hook", "hook", s.name}
		if h.Config != "" {
			args = append(args, "--config", h.Config)
		}
		f := hooksdFile{
			Version: "1.0.0",
			Hook:    hooksdHook{Path: h.Binary, Args: args, Timeout: s.timeout},
			When:    hooksdWhen{Annotations: map[string]string{AnnotationKey: ".+"}},
			Stages:  []string{s.name},
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(f); err != nil {
			return nil, err
		}
		files[HooksdName(s.name)] = buf.Bytes()
	}
	return files, nil
}

// HooksDir writes the hooks.d files into dir, creating it if needed. Each
// file is replaced atomically (the temporary file's name does not end in
// .json, so a runtime reading the directory meanwhile skips it) and keeps
// the mode and owner of the file it replaces; new files are 0644. Running it
// twice changes nothing. It returns the paths written, in stage order.
func HooksDir(dir string, h Hooks) ([]string, error) {
	files, err := h.Hooksd()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHooksDir, err)
	}
	var paths []string
	for _, s := range h.stages() {
		path := filepath.Join(dir, HooksdName(s.name))
		info, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			info = nil // a new file: mode 0644
		case err != nil:
			return paths, fmt.Errorf("%w: %w", ErrHooksDir, err)
		case !info.Mode().IsRegular():
			return paths, fmt.Errorf("%w: %s is not a regular file", ErrHooksDir, path)
		}
		if err := atomicfile.Replace(path, files[HooksdName(s.name)], info); err != nil {
			return paths, fmt.Errorf("%w: write %s: %w", ErrHooksDir, path, err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}
