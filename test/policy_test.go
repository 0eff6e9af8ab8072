package test

// The trust boundary end to end: real runc, the real Samba DC, and labels
// set by someone who is not the host's administrator.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/gmsa-hook/gmsa-hook/hook/config"
)

// operatorDir is one of the directories a new install reads (e.g.
// /etc/gmsa-hook/credspecs), made if missing. put writes a file there under a
// name of this test run's own, removed at the end; the directories are
// removed too when the test made them.
type operatorDir struct {
	t    *testing.T
	dir  string
	made []string
}

func newOperatorDir(t *testing.T, dir string) *operatorDir {
	t.Helper()
	o := &operatorDir{t: t, dir: dir}
	for d := dir; d != "/etc"; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		o.made = append(o.made, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range o.made {
			os.Remove(d) // only when empty: another user's files stay
		}
	})
	return o
}

// name is this run's name for a file called base.
func (o *operatorDir) name(base string) string {
	return fmt.Sprintf("gmsa-hook-test-%d-%s", os.Getpid(), base)
}

func (o *operatorDir) put(base, data string, mode os.FileMode) string {
	o.t.Helper()
	p := filepath.Join(o.dir, o.name(base))
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		o.t.Fatal(err)
	}
	o.t.Cleanup(func() { os.Remove(p) })
	return p
}

// countingNetns is a network namespace of the test's own with only a
// loopback, where every TCP or UDP packet sent is counted by nftables: a
// hook run by a runtime started in it can reach nothing, and anything it
// tries to send (a DNS query, a KDC or LDAP connection) shows in the count.
// The runtime also gets its own mount namespace in which /etc/resolv.conf
// and /etc/krb5.conf say 127.0.0.1 and the test realm, so that a hook that
// went on would send its first packet where it is counted.
type countingNetns struct {
	name, wrapper string
}

func newCountingNetns(t *testing.T, d *Domain) *countingNetns {
	t.Helper()
	for _, tool := range []string{"ip", "nft", "nsenter", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			needCI(t, tool+" is not installed (apt-get install iproute2 nftables util-linux)")
		}
	}
	n := &countingNetns{name: fmt.Sprintf("gmsa-test-%d", os.Getpid())}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", n.name)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", n.name).Run() })
	run("ip", "-n", n.name, "link", "set", "lo", "up")
	run("ip", "netns", "exec", n.name, "nft", "add table inet gmsatest")
	run("ip", "netns", "exec", n.name, "nft", "add chain inet gmsatest out { type filter hook output priority 0; }")
	run("ip", "netns", "exec", n.name, "nft", "add rule inet gmsatest out meta l4proto { tcp, udp } counter")
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Run inside "unshare -m": the bind mounts stay in that namespace.
	n.wrapper = filepath.Join(dir, "in-netns")
	script := fmt.Sprintf("#!/bin/sh\nset -e\nmount --bind %s /etc/resolv.conf\nmount --bind %s /etc/krb5.conf\nexec nsenter --net=/run/netns/%s \"$@\"\n", resolv, d.KRB5Config, n.name)
	if err := os.WriteFile(n.wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/etc/krb5.conf"); err != nil {
		needCI(t, "/etc/krb5.conf is missing (apt-get install krb5-config)")
	}
	return n
}

// packets is how many TCP and UDP packets were sent in the namespace.
func (n *countingNetns) packets(t *testing.T) int {
	t.Helper()
	return nftCount(t, "ip", "netns", "exec", n.name, "nft", "list", "table", "inet", "gmsatest")
}

// runtime is runc started in the namespace.
func (n *countingNetns) runtime(t *testing.T) ociRuntime {
	rt := runtimeFor(t, "runc")
	rt.argv = append([]string{"unshare", "-m", "--propagation", "private", n.wrapper}, rt.argv...)
	return rt
}

// hookErrors are the gmsa-hook error lines in a runtime's output (runc
// quotes the hook's stderr in its own log line: \" and \n).
func hookErrors(out string) []string {
	out = strings.NewReplacer(`\"`, `"`, `\n`, "\n").Replace(out)
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, "gmsa-hook: error: "); i >= 0 {
			lines = append(lines, l[i:])
		}
	}
	return lines
}

// TestLabelsRefusedByDefault: with no configuration file at all, labels that
// reach outside the operator's directories or name a domain the host does
// not know are refused at once, with one line naming the rule, nothing
// written, and no packet sent to anyone.
func TestLabelsRefusedByDefault(t *testing.T) {
	d := testDomain(t)
	ns := newCountingNetns(t, d)
	rt := ns.runtime(t)
	specs := newOperatorDir(t, config.DefaultCredSpecDir)
	fifo := filepath.Join(specs.dir, specs.name("fifo.json"))
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(fifo) })
	spec, err := os.ReadFile(d.Credspec("webapp01"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := strings.ReplaceAll(string(spec), d.DNSDomain, "attacker.example")
	specs.put("attacker.json", foreign, 0o644)
	specs.put("webapp01.json", string(spec), 0o644)

	env := hookEnv{runDir: config.DefaultRunDir} // no --config: every default
	dirRule := "a label may name a credential spec only as file://NAME.json in " + config.DefaultCredSpecDir + ", or an absolute path inside it"
	tests := []struct {
		name, label, want string
	}{
		{"spec from the image by relative path", "rootfs/etc/hostname",
			`credential spec "rootfs/etc/hostname" refused by policy: ` + dirRule},
		{"valid spec outside the credential spec directory", d.Credspec("webapp01-domainless"),
			fmt.Sprintf("credential spec %q refused by policy: %s", d.Credspec("webapp01-domainless"), dirRule)},
		{"host file", "file:///etc/shadow",
			`credential spec "file:///etc/shadow" refused by policy: ` + dirRule},
		{"fifo", "file://" + specs.name("fifo.json"),
			"read credential spec: credential spec file://" + specs.name("fifo.json") + ": " + fifo + ": not a regular file"},
		{"unconfigured domain", "credentialspec:file://" + specs.name("attacker.json"),
			`gMSA "webapp01" of attacker.example refused by policy: the domain is neither in the policy's "domains" nor a realm of /etc/krb5.conf`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ns.packets(t)
			id := fmt.Sprintf("refused-%d-%d", os.Getpid(), i)
			b := env.bundle(t, container{args: []string{"/probe"}, uid: 1000, gid: 1000,
				annotations: map[string]string{"credentialspec": tt.label}})
			out, err := rt.exec(t, "run", "--bundle", b, id)
			if err == nil || strings.Contains(out, "probe:") {
				t.Fatalf("the container ran:\n%s", out)
			}
			want := "gmsa-hook: error: container " + id + ": " + tt.want
			if got := hookErrors(out); len(got) != 1 || got[0] != want {
				t.Errorf("hook errors %q\nwant one: %s\nruntime said:\n%s", got, want, out)
			}
			if n := ns.packets(t) - before; n != 0 {
				t.Errorf("%d packets sent for a refused label", n)
			}
			if entries, _ := filepath.Glob(filepath.Join(env.runDir, "containers", id+"*")); len(entries) > 0 {
				t.Errorf("left behind: %v", entries)
			}
			for _, s := range d.Secrets() {
				if strings.Contains(out, s) {
					t.Error("the output holds a password of the test domain")
				}
			}
		})
	}

	// The counter counts: an admitted spec in the same namespace (with the
	// host keytab it needs, and nothing else configured) goes on to look for
	// the domain's controllers, and fails since none is there.
	t.Run("admitted spec sends packets", func(t *testing.T) {
		before := ns.packets(t)
		id := fmt.Sprintf("admitted-%d", os.Getpid())
		dir := t.TempDir()
		runDir := memRunDir(t, filepath.Join(dir, "run"))
		env := hookEnv{runDir: runDir, config: writeJSON(t, dir, "config.json", map[string]any{"keytab": d.HostKeytab, "timeout": "3s", "run_dir": runDir}, 0o644)}
		b := env.bundle(t, container{args: []string{"/probe"}, uid: 1000, gid: 1000,
			annotations: map[string]string{"credentialspec": "file://" + specs.name("webapp01.json")}})
		out, err := rt.exec(t, "run", "--bundle", b, id)
		if err == nil {
			t.Fatalf("the container ran with no domain controller reachable:\n%s", out)
		}
		if n := ns.packets(t) - before; n == 0 {
			t.Errorf("no packet counted for an admitted spec; the hook said:\n%s", out)
		}
	})
}

// TestLabelFromCredspecDir: a spec installed in /etc/gmsa-hook/credspecs with
// its reader secret in /etc/gmsa-hook/secrets, named by the label
// credentialspec=file://NAME.json, gives a uid-1000 container its ticket.
// The configuration only says where the DC is; the policy is the default.
func TestLabelFromCredspecDir(t *testing.T) {
	d := testDomain(t)
	rt := runtimeFor(t, "runc")
	specs := newOperatorDir(t, config.DefaultCredSpecDir)
	secrets := newOperatorDir(t, config.DefaultSecretDir)
	if err := os.Chmod(secrets.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	secret, err := os.ReadFile(d.Dir + "/reader-secret.json")
	if err != nil {
		t.Fatal(err)
	}
	secretPath := secrets.put("reader.json", string(secret), 0o600)
	spec, err := os.ReadFile(d.Credspec("webapp01-domainless"))
	if err != nil {
		t.Fatal(err)
	}
	arn := regexp.MustCompile(`"CredentialArn"\s*:\s*"[^"]*"`)
	if !arn.Match(spec) {
		t.Fatalf("no CredentialArn in %s", d.Credspec("webapp01-domainless"))
	}
	specs.put("webapp01.json", arn.ReplaceAllString(string(spec), `"CredentialArn": "file://`+secretPath+`"`), 0o644)

	env := newHookEnv(t, d, map[string]any{"policy": nil, "krb5_conf": d.KRB5Config})
	id := fmt.Sprintf("credspecdir-%d", os.Getpid())
	b := env.bundle(t, container{args: []string{"/probe"}, uid: 1000, gid: 1000,
		annotations: map[string]string{"credentialspec": "credentialspecdomainless:file://" + specs.name("webapp01.json")}})
	out, err := rt.exec(t, "run", "--bundle", b, id)
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "probe: uid=1000 read-only\n") || !strings.Contains(out, probeOK(d)) {
		t.Errorf("the probe did not use the ticket:\n%s", out)
	}
	env.assertClean(t, rt, id)
}

// TestPolicyRules: with rules, a pod annotation for an allowed Kubernetes
// namespace gets its gMSA; another namespace is refused naming the rule,
// before any packet (the refused run has no fetch step in its log).
func TestPolicyRules(t *testing.T) {
	d := testDomain(t)
	rt := runtimeFor(t, "runc")
	pol := testPolicy(d)
	pol["rules"] = []any{map[string]any{"name": "payments-web", "gmsa": []string{"webapp01"},
		"match": map[string]any{"kubernetes_namespace": []string{"payments"}}}}
	env := newHookEnv(t, d, map[string]any{"policy": pol})
	for _, tt := range []struct {
		namespace, want string
	}{
		{"payments", ""},
		{"default", `gMSA "webapp01" of corp.example.test refused by policy: rule "payments-web" grants it only to containers with kubernetes_namespace payments, not "default"`},
	} {
		t.Run(tt.namespace, func(t *testing.T) {
			id := fmt.Sprintf("rules-%s-%d", tt.namespace, os.Getpid())
			b := env.bundle(t, container{args: []string{"/probe"}, uid: 1000, gid: 1000,
				annotations: map[string]string{"credentialspec": d.Credspec("webapp01-domainless"),
					"io.kubernetes.cri.sandbox-namespace": tt.namespace, "io.kubernetes.cri.container-type": "container"}})
			out, err := rt.exec(t, "run", "--bundle", b, id)
			if tt.want == "" {
				if err != nil || !strings.Contains(out, probeOK(d)) {
					t.Fatalf("runc run: %v\n%s", err, out)
				}
				env.assertClean(t, rt, id)
				return
			}
			if err == nil {
				t.Fatalf("the container ran:\n%s", out)
			}
			if got := hookErrors(out); len(got) != 1 || got[0] != "gmsa-hook: error: container "+id+": "+tt.want {
				t.Errorf("hook errors %q\nwant: %s", got, tt.want)
			}
			for _, l := range env.logLines(t) {
				if l.Container == id && l.Steps["fetch"] != 0 {
					t.Errorf("a refused run fetched: %+v", l)
				}
			}
			env.assertClean(t, rt, id)
		})
	}
}
