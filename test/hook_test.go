package test

// End-to-end tests of the OCI hook: real runc and crun, the real Samba DC,
// and a probe inside the container that uses the ticket.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

var hookRuntimes = []string{"runc", "crun"}

// probeOK is what the probe prints when the ticket works.
func probeOK(d *Domain) string {
	return fmt.Sprintf("probe: ok client=webapp01$@%s service=ldap/%s@%s etype=18", d.Realm, d.DCHost, d.Realm)
}

func TestHookTicketInContainer(t *testing.T) {
	d := testDomain(t)
	for _, name := range hookRuntimes {
		t.Run(name, func(t *testing.T) {
			rt := runtimeFor(t, name)
			env := newHookEnv(t, d, nil)
			for _, uid := range []int{0, 1000} {
				id := fmt.Sprintf("ticket-%s-%d", name, uid)
				b := env.bundle(t, container{args: []string{"/probe"}, uid: uid, gid: uid,
					annotations: map[string]string{"credentialspec": d.Credspec("webapp01-domainless")}})
				out, err := rt.exec(t, "run", "--bundle", b, id)
				if err != nil {
					t.Fatalf("%s run %s: %v\n%s", name, id, err, out)
				}
				if !strings.Contains(out, fmt.Sprintf("probe: uid=%d read-only\n", uid)) || !strings.Contains(out, probeOK(d)) {
					t.Errorf("%s: the probe did not use the ticket:\n%s", id, out)
				}
				env.assertClean(t, rt, id)
			}
			stages := map[string]int{}
			for _, l := range env.logLines(t) {
				if !l.Labelled || l.Error != "" {
					t.Errorf("log: %+v", l)
				}
				if l.Stage == "createRuntime" && l.Account != "webapp01$@"+d.Realm {
					t.Errorf("log: account %q", l.Account)
				}
				stages[l.Stage]++
			}
			if stages["createRuntime"] != 2 || stages["createContainer"] != 2 || stages["poststop"] != 2 {
				t.Errorf("stages run: %v, want each twice", stages)
			}

			// No debug log: createContainer's mount and poststop are
			// quick runs (package quick), the same ticket in the same place.
			quiet := newHookEnv(t, d, map[string]any{"log_file": ""})
			id := "ticket-quiet-" + name
			b := quiet.bundle(t, container{args: []string{"/probe"}, uid: 1000, gid: 1000,
				annotations: map[string]string{"credentialspec": d.Credspec("webapp01-domainless")}})
			out, err := rt.exec(t, "run", "--bundle", b, id)
			if err != nil || !strings.Contains(out, "probe: uid=1000 read-only\n") || !strings.Contains(out, probeOK(d)) {
				t.Errorf("%s, no debug log: %v\n%s", id, err, out)
			}
			quiet.assertClean(t, rt, id)
		})
	}
}

// TestHookOwnUserOnly: the ticket belongs to the container's user (1000);
// another user in the same container (1001) cannot read it.
func TestHookOwnUserOnly(t *testing.T) {
	d := testDomain(t)
	for _, name := range hookRuntimes {
		t.Run(name, func(t *testing.T) {
			rt := runtimeFor(t, name)
			env := newHookEnv(t, d, nil)
			id := "owner-" + name
			b := env.bundle(t, container{args: []string{"sleep", "120"}, uid: 1000, gid: 1000,
				annotations: map[string]string{"credentialspec": d.Credspec("webapp01-domainless")}})
			rt.detach(t, b, id)

			// On the host: the layout of the run directory.
			dir := containerDir(env.runDir, id, b)
			for _, c := range []struct {
				path     string
				mode     os.FileMode
				uid, gid uint32
			}{
				{env.runDir, os.ModeDir | 0o711, 0, 0},
				{filepath.Join(env.runDir, "containers"), os.ModeDir | 0o711, 0, 0},
				{dir, os.ModeDir | 0o711, 0, 0},
				{filepath.Join(dir, "meta.json"), 0o600, 0, 0},
				{filepath.Join(dir, "krbdir"), os.ModeDir | 0o700, 1000, 1000},
				{filepath.Join(dir, "krbdir", "krb5cc"), 0o600, 1000, 1000},
			} {
				fi, err := os.Stat(c.path)
				if err != nil {
					t.Fatal(err)
				}
				st := fi.Sys().(*syscall.Stat_t)
				if fi.Mode() != c.mode || st.Uid != c.uid || st.Gid != c.gid {
					t.Errorf("%s: %v %d:%d, want %v %d:%d", c.path, fi.Mode(), st.Uid, st.Gid, c.mode, c.uid, c.gid)
				}
			}

			if out := rt.mustExec(t, "exec", "--user", "1000:1000", id, "/probe"); !strings.Contains(out, probeOK(d)) {
				t.Errorf("uid 1000:\n%s", out)
			}
			if out := rt.mustExec(t, "exec", "--user", "1001:1001", id, "/probe", "-expect-denied"); !strings.Contains(out, "probe: denied: open /var/credentials-fetcher/krbdir/krb5cc: permission denied") {
				t.Errorf("uid 1001:\n%s", out)
			}
			// Only the ticket shows in the container: meta.json stays on the host.
			if out := rt.mustExec(t, "exec", "--user", "1000:1000", id, "ls", "-a", "/var/credentials-fetcher/krbdir"); strings.Fields(out)[2] != "krb5cc" || len(strings.Fields(out)) != 3 {
				t.Errorf("krbdir in the container holds:\n%s", out)
			}
			// The host's parent directories do not matter inside the container:
			// only krbdir is mounted there.
			containers := filepath.Join(env.runDir, "containers")
			if err := os.Chmod(containers, 0o700); err != nil {
				t.Fatal(err)
			}
			if out := rt.mustExec(t, "exec", "--user", "1000:1000", id, "/probe"); !strings.Contains(out, probeOK(d)) {
				t.Errorf("uid 1000 with %s 0700:\n%s", containers, out)
			}
			if err := os.Chmod(containers, 0o711); err != nil {
				t.Fatal(err)
			}

			rt.mustExec(t, "delete", "-f", id)
			env.assertClean(t, rt, id)
		})
	}
}

// TestHookUserNamespace: in a user namespace the ticket belongs to the host
// ID of the container's user, and the createContainer stage, which runs as
// the namespace's root (an unprivileged host user), still reaches and mounts
// the ticket directory.
func TestHookUserNamespace(t *testing.T) {
	d := testDomain(t)
	for _, name := range hookRuntimes {
		t.Run(name, func(t *testing.T) {
			rt := runtimeFor(t, name)
			env := newHookEnv(t, d, nil)
			// createContainer runs as the namespace's root, host uid 100000: as
			// in an installation (/usr/local/bin, /etc/gmsa-hook, /run), the
			// binary, the config file and the run directory must be reachable
			// by other users; t.TempDir and go build's output are not.
			openToAll(t, gmsaHook(t), env.config, env.runDir)
			id := "userns-" + name
			b := env.bundle(t, container{args: []string{"/probe"}, uid: 1000, gid: 1000, userns: true,
				annotations: map[string]string{"credentialspec": d.Credspec("webapp01-domainless")}})
			out, err := rt.exec(t, "run", "--bundle", b, id)
			if err != nil || !strings.Contains(out, "probe: uid=1000 read-only\n") || !strings.Contains(out, probeOK(d)) {
				t.Errorf("%s run %s: %v\n%s", name, id, err, out)
			}
			var owners []string
			for _, l := range env.logLines(t) {
				if l.Stage == "createRuntime" {
					owners = append(owners, fmt.Sprintf("%d:%d", l.UID, l.GID))
				}
			}
			if len(owners) != 1 || owners[0] != "101000:101000" {
				t.Errorf("ticket owners %v, want the host IDs 101000:101000", owners)
			}
			env.assertClean(t, rt, id)
		})
	}
}

// openToAll makes the parents of paths under the temporary directory
// traversable by every user (0755).
func openToAll(t *testing.T, paths ...string) {
	t.Helper()
	tmp := filepath.Clean(os.TempDir())
	for _, p := range paths {
		for dir := filepath.Dir(p); strings.HasPrefix(dir, tmp+"/"); dir = filepath.Dir(dir) {
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// detach starts a container in the background (its stdio on a file, so no
// pipe of ours is held open).
func (rt ociRuntime) detach(t *testing.T, bundle, id string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), "stdio"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := rt.command(t.Context(), "run", "-d", "--bundle", bundle, id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, logf, logf
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("%s run -d %s: %v\n%s", rt.name, id, err, out)
	}
	t.Cleanup(func() { rt.exec(t, "delete", "-f", id) })
}

// TestHookFailClosed: a labelled container whose ticket cannot be had does
// not start, the runtime shows the hook's reason, and nothing is left, with
// crun (which skips poststop after a failed create) as with runc.
func TestHookFailClosed(t *testing.T) {
	d := testDomain(t)
	malformed := filepath.Join(t.TempDir(), "malformed.json")
	if err := os.WriteFile(malformed, []byte(`{"CmsPlugins":["ActiveDirectory"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	fileAtMountPoint := filepath.Join(t.TempDir(), "rootfs")
	if err := makeRootfs(fileAtMountPoint, probeBinary(t)); err != nil {
		t.Fatal(err)
	}
	krbdir := filepath.Join(fileAtMountPoint, "var", "credentials-fetcher", "krbdir")
	if err := os.Remove(krbdir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(krbdir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		credspec string
		config   map[string]any
		rootfs   string
		want     string // after "gmsa-hook: error: container ID: "
	}{
		{name: "malformed credspec", credspec: malformed,
			config: map[string]any{"policy": map[string]any{"credspec_dirs": []string{filepath.Dir(malformed)}, "domains": []string{d.DNSDomain}}},
			want:   "read credential spec: credential spec " + malformed + ": malformed credential spec"},
		{name: "missing credspec", credspec: "file://absent.json",
			want: "read credential spec: credential spec file://absent.json: " + filepath.Join(d.Dir, "credspecs", "absent.json") + ": file does not exist"},
		{name: "gmsa not readable", credspec: d.Credspec("webapp03-domainless"),
			want: `read password of gMSA "webapp03$" as "gmsa-reader@` + d.Realm + `" from ` + d.DCHost + `: not permitted to retrieve the managed password`},
		{name: "dc down", credspec: d.Credspec("webapp01-domainless"),
			config: map[string]any{"domain_controllers": []string{"127.0.0.2"}, "timeout": "5s"},
			want:   `log in as "gmsa-reader@` + d.Realm + `" at 127.0.0.2:88: no kdc reachable`},
		{name: "dc silent", credspec: d.Credspec("webapp01-domainless"),
			config: map[string]any{"domain_controllers": []string{silentKDC(t)}, "timeout": "2s"},
			want:   `log in as "gmsa-reader@` + d.Realm + `" at 127.0.0.5:88: gave up at the deadline of 2s`},
		{name: "file at the mount point", credspec: d.Credspec("webapp01-domainless"), rootfs: fileAtMountPoint,
			want: "cannot mount the ticket directory onto /var/credentials-fetcher/krbdir in " + fileAtMountPoint + ": make mount point: not a directory"},
	}
	for _, name := range hookRuntimes {
		t.Run(name, func(t *testing.T) {
			rt := runtimeFor(t, name)
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					env := newHookEnv(t, d, tt.config)
					id := fmt.Sprintf("fail-%s-%d", name, i)
					stderrFile := filepath.Join(t.TempDir(), "hook-stderr")
					b := env.bundle(t, container{args: []string{"/probe"}, uid: 1000, gid: 1000, rootfs: tt.rootfs,
						annotations: map[string]string{"credentialspec": tt.credspec, "run.oci.hooks.stderr": stderrFile}})
					start := time.Now()
					out, err := rt.exec(t, "run", "--bundle", b, id)
					if err == nil {
						t.Fatalf("%s run %s succeeded:\n%s", name, id, out)
					}
					if strings.Contains(out, "probe:") {
						t.Errorf("the container ran:\n%s", out)
					}
					// runc shows the hook's stderr in its error; crun writes it to
					// the file of the run.oci.hooks.stderr annotation.
					// runc quotes it as a Go string.
					shown := strings.ReplaceAll(out, `\"`, `"`)
					if name == "crun" {
						b, _ := os.ReadFile(stderrFile)
						shown = string(b)
					}
					want := "gmsa-hook: error: container " + id + ": " + tt.want
					if !strings.Contains(shown, want) {
						t.Errorf("%s does not show the hook's reason %q:\n%s", name, want, shown)
					}
					if !strings.Contains(shown, "gmsa-hook: hint: ") {
						t.Errorf("no hint:\n%s", shown)
					}
					assertNoSecrets(t, d, out+shown)
					if took := time.Since(start); took > 15*time.Second {
						t.Errorf("failing took %v", took)
					}
					env.assertClean(t, rt, id)
				})
			}
		})
	}
}

// silentKDC listens on 127.0.0.5:88 and never answers: a DC that hangs.
func silentKDC(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.5:88")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "127.0.0.5"
}

// TestHookUnlabelled: with the hooks installed, a container without the
// label runs as before and the hook leaves no trace.
func TestHookUnlabelled(t *testing.T) {
	d := testDomain(t)
	for _, name := range hookRuntimes {
		t.Run(name, func(t *testing.T) {
			rt := runtimeFor(t, name)
			env := newHookEnv(t, d, nil)
			id := "plain-" + name
			b := env.bundle(t, container{args: []string{"sh", "-c", "test ! -e /var/credentials-fetcher/krbdir/krb5cc && echo no-ticket"},
				annotations: map[string]string{"org.example.team": "web"}})
			out := rt.mustExec(t, "run", "--bundle", b, id)
			if out != "no-ticket\n" {
				t.Errorf("output %q", out)
			}
			if names, _ := os.ReadDir(env.runDir); len(names) != 0 {
				t.Errorf("run directory written for an unlabelled container: %v", names)
			}
			lines := env.logLines(t)
			if len(lines) != 3 {
				t.Errorf("%d log lines, want 3", len(lines))
			}
			for _, l := range lines {
				if l.Labelled || l.Error != "" {
					t.Errorf("log: %+v", l)
				}
			}
			env.assertClean(t, rt, id)
		})
	}
}

// TestHookCycles: 200 labelled containers created and deleted in a row
// leave no directory, mount, container or process behind.
func TestHookCycles(t *testing.T) {
	d := testDomain(t)
	n := 200
	if testing.Short() {
		n = 20
	}
	rt := runtimeFor(t, "runc")
	env := newHookEnv(t, d, nil)
	b := env.bundle(t, container{args: []string{"true"}, uid: 1000, gid: 1000,
		annotations: map[string]string{"credentialspec": d.Credspec("webapp01-domainless")}})
	start := time.Now()
	for i := range n {
		id := fmt.Sprintf("cycle-%d", i)
		if out, err := rt.exec(t, "run", "--bundle", b, id); err != nil {
			t.Fatalf("cycle %d: %v\n%s", i, err, out)
		}
	}
	t.Logf("%d labelled runc run cycles in %v", n, time.Since(start))
	entries, err := os.ReadDir(filepath.Join(env.runDir, "containers"))
	if err != nil || len(entries) != 0 {
		t.Errorf("left in the run directory: %v %v", entries, err)
	}
	env.assertClean(t, rt, "cycle-0")
	if c := rt.containers(t); len(c) != 0 {
		t.Errorf("containers left: %v", c)
	}
	lines := env.logLines(t)
	if len(lines) != 3*n {
		t.Errorf("%d hook runs logged, want %d", len(lines), 3*n)
	}
	for _, l := range lines {
		if l.Error != "" || !l.Labelled {
			t.Errorf("log: %+v", l)
		}
	}
	if out, err := exec.Command("sh", "-c", "grep -c krbdir /proc/*/mountinfo 2>/dev/null | grep -v ':0$' || true").Output(); err == nil && len(out) > 0 {
		t.Logf("processes with krbdir mounts (other tests' containers?):\n%s", out)
	}
}

// TestHookScripts runs testdata/script: the hook and install as an operator
// or a runtime calls them, for cases that need no runtime and no domain.
// "state ID BUNDLE [KEY=VALUE...]" writes state.json, a runtime's state with
// those annotations.
func TestHookScripts(t *testing.T) {
	bin := gmsaHook(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", filepath.Dir(bin)+string(os.PathListSeparator)+env.Getenv("PATH"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// expand FILE: replace $WORK and other variables in FILE.
			"expand": func(ts *testscript.TestScript, neg bool, args []string) {
				for _, f := range args {
					ts.Check(os.WriteFile(ts.MkAbs(f), []byte(os.Expand(ts.ReadFile(f), ts.Getenv)), 0o644))
				}
			},
			"state": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: state ID BUNDLE [KEY=VALUE...]")
				}
				st := map[string]any{"ociVersion": "1.0.2-dev", "id": args[0], "status": "creating", "pid": os.Getpid(), "bundle": args[1]}
				ann := map[string]string{}
				for _, a := range args[2:] {
					k, v, _ := strings.Cut(a, "=")
					ann[k] = v
				}
				if len(ann) > 0 {
					st["annotations"] = ann
				}
				b, _ := json.Marshal(st)
				ts.Check(os.WriteFile(ts.MkAbs("state.json"), b, 0o644))
			},
		},
	})
}

// TestHookSameIDTwoRoots: the same container ID under two runc --root
// directories, with two bundles and one run directory: each container gets
// its own directory and sees only its own gMSA's ticket, and deleting one
// leaves the other's directory and ticket in place.
func TestHookSameIDTwoRoots(t *testing.T) {
	d := testDomain(t)
	env := newHookEnv(t, d, nil)
	const id = "same-id"
	type side struct {
		rt      ociRuntime
		bundle  string
		account string
	}
	var sides []side
	for _, gmsa := range []string{"webapp01", "webapp02"} {
		rt := runtimeFor(t, "runc") // its own --root
		b := env.bundle(t, container{args: []string{"sleep", "120"}, uid: 1000, gid: 1000,
			annotations: map[string]string{"credentialspec": d.Credspec(gmsa + "-domainless")}})
		rt.detach(t, b, id)
		sides = append(sides, side{rt, b, gmsa + "$@" + d.Realm})
	}
	if sides[0].rt.argv[2] == sides[1].rt.argv[2] {
		t.Fatalf("both runtimes use --root %s", sides[0].rt.argv[2])
	}
	probe := func(s side) {
		t.Helper()
		out, err := s.rt.exec(t, "exec", "--user", "1000:1000", id, "/probe")
		if err != nil || !strings.Contains(strings.ToLower(out), "probe: ok client="+strings.ToLower(s.account)+" ") {
			t.Errorf("%s in %s: want a ticket of %s: %v\n%s", id, s.rt.argv[2], s.account, err, out)
		}
	}
	for _, s := range sides {
		probe(s)
		if _, err := os.Stat(filepath.Join(containerDir(env.runDir, id, s.bundle), "krbdir", "krb5cc")); err != nil {
			t.Errorf("ticket of %s: %v", s.account, err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(env.runDir, "containers")); len(entries) != 2 {
		t.Errorf("container directories: %v, want two", entries)
	}

	sides[0].rt.mustExec(t, "delete", "-f", id)
	if _, err := os.Lstat(containerDir(env.runDir, id, sides[0].bundle)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the deleted container's directory: %v", err)
	}
	other := containerDir(env.runDir, id, sides[1].bundle)
	if _, err := os.Stat(filepath.Join(other, "krbdir", "krb5cc")); err != nil {
		t.Errorf("the other container's ticket after the delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other, "meta.json")); err != nil {
		t.Errorf("the other container's meta.json after the delete: %v", err)
	}
	probe(sides[1])

	sides[1].rt.mustExec(t, "delete", "-f", id)
	env.assertClean(t, sides[1].rt, id)
	for _, l := range env.logLines(t) {
		if l.Error != "" {
			t.Errorf("log: %+v", l)
		}
	}
}
