package test

// The hook under Docker 20.10 (dockerd started by hand with its own data
// and exec roots): `docker run --label credentialspec=...` through a runtime
// wrapper that installs the hooks into each bundle and execs runc. Docker's
// labels reach neither the annotations nor containerd: the hook reads them
// from the container's config.v2.json.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// docker is /usr/bin/docker: another CLI may come first in PATH.
const dockerCLI = "/usr/bin/docker"

type dockerDaemon struct {
	sock string
}

func startDocker(t *testing.T, wrapper string) dockerDaemon {
	t.Helper()
	dir := t.TempDir()
	daemonJSON := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(daemonJSON, []byte(`{"runtimes":{"gmsa":{"path":"`+wrapper+`"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return startDockerConfig(t, daemonJSON)
}

// startDockerConfig starts dockerd with the daemon.json given, its own
// data and exec roots and socket.
func startDockerConfig(t testing.TB, daemonJSON string) dockerDaemon {
	t.Helper()
	if _, err := exec.LookPath("dockerd"); err != nil {
		needCI(t, "dockerd is not installed (apt-get install docker.io)")
	}
	if _, err := os.Stat(dockerCLI); err != nil {
		needCI(t, dockerCLI+" is not installed (apt-get install docker.io)")
	}
	dir := t.TempDir()
	d := dockerDaemon{sock: filepath.Join(dir, "docker.sock")}
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dockerd", "--config-file", daemonJSON, "--iptables=false", "--ip6tables=false",
		"--bridge=none", "--storage-driver=overlay2", "--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"), "--pidfile", filepath.Join(dir, "docker.pid"),
		"--host", "unix://"+d.sock)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
		unmountUnder(t, dir) // dockerd leaves exec-root/netns/default mounted
	})
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if err := exec.Command(dockerCLI, "-H", "unix://"+d.sock, "version").Run(); err == nil {
			return d
		}
		if time.Since(start) > 60*time.Second {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd did not start:\n%s", log)
		}
	}
}

func (d dockerDaemon) docker(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), dockerCLI, append([]string{"-H", "unix://" + d.sock}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// hookWrapper is a runtime for Docker: on create it adds gmsa-hook's hooks
// to the bundle (gmsa-hook install), then it is runc.
func hookWrapper(t *testing.T, config string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "runc-gmsa")
	script := fmt.Sprintf(`#!/bin/sh
prev=
for a in "$@"; do
	if [ "$prev" = "--bundle" ] || [ "$prev" = "-b" ]; then bundle=$a; fi
	prev=$a
done
if [ -n "$bundle" ]; then %s install --runtime runc --bundle "$bundle" --config %s >/dev/null || exit 1; fi
exec runc "$@"
`, gmsaHook(t), config)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHookDockerLabel(t *testing.T) {
	dom := testDomain(t)
	env := newHookEnv(t, dom, nil)
	d := startDocker(t, hookWrapper(t, env.config))
	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	if out, err := exec.Command("tar", "-C", sharedRootfs(t), "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	if out, err := d.docker(t, "import", tarball, "busybox:local"); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
	run := func(label string, args ...string) (string, error) {
		a := []string{"run", "--rm", "--pull", "never", "--runtime", "gmsa", "--network", "host", "--user", "1000:1000",
			"-e", "KRB5CCNAME=FILE:/var/credentials-fetcher/krbdir/krb5cc", "--label", "org.example.team=web"}
		if label != "" {
			a = append(a, "--label", "credentialspec="+label)
		}
		return d.docker(t, append(append(a, "busybox:local"), args...)...)
	}

	out, err := run("file://"+dom.Credspec("webapp01-domainless"), "/probe")
	if err != nil || !strings.Contains(out, probeOK(dom)) {
		t.Errorf("docker run labelled: %v\n%s", err, out)
	}
	out, err = run("", "sh", "-c", "test ! -e /var/credentials-fetcher/krbdir/krb5cc && echo no-ticket")
	if err != nil || out != "no-ticket\n" {
		t.Errorf("docker run unlabelled: %v\n%s", err, out)
	}
	// Fail closed: Docker shows the hook's reason; nothing is left.
	out, err = run(dom.Credspec("webapp03-domainless"), "/probe")
	if err == nil || strings.Contains(out, "probe:") {
		t.Errorf("docker run of an unreadable gMSA: %v\n%s", err, out)
	}
	out = strings.ReplaceAll(out, `\"`, `"`)
	if !strings.Contains(out, "gmsa-hook: error: container ") || !strings.Contains(out, `read password of gMSA "webapp03$"`) {
		t.Errorf("docker does not show the hook's reason:\n%s", out)
	}
	assertNoSecrets(t, dom, out)

	origins := map[string]int{}
	for _, l := range env.logLines(t) {
		if l.Stage == "createRuntime" {
			origins[l.Origin]++
		}
	}
	if origins["docker label"] != 2 {
		t.Errorf("credential specs found: %v, want 2 docker labels", origins)
	}
	if entries, _ := os.ReadDir(filepath.Join(env.runDir, "containers")); len(entries) != 0 {
		t.Errorf("left in the run directory: %v", entries)
	}
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(t testing.TB, dir string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		if err := syscall.Unmount(points[i], syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", points[i], err)
		}
	}
}
