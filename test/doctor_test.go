package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// blockedCgroup returns a command prefix that runs a command in a cgroup of
// this test's own whose TCP connections to 127.0.0.1 on ports are dropped
// by an nftables table of its own: other processes on the machine (other
// tests against the same DC) are not touched. Both go in t.Cleanup.
func blockedCgroup(t *testing.T, ports ...int) []string {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err != nil {
		needCI(t, "the doctor's fault tests need the cgroup2 hierarchy at /sys/fs/cgroup/unified")
	}
	name := fmt.Sprintf("gmsa-doctor-%d-%d", os.Getpid(), len(ports)*1000+ports[0])
	cg := filepath.Join("/sys/fs/cgroup/unified", name)
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cg) })
	table := strings.ReplaceAll(name, "-", "_")
	nft := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("nft", args...).CombinedOutput(); err != nil {
			t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	nft("add", "table", "inet", table)
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", table).Run() })
	nft("add", "chain", "inet", table, "out", "{ type filter hook output priority 0; }")
	for _, p := range ports {
		nft("add", "rule", "inet", table, "out", "socket", "cgroupv2", "level", "1", `"unified/`+name+`"`,
			"ip", "daddr", "127.0.0.1", "tcp", "dport", fmt.Sprint(p), "drop")
	}
	script := filepath.Join(t.TempDir(), "in-cgroup")
	os.WriteFile(script, []byte("#!/bin/sh\necho $$ > "+cg+"/cgroup.procs && exec \"$@\"\n"), 0o755)
	return []string{script}
}

type doctorStep struct {
	Name, Status, Detail, Error string
	Hints                       []string
}

// TestDoctor: on a working setup every step passes; with the LDAP port
// blocked, the KDC blocked, a wrong reader password and a gMSA the reader
// may not read, the first failing step is the right one, its hint names
// the fix, and doctor exits 1. No output holds a secret.
func TestDoctor(t *testing.T) {
	d := testDomain(t)
	dir := t.TempDir()
	hooksDir := filepath.Join(dir, "hooks.d")
	cfg := baseConfig(d)
	cfg["krb5_conf"] = d.KRB5Config
	cfg["policy"] = map[string]any{"credspec_dirs": []string{filepath.Join(d.Dir, "credspecs")}, "secret_dirs": []string{d.Dir}}
	config := writeJSON(t, dir, "config.json", cfg, 0o600)
	if r := runHook(t, []string{}, "install", "--runtime", "podman", "--hooks-dir", hooksDir); r.code != 0 {
		t.Fatalf("install: %s", r.stderr)
	}
	doctor := func(t *testing.T, prefix []string, spec string) (run, []doctorStep) {
		args := append(prefix, gmsaHook(t), "doctor", "--json", "--credspec", "file://"+spec+".json", "--config", config, "--hooks-dir", hooksDir)
		r := runCmd(t, args...)
		assertNoSecrets(t, d, r.stdout+r.stderr)
		var out struct {
			OK    bool
			Steps []doctorStep
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("doctor --json: %v\n%s\n%s", err, r.stdout, r.stderr)
		}
		if out.OK != (r.code == 0) {
			t.Errorf("ok %v, exit %d", out.OK, r.code)
		}
		return r, out.Steps
	}
	t.Run("working setup", func(t *testing.T) {
		r, steps := doctor(t, nil, "webapp01-domainless")
		if r.code != 0 || r.stderr != "" {
			t.Errorf("exit %d\n%s", r.code, r.stderr)
		}
		var names []string
		for _, s := range steps {
			names = append(names, s.Name)
			if s.Status != "pass" {
				t.Errorf("step %s: %s %s", s.Name, s.Status, s.Error)
			}
		}
		want := "config krb5.conf credential spec domain controllers ports clock reader credentials reader login sealed bind gMSA found gMSA enabled gMSA readable gMSA ticket policy runtime wiring"
		if got := strings.Join(names, " "); got != want {
			t.Errorf("steps:\n%s\nwant\n%s", got, want)
		}
	})
	for _, tc := range []struct {
		name, spec  string
		block       []int
		step, error string // the first failing step and its error's start
		hint        string
	}{
		{name: "ldap port blocked", spec: "webapp01-domainless", block: []int{389}, step: "ports",
			error: "no domain controller reachable: dc1.corp.example.test:389: i/o timeout", hint: "answer on ports 88 and 389"},
		{name: "kdc blocked", spec: "webapp01-domainless", block: []int{88}, step: "ports",
			error: "no domain controller reachable: dc1.corp.example.test:88: i/o timeout", hint: "answer on ports 88 and 389"},
		{name: "wrong reader password", spec: "webapp01-wrongpw", step: "reader login",
			error: `log in as "gmsa-reader@CORP.EXAMPLE.TEST" at dc1.corp.example.test:88: wrong password or key`, hint: "check the reader's password in its secret"},
		{name: "gMSA not readable", spec: "webapp03-domainless", step: "gMSA readable",
			error: `gmsa-reader@CORP.EXAMPLE.TEST reading gMSA "webapp03$": not permitted to retrieve the managed password`, hint: "PrincipalsAllowedToRetrieveManagedPassword"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var prefix []string
			if tc.block != nil {
				prefix = blockedCgroup(t, tc.block...)
			}
			r, steps := doctor(t, prefix, tc.spec)
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			var first *doctorStep
			for i := range steps {
				if steps[i].Status == "fail" {
					first = &steps[i]
					break
				}
			}
			if first == nil {
				t.Fatalf("no step failed: %+v", steps)
			}
			if first.Name != tc.step || !strings.HasPrefix(first.Error, tc.error) {
				t.Errorf("first failing step %q: %s\nwant %q: %s", first.Name, first.Error, tc.step, tc.error)
			}
			if !strings.Contains(strings.Join(first.Hints, "\n"), tc.hint) {
				t.Errorf("hints %q, want %q", first.Hints, tc.hint)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if !strings.HasPrefix(lines[0], "gmsa-hook: error: doctor: ") || !strings.Contains(lines[0], "the first, "+tc.step+": "+tc.error) {
				t.Errorf("stderr:\n%s", r.stderr)
			}
		})
	}
}

// runCmd runs args[0] with no environment, as runHook does for gmsa-hook.
func runCmd(t *testing.T, args ...string) run {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{}
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := run{stdout: o.String(), stderr: e.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}
