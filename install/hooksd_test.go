package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"
)

var hooksdStages = []string{"createruntime", "createcontainer", "poststop"}

func TestHooksdGolden(t *testing.T) {
	tests := []struct {
		name  string
		hooks Hooks
	}{
		{"hooksd", testHooks},
		{"hooksd-no-config", Hooks{Binary: "/usr/local/bin/gmsa-hook", FetchTimeout: 7500 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			paths, err := HooksDir(dir, tt.hooks)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, s := range hooksdStages {
				want = append(want, filepath.Join(dir, "gmsa-hook-"+s+".json"))
			}
			if !slices.Equal(paths, want) {
				t.Errorf("paths = %v, want %v", paths, want)
			}
			once := readDir(t, dir)
			if len(once) != len(hooksdStages) {
				t.Errorf("files in the hooks dir: %v", slices.Sorted(func(yield func(string) bool) {
					for k := range once {
						if !yield(k) {
							return
						}
					}
				}))
			}
			for _, s := range hooksdStages {
				name := "gmsa-hook-" + s + ".json"
				golden := filepath.Join("testdata", tt.name+"-"+s+".golden")
				if *update {
					if err := os.WriteFile(golden, once[name], 0o644); err != nil {
						t.Fatal(err)
					}
				}
				w, err := os.ReadFile(golden)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(once[name], w) {
					t.Errorf("%s differs from %s (run go test -update):\n%s", name, golden, once[name])
				}
				fi, err := os.Stat(filepath.Join(dir, name))
				if err != nil || fi.Mode() != 0o644 {
					t.Errorf("%s: mode %v, %v; want 0644", name, fi.Mode(), err)
				}
			}
			// Idempotent: a second install changes nothing and leaves no
			// temporary file.
			if _, err := HooksDir(dir, tt.hooks); err != nil {
				t.Fatal(err)
			}
			twice := readDir(t, dir)
			if len(twice) != len(once) {
				t.Errorf("a second install left %d files, want %d", len(twice), len(once))
			}
			for name, b := range once {
				if !bytes.Equal(twice[name], b) {
					t.Errorf("a second install changed %s:\n%s", name, twice[name])
				}
			}
		})
	}
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

// The annotation match is anchored: only a non-empty "credentialspec"
// annotation selects a container, matched the way podman matches (an
// unanchored RE2 search on key and value).
func TestHooksdWhen(t *testing.T) {
	files, err := testHooks.Hooksd()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		var f struct {
			Version string
			Hook    struct {
				Path    string
				Args    []string
				Timeout int
			}
			When struct {
				Annotations map[string]string
			}
			Stages []string
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(f.Stages) != 1 || name != HooksdName(f.Stages[0]) || f.Hook.Args[2] != f.Stages[0] {
			t.Errorf("%s: stages %v, args %v", name, f.Stages, f.Hook.Args)
		}
		matches := func(annotations map[string]string) bool {
			for kre, vre := range f.When.Annotations {
				for k, v := range annotations {
					if regexp.MustCompile(kre).MatchString(k) && regexp.MustCompile(vre).MatchString(v) {
						return true
					}
				}
			}
			return false
		}
		for _, tc := range []struct {
			annotations map[string]string
			want        bool
		}{
			{map[string]string{"credentialspec": "file:///etc/gmsa/webapp01.json"}, true},
			{map[string]string{"credentialspec": ""}, false},
			{map[string]string{"x-credentialspec": "a"}, false},
			{map[string]string{"credentialspec.old": "a"}, false},
			{map[string]string{"io.podman.annotations.label": "credentialspec=a"}, false},
			{nil, false},
		} {
			if got := matches(tc.annotations); got != tc.want {
				t.Errorf("%s: annotations %v match = %v, want %v", name, tc.annotations, got, tc.want)
			}
		}
	}
}

func TestHooksDirErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		hooks Hooks
		want  string
	}{
		{Hooks{Binary: "gmsa-hook"}, `cannot write the hooks.d files: the hook binary "gmsa-hook" is not an absolute path`},
		{Hooks{Binary: "/b", Config: "c.json"}, `cannot write the hooks.d files: the config file "c.json" is not an absolute path`},
	} {
		if _, err := HooksDir(dir, tc.hooks); err == nil || err.Error() != tc.want || !errors.Is(err, ErrHooksDir) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("written despite the error: %v", entries)
	}

	// A file in the way of the directory.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := HooksDir(filepath.Join(file, "hooks.d"), testHooks); !errors.Is(err, ErrHooksDir) {
		t.Errorf("err = %v, want ErrHooksDir", err)
	}

	// A directory where a hook file goes.
	if err := os.Mkdir(filepath.Join(dir, HooksdName("createRuntime")), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := HooksDir(dir, testHooks); err == nil || !errors.Is(err, ErrHooksDir) {
		t.Errorf("err = %v, want ErrHooksDir", err)
	}

	// An existing file keeps its mode.
	other := t.TempDir()
	path := filepath.Join(other, HooksdName("poststop"))
	if err := os.WriteFile(path, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := HooksDir(other, testHooks); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode() != 0o600 {
		t.Errorf("mode %v, want 0600 kept", fi.Mode())
	}
}
