package test

// The ticket's whole life with no daemon: the node's cache, the renewal
// pass, gc and status, against real runc and the real Samba DC. DC traffic
// is counted at the network with nftables, not by the code under test; the
// ./test package runs alone (test/run-tests.sh), so the counts are ours.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// dcCounter counts connections opened to the test DC's KDC (88) and LDAP
// (389, 636) ports, from outside gmsa-hook: an nftables table of the test's
// own in the host's output path.
type dcCounter struct{ table string }

func newDCCounter(t testing.TB) *dcCounter {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		needCI(t, "nft is not installed (apt-get install nftables)")
	}
	c := &dcCounter{table: fmt.Sprintf("gmsacount%d", os.Getpid())}
	script := fmt.Sprintf(`table inet %[1]s {
	counter kdc {}
	counter ldap {}
	chain out {
		type filter hook output priority 0;
		ip daddr 127.0.0.1 tcp dport 88 tcp flags & (syn|ack) == syn counter name kdc
		ip daddr 127.0.0.1 udp dport 88 counter name kdc
		ip daddr 127.0.0.1 tcp dport { 389, 636 } tcp flags & (syn|ack) == syn counter name ldap
	}
}
`, c.table)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", c.table).Run() })
	return c
}

var nftPackets = regexp.MustCompile(`packets (\d+)`)

// nftCount runs an nft listing (argv) and reads the first counter's
// packets from it.
func nftCount(t testing.TB, argv ...string) int {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	m := nftPackets.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no packets in %s", out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func (c *dcCounter) get(t testing.TB, name string) int {
	t.Helper()
	return nftCount(t, "nft", "list", "counter", "inet", c.table, name)
}

func (c *dcCounter) reset(t testing.TB) {
	t.Helper()
	for _, name := range []string{"kdc", "ldap"} {
		if out, err := exec.Command("nft", "reset", "counter", "inet", c.table, name).CombinedOutput(); err != nil {
			t.Fatalf("nft reset: %v\n%s", err, out)
		}
	}
}

// gmsaHookCmd runs the gmsa-hook binary and returns its combined output.
func gmsaHookCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(gmsaHook(t), args...).CombinedOutput()
	return string(out), err
}

var probeTGT = regexp.MustCompile(`probe: tgt end=(\d+) auth=(\d+)`)

// tgtEnd is the TGT end time the probe printed.
func tgtEnd(t *testing.T, out string) int64 { return tgtTimes(t, out)[0] }

// tgtAuth is the TGT's authentication time the probe printed: a fresh login
// (a password used) moves it, a TGS renewal does not.
func tgtAuth(t *testing.T, out string) int64 { return tgtTimes(t, out)[1] }

func tgtTimes(t *testing.T, out string) [2]int64 {
	t.Helper()
	m := probeTGT.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no tgt times in the probe's output:\n%s", out)
	}
	end, _ := strconv.ParseInt(m[1], 10, 64)
	auth, _ := strconv.ParseInt(m[2], 10, 64)
	return [2]int64{end, auth}
}

// pastSecond waits until the clock is past Unix second s: the KDC stamps
// tickets to the second, so a ticket got after it has a later time.
func pastSecond(s int64) {
	for time.Now().Unix() <= s {
		time.Sleep(100 * time.Millisecond)
	}
}

// status reads gmsa-hook status --json.
func statusOf(t *testing.T, env hookEnv) Status {
	t.Helper()
	out, err := exec.Command(gmsaHook(t), "status", "--json", "--config", env.config).Output()
	if err != nil {
		t.Fatalf("gmsa-hook status: %v", err)
	}
	var s Status
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("status json: %v\n%s", err, out)
	}
	return s
}

// Status is gmsa-hook status --json's schema, as a tool would read it.
type Status struct {
	Version    string `json:"version"`
	RunDir     string `json:"run_dir"`
	Containers []struct {
		ID       string    `json:"id"`
		Engine   string    `json:"engine"`
		Account  string    `json:"account"`
		Realm    string    `json:"realm"`
		UID      int       `json:"uid"`
		Expires  time.Time `json:"expires"`
		Renewed  time.Time `json:"renewed"`
		Outcome  string    `json:"last_outcome"`
		Alive    bool      `json:"alive"`
		CacheKey string    `json:"cache_key"`
	} `json:"containers"`
	Cache []CacheStatus `json:"cache"`
}

// CacheStatus is one cache entry in status --json.
type CacheStatus struct {
	Key      string    `json:"key"`
	Account  string    `json:"account"`
	Expires  time.Time `json:"expires"`
	Outcome  string    `json:"outcome"`
	Previous bool      `json:"previous_password"`
}

// TestRenewRunningContainer: a detached container as uid 1000 sees its
// ticket's end time move forward after a renewal pass whose threshold is
// above the ticket's lifetime; the renewed cache still gets a service
// ticket, and its owner and mode are those of before. Four containers of
// the gMSA: one KDC exchange for the pass, no LDAP.
func TestRenewRunningContainer(t *testing.T) {
	d := testDomain(t)
	rt := runtimeFor(t, "runc")
	env := newHookEnv(t, d, nil)
	count := newDCCounter(t)
	ids := make([]string, 4)
	bundles := make([]string, 4)
	for i := range ids {
		ids[i] = fmt.Sprintf("renew-%d-%d", os.Getpid(), i)
		bundles[i] = env.bundle(t, container{args: []string{"sleep", "3600"}, uid: 1000, gid: 1000,
			annotations: map[string]string{"credentialspec": d.Credspec("webapp01-domainless")}})
		rt.detach(t, bundles[i], ids[i])
	}
	// Four creates of one gMSA: one password read, then the node's cache.
	if n := count.get(t, "ldap"); n != 1 {
		t.Errorf("four creates of one gMSA opened %d LDAP connections, want 1", n)
	}
	before := rt.mustExec(t, "exec", "--user", "1000:1000", ids[0], "/probe")
	end0 := tgtEnd(t, before)
	file := filepath.Join(containerDir(env.runDir, ids[0], bundles[0]), "krbdir", "krb5cc")
	st0 := stat(t, file)
	// The KDC stamps tickets to the second: let one pass.
	pastSecond(end0 - 10*3600)

	count.reset(t)
	out, err := gmsaHookCmd(t, "renew", "--config", env.config, "--threshold", "11h")
	if err != nil {
		t.Fatalf("gmsa-hook renew: %v\n%s", err, out)
	}
	if !strings.Contains(out, "webapp01$@"+d.Realm+": renewed") || !strings.Contains(out, "written to 4 containers") {
		t.Errorf("renew said:\n%s", out)
	}
	if kdc, ldap := count.get(t, "kdc"), count.get(t, "ldap"); kdc != 1 || ldap != 0 {
		t.Errorf("the pass for four containers of one gMSA made %d KDC and %d LDAP connections, want 1 and 0", kdc, ldap)
	}
	for i, id := range ids {
		after := rt.mustExec(t, "exec", "--user", "1000:1000", id, "/probe")
		if !strings.Contains(after, probeOK(d)) {
			t.Errorf("%s: the renewed ticket does not work:\n%s", id, after)
		}
		if end := tgtEnd(t, after); end <= end0 {
			t.Errorf("%s: ticket end %d after the renewal, %d before: not moved forward", id, end, end0)
		}
		if i == 0 {
			if st := stat(t, file); st.Uid != st0.Uid || st.Gid != st0.Gid || st.Mode != st0.Mode || st.Uid != 1000 {
				t.Errorf("owner or mode changed: %d:%d %o, was %d:%d %o", st.Uid, st.Gid, st.Mode, st0.Uid, st0.Gid, st0.Mode)
			}
		}
	}
	s := statusOf(t, env)
	if len(s.Containers) != 4 || len(s.Cache) != 1 || s.Cache[0].Outcome != "renewed" {
		t.Errorf("status: %+v", s)
	}
	for _, c := range s.Containers {
		if !c.Alive || c.Renewed.IsZero() || c.Account != "webapp01$" || c.UID != 1000 || c.Engine != "oci" {
			t.Errorf("status of %s: %+v", c.ID, c)
		}
	}

	// A pass with nothing to do sends nothing.
	count.reset(t)
	if out, err := gmsaHookCmd(t, "renew", "--config", env.config); err != nil || !strings.Contains(out, ": valid") {
		t.Errorf("second pass: %v\n%s", err, out)
	}
	if kdc, ldap := count.get(t, "kdc"), count.get(t, "ldap"); kdc != 0 || ldap != 0 {
		t.Errorf("a pass with valid tickets made %d KDC and %d LDAP connections", kdc, ldap)
	}
}

func stat(t *testing.T, file string) syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestConcurrentCreatesOneRead: twenty concurrent runc run of one gMSA with
// a cold cache all start, and the DC sees one LDAP connection.
func TestConcurrentCreatesOneRead(t *testing.T) {
	d := testDomain(t)
	rt := runtimeFor(t, "runc")
	env := newHookEnv(t, d, map[string]any{"timeout": "60s"})
	count := newDCCounter(t)
	const n = 20
	bundles := make([]string, n)
	for i := range bundles {
		bundles[i] = env.bundle(t, container{args: []string{"/probe"}, uid: 1000, gid: 1000,
			annotations: map[string]string{"credentialspec": d.Credspec("webapp02-domainless")}})
	}
	var wg sync.WaitGroup
	outs := make([]string, n)
	errs := make([]error, n)
	for i := range bundles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = rt.exec(t, "run", "--bundle", bundles[i], fmt.Sprintf("cold-%d-%d", os.Getpid(), i))
		}()
	}
	wg.Wait()
	for i := range outs {
		if errs[i] != nil || !strings.Contains(strings.ToLower(outs[i]), "probe: ok client=webapp02$@") {
			t.Errorf("container %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	if got := count.get(t, "ldap"); got != 1 {
		t.Errorf("%d concurrent creates of one gMSA opened %d LDAP connections, want 1", n, got)
	}
}

// TestGCAfterRuntimeLost: a container whose runtime state was destroyed
// (its init killed with SIGKILL, runc's state directory removed) loses its
// files at the next gmsa-hook gc; a live container keeps its own.
func TestGCAfterRuntimeLost(t *testing.T) {
	d := testDomain(t)
	rt := runtimeFor(t, "runc")
	env := newHookEnv(t, d, nil)
	lost, live := fmt.Sprintf("lost-%d", os.Getpid()), fmt.Sprintf("live-%d", os.Getpid())
	bundles := map[string]string{}
	for _, id := range []string{lost, live} {
		bundles[id] = env.bundle(t, container{args: []string{"sleep", "3600"}, uid: 1000, gid: 1000,
			annotations: map[string]string{"credentialspec": d.Credspec("webapp01-domainless")}})
		rt.detach(t, bundles[id], id)
	}
	var state struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(rt.mustExec(t, "state", lost)), &state); err != nil || state.Pid <= 0 {
		t.Fatalf("runc state %s: %v", lost, err)
	}
	if err := syscall.Kill(state.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for syscall.Kill(state.Pid, 0) == nil {
		time.Sleep(10 * time.Millisecond) // until runc reaps it
	}
	if err := os.RemoveAll(filepath.Join(rt.argv[len(rt.argv)-1], lost)); err != nil {
		t.Fatal(err)
	}
	out, err := gmsaHookCmd(t, "gc", "--config", env.config)
	if err != nil {
		t.Fatalf("gmsa-hook gc: %v\n%s", err, out)
	}
	if want := "removed " + filepath.Base(containerDir(env.runDir, lost, bundles[lost])) + " (its container is gone)\n"; !strings.Contains(out, want) {
		t.Errorf("gc said %q, want %q", out, want)
	}
	if _, err := os.Stat(containerDir(env.runDir, lost, bundles[lost])); !os.IsNotExist(err) {
		t.Errorf("the lost container's directory is still there: %v", err)
	}
	if out := rt.mustExec(t, "exec", "--user", "1000:1000", live, "/probe"); !strings.Contains(out, probeOK(d)) {
		t.Errorf("the live container lost its ticket:\n%s", out)
	}
}

// TestRenewKilled: SIGKILL of gmsa-hook renew at random points, in a loop,
// while a reader inside a running container reads the ticket as fast as it
// can: no read finds a partial, missing or invalid ticket.
func TestRenewKilled(t *testing.T) {
	d := testDomain(t)
	rt := runtimeFor(t, "runc")
	env := newHookEnv(t, d, nil)
	id := fmt.Sprintf("killed-%d", os.Getpid())
	b := env.bundle(t, container{args: []string{"sleep", "3600"}, uid: 1000, gid: 1000,
		annotations: map[string]string{"credentialspec": d.Credspec("webapp01-domainless")}})
	rt.detach(t, b, id)

	watcher := rt.command(t.Context(), "exec", "--user", "1000:1000", id, "/probe", "-watch")
	stdin, err := watcher.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	watcher.Stdout, watcher.Stderr = &out, &out
	if err := watcher.Start(); err != nil {
		t.Fatal(err)
	}
	// How long a whole pass takes here: the kills land anywhere in it.
	start := time.Now()
	if out, err := gmsaHookCmd(t, "renew", "--config", env.config, "--threshold", "11h"); err != nil {
		t.Fatalf("renew: %v\n%s", err, out)
	}
	pass := time.Since(start)
	killed := 0
	for range 15 {
		cmd := exec.Command(gmsaHook(t), "renew", "--config", env.config, "--threshold", "11h")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(time.Duration(rand.Int64N(int64(pass))), func() { cmd.Process.Kill() })
		if err := cmd.Wait(); err != nil {
			killed++
		}
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
	}
	// One pass that completes, a second after the last: a new end time.
	time.Sleep(1100 * time.Millisecond)
	if out, err := gmsaHookCmd(t, "renew", "--config", env.config, "--threshold", "11h"); err != nil {
		t.Fatalf("renew: %v\n%s", err, out)
	}
	stdin.Close()
	if err := watcher.Wait(); err != nil {
		t.Fatalf("probe -watch: %v\n%s", err, out.String())
	}
	m := regexp.MustCompile(`probe: watched (\d+) reads, (\d+) tickets, (\d+) bad`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("probe said:\n%s", out.String())
	}
	t.Logf("%s; %d of 15 passes killed (a whole pass: %v)", m[0], killed, pass)
	if m[3] != "0" {
		t.Errorf("reads found a partial, missing or invalid ticket:\n%s", out.String())
	}
	if tickets, _ := strconv.Atoi(m[2]); tickets < 2 {
		t.Errorf("the reader saw %d tickets: the renewals did not reach it", tickets)
	}
	if killed == 0 {
		t.Error("no pass was killed")
	}
	// gc takes the temporary files killed writers left, once they are old.
	out2, err := gmsaHookCmd(t, "gc", "--config", env.config)
	if err != nil {
		t.Fatalf("gc: %v\n%s", err, out2)
	}
}

// TestRenewalUnits: install --renewal writes a service and a timer that
// systemd-analyze verify accepts, and a second install changes nothing.
func TestRenewalUnits(t *testing.T) {
	d := testDomain(t)
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		needCI(t, "systemd-analyze is not installed (apt-get install systemd)")
	}
	env := newHookEnv(t, d, nil)
	dir := t.TempDir()
	out, err := gmsaHookCmd(t, "install", "--renewal", "--unit-dir", dir, "--config", env.config)
	if err != nil || !strings.Contains(out, "systemctl enable --now gmsa-hook-renew.timer") {
		t.Fatalf("install --renewal: %v\n%s", err, out)
	}
	service, _ := os.ReadFile(filepath.Join(dir, "gmsa-hook-renew.service"))
	if !strings.Contains(string(service), "ExecStart="+gmsaHook(t)+" renew --config "+env.config+"\n") {
		t.Errorf("service:\n%s", service)
	}
	timer, _ := os.ReadFile(filepath.Join(dir, "gmsa-hook-renew.timer"))
	for _, want := range []string{"OnCalendar=*:0/5\n", "RandomizedDelaySec=", "Persistent=true\n"} {
		if !strings.Contains(string(timer), want) {
			t.Errorf("timer lacks %q:\n%s", want, timer)
		}
	}
	cmd := exec.Command("systemd-analyze", "verify", filepath.Join(dir, "gmsa-hook-renew.service"), filepath.Join(dir, "gmsa-hook-renew.timer"))
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	if out, err := gmsaHookCmd(t, "install", "--renewal", "--unit-dir", dir, "--config", env.config); err != nil || !strings.Contains(out, "up to date") {
		t.Errorf("second install --renewal: %v\n%s", err, out)
	}
}
