package wrapper

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func intp(i int) *int { return &i }

var testHooks = specs.Hooks{
	CreateRuntime:   []specs.Hook{{Path: "/usr/local/bin/gmsa-hook", Args: []string{"gmsa-hook", "hook", "createRuntime", "--config", "/etc/gmsa-hook/config.json"}, Timeout: intp(25)}},
	CreateContainer: []specs.Hook{{Path: "/usr/local/bin/gmsa-hook", Args: []string{"gmsa-hook", "hook", "createContainer", "--config", "/etc/gmsa-hook/config.json"}, Timeout: intp(10)}},
	Poststop:        []specs.Hook{{Path: "/usr/local/bin/gmsa-hook", Args: []string{"gmsa-hook", "hook", "poststop", "--config", "/etc/gmsa-hook/config.json"}, Timeout: intp(10)}},
}

// TestEditGolden: the hooks and KRB5CCNAME are added, gmsa-hook's old
// entries replaced, and every field runtime-spec does not model kept.
func TestEditGolden(t *testing.T) {
	in, err := os.ReadFile("testdata/config-unknown.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Edit(in, testHooks, nil)
	if err != nil {
		t.Fatal(err)
	}
	golden := "testdata/config-unknown.golden"
	if *update {
		os.WriteFile(golden, got, 0o644)
	}
	want, _ := os.ReadFile(golden)
	if !bytes.Equal(got, want) {
		t.Errorf("differs from %s (go test -update):\n%s", golden, got)
	}
	again, err := Edit(got, testHooks, nil)
	if err != nil || !bytes.Equal(again, got) {
		t.Errorf("a second edit changed the file: %v\n%s", err, again)
	}
	var m map[string]any
	json.Unmarshal(got, &m)
	for _, k := range []string{`"x-future-top":{"a":[1,2.50,"<&>"]}`, `"x-future-process":true`, `"x-extra":"kept"`, `"x-future-stage":[{"path":"/x"}]`} {
		if !strings.Contains(string(got), k) {
			t.Errorf("lost %s", k)
		}
	}
	if strings.Contains(string(got), "/old/gmsa-hook") {
		t.Errorf("an old gmsa-hook entry was kept")
	}
}

func TestEditKeepsKRB5CCNAME(t *testing.T) {
	got, err := Edit([]byte(`{"process":{"env":["KRB5CCNAME=/tmp/mine"]}}`), testHooks, nil)
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	json.Unmarshal(got, &s)
	if diff := cmp.Diff([]string{"KRB5CCNAME=/tmp/mine"}, s.Process.Env); diff != "" {
		t.Errorf("env (-want +got)\n%s", diff)
	}
	got, _ = Edit([]byte(`{"process":{}}`), testHooks, nil)
	json.Unmarshal(got, &s)
	if diff := cmp.Diff([]string{KRB5CCName}, s.Process.Env); diff != "" {
		t.Errorf("env (-want +got)\n%s", diff)
	}
}

func TestEditErrors(t *testing.T) {
	for in, want := range map[string]string{
		`[]`:                         "unusable bundle config.json: ",
		`{"hooks":[]}`:               `unusable bundle config.json: "hooks" is not an object`,
		`{"hooks":{"poststop":{}}}`:  `unusable bundle config.json: "hooks.poststop" is not a list`,
		`{"process":{"env":"PATH"}}`: `unusable bundle config.json: "process.env" is not a list of strings`,
	} {
		if _, err := Edit([]byte(in), testHooks, nil); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", in, err, want)
		}
	}
}

// TestBundle: a labelled bundle is edited, an unlabelled one is not
// touched (same bytes, same inode), Docker's label in config.v2.json counts.
func TestBundle(t *testing.T) {
	write := func(dir, s string) {
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	// No configuration file: the wrapper cannot know the run directory.
	hooks := hooksWith(filepath.Join(dir, "none.json"))
	plain := filepath.Join(dir, "plain")
	write(plain, `{"process":{"env":[]},"annotations":{"other":"x"}}`)
	before, _ := os.Stat(filepath.Join(plain, "config.json"))
	if err := Bundle(plain, "plain", hooks); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(filepath.Join(plain, "config.json"))
	if !os.SameFile(before, after) {
		t.Errorf("an unlabelled bundle's config.json was replaced")
	}

	labelled := filepath.Join(dir, "labelled")
	write(labelled, `{"process":{"env":[]},"annotations":{"credentialspec":"file://a.json"}}`)
	if err := Bundle(labelled, "labelled", hooks); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(filepath.Join(labelled, "config.json"))
	if info.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", info.Mode())
	}
	var s specs.Spec
	b, _ := os.ReadFile(filepath.Join(labelled, "config.json"))
	json.Unmarshal(b, &s)
	if s.Hooks == nil || len(s.Hooks.CreateRuntime) != 1 || len(s.Hooks.CreateContainer) != 1 || len(s.Hooks.Poststop) != 1 {
		t.Errorf("hooks: %s", b)
	}

	// Docker: the label is in <data-root>/containers/<id>/config.v2.json,
	// found from the /etc/hostname mount.
	id := "e2eb1e974503daccc9e19ea4feb66079c7614f049e56232d38c2b50f7aca1994"
	ddir := filepath.Join(dir, "containers", id)
	os.MkdirAll(ddir, 0o755)
	v2, err := os.ReadFile(filepath.Join("../testdata/docker/containers", id, "config.v2.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ddir, "config.v2.json"), v2, 0o600)
	docker := filepath.Join(dir, "io.containerd.runtime.v2.task", "moby", id)
	write(docker, `{"process":{"env":[]},"mounts":[{"destination":"/etc/hostname","type":"bind","source":"`+filepath.Join(ddir, "hostname")+`"}]}`)
	if err := Bundle(docker, id, hooks); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(filepath.Join(docker, "config.json"))
	if !strings.Contains(string(b), KRB5CCName) || !strings.Contains(string(b), "createRuntime") {
		t.Errorf("docker-labelled bundle not edited: %s", b)
	}
}

// TestPrepare: the real runtime comes from the configuration, the
// arguments pass untouched, and a wrapper not called by its absolute path
// or without its configuration fails naming the file.
func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	w := filepath.Join(dir, Name)
	cfg, _ := json.Marshal(Config{Runtime: "/usr/sbin/runc", Hooks: testHooks})
	os.WriteFile(ConfigPath(w), cfg, 0o644)
	args := []string{w, "--root", "/r", "--systemd-cgroup", "state", "abc"}
	rt, argv, err := Prepare(args)
	if err != nil {
		t.Fatal(err)
	}
	if rt != "/usr/sbin/runc" {
		t.Errorf("runtime %q", rt)
	}
	if diff := cmp.Diff(append([]string{"/usr/sbin/runc"}, args[1:]...), argv); diff != "" {
		t.Errorf("argv (-want +got)\n%s", diff)
	}
	if _, _, err := Prepare([]string{Name, "state", "x"}); err == nil || !strings.Contains(err.Error(), "must be called by its absolute path") {
		t.Errorf("relative argv0: %v", err)
	}
	if _, _, err := Prepare([]string{filepath.Join(dir, "other", Name), "state"}); err == nil || !strings.HasPrefix(err.Error(), "unusable runtime wrapper configuration: open ") {
		t.Errorf("no configuration: %v", err)
	}
	os.WriteFile(ConfigPath(w), []byte(`{"runtime":"runc"}`), 0o644)
	if _, _, err := Prepare(args); err == nil || !strings.Contains(err.Error(), `"runtime" must be the absolute path of the real runtime, not "runc"`) {
		t.Errorf("relative runtime: %v", err)
	}
	os.WriteFile(ConfigPath(w), []byte(`{"runtime":"/usr/sbin/runc","typo":1}`), 0o644)
	if _, _, err := Prepare(args); err == nil || !strings.Contains(err.Error(), `unknown field "typo"`) {
		t.Errorf("unknown key: %v", err)
	}
}

// hooksWith is testHooks reading the configuration file cfg.
func hooksWith(cfg string) specs.Hooks {
	h := specs.Hooks{}
	for _, s := range []struct{ from, to *[]specs.Hook }{{&testHooks.CreateRuntime, &h.CreateRuntime}, {&testHooks.CreateContainer, &h.CreateContainer}, {&testHooks.Poststop, &h.Poststop}} {
		for _, e := range *s.from {
			e.Args = append([]string{}, e.Args...)
			e.Args[len(e.Args)-1] = cfg
			*s.to = append(*s.to, e)
		}
	}
	return h
}

// memDir is a directory of the test's own on a memory file system.
func memDir(t *testing.T) string {
	t.Helper()
	if !container.OnMemoryFS("/dev/shm") {
		t.Fatal("/dev/shm is not a tmpfs: the test needs a memory file system")
	}
	dir, err := os.MkdirTemp("/dev/shm", "gmsa-wrapper-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestBundleMount: where the hook's run directory is laid out on a memory
// file system, a labelled bundle gets its ticket directory made and bound
// by config.json's mounts, and no createContainer hook; where the wrapper
// cannot be sure (no layout yet, a disk, a relative bundle path) it gets
// the createContainer hook as before.
func TestBundleMount(t *testing.T) {
	runDir := memDir(t)
	cfgFile := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfgFile, []byte(`{"run_dir":"`+runDir+`"}`), 0o600)
	hooks := hooksWith(cfgFile)
	bundle := func(id string) string {
		b := filepath.Join(t.TempDir(), id)
		os.MkdirAll(b, 0o755)
		os.WriteFile(filepath.Join(b, "config.json"), []byte(`{"process":{"env":[]},"mounts":[{"destination":"/proc","type":"proc","source":"proc"}],"annotations":{"credentialspec":"file://a.json"}}`), 0o644)
		return b
	}
	read := func(b string) specs.Spec {
		var s specs.Spec
		data, _ := os.ReadFile(filepath.Join(b, "config.json"))
		if err := json.Unmarshal(data, &s); err != nil || s.Hooks == nil {
			t.Fatalf("%s: %v %s", b, err, data)
		}
		return s
	}
	ticketMounts := func(s specs.Spec) (n int) {
		for _, m := range s.Mounts {
			if m.Destination == container.MountPoint {
				n++
			}
		}
		return n
	}

	// No layout yet (the hook makes it at its first createRuntime).
	b1 := bundle("m1")
	if err := Bundle(b1, "m1", hooks); err != nil {
		t.Fatal(err)
	}
	if s := read(b1); len(s.Hooks.CreateContainer) != 1 || ticketMounts(s) != 0 {
		t.Errorf("without a layout: want the createContainer hook, got %+v", s)
	}

	os.Mkdir(filepath.Join(runDir, container.ContainersDir), 0o711)
	b2 := bundle("m2")
	for range 2 {
		if err := Bundle(b2, "m2", hooks); err != nil {
			t.Fatal(err)
		}
	}
	s := read(b2)
	want := TicketMount(container.TicketDir(runDir, "m2", b2))
	if len(s.Hooks.CreateContainer) != 0 || len(s.Hooks.CreateRuntime) != 1 || len(s.Hooks.Poststop) != 1 ||
		ticketMounts(s) != 1 || !cmp.Equal(s.Mounts[len(s.Mounts)-1], want) || s.Mounts[0].Type != "proc" {
		t.Errorf("with the layout: hooks %+v, mounts %+v; want the last mount %+v", s.Hooks, s.Mounts, want)
	}
	if fi, err := os.Lstat(want.Source); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("the ticket directory: %v %v", fi, err)
	}

	// A run directory on a disk: the hook would mount a tmpfs over it.
	disk := t.TempDir()
	os.Mkdir(filepath.Join(disk, container.ContainersDir), 0o711)
	os.WriteFile(cfgFile, []byte(`{"run_dir":"`+disk+`"}`), 0o600)
	b3 := bundle("m3")
	if err := Bundle(b3, "m3", hooks); err != nil {
		t.Fatal(err)
	}
	if s := read(b3); len(s.Hooks.CreateContainer) != 1 || ticketMounts(s) != 0 {
		t.Errorf("a run directory on a disk: want the createContainer hook, got %+v", s)
	}
	if entries, _ := os.ReadDir(filepath.Join(disk, container.ContainersDir)); len(entries) != 0 {
		t.Errorf("made on a disk: %v", entries)
	}
}
