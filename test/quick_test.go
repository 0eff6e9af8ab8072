package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// heavyInits are init trace lines of packages a quick run must end
// before. protobuf's and smithy's were initialised before package quick
// while quick's imports reached path/filepath, which sorts late: Go
// initialises every ready package that sorts before it first.
var heavyInits = []string{"init net/http ", "init github.com/aws/aws-sdk-go-v2/service/ssm/", "init crypto/tls ", "init google.golang.org/grpc ",
	"init google.golang.org/protobuf/proto ", "init github.com/aws/smithy-go/prelude "}

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
	heavy := heavyInits
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

// TestLabelledMountIsQuick: a labelled container's createContainer, its
// ticket directory placed at createRuntime and no debug log asked for, is
// done before the heavy packages are initialised: the real binary, in a
// mount namespace of the test's own, mounts the directory read-only where
// the container looks. A mount that fails is done again by the full run,
// which reports it and removes the directory.
func TestLabelledMountIsQuick(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		needCI(t, "unshare is not installed (util-linux)")
	}
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	cfg := writeJSON(t, dir, "config.json", map[string]any{"run_dir": runDir}, 0o600)
	heavy := heavyInits
	mount := func(id, rootfsSetup string) (string, string) {
		t.Helper()
		bundle := filepath.Join(dir, id)
		rootfs := filepath.Join(bundle, "rootfs")
		os.MkdirAll(rootfs, 0o755)
		if rootfsSetup != "" {
			os.MkdirAll(filepath.Join(rootfs, "var", "credentials-fetcher"), 0o755)
			os.WriteFile(filepath.Join(rootfs, "var", "credentials-fetcher", "krbdir"), []byte(rootfsSetup), 0o644)
		}
		os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"user":{"uid":0,"gid":0}}}`), 0o644)
		cdir := containerDir(runDir, id, bundle)
		os.MkdirAll(filepath.Join(cdir, "krbdir"), 0o755)
		os.WriteFile(filepath.Join(cdir, "meta.json"), []byte(`{}`), 0o600)
		os.WriteFile(filepath.Join(cdir, "krbdir", "krb5cc"), []byte("the ticket of "+id), 0o644)
		state := filepath.Join(dir, id+".state")
		os.WriteFile(state, []byte(`{"ociVersion":"1.0.2","id":"`+id+`","status":"creating","pid":1,"bundle":"`+bundle+`","annotations":{"credentialspec":"file://x.json"}}`), 0o644)
		script := fmt.Sprintf(`GODEBUG=inittrace=1 %s hook createContainer --config %s <%s; echo "rc=$?" >&2; cat %s/var/credentials-fetcher/krbdir/krb5cc`,
			gmsaHook(t), cfg, state, rootfs)
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		cmd.Run()
		return o.String(), e.String()
	}

	out, trace := mount("quickmount", "")
	if !strings.Contains(trace, "rc=0") || out != "the ticket of quickmount" {
		t.Fatalf("labelled createContainer: the container sees %q\n%s", out, trace)
	}
	if !strings.Contains(trace, "init encoding/json ") {
		t.Fatalf("no init trace:\n%s", trace)
	}
	for _, h := range heavy {
		if strings.Contains(trace, h) {
			t.Errorf("labelled createContainer: %q was initialised", strings.TrimSpace(h))
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "quickmount", "rootfs", "var", "credentials-fetcher", "krbdir", "krb5cc")); err == nil {
		t.Errorf("the mount is visible outside the container's namespace: %q", b)
	}

	out, trace = mount("failedmount", "a file where the mount point goes")
	if strings.Contains(trace, "rc=0") || !strings.Contains(trace, "gmsa-hook: error: container failedmount: cannot mount the ticket directory onto /var/credentials-fetcher/krbdir") {
		t.Errorf("a failed mount: want the full run's error, got %q\n%s", out, trace)
	}
	if !strings.Contains(trace, "init crypto/tls ") {
		t.Errorf("a failed mount was not done again by the full run:\n%s", trace)
	}
	if _, err := os.Lstat(containerDir(runDir, "failedmount", filepath.Join(dir, "failedmount"))); !os.IsNotExist(err) {
		t.Errorf("a failed mount left the container's directory: %v", err)
	}
}
