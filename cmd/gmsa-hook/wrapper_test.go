package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gmsa-hook/gmsa-hook/hook/wrapper"
)

// TestWrapperPassThroughSkipsInit: this binary linked as the runtime
// wrapper execs the real runtime, for a command that only passes through,
// right after package os is initialised (package early), and a create
// still gets the wrapper's full run (package quick). Go's init trace names
// every package initialised.
func TestWrapperPassThroughSkipsInit(t *testing.T) {
	const runtime = "/bin/echo"
	if _, err := os.Stat(runtime); err != nil {
		t.Skip(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w := filepath.Join(dir, wrapper.Name)
	if err := os.Symlink(exe, w); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(wrapper.ConfigPath(w), []byte(`{"runtime": "`+runtime+`", "hooks": {}}`), 0o644)
	bundle := filepath.Join(dir, "bundle")
	os.Mkdir(bundle, 0o755)
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion": "1.2.1", "process": {"args": ["true"]}}`), 0o644)
	run := func(args ...string) (trace string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(w, args...)
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, &stderr)
		}
		if want := strings.Join(args, " ") + "\n"; stdout.String() != want {
			t.Errorf("%q: the runtime got %q, want %q", args, &stdout, want)
		}
		if !strings.Contains(stderr.String(), "init os ") {
			t.Fatalf("%q: no init trace:\n%s", args, &stderr)
		}
		return stderr.String()
	}
	// Markers of the packages a pass-through must not wait for: reflect
	// and encoding/json (and so every package that imports strings),
	// crypto, and protobuf's detrand, which reads the whole binary.
	heavy := []string{"init reflect ", "init encoding/json ", "init crypto/internal/fips140 ", "init google.golang.org/protobuf/internal/detrand "}
	for _, args := range [][]string{
		{"--debug", "--version"}, // (GNU echo answers a lone --version itself)
		{"features"},
		{"--root", "/run/docker/runtime-runc/moby", "--log", "/l/log.json", "--log-format", "json", "--systemd-cgroup", "state", "abc"},
		{"--root", "/r", "delete", "--force", "abc"},
	} {
		tr := run(args...)
		for _, h := range heavy {
			if strings.Contains(tr, h) {
				t.Errorf("%q: %q was initialised", args, strings.TrimSpace(h))
			}
		}
	}
	if tr := run("--root", "/r", "create", "--bundle", bundle, "abc"); !strings.Contains(tr, "init encoding/json ") {
		t.Errorf("create: not the wrapper's full run:\n%s", tr)
	}
}
