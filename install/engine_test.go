package install

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// engineOptions are options whose files all lie in dir.
func engineOptions(dir string) Options {
	return Options{
		Hooks:            testHooks,
		Wrapper:          "/usr/local/lib/gmsa-hook/gmsa-runc",
		Runtime:          "/usr/sbin/runc",
		DaemonJSON:       filepath.Join(dir, "daemon.json"),
		ContainerdConfig: filepath.Join(dir, "config.toml"),
		HooksDir:         filepath.Join(dir, "hooks.d"),
		CrioDropIn:       filepath.Join(dir, "crio.conf.d", "99-gmsa-hook.conf"),
	}
}

// withoutWrapper drops the wrapper's own files: tests write engine files
// only (the wrapper's path is not under the test's directory).
func withoutWrapper(cs []Change, o Options) []Change {
	var out []Change
	for _, c := range cs {
		if c.Path != o.Wrapper && !strings.HasPrefix(c.Path, o.Wrapper+".") {
			out = append(out, c)
		}
	}
	return out
}

func applyEngine(t *testing.T, e Engine, o Options, remove bool) []string {
	t.Helper()
	var cs []Change
	var err error
	if remove {
		cs, err = e.Uninstall(o)
	} else {
		cs, err = e.Install(o)
	}
	if err != nil {
		t.Fatal(err)
	}
	paths, err := Apply(withoutWrapper(cs, o), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", name+".golden")
	if *update {
		os.WriteFile(file, got, 0o644)
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("differs from %s (go test -update):\n%s", file, got)
	}
}

// TestEngineRoundTrip: for each engine and starting file, install writes
// the golden file, a second install changes nothing, and uninstall gives
// back the original bytes (or no file, where there was none).
func TestEngineRoundTrip(t *testing.T) {
	tests := []struct {
		name, runtime, file, input string
		dflt                       bool
	}{
		{"docker-default", "docker", "daemon.json", "daemon.json", true},
		{"docker", "docker", "daemon.json", "daemon.json", false},
		{"docker-new", "docker", "daemon.json", "", true},
		{"containerd", "containerd", "config.toml", "config.toml", false},
		{"containerd-new", "containerd", "config.toml", "", false},
		{"crio", "cri-o", "crio.conf.d/99-gmsa-hook.conf", "", false},
		{"podman", "podman", "hooks.d/gmsa-hook-createruntime.json", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			o := engineOptions(dir)
			o.Default = tt.dflt
			path := filepath.Join(dir, tt.file)
			var orig []byte
			if tt.input != "" {
				var err error
				if orig, err = os.ReadFile(filepath.Join("testdata", tt.input)); err != nil {
					t.Fatal(err)
				}
				os.WriteFile(path, orig, 0o600)
			}
			e := Engines[tt.runtime]
			if len(applyEngine(t, e, o, false)) == 0 {
				t.Fatal("install changed nothing")
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "engine-"+tt.name, bytes.ReplaceAll(got, []byte(dir), []byte("$DIR")))
			if info, _ := os.Stat(path); tt.input != "" && info.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600 kept", info.Mode())
			}
			if again := applyEngine(t, e, o, false); len(again) != 0 {
				t.Errorf("a second install changed %v", again)
			}
			applyEngine(t, e, o, true)
			back, err := os.ReadFile(path)
			if tt.input == "" {
				if !os.IsNotExist(err) {
					t.Errorf("uninstall left %s (%v):\n%s", path, err, back)
				}
			} else if !bytes.Equal(back, orig) {
				t.Errorf("uninstall did not give back the file:\n%s", back)
			}
			if again := applyEngine(t, e, o, true); len(again) != 0 {
				t.Errorf("a second uninstall changed %v", again)
			}
			left, _ := filepath.Glob(filepath.Join(dir, "*.gmsa-hook"))
			if len(left) != 0 {
				t.Errorf("uninstall left %v", left)
			}
		})
	}
}

// TestDockerUninstallAfterEdits: once someone else changed daemon.json,
// uninstall removes only gmsa-hook's keys and gives default-runtime back.
func TestDockerUninstallAfterEdits(t *testing.T) {
	dir := t.TempDir()
	o := engineOptions(dir)
	o.Default = true
	orig, _ := os.ReadFile("testdata/daemon.json")
	os.WriteFile(o.DaemonJSON, orig, 0o644)
	applyEngine(t, Engines["docker"], o, false)
	b, _ := os.ReadFile(o.DaemonJSON)
	b = bytes.Replace(b, []byte(`"log-driver": "journald"`), []byte(`"log-driver": "local"`), 1)
	os.WriteFile(o.DaemonJSON, b, 0o644)
	applyEngine(t, Engines["docker"], o, true)
	got, _ := os.ReadFile(o.DaemonJSON)
	golden(t, "engine-docker-edited-uninstalled", got)
}

// TestContainerdRefuses: a file that defines the handler itself, or the
// runtimes as an inline table, is refused, not broken.
func TestContainerdRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"own gmsa handler": "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.gmsa]\n  runtime_type = \"x\"\n",
		"inline runtimes":  "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  runtimes = {runc = {runtime_type = \"io.containerd.runc.v2\"}}\n",
		"version 1":        "[plugins.cri]\n",
		"not toml":         "version = = 2\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			o := engineOptions(dir)
			os.WriteFile(o.ContainerdConfig, []byte(in), 0o644)
			_, err := Engines["containerd"].Install(o)
			if err == nil || !strings.Contains(err.Error(), "cannot change the engine's configuration: ") {
				t.Errorf("error %v", err)
			}
		})
	}
}

// TestDryRun prints a unified diff and writes nothing.
func TestDryRun(t *testing.T) {
	dir := t.TempDir()
	o := engineOptions(dir)
	orig, _ := os.ReadFile("testdata/config.toml")
	os.WriteFile(o.ContainerdConfig, orig, 0o644)
	cs, err := Engines["kubernetes"].Install(o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Apply(cs, true, &out); err != nil {
		t.Fatal(err)
	}
	golden(t, "dry-run-kubernetes", bytes.ReplaceAll(out.Bytes(), []byte(dir), []byte("$DIR")))
	if b, _ := os.ReadFile(o.ContainerdConfig); !bytes.Equal(b, orig) {
		t.Errorf("--dry-run changed the file")
	}
	if _, err := os.Lstat(o.Wrapper); err == nil && readLink(o.Wrapper) == o.Hooks.Binary {
		t.Logf("wrapper present on this machine already")
	}
}

// TestWrapperFirst: the wrapper's link and configuration come before the
// engine file that names them.
func TestWrapperFirst(t *testing.T) {
	for _, rt := range []string{"docker", "containerd", "kubernetes"} {
		o := engineOptions(t.TempDir())
		cs, err := Engines[rt].Install(o)
		if err != nil {
			t.Fatal(err)
		}
		if cs[0].Path != o.Wrapper || cs[0].Link != o.Hooks.Binary || cs[1].Path != o.Wrapper+".json" {
			t.Errorf("%s: changes start with %s, %s", rt, cs[0].Path, cs[1].Path)
		}
	}
}
