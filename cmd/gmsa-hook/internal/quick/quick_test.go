package quick

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

// bundle writes a bundle whose config.json has the given annotations and
// mounts (JSON), and returns its directory.
func bundle(t *testing.T, annotations, mounts string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := `{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"user":{"uid":1000,"gid":1000}},"annotations":` + annotations + `,"mounts":` + mounts + `}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func state(id, bundle, annotations string) string {
	return `{"ociVersion":"1.0.2","id":"` + id + `","status":"creating","pid":1,"bundle":"` + bundle + `","annotations":` + annotations + `}`
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestQuickRun(t *testing.T) {
	runDir := t.TempDir()
	plain := bundle(t, "null", "[]")
	annotated := bundle(t, `{"credentialspec":"file:///etc/gmsa/webapp01.json"}`, "[]")
	// Docker: the /etc/hostname mount leads to config.v2.json.
	dockerDir := filepath.Join(t.TempDir(), "containers", "d1")
	writeFile(t, filepath.Join(dockerDir, "hostname"), "d1\n")
	writeFile(t, filepath.Join(dockerDir, "config.v2.json"), `{"ID":"d1","Config":{"Labels":{"app":"web"}}}`)
	dockerPlain := bundle(t, "null", `[{"destination":"/etc/hostname","type":"bind","source":"`+filepath.Join(dockerDir, "hostname")+`"}]`)
	dockerLabelledDir := filepath.Join(t.TempDir(), "containers", "d2")
	writeFile(t, filepath.Join(dockerLabelledDir, "hostname"), "d2\n")
	writeFile(t, filepath.Join(dockerLabelledDir, "config.v2.json"), `{"ID":"d2","Config":{"Labels":{"credentialspec":"file:///s.json"}}}`)
	dockerLabelled := bundle(t, "null", `[{"destination":"/etc/hostname","type":"bind","source":"`+filepath.Join(dockerLabelledDir, "hostname")+`"}]`)
	// containerd: only containerd knows the labels.
	ctrd := filepath.Join(t.TempDir(), "io.containerd.runtime.v2.task", "default", "c1")
	writeFile(t, filepath.Join(ctrd, "config.json"), `{"root":{"path":"rootfs"}}`)
	// A leftover directory of a container named "old".
	if err := os.MkdirAll(container.TicketDir(runDir, "old", plain), 0o700); err != nil {
		t.Fatal(err)
	}
	// The directory of a container named "other" whose process (this
	// test's, standing for it) runs under another runtime, same bundle.
	self, err := container.ProcessStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(container.Dir(runDir, "other", plain), "meta.json"), fmt.Sprintf(`{"pid":%d,"pid_start":%d}`, os.Getpid(), self))
	cfgDir := t.TempDir()
	config := writeFile(t, filepath.Join(cfgDir, "config.json"), `{"run_dir":"`+runDir+`","timeout":"10s"}`)
	withLog := writeFile(t, filepath.Join(cfgDir, "log.json"), `{"run_dir":"`+runDir+`","log_file":"/tmp/gmsa-hook.log"}`)
	broken := writeFile(t, filepath.Join(cfgDir, "broken.json"), `{"run_dir":`)
	relative := writeFile(t, filepath.Join(cfgDir, "relative.json"), `{"run_dir":"run"}`)

	tests := []struct {
		name  string
		args  []string
		state string
		want  bool
	}{
		{"createRuntime, no label", []string{"createRuntime", "--config", config}, state("c", plain, "null"), true},
		{"prestart, no label", []string{"prestart", "--config=" + config}, state("c", plain, "null"), true},
		{"createContainer, no label", []string{"createContainer", "--config", config}, state("c", plain, "null"), true},
		{"poststop, no label", []string{"poststop", "--config", config}, state("c", plain, "null"), true},
		{"containerd address flag", []string{"poststop", "--config", config, "--containerd-address", "/run/x.sock"}, state("c", plain, "null"), true},
		{"state annotation", []string{"createRuntime", "--config", config}, state("c", plain, `{"credentialspec":"x"}`), false},
		{"config annotation", []string{"createRuntime", "--config", config}, state("c", annotated, "null"), false},
		{"createContainer with an annotation", []string{"createContainer", "--config", config}, state("c", plain, `{"credentialspec":"x"}`), false},
		{"docker without the label", []string{"createRuntime", "--config", config}, state("d1", dockerPlain, "null"), true},
		{"docker label", []string{"createRuntime", "--config", config}, state("d2", dockerLabelled, "null"), false},
		{"containerd asks containerd", []string{"createRuntime", "--config", config}, state("c1", ctrd, "null"), false},
		{"leftover directory at createRuntime", []string{"createRuntime", "--config", config}, state("old", plain, "null"), false},
		{"leftover directory at createContainer", []string{"createContainer", "--config", config}, state("old", plain, "null"), false},
		{"poststop removes the directory", []string{"poststop", "--config", config}, state("old", plain, "null"), true},
		{"poststop leaves another container's directory to the full run", []string{"poststop", "--config", config}, state("other", plain, "null"), false},
		{"debug log asks for the full run", []string{"poststop", "--config", withLog}, state("c", plain, "null"), false},
		{"unreadable config", []string{"poststop", "--config", filepath.Join(cfgDir, "missing.json")}, state("c", plain, "null"), false},
		{"broken config", []string{"poststop", "--config", broken}, state("c", plain, "null"), false},
		{"relative run_dir", []string{"poststop", "--config", relative}, state("c", plain, "null"), false},
		{"unknown flag", []string{"poststop", "--verbose"}, state("c", plain, "null"), false},
		{"flag without value", []string{"poststop", "--config"}, state("c", plain, "null"), false},
		{"stray argument", []string{"poststop", "extra"}, state("c", plain, "null"), false},
		{"unknown stage", []string{"poststart", "--config", config}, state("c", plain, "null"), false},
		{"not a state", []string{"poststop", "--config", config}, `{"id":`, false},
		{"missing bundle", []string{"createRuntime", "--config", config}, state("c", "/nonexistent", "null"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			consumed = nil
			if got := quickRun(tt.args, strings.NewReader(tt.state)); got != tt.want {
				t.Errorf("quickRun = %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := os.Lstat(container.Dir(runDir, "old", plain)); !os.IsNotExist(err) {
		t.Errorf("poststop left the container's directory: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(container.Dir(runDir, "other", plain), "meta.json")); err != nil {
		t.Errorf("poststop removed another container's directory: %v", err)
	}
}

// TestPoststopCannotRemove: a directory that cannot be removed is the full
// run's to report.
func TestPoststopCannotRemove(t *testing.T) {
	if os.Geteuid() == 0 {
		// root removes whatever it likes: make the parent immutable instead
		// by putting a file where the run directory's "containers" is.
		runDir := t.TempDir()
		writeFile(t, filepath.Join(runDir, "containers"), "not a directory")
		cfg := writeFile(t, filepath.Join(t.TempDir(), "c.json"), `{"run_dir":"`+runDir+`"}`)
		if quickRun([]string{"poststop", "--config", cfg}, strings.NewReader(state("c", "/b", "null"))) {
			t.Error("quick run claims poststop done with containers/ a file")
		}
		return
	}
	runDir := t.TempDir()
	dir := container.TicketDir(runDir, "c", "/b")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(runDir, "containers"), 0o500)
	defer os.Chmod(filepath.Join(runDir, "containers"), 0o700)
	cfg := writeFile(t, filepath.Join(t.TempDir(), "c.json"), `{"run_dir":"`+runDir+`"}`)
	if quickRun([]string{"poststop", "--config", cfg}, strings.NewReader(state("c", "/b", "null"))) {
		t.Error("quick run claims poststop done without removing the directory")
	}
}

// TestNotAStageLeavesStdin: "gmsa-hook hook --help" at a terminal must not
// wait for a state on stdin.
func TestNotAStageLeavesStdin(t *testing.T) {
	for _, stage := range []string{"--help", "poststart", "createruntime"} {
		consumed = nil
		if quickRun([]string{stage}, strings.NewReader(`{}`)) || consumed != nil {
			t.Errorf("%s: read stdin (%q)", stage, consumed)
		}
	}
}

// TestStdinGivesBack: the full run reads the state init already read.
func TestStdinGivesBack(t *testing.T) {
	const st = `{"id":"c","bundle":"/nonexistent","annotations":{"credentialspec":"x"}}`
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old }()
	go func() {
		w.WriteString(st)
		w.Close()
	}()
	consumed = nil
	if quickRun([]string{"createRuntime"}, os.Stdin) {
		t.Fatal("quick run for a labelled container")
	}
	b, err := io.ReadAll(Stdin())
	if err != nil || string(b) != st {
		t.Errorf("Stdin gave %q, %v; want %q", b, err, st)
	}
}

// TestRunDirAgrees: this package reads run_dir as config.Load does.
func TestRunDirAgrees(t *testing.T) {
	if got, ok := runDirOf(""); !ok || got != config.DefaultRunDir {
		t.Errorf("no config file: run_dir %q (%v), want %q", got, ok, config.DefaultRunDir)
	}
	dir := t.TempDir()
	for i, c := range []string{`{}`, `{"run_dir":"/var/run/g"}`, `{"RUN_DIR":"/x"}`, `{"run_dir":""}`, `{"timeout":"5s","run_dir":"/a/b/"}`} {
		p := writeFile(t, filepath.Join(dir, strings.Repeat("c", i+1)), c)
		cfg, err := config.Load(p)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		got, ok := runDirOf(p)
		if !ok || got != cfg.RunDirOrDefault() {
			t.Errorf("%s: run_dir %q (%v), config says %q", c, got, ok, cfg.RunDirOrDefault())
		}
	}
}
