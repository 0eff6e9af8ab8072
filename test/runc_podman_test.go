package test

// The hook under Podman 4 (Debian's package, runc as its runtime): gmsa-hook
// install --runtime podman writes hooks.d files that podman adds to the
// bundles of containers with a credentialspec annotation, and only those.
// Podman runs with its own storage, run and temporary directories and a
// containers.conf that works on this kind of host (see the runtimes notes).

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type podmanEnv struct {
	env []string
}

func newPodman(t *testing.T, hooksDir string) podmanEnv {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		needCI(t, "podman is not installed (apt-get install podman)")
	}
	dir := t.TempDir()
	// Cleanups run last-in first-out: unmount (podman bind-mounts its
	// overlay directory on itself) before TempDir removes the directory,
	// once the cleanup processes conmon starts after a container exits
	// (podman container cleanup, which mounts it again) are gone.
	t.Cleanup(func() {
		for start := time.Now(); len(processesUsing(dir)) > 0 && time.Since(start) < 10*time.Second; {
			time.Sleep(50 * time.Millisecond)
		}
		if pids := processesUsing(dir); len(pids) > 0 {
			t.Errorf("podman processes left: %v", pids)
		}
		unmountUnder(t, dir)
	})
	conf := filepath.Join(dir, "containers.conf")
	storage := filepath.Join(dir, "storage.conf")
	tmp := filepath.Join(dir, "tmp")
	containersConf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = %q
hooks_dir = [%q]
`, tmp, hooksDir)
	storageConf := fmt.Sprintf(`[storage]
driver = "overlay"
graphroot = %q
runroot = %q
`, filepath.Join(dir, "graph"), filepath.Join(dir, "run"))
	if err := os.WriteFile(conf, []byte(containersConf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(storage, []byte(storageConf), 0o644); err != nil {
		t.Fatal(err)
	}
	return podmanEnv{env: append(os.Environ(), "CONTAINERS_CONF="+conf, "CONTAINERS_STORAGE_CONF="+storage)}
}

// processesUsing are the processes with dir in their command line.
func processesUsing(dir string) []string {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []string
	for _, c := range cmdlines {
		if b, err := os.ReadFile(c); err == nil && strings.Contains(string(b), dir) {
			pids = append(pids, filepath.Base(filepath.Dir(c)))
		}
	}
	return pids
}

func (p podmanEnv) podman(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", args...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestHookPodmanAnnotation(t *testing.T) {
	dom := testDomain(t)
	env := newHookEnv(t, dom, nil)
	hooksDir := filepath.Join(t.TempDir(), "hooks.d")
	p := newPodman(t, hooksDir)

	if out, err := exec.Command(gmsaHook(t), "install", "--runtime", "podman", "--hooks-dir", hooksDir, "--config", env.config, "--unit-dir", t.TempDir()).CombinedOutput(); err != nil {
		t.Fatalf("gmsa-hook install: %v\n%s", err, out)
	}
	for _, stage := range []string{"createruntime", "createcontainer", "poststop"} {
		if _, err := os.Stat(filepath.Join(hooksDir, "gmsa-hook-"+stage+".json")); err != nil {
			t.Errorf("gmsa-hook install: %v", err)
		}
	}

	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	if out, err := exec.Command("tar", "-C", sharedRootfs(t), "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	const image = "localhost/gmsa-busybox:local"
	if out, err := p.podman(t, "import", tarball, image); err != nil {
		t.Fatalf("podman import: %v\n%s", err, out)
	}
	run := func(credspec string, args ...string) (string, error) {
		a := []string{"run", "--rm", "--network", "host", "--user", "1000:1000",
			"-e", "KRB5CCNAME=FILE:/var/credentials-fetcher/krbdir/krb5cc",
			"--annotation", "org.example.team=web"}
		if credspec != "" {
			a = append(a, "--annotation", "credentialspec="+credspec)
		}
		return p.podman(t, append(append(a, image), args...)...)
	}
	// containers lists the run directory's container directories; podman
	// runs poststop after the container exits, so give it a moment.
	leftovers := func() []os.DirEntry {
		var entries []os.DirEntry
		for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(50 * time.Millisecond) {
			if entries, _ = os.ReadDir(filepath.Join(env.runDir, "containers")); len(entries) == 0 {
				break
			}
		}
		return entries
	}

	out, err := run("file://"+dom.Credspec("webapp01-domainless"), "/probe")
	if err != nil || !strings.Contains(out, probeOK(dom)) {
		t.Errorf("podman run annotated: %v\n%s", err, out)
	}
	if entries := leftovers(); len(entries) != 0 {
		t.Errorf("left in the run directory after an annotated container (poststop): %v", entries)
	}
	logged := len(env.logLines(t))
	if logged != 3 {
		t.Errorf("hook log lines after an annotated container: %d, want 3 (createRuntime, createContainer, poststop)", logged)
	}

	// Unannotated: the hook does not even run, so it cannot make a ticket
	// directory.
	out, err = run("", "sh", "-c", "test ! -e /var/credentials-fetcher/krbdir/krb5cc && echo no-ticket")
	if err != nil || out != "no-ticket\n" {
		t.Errorf("podman run unannotated: %v\n%s", err, out)
	}
	if n := len(env.logLines(t)); n != logged {
		t.Errorf("gmsa-hook ran for an unannotated container: %d new log lines", n-logged)
	}
	if entries, _ := os.ReadDir(filepath.Join(env.runDir, "containers")); len(entries) != 0 {
		t.Errorf("left in the run directory after an unannotated container: %v", entries)
	}

	// Fail closed: podman shows the hook's reason; nothing is left, though
	// podman runs no poststop when create fails.
	out, err = run(dom.Credspec("webapp03-domainless"), "/probe")
	if err == nil || strings.Contains(out, "probe:") {
		t.Errorf("podman run of an unreadable gMSA: %v\n%s", err, out)
	}
	out = strings.ReplaceAll(out, `\"`, `"`)
	if !strings.Contains(out, "gmsa-hook: error: container ") || !strings.Contains(out, `read password of gMSA "webapp03$"`) {
		t.Errorf("podman does not show the hook's reason:\n%s", out)
	}
	assertNoSecrets(t, dom, out)
	t.Logf("podman run of an unreadable gMSA:\n%s", out)
	if entries := leftovers(); len(entries) != 0 {
		t.Errorf("left in the run directory after a failed container: %v", entries)
	}

	origins := map[string]int{}
	for _, l := range env.logLines(t) {
		if l.Stage == "createRuntime" {
			origins[l.Origin]++
		}
	}
	if origins["state annotation"] != 2 || len(origins) != 1 {
		t.Errorf("credential specs found: %v, want 2 state annotations", origins)
	}
	if pids := hookProcesses(t); len(pids) > 0 {
		t.Errorf("gmsa-hook processes left: %v", pids)
	}
}
