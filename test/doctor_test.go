package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ctr "github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/hook/store"
	"github.com/gmsa-hook/gmsa-hook/install"
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

// doctorOut is gmsa-hook doctor --json's output.
type doctorOut struct {
	OK    bool
	Steps []doctorStep
}

func (o doctorOut) step(t *testing.T, name string) doctorStep {
	t.Helper()
	for _, s := range o.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %q in %+v", name, o.Steps)
	return doctorStep{}
}

// doctorSetup is a configuration of the test domain whose hooks.d files
// and renewal units are installed by gmsa-hook install, and whose run
// directory is a tmpfs of the test's own.
type doctorSetup struct {
	config, hooksDir, unitDir string
}

func newDoctorSetup(t *testing.T, d *Domain, edit func(map[string]any)) doctorSetup {
	t.Helper()
	dir := t.TempDir()
	s := doctorSetup{hooksDir: filepath.Join(dir, "hooks.d"), unitDir: filepath.Join(dir, "units")}
	cfg := baseConfig(d)
	cfg["krb5_conf"] = d.KRB5Config
	cfg["policy"] = map[string]any{"credspec_dirs": []string{filepath.Join(d.Dir, "credspecs")}, "secret_dirs": []string{d.Dir}}
	cfg["run_dir"] = memRunDir(t, filepath.Join(dir, "run"))
	if edit != nil {
		edit(cfg)
	}
	s.config = writeJSON(t, dir, "config.json", cfg, 0o600)
	if r := runHook(t, []string{}, "install", "--runtime", "podman", "--hooks-dir", s.hooksDir, "--unit-dir", ""); r.code != 0 {
		t.Fatalf("install: %s", r.stderr)
	}
	os.Mkdir(s.unitDir, 0o755)
	if r := runHook(t, []string{}, "install", "--renewal", "--unit-dir", s.unitDir, "--config", s.config); r.code != 0 {
		t.Fatalf("install --renewal: %s", r.stderr)
	}
	return s
}

// doctor runs gmsa-hook doctor --json for the setup (with the spec, unless
// ""), after prefix, and checks its output holds no secret and its ok
// field agrees with the exit status.
func (s doctorSetup) doctor(t *testing.T, d *Domain, prefix []string, spec string, extra ...string) (run, doctorOut) {
	t.Helper()
	args := append(append([]string{}, prefix...), gmsaHook(t), "doctor", "--json", "--config", s.config, "--hooks-dir", s.hooksDir, "--unit-dir", s.unitDir)
	if spec != "" {
		args = append(args, "--credspec", "file://"+spec+".json")
	}
	r := runCmd(t, append(args, extra...)...)
	assertNoSecrets(t, d, r.stdout+r.stderr)
	var out doctorOut
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("doctor --json: %v\n%s\n%s", err, r.stdout, r.stderr)
	}
	if out.OK != (r.code == 0) {
		t.Errorf("ok %v, exit %d", out.OK, r.code)
	}
	return r, out
}

const allDoctorSteps = "config krb5.conf credential spec domain controllers ports clock reader credentials reader login sealed bind gMSA found gMSA enabled gMSA readable gMSA ticket policy runtime wiring renewal timer ecs units store"

// allPass checks every step passed, in the doctor's order.
func allPass(t *testing.T, r run, out doctorOut) {
	t.Helper()
	if r.code != 0 || r.stderr != "" {
		t.Errorf("exit %d\n%s", r.code, r.stderr)
	}
	var names []string
	for _, s := range out.Steps {
		names = append(names, s.Name)
		if s.Status != "pass" {
			t.Errorf("step %s: %s %s", s.Name, s.Status, s.Error)
		}
	}
	if got := strings.Join(names, " "); got != allDoctorSteps {
		t.Errorf("steps:\n%s\nwant\n%s", got, allDoctorSteps)
	}
}

// TestDoctor: on a working setup every step passes (with the domain
// controllers configured, found through Samba's DNS SRV records, and over
// LDAPS, where the ports step tries 389 and 636); with the LDAP port
// blocked, the LDAPS port blocked, the KDC blocked, a wrong reader password
// and a gMSA the reader may not read, the first failing step is the right
// one, its hint names the fix, and doctor exits 1. No output holds a secret.
func TestDoctor(t *testing.T) {
	d := testDomain(t)
	setup := newDoctorSetup(t, d, nil)
	ldaps := newDoctorSetup(t, d, func(c map[string]any) { c["ldaps"], c["ldaps_ca_file"] = true, d.TLSCA })
	t.Run("working setup", func(t *testing.T) {
		r, out := setup.doctor(t, d, nil, "webapp01-domainless")
		allPass(t, r, out)
		want := "tcp dc1.corp.example.test:88 dc1.corp.example.test:389"
		if got := out.step(t, "ports").Detail; got != want {
			t.Errorf("ports: %q, want %q", got, want)
		}
	})
	t.Run("working setup, dcs from dns srv records", func(t *testing.T) {
		srv := newDoctorSetup(t, d, func(c map[string]any) { delete(c, "domain_controllers"); c["dns_server"] = "127.0.0.1:53" })
		r, out := srv.doctor(t, d, nil, "webapp01-domainless")
		allPass(t, r, out)
		want := "kdc dc1.corp.example.test:88, ldap dc1.corp.example.test (dns srv records of corp.example.test from 127.0.0.1:53)"
		if got := out.step(t, "domain controllers").Detail; got != want {
			t.Errorf("domain controllers: %q, want %q", got, want)
		}
	})
	t.Run("working setup over ldaps", func(t *testing.T) {
		r, out := ldaps.doctor(t, d, nil, "webapp01-domainless")
		allPass(t, r, out)
		want := "tcp dc1.corp.example.test:88 dc1.corp.example.test:389 dc1.corp.example.test:636"
		if got := out.step(t, "ports").Detail; got != want {
			t.Errorf("ports: %q, want %q", got, want)
		}
		if got := out.step(t, "sealed bind").Detail; !strings.HasPrefix(got, "ldaps at ") {
			t.Errorf("sealed bind: %q", got)
		}
	})
	for _, tc := range []struct {
		name, spec  string
		setup       doctorSetup
		block       []int
		step, error string // the first failing step and its error's start
		hint        string
	}{
		{name: "ldap port blocked", spec: "webapp01-domainless", setup: setup, block: []int{389}, step: "ports",
			error: "no domain controller reachable: dc1.corp.example.test:389: i/o timeout", hint: "answer on ports 88 and 389"},
		{name: "ldaps port blocked", spec: "webapp01-domainless", setup: ldaps, block: []int{636}, step: "ports",
			error: "no domain controller reachable: dc1.corp.example.test:636: i/o timeout", hint: "(636 with ldaps)"},
		{name: "kdc blocked", spec: "webapp01-domainless", setup: setup, block: []int{88}, step: "ports",
			error: "no domain controller reachable: dc1.corp.example.test:88: i/o timeout", hint: "answer on ports 88 and 389"},
		{name: "wrong reader password", spec: "webapp01-wrongpw", setup: setup, step: "reader login",
			error: `log in as "gmsa-reader@CORP.EXAMPLE.TEST" at dc1.corp.example.test:88: wrong password or key`, hint: "check the reader's password in its secret"},
		{name: "gMSA not readable", spec: "webapp03-domainless", setup: setup, step: "gMSA readable",
			error: `gmsa-reader@CORP.EXAMPLE.TEST reading gMSA "webapp03$": not permitted to retrieve the managed password`, hint: "PrincipalsAllowedToRetrieveManagedPassword"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var prefix []string
			if tc.block != nil {
				prefix = blockedCgroup(t, tc.block...)
			}
			r, out := tc.setup.doctor(t, d, prefix, tc.spec)
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			var first *doctorStep
			for i := range out.Steps {
				if out.Steps[i].Status == "fail" {
					first = &out.Steps[i]
					break
				}
			}
			if first == nil {
				t.Fatalf("no step failed: %+v", out.Steps)
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

// TestDoctorRenewalAndStore: the renewal timer step passes when the unit
// directory holds the units gmsa-hook install --renewal writes for this
// binary and config, and fails naming each missing unit, or the first line
// of one written for another config; the store step passes on the tmpfs
// install --renewal set up, fails for a run_dir that does not exist, one on
// a disk, a version file of another layout, and a cache entry whose last
// renewal failed (named with its error), and warns of a container that is
// gone and awaits gc (exit 0). Each failure's hint names the fix. No
// credential spec: the DC's steps are skipped.
func TestDoctorRenewalAndStore(t *testing.T) {
	d := testDomain(t)
	setup := newDoctorSetup(t, d, nil)
	t.Run("installed", func(t *testing.T) {
		r, out := setup.doctor(t, d, nil, "")
		if r.code != 0 {
			t.Errorf("exit %d\n%s", r.code, r.stderr)
		}
		rt := out.step(t, "renewal timer")
		want := "gmsa-hook-renew.service and gmsa-hook-renew.timer in " + setup.unitDir + " run " + gmsaHook(t) + " renew --config " + setup.config
		if rt.Status != "pass" || rt.Detail != want {
			t.Errorf("renewal timer: %+v, want pass: %s", rt, want)
		}
		st := out.step(t, "store")
		var cfg struct {
			RunDir string `json:"run_dir"`
		}
		b, _ := os.ReadFile(setup.config)
		json.Unmarshal(b, &cfg)
		if want := cfg.RunDir + " on a memory file system, layout version 1: 0 containers, 0 cache entries"; st.Status != "pass" || st.Detail != want {
			t.Errorf("store: %+v, want pass: %s", st, want)
		}
		if cs := out.step(t, "credential spec"); cs.Status != "skip" || cs.Detail != "no --credspec given" {
			t.Errorf("credential spec: %+v", cs)
		}
	})
	t.Run("renewal units missing", func(t *testing.T) {
		empty := setup
		empty.unitDir = t.TempDir()
		r, out := empty.doctor(t, d, nil, "")
		st := out.step(t, "renewal timer")
		want := "the renewal timer is not installed as this gmsa-hook would install it: " + filepath.Join(empty.unitDir, "gmsa-hook-renew.service") + " is missing; " + filepath.Join(empty.unitDir, "gmsa-hook-renew.timer") + " is missing"
		if r.code != 1 || st.Status != "fail" || st.Error != want || !strings.Contains(strings.Join(st.Hints, "\n"), "gmsa-hook install --renewal") {
			t.Errorf("exit %d, renewal timer %+v\nwant fail: %s", r.code, st, want)
		}
	})
	t.Run("renewal unit of another config", func(t *testing.T) {
		other := setup
		other.unitDir = t.TempDir()
		if _, err := install.Renewal(other.unitDir, install.Hooks{Binary: gmsaHook(t), Config: "/etc/gmsa-hook/other.json"}); err != nil {
			t.Fatal(err)
		}
		_, out := other.doctor(t, d, nil, "")
		st := out.step(t, "renewal timer")
		want := "the renewal timer is not installed as this gmsa-hook would install it: " + filepath.Join(other.unitDir, "gmsa-hook-renew.service") +
			` differs: line 9 is "ExecStart=` + gmsaHook(t) + ` renew --config /etc/gmsa-hook/other.json", want "ExecStart=` + gmsaHook(t) + ` renew --config ` + setup.config + `"`
		if st.Status != "fail" || st.Error != want {
			t.Errorf("renewal timer %+v\nwant fail: %s", st, want)
		}
	})

	// storeCase writes a config whose run_dir is dir, with its renewal
	// units, and returns the doctor's store step.
	storeCase := func(t *testing.T, dir string) (run, doctorStep) {
		t.Helper()
		cfg := baseConfig(d)
		cfg["krb5_conf"], cfg["run_dir"] = d.KRB5Config, dir
		s := setup
		s.config = writeJSON(t, t.TempDir(), "config.json", cfg, 0o600)
		s.unitDir = t.TempDir()
		if _, err := install.Renewal(s.unitDir, install.Hooks{Binary: gmsaHook(t), Config: s.config}); err != nil {
			t.Fatal(err)
		}
		r, out := s.doctor(t, d, nil, "")
		if rt := out.step(t, "renewal timer"); rt.Status != "pass" {
			t.Errorf("renewal timer: %+v", rt)
		}
		return r, out.step(t, "store")
	}
	openStore := func(t *testing.T) *store.Store {
		t.Helper()
		s, _, err := store.Open(memRunDir(t, filepath.Join(t.TempDir(), "run")))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	entry := func(outcome, msg string) *store.Entry {
		return &store.Entry{Key: store.Key(outcome, msg), Account: "webapp01$", Realm: d.Realm, Source: "file://webapp01.json",
			Fetched: time.Now(), Expires: time.Now().Add(time.Hour), Outcome: outcome, Error: msg}
	}
	t.Run("store fails", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "no-run")
		onDisk, err := os.MkdirTemp("/var/tmp", "gmsa-doctor-disk-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(onDisk) })
		if ctr.OnMemoryFS(onDisk) {
			t.Fatalf("%s is on a memory file system: this case needs a disk", onDisk)
		}
		otherVersion := openStore(t)
		if err := os.WriteFile(filepath.Join(otherVersion.Dir, "version"), []byte("2\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		failedRenewal := openStore(t)
		bad := entry("failed", "renew webapp01$@CORP.EXAMPLE.TEST: no domain controller reachable")
		for _, e := range []*store.Entry{entry("renewed", ""), bad} {
			if err := failedRenewal.Put(e, []byte("not a ticket")); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name, dir, error, hint string
		}{
			{"run_dir missing", missing, "the store is not set up: run_dir " + missing + " does not exist", "gmsa-hook install --renewal"},
			{"run_dir on a disk", onDisk, "unusable run directory: run_dir " + onDisk + " is on a disk, not a memory file system: tickets must not reach a disk", `set "run_dir"`},
			{"another layout version", otherVersion.Dir, `unusable run directory: ` + filepath.Join(otherVersion.Dir, "version") + ` says layout version "2"; this gmsa-hook knows 1`, `set "run_dir"`},
			{"a failed renewal", failedRenewal.Dir, "the last renewal pass failed: webapp01$@" + d.Realm + " (cache " + bad.Key[:12] + "): " + bad.Error, "gmsa-hook renew"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r, st := storeCase(t, tc.dir)
				if r.code != 1 || st.Status != "fail" || st.Error != tc.error || !strings.Contains(strings.Join(st.Hints, "\n"), tc.hint) {
					t.Errorf("exit %d, store %+v\nwant fail: %s (hint %q)", r.code, st, tc.error, tc.hint)
				}
				if !strings.Contains(r.stderr, "the first, store: "+tc.error) {
					t.Errorf("stderr:\n%s", r.stderr)
				}
			})
		}
		if _, err := os.Stat(missing); err == nil {
			t.Errorf("doctor made %s", missing)
		}
	})
	t.Run("a gone container awaits gc", func(t *testing.T) {
		s := openStore(t)
		// A process of ours that ended, and a start time no process has:
		// should its pid be reused, the container is still gone.
		p := exec.Command("true")
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		dir := s.ContainerDir("gone", "/bundles/gone")
		if err := os.MkdirAll(dir, 0o711); err != nil {
			t.Fatal(err)
		}
		if err := store.WriteMeta(dir, &store.Meta{ID: "gone", Bundle: "/bundles/gone", Account: "webapp01$", Realm: d.Realm,
			Pid: p.Process.Pid, PidStart: 1, Created: time.Now(), Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		r, st := storeCase(t, s.Dir)
		want := "containers that are gone await gc: " + filepath.Base(dir)
		if r.code != 0 || st.Status != "warn" || st.Error != want || !strings.Contains(strings.Join(st.Hints, "\n"), "gmsa-hook gc") {
			t.Errorf("exit %d, store %+v\nwant warn: %s", r.code, st, want)
		}
	})
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
