package passthrough_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/hook/wrapper"
	"github.com/gmsa-hook/gmsa-hook/hook/wrapper/passthrough"
	"github.com/gmsa-hook/gmsa-hook/install"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want passthrough.Invocation
		err  string
	}{
		{"containerd shim create", []string{"--root", "/run/containerd/runc/k8s.io", "--log", "/b/log.json", "--log-format", "json", "--systemd-cgroup", "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "--console-socket", "/tmp/c.sock", "abc"},
			passthrough.Invocation{Command: "create", Bundle: "/b", ID: "abc"}, ""},
		{"equals forms", []string{"--root=/r", "--debug", "create", "-b=/b", "--no-pivot", "id1"}, passthrough.Invocation{Command: "create", Bundle: "/b", ID: "id1"}, ""},
		{"short bundle", []string{"create", "-b", "/b", "id2"}, passthrough.Invocation{Command: "create", Bundle: "/b", ID: "id2"}, ""},
		{"run without bundle", []string{"run", "-d", "id3"}, passthrough.Invocation{Command: "run", ID: "id3"}, ""},
		{"id after --", []string{"create", "--bundle", "/b", "--", "-id4"}, passthrough.Invocation{Command: "create", Bundle: "/b", ID: "-id4"}, ""},
		{"start", []string{"--root", "/r", "start", "abc"}, passthrough.Invocation{Command: "start"}, ""},
		{"delete", []string{"--root", "/r", "--log", "x", "delete", "--force", "abc"}, passthrough.Invocation{Command: "delete"}, ""},
		{"no command", []string{"--version"}, passthrough.Invocation{}, ""},
		{"unknown global flag", []string{"--frobnicate", "x", "create", "id"}, passthrough.Invocation{}, `unknown runtime flag "--frobnicate" before the command`},
		{"bundle without value", []string{"create", "--bundle"}, passthrough.Invocation{Command: "create"}, `runtime flag "--bundle" has no value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := passthrough.ParseArgs(tt.args)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// installed is the wrapper's configuration exactly as gmsa-hook install
// writes it, in dir.
func installed(t testing.TB, dir string) []byte {
	o := install.Options{
		Hooks:   install.Hooks{Binary: "/usr/local/bin/gmsa-hook", Config: "/etc/gmsa-hook/config.json", FetchTimeout: 20 * time.Second},
		Wrapper: filepath.Join(dir, passthrough.Name), Runtime: "/usr/sbin/runc", DaemonJSON: filepath.Join(dir, "daemon.json"),
	}
	cs, err := install.Engines["docker"].Install(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Path == passthrough.ConfigPath(o.Wrapper) {
			return c.New
		}
	}
	t.Fatal("install writes no wrapper configuration")
	return nil
}

// TestRuntime: every command but create and run, with the configuration
// install writes, passes through as wrapper.Prepare would pass it;
// anything else is left to package wrapper.
func TestRuntime(t *testing.T) {
	dir := t.TempDir()
	w := filepath.Join(dir, passthrough.Name)
	os.WriteFile(passthrough.ConfigPath(w), installed(t, dir), 0o644)
	for _, args := range [][]string{
		{w, "--version"},
		{w, "features"},
		{w, "--root", "/run/docker/runtime-runc/moby", "--log", "/l/log.json", "--log-format", "json", "--systemd-cgroup", "state", "abc"},
		{w, "--root=/r", "--debug", "start", "abc"},
		{w, "delete", "--force", "abc"},
		{w, "kill", "abc", "9"},
		{w},
	} {
		rt, argv, ok := passthrough.Runtime(args)
		if !ok {
			t.Errorf("%q: not passed through", args)
			continue
		}
		wantRt, wantArgv, err := wrapper.Prepare(args)
		if err != nil {
			t.Fatal(err)
		}
		if rt != wantRt || !cmp.Equal(argv, wantArgv) {
			t.Errorf("%q: %s %q, wrapper.Prepare says %s %q", args, rt, argv, wantRt, wantArgv)
		}
	}
	for _, args := range [][]string{
		{w, "create", "--bundle", "/b", "abc"},
		{w, "--root", "/r", "run", "abc"},
		{w, "--frobnicate", "state", "abc"},
		{passthrough.Name, "state", "abc"},
		{filepath.Join(dir, "x", passthrough.Name), "state", "abc"},
		{filepath.Join(dir, "gmsa-hook"), "state", "abc"},
		{},
	} {
		if _, _, ok := passthrough.Runtime(args); ok {
			t.Errorf("%q: passed through", args)
		}
	}
}

// TestRuntimeConfig: configurations wrapper.ReadConfig refuses, or might
// read differently, are left to it.
func TestRuntimeConfig(t *testing.T) {
	dir := t.TempDir()
	w := filepath.Join(dir, passthrough.Name)
	args := []string{w, "state", "abc"}
	good := string(installed(t, dir))
	for name, cfg := range map[string]string{
		"unknown key":           strings.Replace(good, `"runtime"`, `"typo": 1, "runtime"`, 1),
		"unknown hook key":      strings.Replace(good, `"path"`, `"typo": 1, "path"`, 1),
		"unknown stage":         strings.Replace(good, `"poststop"`, `"postStop"`, 1),
		"key in another case":   strings.Replace(good, `"runtime"`, `"Runtime"`, 1),
		"duplicate key":         strings.Replace(good, `"runtime"`, `"runtime": "/usr/bin/crun", "runtime"`, 1),
		"escape":                `{"runtime": "/usr/sbin/\u0072unc"}`,
		"relative runtime":      `{"runtime": "runc"}`,
		"the wrapper itself":    `{"runtime": "/usr/local/lib/gmsa-hook/gmsa-runc"}`,
		"no runtime":            `{"hooks": {}}`,
		"null runtime":          `{"runtime": null}`,
		"fractional timeout":    `{"runtime": "/usr/sbin/runc", "hooks": {"poststop": [{"path": "/h", "timeout": 1.5}]}}`,
		"large timeout":         `{"runtime": "/usr/sbin/runc", "hooks": {"poststop": [{"path": "/h", "timeout": 12345678901}]}}`,
		"string timeout":        `{"runtime": "/usr/sbin/runc", "hooks": {"poststop": [{"path": "/h", "timeout": "5"}]}}`,
		"args not strings":      `{"runtime": "/usr/sbin/runc", "hooks": {"poststop": [{"path": "/h", "args": [1]}]}}`,
		"trailing comma":        `{"runtime": "/usr/sbin/runc",}`,
		"after the object":      `{"runtime": "/usr/sbin/runc"} {}`,
		"not an object":         `["/usr/sbin/runc"]`,
		"invalid UTF-8":         "{\"runtime\": \"/usr/sbin/runc\xff\"}",
		"unterminated":          `{"runtime": "/usr/sbin/runc"`,
		"empty":                 ``,
		"larger than ReadSmall": `{"runtime": "/usr/sbin/runc"}` + strings.Repeat(" ", container.MaxState),
	} {
		os.WriteFile(passthrough.ConfigPath(w), []byte(cfg), 0o644)
		if rt, _, ok := passthrough.Runtime(args); ok {
			t.Errorf("%s: passed through to %s", name, rt)
		}
	}
	for name, cfg := range map[string]string{
		"installed":         good,
		"compact":           `{"runtime":"/usr/sbin/runc","hooks":{}}`,
		"no hooks":          "\r\n\t {\"runtime\": \"/usr/sbin/runc\"}\n\n",
		"every hook field":  `{"hooks": {"prestart": [], "poststart": [{"path": "/h", "args": ["h", "é"], "env": ["A=1"], "timeout": -0}]}, "runtime": "/usr/bin/crun"}`,
		"at ReadSmall size": `{"runtime": "/usr/sbin/runc"}` + strings.Repeat(" ", container.MaxState-len(`{"runtime": "/usr/sbin/runc"}`)),
	} {
		os.WriteFile(passthrough.ConfigPath(w), []byte(cfg), 0o644)
		rt, _, ok := passthrough.Runtime(args)
		wantRt, _, err := wrapper.Prepare(args)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !ok || rt != wantRt {
			t.Errorf("%s: passed through %v to %q, want %q", name, ok, rt, wantRt)
		}
	}
}

// FuzzRuntime: whatever Runtime passes through, wrapper.Prepare passes
// through to the same runtime with the same arguments, without an error.
func FuzzRuntime(f *testing.F) {
	dir := f.TempDir()
	f.Add(string(installed(f, dir)), "state")
	f.Add(`{"runtime":"/usr/sbin/runc","hooks":{"poststop":[{"path":"/h","args":["a"],"env":[],"timeout":10}]}}`, "--version")
	f.Add(`{"runtime":"/r","hooks":{"createRuntime":[{"path":"","timeout":0}]}}`, "delete")
	w := filepath.Join(dir, passthrough.Name)
	f.Fuzz(func(t *testing.T, cfg, command string) {
		if err := os.WriteFile(passthrough.ConfigPath(w), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{w, "--root", "/r", command, "abc"}
		rt, argv, ok := passthrough.Runtime(args)
		if !ok {
			return
		}
		wantRt, wantArgv, err := wrapper.Prepare(args)
		if err != nil {
			t.Fatalf("passed through to %s, wrapper.Prepare: %v", rt, err)
		}
		if rt != wantRt || !cmp.Equal(argv, wantArgv) {
			t.Fatalf("%s %q, wrapper.Prepare says %s %q", rt, argv, wantRt, wantArgv)
		}
	})
}
