package test

// gmsa-hook install --runtime containerd and --runtime kubernetes on
// containerd 1.6 (started by hand): ctr with the wrapper as its runc binary,
// and Kubernetes' CRI through containerd's CRI plugin driven by crictl,
// with host-network pods and no CNI.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestInstallContainerdCtr(t *testing.T) {
	dom := testDomain(t)
	env := newHookEnv(t, dom, nil)
	runc, err := exec.LookPath("runc")
	if err != nil {
		needCI(t, "runc is not installed")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	orig := []byte(containerdBaseConfig(dir, false))
	os.WriteFile(cfg, orig, 0o644)
	wrapper := filepath.Join(dir, "lib", "gmsa-runc")
	flags := []string{"--runtime", "containerd", "--containerd-config", cfg, "--wrapper", wrapper, "--unit-dir", t.TempDir()}
	out := installCmd(t, append([]string{"install", "--config", env.config, "--runc", runc}, flags...)...)
	if !strings.Contains(out, "next: restart containerd") || !strings.Contains(out, "ctr run --runc-binary "+wrapper) {
		t.Errorf("install does not say what to restart:\n%s", out)
	}
	d := startContainerdConfig(t, dir)
	rootfs := sharedRootfs(t)
	ctrRun := func(id string, args ...string) (string, error) {
		a := append([]string{"run", "--rm", "--net-host", "--runc-binary", wrapper, "--rootfs", "--env", "PATH=/bin", "--label", "org.example.team=web"}, args[:len(args)-1]...)
		return d.ctr(t, append(a, rootfs, id, "sh", "-c", args[len(args)-1])...)
	}
	out, err = ctrRun("labelled", "--label", "credentialspec=file://"+dom.Credspec("webapp01-domainless"), `echo "KRB5CCNAME=$KRB5CCNAME" && /probe`)
	if err != nil || !strings.Contains(out, probeOK(dom)) || !strings.Contains(out, "KRB5CCNAME=FILE:/var/credentials-fetcher/krbdir/krb5cc") {
		t.Errorf("ctr run labelled: %v\n%s", err, out)
	}
	ran := len(env.logLines(t))
	out, err = ctrRun("plain", `test ! -e /var/credentials-fetcher/krbdir/krb5cc && test -z "$KRB5CCNAME" && echo no-ticket`)
	if err != nil || strings.TrimSpace(out) != "no-ticket" {
		t.Errorf("ctr run unlabelled: %v\n%s", err, out)
	}
	if n := len(env.logLines(t)); n != ran || ran == 0 {
		t.Errorf("hook stages: %d for the labelled container, %d for the unlabelled, want some and none", ran, n-ran)
	}
	installCmd(t, append([]string{"uninstall"}, flags...)...)
	if b, _ := os.ReadFile(cfg); !bytes.Equal(b, orig) {
		t.Errorf("uninstall did not give config.toml back:\n%s", b)
	}
}

// crictlBinary is crictl from PATH, or built once from the module proxy
// (see the runtimes notes) into a cache directory of the machine's.
func crictlBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("crictl"); err == nil {
		return p
	}
	const version = "v1.34.0"
	cache := filepath.Join(os.TempDir(), "gmsa-hook-crictl-"+version)
	bin := filepath.Join(cache, "crictl")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if _, err := exec.LookPath("go"); err != nil {
		needCI(t, "crictl is not installed and go is not there to build it")
	}
	goEnv := append(os.Environ(), "GONOSUMDB=sigs.k8s.io/cri-tools", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	dl := exec.Command("go", "mod", "download", "-json", "sigs.k8s.io/cri-tools@"+version)
	dl.Dir, dl.Env = t.TempDir(), goEnv
	b, err := dl.Output()
	if err != nil {
		t.Fatalf("go mod download cri-tools: %v\n%s", err, b)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(b, &mod); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(cache, 0o755)
	build := exec.Command("go", "build", "-o", bin+".tmp", "./cmd/crictl")
	build.Dir, build.Env = mod.Dir, goEnv
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build crictl: %v\n%s", err, out)
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// imageArchive writes a docker-archive tarball of the shared rootfs, tagged
// docker.io/library/busybox:local, whose entrypoint sleeps (the sandbox).
func imageArchive(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	layer := filepath.Join(dir, "layer.tar")
	if out, err := exec.Command("tar", "-C", sharedRootfs(t), "-cf", layer, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	lb, err := os.ReadFile(layer)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lb)
	config, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"config": map[string]any{"Entrypoint": []string{"/bin/sh", "-c", "while :; do sleep 3600; done"}, "Env": []string{"PATH=/bin"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(sum[:])}},
	})
	csum := sha256.Sum256(config)
	configName := hex.EncodeToString(csum[:]) + ".json"
	manifest, _ := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": []string{"docker.io/library/busybox:local"}, "Layers": []string{"layer.tar"}}})
	archive := filepath.Join(dir, "image.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, e := range []struct {
		name string
		data []byte
	}{{"layer.tar", lb}, {configName, config}, {"manifest.json", manifest}} {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg})
		tw.Write(e.data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return archive
}

func TestInstallKubernetesCRI(t *testing.T) {
	dom := testDomain(t)
	env := newHookEnv(t, dom, nil)
	runc, err := exec.LookPath("runc")
	if err != nil {
		needCI(t, "runc is not installed")
	}
	crictl := crictlBinary(t)
	dir := t.TempDir()
	// Runs after containerd stopped, before dir goes: the sandboxes' rootfs.
	t.Cleanup(func() { unmountUnder(t, dir) })
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte(containerdBaseConfig(dir, true)), 0o644)
	wrapper := filepath.Join(dir, "lib", "gmsa-runc")
	out := installCmd(t, "install", "--runtime", "kubernetes", "--containerd-config", cfg, "--wrapper", wrapper, "--config", env.config, "--runc", runc, "--unit-dir", t.TempDir())
	if !strings.Contains(out, "kind: RuntimeClass") || !strings.Contains(out, "handler: gmsa") {
		t.Errorf("install does not print the RuntimeClass:\n%s", out)
	}
	d := startContainerdConfig(t, dir)
	if out, err := exec.Command("ctr", "-a", d.sock, "-n", "k8s.io", "image", "import", imageArchive(t)).CombinedOutput(); err != nil {
		t.Fatalf("ctr image import: %v\n%s", err, out)
	}
	cri := func(args ...string) (string, error) {
		// Not t.Context(): the cleanups that remove pods run after it ends.
		cmd := exec.Command(crictl, append([]string{"--runtime-endpoint", "unix://" + d.sock, "--image-endpoint", "unix://" + d.sock, "--timeout", "60s"}, args...)...)
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			out = append(out, ee.Stderr...)
		}
		return strings.TrimSpace(string(out)), err
	}
	// pod runs a pod (with the RuntimeClass handler gmsa when handler is
	// set) and one container as uid 1000 running script; it returns the
	// container's output once it exited.
	pod := func(name, handler, label, script string) string {
		t.Helper()
		pdir := t.TempDir()
		annotations := map[string]string{}
		if label != "" {
			annotations["credentialspec"] = label
		}
		podCfg := writeJSON(t, pdir, "pod.json", map[string]any{
			"metadata":      map[string]any{"name": name, "namespace": "default", "uid": name + "-uid"},
			"annotations":   annotations,
			"log_directory": pdir,
			"linux":         map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}}},
		}, 0o644)
		ctrCfg := writeJSON(t, pdir, "container.json", map[string]any{
			"metadata": map[string]any{"name": "probe"},
			"image":    map[string]any{"image": "docker.io/library/busybox:local"},
			"command":  []string{"/bin/sh", "-c", script},
			"log_path": "probe.log",
			"linux":    map[string]any{"security_context": map[string]any{"run_as_user": map[string]any{"value": 1000}}},
		}, 0o644)
		args := []string{"runp"}
		if handler != "" {
			args = append(args, "--runtime", handler)
		}
		podID, err := cri(append(args, podCfg)...)
		if err != nil {
			t.Fatalf("crictl runp %s: %v\n%s", name, err, podID)
		}
		t.Cleanup(func() { cri("stopp", podID); cri("rmp", "-f", podID) })
		cid, err := cri("create", podID, ctrCfg, podCfg)
		if err != nil {
			t.Fatalf("crictl create: %v\n%s", err, cid)
		}
		if out, err := cri("start", cid); err != nil {
			t.Fatalf("crictl start: %v\n%s", err, out)
		}
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			st, _ := cri("inspect", "-o", "go-template", "--template", "{{.status.state}}", cid)
			if st == "CONTAINER_EXITED" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("container %s of %s did not exit: %s", cid, name, st)
			}
		}
		b, _ := os.ReadFile(filepath.Join(pdir, "probe.log"))
		return string(b)
	}
	out = pod("with-gmsa", "gmsa", "file://"+dom.Credspec("webapp01-domainless"), `echo "KRB5CCNAME=$KRB5CCNAME" && /probe`)
	if !strings.Contains(out, probeOK(dom)) || !strings.Contains(out, "KRB5CCNAME=FILE:/var/credentials-fetcher/krbdir/krb5cc") {
		t.Errorf("pod with the RuntimeClass and the annotation:\n%s", out)
	}
	ran := len(env.logLines(t))
	out = pod("without", "", "", `test ! -e /var/credentials-fetcher/krbdir/krb5cc && test -z "$KRB5CCNAME" && echo no-ticket`)
	if !strings.Contains(out, "no-ticket") {
		t.Errorf("pod without the RuntimeClass:\n%s", out)
	}
	out = pod("gmsa-unlabelled", "gmsa", "", `test ! -e /var/credentials-fetcher/krbdir/krb5cc && test -z "$KRB5CCNAME" && echo no-ticket`)
	if !strings.Contains(out, "no-ticket") {
		t.Errorf("pod with the RuntimeClass, no annotation:\n%s", out)
	}
	if n := len(env.logLines(t)); n != ran || ran == 0 {
		t.Errorf("hook stages: %d for the labelled pod, %d for the others, want some and none", ran, n-ran)
	}
	for _, l := range env.logLines(t) {
		if l.Error != "" {
			t.Errorf("hook log: %+v", l)
		}
	}
}
