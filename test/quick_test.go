package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnlabelledRunSkipsHeavyInit proves, on the real binary, that a hook
// run for a container without the label ends before the packages it does
// not need are initialised (package quick), and that a labelled one still
// gets the full run. Go's init trace names every package initialised.
func TestUnlabelledRunSkipsHeavyInit(t *testing.T) {
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	cfg := writeJSON(t, dir, "config.json", map[string]any{"run_dir": runDir, "timeout": "2s", "dns_server": "127.0.0.1:1", "domain_controllers": []string{"127.0.0.1"}}, 0o600)
	bundle := filepath.Join(dir, "bundle")
	os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o755)
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"user":{"uid":0,"gid":0}}}`), 0o644)
	heavy := []string{"init net/http ", "init github.com/aws/aws-sdk-go-v2/service/ssm/", "init crypto/tls ", "init google.golang.org/grpc "}
	trace := func(stage, state string) (string, int) {
		r := runHookInput(t, []string{"GODEBUG=inittrace=1"}, state, "hook", stage, "--config", cfg)
		if r.stdout != "" {
			t.Errorf("%s: stdout %q", stage, r.stdout)
		}
		return r.stderr, r.code
	}
	plain := `{"ociVersion":"1.0.2","id":"quick1","status":"creating","pid":1,"bundle":"` + bundle + `"}`
	for _, stage := range []string{"createRuntime", "createContainer", "poststop"} {
		tr, code := trace(stage, plain)
		if code != 0 {
			t.Errorf("%s, no label: exit %d\n%s", stage, code, tr)
		}
		if !strings.Contains(tr, "init encoding/json ") {
			t.Fatalf("%s: no init trace:\n%s", stage, tr)
		}
		for _, h := range heavy {
			if strings.Contains(tr, h) {
				t.Errorf("%s, no label: %q was initialised", stage, strings.TrimSpace(h))
			}
		}
	}
	// A labelled container's poststop only removes its directory: quick too.
	quick3 := containerDir(runDir, "quick3", bundle)
	os.MkdirAll(filepath.Join(quick3, "krbdir"), 0o700)
	os.WriteFile(filepath.Join(quick3, "meta.json"), []byte(`{}`), 0o600)
	tr, code := trace("poststop", `{"ociVersion":"1.0.2","id":"quick3","status":"stopped","bundle":"`+bundle+`","annotations":{"credentialspec":"x"}}`)
	if code != 0 {
		t.Errorf("poststop of a labelled container: exit %d\n%s", code, tr)
	}
	for _, h := range heavy {
		if strings.Contains(tr, h) {
			t.Errorf("poststop of a labelled container: %q was initialised", strings.TrimSpace(h))
		}
	}
	if _, err := os.Lstat(quick3); !os.IsNotExist(err) {
		t.Errorf("poststop left the container's directory: %v", err)
	}
	// Labelled: the full run, which fails here (no DC) and says why.
	labelled := `{"ociVersion":"1.0.2","id":"quick2","status":"creating","pid":1,"bundle":"` + bundle + `","annotations":{"credentialspec":"/nonexistent/spec.json"}}`
	tr, code = trace("createRuntime", labelled)
	if code == 0 || !strings.Contains(tr, "gmsa-hook: error: container quick2: ") {
		t.Errorf("labelled: exit %d, want the full run's error:\n%s", code, tr)
	}
	for _, h := range heavy {
		if !strings.Contains(tr, h) {
			t.Errorf("labelled: %q was not initialised", strings.TrimSpace(h))
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(runDir, "containers")); len(entries) != 0 {
		t.Errorf("left in the run directory: %v", entries)
	}
}
