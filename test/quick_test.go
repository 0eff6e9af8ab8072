package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// TestWarmCreateSkipsHeavyInit: a labelled container's createRuntime whose
// gMSA ticket is in the node's cache ends before the AWS SDK, LDAP,
// Kerberos, TLS and gRPC are initialised (package warm), and places the
// cached ticket as the full run does; the real binary against the real
// DC. Whatever the files alone cannot settle goes on to the full run: a
// refused label (which the full run reports), an emptied cache (which it
// fetches), a debug log.
func TestWarmCreateSkipsHeavyInit(t *testing.T) {
	dom := testDomain(t)
	env := newHookEnv(t, dom, nil)
	var cfg map[string]any
	b, _ := os.ReadFile(env.config)
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	delete(cfg, "log_file")
	quiet := writeJSON(t, t.TempDir(), "config.json", cfg, 0o644)
	full := []string{"init crypto/tls ", "init net/http ", "init github.com/go-ldap/ldap/v3 ", "init github.com/aws/aws-sdk-go-v2/service/ssm/", "init google.golang.org/grpc "}
	dir := t.TempDir()
	bundle := func(id, label string) string {
		b := filepath.Join(dir, id)
		os.MkdirAll(filepath.Join(b, "rootfs"), 0o755)
		os.WriteFile(filepath.Join(b, "config.json"), []byte(`{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"user":{"uid":1000,"gid":1000}},"annotations":{"credentialspec":"`+label+`"}}`), 0o644)
		return b
	}
	// The test's own process stands for the container's.
	create := func(config, id, bundle string) (string, int) {
		state := fmt.Sprintf(`{"ociVersion":"1.0.2","id":%q,"status":"creating","pid":%d,"bundle":%q}`, id, os.Getpid(), bundle)
		r := runHookInput(t, []string{"GODEBUG=inittrace=1"}, state, "hook", "createRuntime", "--config", config)
		return r.stderr, r.code
	}
	initialised := func(trace string) (names []string) {
		for _, h := range full {
			if strings.Contains(trace, h) {
				names = append(names, strings.TrimSpace(h))
			}
		}
		return names
	}
	label := "file://" + dom.Credspec("webapp01-domainless")

	// The first container fetches (a full run: the debug log is set).
	b1 := bundle("warm1", label)
	if tr, code := create(env.config, "warm1", b1); code != 0 || len(initialised(tr)) != len(full) {
		t.Fatalf("first create: exit %d, initialised %v\n%s", code, initialised(tr), tr)
	}
	// The second, without the debug log, takes the cached ticket early.
	b2 := bundle("warm2", label)
	tr, code := create(quiet, "warm2", b2)
	// (warm's own line never comes: its init ends the process.)
	if code != 0 || !strings.Contains(tr, "init github.com/gmsa-hook/gmsa-hook/hook/store ") {
		t.Fatalf("cached create: exit %d\n%s", code, tr)
	}
	if names := initialised(tr); len(names) > 0 {
		t.Errorf("cached create initialised %v", names)
	}
	c1, c2 := containerDir(env.runDir, "warm1", b1), containerDir(env.runDir, "warm2", b2)
	t1, err1 := os.ReadFile(filepath.Join(c1, "krbdir", "krb5cc"))
	t2, err2 := os.ReadFile(filepath.Join(c2, "krbdir", "krb5cc"))
	if err1 != nil || err2 != nil || !bytes.Equal(t1, t2) {
		t.Fatalf("the cached create did not place the first one's ticket: %v %v", err1, err2)
	}
	var m struct {
		Pid, UID int
		Config   string
		Account  string
	}
	mb, _ := os.ReadFile(filepath.Join(c2, "meta.json"))
	if err := json.Unmarshal(mb, &m); err != nil || m.Pid != os.Getpid() || m.UID != 1000 || m.Config != quiet || m.Account != "webapp01$" {
		t.Errorf("meta.json of the cached create: %+v %v\n%s", m, err, mb)
	}
	if fi, err := os.Stat(filepath.Join(c2, "krbdir", "krb5cc")); err != nil || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Errorf("the cached create's ticket: %v %v", fi, err)
	}

	// A label the policy refuses: the warm run leaves it, the full run
	// refuses it and says why; nothing is placed.
	b3 := bundle("warm3", "file:///etc/shadow")
	tr, code = create(quiet, "warm3", b3)
	if code == 0 || !strings.Contains(tr, "refused by policy") || len(initialised(tr)) != len(full) {
		t.Errorf("refused label: exit %d, initialised %v\n%s", code, initialised(tr), tr)
	}
	if _, err := os.Lstat(containerDir(env.runDir, "warm3", b3)); !os.IsNotExist(err) {
		t.Errorf("refused label left a directory: %v", err)
	}

	// No cached ticket: the full run fetches.
	entries, _ := filepath.Glob(filepath.Join(env.runDir, "cache", "*"))
	for _, e := range entries {
		os.RemoveAll(e)
	}
	b4 := bundle("warm4", label)
	tr, code = create(quiet, "warm4", b4)
	if code != 0 || len(initialised(tr)) != len(full) {
		t.Errorf("create with the cache emptied: exit %d, initialised %v\n%s", code, initialised(tr), tr)
	}
	if _, err := os.Stat(filepath.Join(containerDir(env.runDir, "warm4", b4), "krbdir", "krb5cc")); err != nil {
		t.Errorf("create with the cache emptied placed no ticket: %v", err)
	}
}
