package test

// gmsa-hook install --runtime docker --default on Docker 20.10 (dockerd
// started by hand): a plain `docker run --label credentialspec=...`, no
// --runtime flag, goes through the gmsa-runc wrapper, which adds the hooks
// to labelled containers only.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// installCmd runs gmsa-hook install or uninstall and returns its output.
func installCmd(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(gmsaHook(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("gmsa-hook %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// importRootfs makes the shared rootfs the image busybox:local.
func importRootfs(t testing.TB, d dockerDaemon) {
	t.Helper()
	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	if out, err := exec.Command("tar", "-C", sharedRootfs(t), "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	if out, err := d.docker(t, "import", tarball, "busybox:local"); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
}

func TestInstallDockerDefault(t *testing.T) {
	dom := testDomain(t)
	env := newHookEnv(t, dom, nil)
	runc, err := exec.LookPath("runc")
	if err != nil {
		needCI(t, "runc is not installed")
	}
	dir := t.TempDir()
	daemonJSON := filepath.Join(dir, "daemon.json")
	// Keys of the operator's own, which install keeps.
	orig := []byte("{\n\t\"log-level\": \"info\",\n\t\"runtimes\": {\"plain\": {\"path\": \"" + runc + "\"}},\n\t\"features\": {\"buildkit\": false}\n}\n")
	if err := os.WriteFile(daemonJSON, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "lib", "gmsa-runc")
	flags := []string{"--runtime", "docker", "--daemon-json", daemonJSON, "--wrapper", wrapper, "--unit-dir", t.TempDir()}
	out := installCmd(t, append([]string{"install", "--default", "--config", env.config, "--runc", runc}, flags...)...)
	if !strings.Contains(out, "next: reload dockerd") {
		t.Errorf("install does not say what to reload:\n%s", out)
	}
	if out := installCmd(t, append([]string{"install", "--default", "--config", env.config, "--runc", runc}, flags...)...); !strings.Contains(out, "nothing to change") {
		t.Errorf("a second install changed something:\n%s", out)
	}

	d := startDockerConfig(t, daemonJSON)
	importRootfs(t, d)
	run := func(label string, args ...string) (string, error) {
		a := []string{"run", "--rm", "--pull", "never", "--network", "host", "--user", "1000:1000", "--label", "org.example.team=web"}
		if label != "" {
			a = append(a, "--label", "credentialspec="+label)
		}
		return d.docker(t, append(append(a, "busybox:local"), args...)...)
	}
	// Labelled: a usable ticket, and KRB5CCNAME set by the wrapper.
	out, err = run("file://"+dom.Credspec("webapp01-domainless"), "sh", "-c", `echo "KRB5CCNAME=$KRB5CCNAME" && /probe`)
	if err != nil || !strings.Contains(out, probeOK(dom)) || !strings.Contains(out, "KRB5CCNAME=FILE:/var/credentials-fetcher/krbdir/krb5cc\n") {
		t.Errorf("docker run labelled: %v\n%s", err, out)
	}
	ran := len(env.logLines(t))
	if ran == 0 {
		t.Errorf("no hook ran for the labelled container")
	}
	// The next labelled container: the first one's createRuntime laid the
	// run directory out, so the wrapper makes the ticket directory and has
	// runc bind it (config.json's mounts): no createContainer hook runs,
	// and createRuntime checks that the container sees the directory.
	out, err = run("file://"+dom.Credspec("webapp01-domainless"), "sh", "-c", `grep -c " /var/credentials-fetcher/krbdir ro,nosuid,nodev,noexec" /proc/self/mountinfo && /probe`)
	if err != nil || !strings.Contains(out, probeOK(dom)) || !strings.HasPrefix(out, "1\n") {
		t.Errorf("docker run labelled, bound by runc: %v\n%s", err, out)
	}
	var stages []string
	for _, l := range env.logLines(t)[ran:] {
		stages = append(stages, l.Stage)
	}
	if strings.Join(stages, " ") != "createRuntime poststop" {
		t.Errorf("the container bound by runc ran the stages %v, want createRuntime and poststop", stages)
	}
	ran = len(env.logLines(t))
	// Unlabelled: no ticket, no KRB5CCNAME, and no hook run at all.
	out, err = run("", "sh", "-c", `test ! -e /var/credentials-fetcher/krbdir/krb5cc && test -z "$KRB5CCNAME" && echo no-ticket`)
	if err != nil || out != "no-ticket\n" {
		t.Errorf("docker run unlabelled: %v\n%s", err, out)
	}
	if n := len(env.logLines(t)); n != ran {
		t.Errorf("the unlabelled container ran %d hook stages, want none", n-ran)
	}
	// Refused by the policy: Docker shows the hook's reason.
	out, err = run("file:///etc/shadow", "/probe")
	out = strings.ReplaceAll(out, `\"`, `"`)
	if err == nil || !strings.Contains(out, `gmsa-hook: error: container `) || !strings.Contains(out, `credential spec "file:///etc/shadow" refused by policy`) {
		t.Errorf("docker run of a refused label: %v\n%s", err, out)
	}
	assertNoSecrets(t, dom, out)
	if entries, _ := os.ReadDir(filepath.Join(env.runDir, "containers")); len(entries) != 0 {
		t.Errorf("left in the run directory: %v", entries)
	}

	installCmd(t, append([]string{"uninstall"}, flags...)...)
	if b, _ := os.ReadFile(daemonJSON); !bytes.Equal(b, orig) {
		t.Errorf("uninstall did not give daemon.json back:\n%s", b)
	}
	for _, f := range []string{wrapper, wrapper + ".json", daemonJSON + ".gmsa-hook"} {
		if _, err := os.Lstat(f); !os.IsNotExist(err) {
			t.Errorf("uninstall left %s", f)
		}
	}
}
