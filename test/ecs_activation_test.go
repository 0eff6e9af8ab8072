package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestECSSocketActivation runs gmsa-hook ecs under the real
// systemd-socket-activate, as the socket unit starts it: nothing of
// gmsa-hook runs until the first connection, which it serves on the
// inherited socket, and it is gone once idle.
func TestECSSocketActivation(t *testing.T) {
	d := testDomain(t)
	if _, err := exec.LookPath("systemd-socket-activate"); err != nil {
		needCI(t, "systemd-socket-activate (Debian's systemd) is not installed")
	}
	env := newHookEnv(t, d, nil)
	s := &ecsServer{sock: filepath.Join(t.TempDir(), "credentials_fetcher.sock"), stderr: &lockedBuffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command("systemd-socket-activate", "-l", s.sock, gmsaHook(t), "ecs", "--config", env.config, "--idle", "1s")
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.done
		}
	})
	pid := s.cmd.Process.Pid
	exe := func() string { p, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); return p }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// systemd-socket-activate says when it listens.
	for !strings.Contains(s.stderr.String(), "Listening on "+s.sock) {
		select {
		case err := <-s.done:
			t.Fatalf("systemd-socket-activate exited: %v\n%s", err, s.stderr)
		case <-ctx.Done():
			t.Fatalf("systemd-socket-activate does not listen:\n%s", s.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if e := exe(); strings.HasSuffix(e, "gmsa-hook") {
		t.Errorf("gmsa-hook runs before any connection (%s)", e)
	}
	if st, err := s.health(ctx); err != nil || st != "OK" {
		t.Fatalf("HealthCheck: %q, %v\n%s", st, err, s.stderr)
	}
	if e := exe(); e != gmsaHook(t) {
		t.Errorf("after the first call pid %d runs %q, want gmsa-hook", pid, e)
	}
	environ, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if !strings.Contains(string(environ), "LISTEN_FDS=1\x00") {
		t.Errorf("gmsa-hook was not given the socket: environment %q", environ)
	}
	// A lease on the inherited socket, then nothing: it must exit.
	if _, err := s.domainless(ctx, []string{readSpec(t, d, "webapp01-domainless")}, d.ReaderUser, d.ReaderPassword, d.DNSDomain); err != nil {
		t.Fatalf("AddNonDomainJoinedKerberosLease: %v\n%s", err, s.stderr)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("gmsa-hook ecs exited with %v\n%s", err, s.stderr)
		}
	case <-ctx.Done():
		t.Fatalf("gmsa-hook ecs still runs long after its idle time")
	}
	assertNoSecrets(t, d, s.stderr.String())
}

// TestECSInstall: install --runtime ecs writes units that pass
// systemd-analyze verify and prints the ecs.config lines.
func TestECSInstall(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		needCI(t, "systemd-analyze (Debian's systemd) is not installed")
	}
	dir := t.TempDir()
	cfg := writeJSON(t, dir, "config.json", map[string]any{"run_dir": "/run/gmsa-hook"}, 0o644)
	out, err := exec.Command(gmsaHook(t), "install", "--runtime", "ecs", "--unit-dir", dir, "--config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("install --runtime ecs: %v\n%s", err, out)
	}
	for _, want := range []string{"gmsa-hook-ecs.socket", "ECS_GMSA_SUPPORTED=true\n", "CREDENTIALS_FETCHER_HOST=unix:///var/credentials-fetcher/socket/credentials_fetcher.sock"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("install printed no %q:\n%s", want, out)
		}
	}
	socket, _ := os.ReadFile(filepath.Join(dir, "gmsa-hook-ecs.socket"))
	service, _ := os.ReadFile(filepath.Join(dir, "gmsa-hook-ecs.service"))
	for _, want := range []string{"ListenStream=/var/credentials-fetcher/socket/credentials_fetcher.sock\n", "SocketUser=root\n", "SocketGroup=root\n", "SocketMode=0660\n"} {
		if !strings.Contains(string(socket), want) {
			t.Errorf("socket unit lacks %q:\n%s", want, socket)
		}
	}
	if want := "ExecStart=" + gmsaHook(t) + " ecs --config " + cfg + "\n"; !strings.Contains(string(service), want) {
		t.Errorf("service unit lacks %q:\n%s", want, service)
	}
	v, err := exec.Command("systemd-analyze", "verify", filepath.Join(dir, "gmsa-hook-ecs.socket"), filepath.Join(dir, "gmsa-hook-ecs.service")).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(v))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, v)
	}
	// Again: nothing to write.
	out, err = exec.Command(gmsaHook(t), "install", "--runtime", "ecs", "--unit-dir", dir, "--config", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "are up to date") {
		t.Errorf("second install: %v\n%s", err, out)
	}
}
