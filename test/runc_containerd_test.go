package test

// The hook under containerd 1.6 (started by hand with its own socket and
// state): the credential spec comes from a containerd container label, read
// through containerd's API from the hook.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// containerdDaemon is a containerd of the test's own.
type containerdDaemon struct {
	sock string
}

func startContainerd(t *testing.T) containerdDaemon {
	t.Helper()
	dir := t.TempDir()
	config := containerdBaseConfig(dir, false)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return startContainerdConfig(t, dir)
}

// containerdBaseConfig is a config.toml with its own root, state and
// sockets under dir; cri keeps the CRI plugin (see the runtimes notes).
func containerdBaseConfig(dir string, cri bool) string {
	sock := filepath.Join(dir, "containerd.sock")
	config := `# the test's containerd
version = 2
root = "` + dir + `/root"
state = "` + dir + `/state"
`
	if !cri {
		config += `disabled_plugins = ["io.containerd.grpc.v1.cri"]
`
	}
	config += `[grpc]
  address = "` + sock + `"
[ttrpc]
  address = "` + sock + `.ttrpc"
`
	if cri {
		config += `[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/busybox:local"
  disable_apparmor = true
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "` + dir + `/cni/bin"
    conf_dir = "` + dir + `/cni/conf"
`
	}
	return config
}

// startContainerdConfig starts containerd with dir/config.toml, whose
// socket is dir/containerd.sock.
func startContainerdConfig(t *testing.T, dir string) containerdDaemon {
	t.Helper()
	for _, bin := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(bin); err != nil {
			needCI(t, bin+" is not installed (apt-get install containerd)")
		}
	}
	d := containerdDaemon{sock: filepath.Join(dir, "containerd.sock")}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
	})
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if err := exec.Command("ctr", "-a", d.sock, "version").Run(); err == nil {
			return d
		}
		if time.Since(start) > 20*time.Second {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("containerd did not start:\n%s", log)
		}
	}
}

// ctr runs ctr against the test's containerd, namespace gmsatest.
func (d containerdDaemon) ctr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "ctr", append([]string{"-a", d.sock, "-n", "gmsatest"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// stripAnnotation is a runc for ctr --runc-binary that drops the
// credentialspec annotation ctr copies from --label into config.json: the
// hook then finds the credential spec only as a containerd label, as for
// clients that do not copy labels (nerdctl, the containerd API).
const stripAnnotation = `#!/bin/sh
prev=
for a in "$@"; do
	if [ "$prev" = "--bundle" ] || [ "$prev" = "-b" ]; then bundle=$a; fi
	prev=$a
done
if [ -n "$bundle" ]; then sed -i 's/"credentialspec":"[^"]*",\{0,1\}//' "$bundle/config.json"; fi
exec runc "$@"
`

func TestHookContainerdLabel(t *testing.T) {
	dom := testDomain(t)
	d := startContainerd(t)
	runcBin := filepath.Join(t.TempDir(), "runc-strip")
	if err := os.WriteFile(runcBin, []byte(stripAnnotation), 0o755); err != nil {
		t.Fatal(err)
	}
	env := newHookEnv(t, dom, nil)

	// Labelled: ctr run --label, the spec (hooks installed) with --config.
	b := env.bundle(t, container{args: []string{"/probe"}, uid: 1000, gid: 1000})
	out, err := d.ctr(t, "run", "--rm", "--runc-binary", runcBin,
		"--label", "credentialspec="+dom.Credspec("webapp01-domainless"),
		"--config", filepath.Join(b, "config.json"), "labelled")
	if err != nil || !strings.Contains(out, probeOK(dom)) {
		t.Errorf("ctr run labelled: %v\n%s", err, out)
	}

	// Unlabelled: the hook asks containerd and finds no label.
	b = env.bundle(t, container{args: []string{"sh", "-c", "test ! -e /var/credentials-fetcher/krbdir/krb5cc && echo no-ticket"}})
	out, err = d.ctr(t, "run", "--rm", "--runc-binary", runcBin, "--label", "org.example.team=web",
		"--config", filepath.Join(b, "config.json"), "plain")
	if err != nil || out != "no-ticket\n" {
		t.Errorf("ctr run unlabelled: %v\n%s", err, out)
	}

	origins := map[string]string{}
	for _, l := range env.logLines(t) {
		if l.Error != "" {
			t.Errorf("log: %+v", l)
		}
		if l.Stage == "createRuntime" {
			origins[l.Container] = l.Origin
			if l.Container == "plain" && l.Labelled {
				t.Errorf("plain container labelled: %+v", l)
			}
		}
	}
	if origins["labelled"] != "containerd label" {
		t.Errorf("the labelled container's credential spec came from %q, want the containerd label", origins["labelled"])
	}
	if entries, _ := os.ReadDir(filepath.Join(env.runDir, "containers")); len(entries) != 0 {
		t.Errorf("left in the run directory: %v", entries)
	}
}
