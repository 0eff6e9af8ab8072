package test

// Real OCI runtimes for the hook's tests: runc, and crun through the
// workaround of docs/runtimes (crun refuses this host's hybrid cgroups
// unless the cgroup2 hierarchy is unmounted in a private mount namespace).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ctr "github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/install"
)

// containerDir is the host directory of container id from bundle under a
// run directory (ctr.Name: the ID and a hash of the bundle path).
func containerDir(runDir, id, bundle string) string {
	return filepath.Join(runDir, "containers", ctr.Name(id, bundle))
}

// ociRuntime runs one runtime with its own state directory.
type ociRuntime struct {
	name string
	argv []string // the command and its global flags
}

func (rt ociRuntime) command(ctx context.Context, args ...string) *exec.Cmd {
	a := append(append([]string{}, rt.argv[1:]...), args...)
	return exec.CommandContext(ctx, rt.argv[0], a...)
}

// exec runs the runtime and returns its combined output.
func (rt ociRuntime) exec(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := rt.command(ctx, args...).CombinedOutput()
	return string(out), err
}

// mustExec is exec that fails the test on an error.
func (rt ociRuntime) mustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := rt.exec(t, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", rt.name, strings.Join(args, " "), err, out)
	}
	return out
}

// containers lists the runtime's containers (its state directory).
func (rt ociRuntime) containers(t testing.TB) []string {
	t.Helper()
	out := rt.mustExec(t, "list", "-q")
	return strings.Fields(out)
}

// crunWrapper is crun in a private mount namespace without the cgroup2
// hierarchy of a hybrid host (see the runtimes notes); on other hosts it is
// crun as is.
const crunWrapper = `#!/bin/sh
if grep -q ' /sys/fs/cgroup/unified cgroup2 ' /proc/self/mounts; then
	exec unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec crun "$@"' crun "$@"
fi
exec crun "$@"
`

// runtimeFor returns runc or crun with a fresh state directory; a missing
// runtime skips the test by hand and fails it in CI.
func runtimeFor(t testing.TB, name string) ociRuntime {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		needCI(t, name+" is not installed (apt-get install "+name+")")
	}
	state := t.TempDir()
	switch name {
	case "runc":
		return ociRuntime{name: name, argv: []string{"runc", "--root", state}}
	case "crun":
		wrapper := filepath.Join(t.TempDir(), "crun")
		if err := os.WriteFile(wrapper, []byte(crunWrapper), 0o755); err != nil {
			t.Fatal(err)
		}
		return ociRuntime{name: name, argv: []string{wrapper, "--root", state}}
	}
	t.Fatalf("unknown runtime %s", name)
	return ociRuntime{}
}

var (
	rootfsOnce sync.Once
	rootfsDir  string
	rootfsErr  error
	specOnce   sync.Once
	specJSON   []byte
	specErr    error
)

// probeBinary is test/probe, built static.
func probeBinary(t testing.TB) string { return buildStatic(t, "./probe") }

// sharedRootfs is a busybox rootfs (test/rootfs.sh) with /probe, made once
// per test run and shared by the bundles: runc and crun only mount over it.
func sharedRootfs(t testing.TB) string {
	t.Helper()
	probe := probeBinary(t)
	rootfsOnce.Do(func() {
		rootfsDir, rootfsErr = os.MkdirTemp("", "gmsa-hook-rootfs-")
		if rootfsErr == nil {
			rootfsErr = makeRootfs(rootfsDir, probe)
		}
	})
	if rootfsErr != nil {
		t.Fatal(rootfsErr)
	}
	return rootfsDir
}

func makeRootfs(dir, probe string) error {
	// MkdirTemp made it 0700: the container's "/" must be open to uid 1000.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("bash", "rootfs.sh", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("rootfs.sh: %v\n%s", err, out)
	}
	b, err := os.ReadFile(probe)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "probe"), b, 0o755)
}

// runcSpec is `runc spec`'s config.json, the template of every bundle.
func runcSpec(t testing.TB) map[string]any {
	t.Helper()
	specOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gmsa-hook-spec-")
		if err != nil {
			specErr = err
			return
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command("runc", "spec")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			specErr = fmt.Errorf("runc spec: %v\n%s", err, out)
			return
		}
		specJSON, specErr = os.ReadFile(filepath.Join(dir, "config.json"))
	})
	if specErr != nil {
		t.Fatal(specErr)
	}
	spec, err := install.Decode(specJSON)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// container describes a test bundle.
type container struct {
	args        []string
	uid, gid    int
	annotations map[string]string
	rootfs      string // default: the shared rootfs
	noHooks     bool   // a bare bundle, without gmsa-hook install
	// userns gives the container a user namespace: container IDs 0-65535
	// are host IDs 100000-165535.
	userns bool
	// mounts are added to the spec's (as the ECS agent binds a lease's
	// ticket directory).
	mounts []any
}

// hookEnv is one test's gmsa-hook configuration and run directory.
type hookEnv struct {
	config, runDir, log string
}

// newHookEnv writes a configuration that talks to the test DC only, with
// its own run directory and debug log; extra keys override.
func newHookEnv(t testing.TB, d *Domain, extra map[string]any) hookEnv {
	t.Helper()
	dir := t.TempDir()
	cfg := baseConfig(d)
	env := hookEnv{runDir: memRunDir(t, filepath.Join(dir, "run")), log: filepath.Join(dir, "hook.log")}
	cfg["run_dir"], cfg["log_file"] = env.runDir, env.log
	cfg["policy"] = testPolicy(d)
	for k, v := range extra {
		cfg[k] = v
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env.config = filepath.Join(dir, "config.json")
	if err := os.WriteFile(env.config, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return env
}

// memRunDir makes dir a tmpfs of the test's own, as gmsa-hook install
// --renewal (or the host's /run) provides one: tickets never reach the disk,
// and a tmpfs the hook mounted itself would not be seen by a container whose
// mount namespace was made before it.
func memRunDir(t testing.TB, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "mode=0711,size=16m"); err != nil {
		needCI(t, fmt.Sprintf("mount a tmpfs on %s: %v", dir, err))
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// testPolicy lets labels name the test domain's credential specs and
// secrets where setup-domain.sh keeps them.
func testPolicy(d *Domain) map[string]any {
	return map[string]any{
		"credspec_dirs": []string{filepath.Join(d.Dir, "credspecs")},
		"secret_dirs":   []string{d.Dir},
		"domains":       []string{d.DNSDomain},
	}
}

// bundle makes an OCI bundle for c, sharing the host's network namespace
// (the KDC listens on the host's loopback), and installs the hooks with
// `gmsa-hook install`.
func (env hookEnv) bundle(t testing.TB, c container) string {
	t.Helper()
	spec := runcSpec(t)
	rootfs := c.rootfs
	if rootfs == "" {
		rootfs = sharedRootfs(t)
	}
	spec["root"] = map[string]any{"path": rootfs, "readonly": false}
	process := spec["process"].(map[string]any)
	process["terminal"] = false
	process["args"] = c.args
	process["env"] = []string{"PATH=/bin", "KRB5CCNAME=FILE:/var/credentials-fetcher/krbdir/krb5cc"}
	process["user"] = map[string]any{"uid": c.uid, "gid": c.gid}
	linux := spec["linux"].(map[string]any)
	var namespaces []any
	for _, ns := range linux["namespaces"].([]any) {
		if ns.(map[string]any)["type"] != "network" {
			namespaces = append(namespaces, ns)
		}
	}
	if c.userns {
		namespaces = append(namespaces, map[string]any{"type": "user"})
		mapping := []any{map[string]any{"containerID": 0, "hostID": 100000, "size": 65536}}
		linux["uidMappings"], linux["gidMappings"] = mapping, mapping
		// Without its own network namespace, a user namespace may not mount
		// sysfs or cgroups: bind the host's /sys read-only instead.
		var mounts []any
		for _, m := range spec["mounts"].([]any) {
			switch m.(map[string]any)["destination"] {
			case "/sys":
				m = map[string]any{"destination": "/sys", "type": "bind", "source": "/sys", "options": []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
			case "/sys/fs/cgroup":
				continue
			}
			mounts = append(mounts, m)
		}
		spec["mounts"] = mounts
	}
	linux["namespaces"] = namespaces
	if c.mounts != nil {
		spec["mounts"] = append(spec["mounts"].([]any), c.mounts...)
	}
	if c.annotations != nil {
		spec["annotations"] = c.annotations
	}
	dir := t.TempDir()
	out, err := install.Encode(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	if c.noHooks {
		return dir
	}
	args := []string{"install", "--runtime", "runc", "--bundle", dir}
	if env.config != "" {
		args = append(args, "--config", env.config)
	}
	cmd := exec.Command(gmsaHook(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gmsa-hook install: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if want := "install --runtime runc: wrote " + filepath.Join(dir, "config.json") + "\nnext: nothing to restart: runc reads config.json at runc create\n"; stdout.String() != want || stderr.Len() != 0 {
		t.Errorf("gmsa-hook install printed:\n%s%s", stdout.String(), stderr.String())
	}
	return dir
}

// assertClean checks that nothing of container id is left: no directory
// under the run directory, no mount of it on the host, no container in the
// runtime, no gmsa-hook process.
func (env hookEnv) assertClean(t testing.TB, rt ociRuntime, id string) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(env.runDir, "containers"))
	for _, e := range entries {
		if e.Name() == id || regexp.MustCompile(`^`+regexp.QuoteMeta(id)+`-[0-9a-f]{16}$`).MatchString(e.Name()) {
			t.Errorf("%s: the container's directory %s is left in %s", id, e.Name(), env.runDir)
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), env.runDir+"/") {
		t.Errorf("%s: a mount of %s is left:\n%s", id, env.runDir, mi)
	}
	for _, c := range rt.containers(t) {
		if c == id {
			t.Errorf("%s: the container is left in %s", id, rt.name)
		}
	}
	if pids := hookProcesses(t); len(pids) > 0 {
		t.Errorf("gmsa-hook processes left: %v", pids)
	}
}

// hookProcesses are the running processes of the test's gmsa-hook binary.
func hookProcesses(t testing.TB) []string {
	t.Helper()
	bin := gmsaHook(t)
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	var pids []string
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && (exe == bin || exe == bin+" (deleted)") {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}

// hookLog is one line of the hook's debug log.
type hookLog struct {
	Stage     string             `json:"stage"`
	Container string             `json:"container"`
	Labelled  bool               `json:"labelled"`
	Origin    string             `json:"origin"`
	Account   string             `json:"account"`
	UID       int                `json:"uid"`
	GID       int                `json:"gid"`
	Steps     map[string]float64 `json:"steps_ms"`
	Elapsed   float64            `json:"elapsed_ms"`
	Error     string             `json:"error"`
}

// logLines reads the hook's debug log.
func (env hookEnv) logLines(t testing.TB) []hookLog {
	t.Helper()
	b, err := os.ReadFile(env.log)
	if err != nil {
		return nil
	}
	var lines []hookLog
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var h hookLog
		if err := json.Unmarshal(l, &h); err != nil {
			t.Fatalf("hook log line %q: %v", l, err)
		}
		lines = append(lines, h)
	}
	return lines
}
