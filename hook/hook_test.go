package hook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/fetcher/ccache"
	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/hook/store"
	"github.com/gmsa-hook/gmsa-hook/test/testdomain"
)

var testNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// specDir is the tests' credential spec directory: the policy of
// testConfig lets labels name the specs in it.
var specDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gmsa-hook-specs-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	specDir = dir
	for _, name := range []string{"webapp01", "webapp03"} {
		cs := fmt.Sprintf(`{"CmsPlugins":["ActiveDirectory"],"DomainJoinConfig":{"Sid":"S-1-5-21-1-2-3","MachineAccountName":%q,"Guid":"f74ae2d8-4be5-49c4-8db9-34aeb71c455d","DnsTreeName":"corp.example.test","DnsName":"corp.example.test","NetBiosName":"CORP"},"ActiveDirectoryConfig":{"GroupManagedServiceAccounts":[{"Name":%q,"Scope":"corp.example.test"}]}}`, name, name)
		if err := os.WriteFile(filepath.Join(dir, name+".json"), []byte(cs), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// memRunDir is a run directory on a tmpfs of the test's own, as an operator
// (or gmsa-hook install) mounts one where /run is not a memory file system.
func memRunDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "mode=0711,size=4m"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount a tmpfs for the run directory: %v", err)
		}
		t.Skipf("mount a tmpfs for the run directory: %v (run as root)", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// testConfig is a configuration whose policy admits the specs in specDir.
func testConfig(runDir string) fetcher.Config {
	return fetcher.Config{RunDir: runDir, Policy: &config.Policy{CredSpecDirs: []string{specDir}, Domains: []string{"corp.example.test"}}}
}

// testUser is the container user of test bundles: 1000 as root, else the
// current user, so that the test can give it the ticket unprivileged.
func testUser() (uid, gid int) {
	if os.Geteuid() == 0 {
		return 1000, 1000
	}
	return os.Getuid(), os.Getgid()
}

// testBundle writes a bundle whose config.json has the given annotations.
func testBundle(t *testing.T, annotations map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	uid, gid := testUser()
	c := map[string]any{
		"root":    map[string]any{"path": "rootfs"},
		"process": map[string]any{"user": map[string]any{"uid": uid, "gid": gid}},
	}
	if annotations != nil {
		c["annotations"] = annotations
	}
	b, _ := json.Marshal(c)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func stateOf(id, bundle string, pid int) *strings.Reader {
	return strings.NewReader(fmt.Sprintf(`{"ociVersion":"1.0.2","id":%q,"status":"creating","pid":%d,"bundle":%q}`, id, pid, bundle))
}

type fakeFetch struct {
	calls   []string
	err     error
	expires time.Time
}

func (f *fakeFetch) fetch(_ context.Context, req fetcher.Request) (*fetcher.Result, error) {
	f.calls = append(f.calls, req.Source)
	if f.err != nil {
		return nil, f.err
	}
	client := ccache.Principal{NameType: 1, Realm: "CORP.EXAMPLE.TEST", Components: []string{"webapp01$"}}
	return &fetcher.Result{
		Cache: &ccache.Cache{DefaultPrincipal: client, Credentials: []ccache.Credential{{
			Client: client, Server: ccache.Principal{NameType: 2, Realm: "CORP.EXAMPLE.TEST", Components: []string{"krbtgt", "CORP.EXAMPLE.TEST"}},
			AuthTime: testNow, StartTime: testNow, EndTime: f.expires, Ticket: []byte("ticket"),
		}}},
		Account: "webapp01$", Realm: "CORP.EXAMPLE.TEST", Expires: f.expires,
	}, nil
}

func TestCreateAndPoststop(t *testing.T) {
	runDir := memRunDir(t)
	bundle := testBundle(t, map[string]string{container.Key: specDir + "/webapp01.json"})
	f := &fakeFetch{expires: testNow.Add(10 * time.Hour)}
	req := Request{Stage: CreateRuntime, Config: testConfig(runDir), ConfigPath: "/etc/gmsa-hook/config.json",
		Fetch: f.fetch, Now: func() time.Time { return testNow }}
	req.State = stateOf("web1", bundle, os.Getpid())
	rep, err := Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Labelled || rep.Account != "webapp01$@CORP.EXAMPLE.TEST" || rep.Origin != container.FromConfig {
		t.Errorf("report = %+v", rep)
	}
	if diff := cmp.Diff([]string{specDir + "/webapp01.json"}, f.calls); diff != "" {
		t.Errorf("fetches (-want +got):\n%s", diff)
	}
	uid, gid := testUser()
	dir := container.Dir(runDir, "web1", bundle)
	if want := filepath.Join(runDir, "containers", container.Name("web1", bundle)); dir != want || !strings.HasPrefix(filepath.Base(dir), "web1-") {
		t.Fatalf("container directory %s, want %s, named web1-HASH", dir, want)
	}
	for _, c := range []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{runDir, os.ModeDir | 0o711, 0, 0},
		{filepath.Join(runDir, "containers"), os.ModeDir | 0o711, 0, 0},
		{dir, os.ModeDir | 0o711, 0, 0},
		{filepath.Join(dir, "meta.json"), 0o600, 0, 0},
		{filepath.Join(dir, "krbdir"), os.ModeDir | 0o700, uid, gid},
		{filepath.Join(dir, "krbdir", "krb5cc"), 0o600, uid, gid},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
		if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (int(st.Uid) != c.uid || int(st.Gid) != c.gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", c.path, st.Uid, st.Gid, c.uid, c.gid)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "krbdir"))
	if len(entries) != 1 {
		t.Errorf("krbdir holds %d entries, want only krb5cc", len(entries))
	}
	m, err := store.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	start, _ := container.ProcessStart(os.Getpid())
	want := &store.Meta{ID: "web1", Bundle: bundle, Source: specDir + "/webapp01.json", Origin: container.FromConfig, Config: "/etc/gmsa-hook/config.json",
		Account: "webapp01$", Realm: "CORP.EXAMPLE.TEST", UID: uid, GID: gid,
		Created: testNow, Expires: testNow.Add(10 * time.Hour), Pid: os.Getpid(), PidStart: start}
	// The container's ticket is a copy of the node's cache entry for it.
	want.CacheKey = m.CacheKey
	if e, ticket, err := (&store.Store{Dir: runDir}).Get(m.CacheKey); err != nil || e.Account != "webapp01$" || e.Outcome != "fetched" {
		t.Errorf("cache entry %q: %+v, %v", m.CacheKey, e, err)
	} else if copied, _ := os.ReadFile(filepath.Join(dir, "krbdir", "krb5cc")); string(copied) != string(ticket) {
		t.Error("the container's ticket differs from the cache entry's")
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("meta (-want +got):\n%s", diff)
	}

	// prestart after createRuntime, same process: nothing fetched again.
	req.Stage, req.State = Prestart, stateOf("web1", bundle, os.Getpid())
	rep, err = Run(context.Background(), req)
	if err != nil || rep.Skipped == "" || len(f.calls) != 1 {
		t.Errorf("prestart: skipped %q, err %v, %d fetches; want a skip", rep.Skipped, err, len(f.calls))
	}

	// A new container of the same name (another pid), once the first is
	// gone, gets the node's cached ticket: no second fetch.
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), []byte(`{"pid":4194304}`), 0o600); err != nil {
		t.Fatal(err)
	}
	req.Stage, req.State = CreateRuntime, stateOf("web1", bundle, 1<<22+1)
	if rep, err := Run(context.Background(), req); err != nil || len(f.calls) != 1 || !rep.Cached {
		t.Errorf("recreate: err %v, %d fetches, cached %v; want the cached ticket", err, len(f.calls), rep.Cached)
	}
	// Once the cached ticket ends within the renewal threshold, a new
	// container fetches anew.
	late := testNow.Add(10*time.Hour - config.DefaultRenewThreshold + time.Minute)
	req.Now = func() time.Time { return late }
	req.State = stateOf("web1", bundle, 1<<22+2)
	if rep, err := Run(context.Background(), req); err != nil || len(f.calls) != 2 || rep.Cached {
		t.Errorf("recreate near the end: err %v, %d fetches, cached %v; want a fetch", err, len(f.calls), rep.Cached)
	}
	req.Now = func() time.Time { return testNow }

	req.Stage, req.State = Poststop, stateOf("web1", bundle, 0)
	if _, err := Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container directory after poststop: %v", err)
	}
	// Twice is fine.
	req.State = stateOf("web1", bundle, 0)
	if _, err := Run(context.Background(), req); err != nil {
		t.Errorf("second poststop: %v", err)
	}
}

func TestUnlabelled(t *testing.T) {
	runDir := memRunDir(t)
	bundle := testBundle(t, map[string]string{"org.example": "x"})
	f := &fakeFetch{}
	for _, stage := range Stages {
		rep, err := Run(context.Background(), Request{Stage: stage, State: stateOf("plain", bundle, 1),
			Config: testConfig(runDir), Fetch: f.fetch})
		if err != nil || rep.Labelled {
			t.Errorf("%s: labelled %v, err %v", stage, rep.Labelled, err)
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("fetched %v", f.calls)
	}
	if names, _ := os.ReadDir(runDir); len(names) != 0 {
		t.Errorf("run dir written for an unlabelled container: %v", names)
	}
}

func TestUnlabelledRemovesStale(t *testing.T) {
	runDir := memRunDir(t)
	bundle := testBundle(t, nil)
	stale := container.TicketDir(runDir, "web1", bundle)
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), Request{Stage: CreateRuntime, State: stateOf("web1", bundle, 1),
		Config: testConfig(runDir), Fetch: (&fakeFetch{}).fetch})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(stale)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale directory kept: %v", err)
	}
}

func TestFetchFailure(t *testing.T) {
	runDir := memRunDir(t)
	bundle := testBundle(t, map[string]string{container.Key: specDir + "/webapp03.json"})
	// An old ticket of a container of the same name must go too.
	if err := os.MkdirAll(container.TicketDir(runDir, "3f2a1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f", bundle), 0o700); err != nil {
		t.Fatal(err)
	}
	cause := &fetcher.Error{Step: `read password of gMSA "webapp03$" as "gmsa-reader@CORP.EXAMPLE.TEST"`, Server: "dc1.corp.example.test", Err: fetcher.ErrNotPermitted}
	_, err := Run(context.Background(), Request{Stage: CreateRuntime, State: stateOf("3f2a1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f", bundle, 1),
		Config: testConfig(runDir), Fetch: (&fakeFetch{err: cause}).fetch})
	want := `container 3f2a1c0d9e8b: read password of gMSA "webapp03$" as "gmsa-reader@CORP.EXAMPLE.TEST" from dc1.corp.example.test: not permitted to retrieve the managed password`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
	if !errors.Is(err, fetcher.ErrNotPermitted) {
		t.Errorf("err does not match fetcher.ErrNotPermitted")
	}
	entries, _ := os.ReadDir(filepath.Join(runDir, "containers"))
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestRunErrors(t *testing.T) {
	runDir := memRunDir(t)
	tests := []struct {
		name, state, want string
		stage             Stage
	}{
		{name: "empty stdin", stage: CreateRuntime, state: ``,
			want: `read container state from stdin: not an OCI container state: unexpected end of JSON input`},
		{name: "bad id", stage: CreateContainer, state: `{"id":"a/../../b","bundle":"/b"}`,
			want: `read container state from stdin: not an OCI container state: container id "a/../../b" is not [A-Za-z0-9_+.-]+`},
		{name: "no bundle", stage: CreateRuntime, state: `{"id":"web1","bundle":"/nonexistent/bundle"}`,
			want: `container web1: read bundle: open /nonexistent/bundle/config.json: no such file or directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), Request{Stage: tt.stage, State: strings.NewReader(tt.state),
				Config: testConfig(runDir), Fetch: (&fakeFetch{}).fetch})
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v\nwant  %s", err, tt.want)
			}
		})
	}
}

func TestMountFailureRemoves(t *testing.T) {
	runDir := memRunDir(t)
	bundle := testBundle(t, nil)
	if err := os.MkdirAll(container.TicketDir(runDir, "web1", bundle), 0o700); err != nil {
		t.Fatal(err)
	}
	// No rootfs: the mount fails before any mount(2).
	_, err := Run(context.Background(), Request{Stage: CreateContainer, State: stateOf("web1", bundle, 1),
		Config: testConfig(runDir)})
	if !errors.Is(err, ErrMount) {
		t.Fatalf("err = %v, want ErrMount", err)
	}
	if _, err := os.Stat(container.Dir(runDir, "web1", bundle)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container directory kept after a failed mount: %v", err)
	}
}

func TestParseStage(t *testing.T) {
	for _, s := range Stages {
		if got, err := ParseStage(string(s)); err != nil || got != s {
			t.Errorf("ParseStage(%q) = %q, %v", s, got, err)
		}
	}
	_, err := ParseStage("poststart")
	want := `unknown hook stage "poststart" (want createRuntime, prestart, createContainer or poststop)`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestSweep(t *testing.T) {
	runDir := memRunDir(t)
	old := testNow.Add(-time.Hour)
	write := func(id string, m *store.Meta, mtime time.Time) {
		t.Helper()
		dir := filepath.Join(runDir, "containers", id)
		if err := os.MkdirAll(filepath.Join(dir, "krbdir"), 0o700); err != nil {
			t.Fatal(err)
		}
		if m != nil {
			b, _ := json.Marshal(m)
			if err := os.WriteFile(filepath.Join(dir, "meta.json"), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chtimes(dir, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	self, _ := container.ProcessStart(os.Getpid())
	write("gone", &store.Meta{ID: "gone", Pid: 1 << 22, Created: old}, old) // no such pid
	write("reused", &store.Meta{ID: "reused", Pid: os.Getpid(), PidStart: self + 1, Created: old}, old)
	write("alive", &store.Meta{ID: "alive", Pid: os.Getpid(), PidStart: self, Created: old}, old)
	write("young", &store.Meta{ID: "young", Pid: 1 << 22, Created: testNow.Add(-time.Minute)}, old)
	write("nometa-old", nil, old)
	write("nometa-young", nil, testNow.Add(-time.Minute))
	write("self", &store.Meta{ID: "self", Pid: 1 << 22, Created: old}, old)
	got := (&store.Store{Dir: runDir}).Sweep("self", testNow)
	if diff := cmp.Diff([]string{"gone", "nometa-old", "reused", "young"}, got); diff != "" {
		t.Errorf("swept (-want +got):\n%s", diff)
	}
	entries, _ := os.ReadDir(filepath.Join(runDir, "containers"))
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if diff := cmp.Diff([]string{"alive", "nometa-young", "self"}, left); diff != "" {
		t.Errorf("left (-want +got):\n%s", diff)
	}
}

func TestMountWithoutCreateRuntime(t *testing.T) {
	runDir := memRunDir(t)
	st := strings.NewReader(`{"id":"web1","status":"creating","pid":1,"bundle":"/b","annotations":{"credentialspec":"/s.json"}}`)
	_, err := Run(context.Background(), Request{Stage: CreateContainer, State: st, Config: testConfig(runDir)})
	want := "container web1: labelled container without a ticket: " + runDir + " has no ticket directory"
	if err == nil || err.Error() != want || !errors.Is(err, ErrNoTicket) {
		t.Errorf("err = %v\nwant  %s", err, want)
	}
}

// containerDirs maps each directory under <runDir>/containers to the bundle
// its meta.json records.
func containerDirs(t *testing.T, runDir string) map[string]string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(runDir, "containers"))
	dirs := map[string]string{}
	for _, e := range entries {
		var m store.Meta
		b, _ := os.ReadFile(filepath.Join(runDir, "containers", e.Name(), "meta.json"))
		json.Unmarshal(b, &m)
		dirs[e.Name()] = m.Bundle
	}
	return dirs
}

// TestSameIDTwoBundles: the same container ID under two runtimes (two runc
// --root directories, two containerd namespaces) comes with two bundles;
// each container has its own directory, and one's poststop, full or quick,
// leaves the other's in place.
func TestSameIDTwoBundles(t *testing.T) {
	runDir := memRunDir(t)
	a := testBundle(t, map[string]string{container.Key: specDir + "/webapp01.json"})
	b := testBundle(t, map[string]string{container.Key: specDir + "/webapp01.json"})
	req := Request{Stage: CreateRuntime, Config: testConfig(runDir),
		Fetch: (&fakeFetch{expires: testNow.Add(time.Hour)}).fetch, Now: func() time.Time { return testNow }}
	for _, c := range []struct {
		bundle string
		pid    int
	}{{a, os.Getpid()}, {b, 1 << 22}} {
		// a's process lives (the test's own), so no sweep takes it; b's
		// has ended, so b's poststop may remove b's directory.
		req.State = stateOf("web1", c.bundle, c.pid)
		if _, err := Run(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	dirs := containerDirs(t, runDir)
	if len(dirs) != 2 {
		t.Fatalf("container directories: %v, want one per bundle", dirs)
	}
	for name, bundle := range dirs {
		if !strings.HasPrefix(name, "web1-") {
			t.Errorf("directory %s (bundle %s) does not start with the container ID", name, bundle)
		}
	}
	// b's quick poststop, then its full one: a's directory stays.
	if !container.QuickRun(Poststop, &container.State{ID: "web1", Bundle: b}, runDir) {
		t.Error("quick poststop of b: not done")
	}
	req.Stage, req.State = Poststop, stateOf("web1", b, 0)
	if _, err := Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	left := containerDirs(t, runDir)
	if len(left) != 1 {
		t.Fatalf("after b's poststop: %v, want a's directory only", left)
	}
	for name, bundle := range left {
		if bundle != a {
			t.Errorf("after b's poststop: %s holds bundle %s, want %s", name, bundle, a)
		}
		if _, err := os.Stat(filepath.Join(runDir, "containers", name, "krbdir", "krb5cc")); err != nil {
			t.Errorf("a's ticket: %v", err)
		}
	}
}

// TestLiveOtherContainerKept: a directory whose meta.json names a running
// process that is not the stage's container (the same ID and bundle under
// another runtime) is neither removed by poststop, full or quick, nor
// replaced or removed by another container's createRuntime.
func TestLiveOtherContainerKept(t *testing.T) {
	runDir := memRunDir(t)
	bundle := testBundle(t, map[string]string{container.Key: specDir + "/webapp01.json"})
	unlabelled := testBundle(t, nil)
	f := &fakeFetch{expires: testNow.Add(time.Hour)}
	req := Request{Stage: CreateRuntime, Config: testConfig(runDir), Fetch: f.fetch, Now: func() time.Time { return testNow }}
	// The victim: this test's process stands for its container's.
	req.State = stateOf("web1", bundle, os.Getpid())
	if _, err := Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	victim := containerDirs(t, runDir)
	if len(victim) != 1 {
		t.Fatalf("container directories: %v", victim)
	}
	var name string
	for n := range victim {
		name = n
	}
	dir := filepath.Join(runDir, "containers", name)
	wantErr := fmt.Sprintf("container web1: ticket directory in use by another container: %s: its meta.json names process %d, which still runs", dir, os.Getpid())
	if container.QuickRun(Poststop, &container.State{ID: "web1", Bundle: bundle}, runDir) {
		t.Error("quick poststop: done, want it left to the full run")
	}
	for _, c := range []struct {
		name  string
		stage Stage
		state *strings.Reader
	}{
		{"poststop", Poststop, stateOf("web1", bundle, 0)},
		{"createRuntime of another labelled container", CreateRuntime, stateOf("web1", bundle, 1<<22)},
	} {
		req.Stage, req.State = c.stage, c.state
		_, err := Run(context.Background(), req)
		if err == nil || err.Error() != wantErr || !errors.Is(err, ErrInUse) {
			t.Errorf("%s: err = %v\nwant  %s", c.name, err, wantErr)
		}
	}
	// The same bundle path, now without the label: its createRuntime
	// would remove the directory as a leftover.
	b, err := os.ReadFile(filepath.Join(unlabelled, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Request{Stage: CreateRuntime, State: stateOf("web1", bundle, 1<<22),
		Config: testConfig(runDir), Fetch: f.fetch})
	if err == nil || err.Error() != wantErr || !errors.Is(err, ErrInUse) {
		t.Errorf("createRuntime of an unlabelled container: err = %v\nwant  %s", err, wantErr)
	}
	if len(f.calls) != 1 {
		t.Errorf("fetched %d times, want once (the victim)", len(f.calls))
	}
	var m store.Meta
	if b, err := os.ReadFile(filepath.Join(dir, "meta.json")); err != nil || json.Unmarshal(b, &m) != nil || m.Pid != os.Getpid() {
		t.Errorf("the victim's meta.json: %+v, %v", m, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "krbdir", "krb5cc")); err != nil {
		t.Errorf("the victim's ticket: %v", err)
	}
}

// TestRunDirChecked: a run directory, or its containers directory, that is
// a symlink, writable by group or others, or another user's is refused with
// one line naming it and the fix, and nothing is written or removed through
// it.
func TestRunDirChecked(t *testing.T) {
	needRoot(t)
	bundle := testBundle(t, map[string]string{container.Key: specDir + "/webapp01.json"})
	tests := []struct {
		name  string
		setup func(t *testing.T, runDir, elsewhere string) (bad string)
		want  string // $BAD is the refused directory
	}{
		{name: "run_dir a symlink", setup: func(t *testing.T, runDir, elsewhere string) string {
			symlink(t, elsewhere, runDir)
			return runDir
		}, want: "unusable run directory: $BAD is a symlink: make it a directory, or remove it and gmsa-hook makes one"},
		{name: "containers a symlink", setup: func(t *testing.T, runDir, elsewhere string) string {
			mkdir(t, runDir)
			symlink(t, elsewhere, filepath.Join(runDir, "containers"))
			return filepath.Join(runDir, "containers")
		}, want: "unusable run directory: $BAD is a symlink: make it a directory, or remove it and gmsa-hook makes one"},
		{name: "run_dir world-writable", setup: func(t *testing.T, runDir, elsewhere string) string {
			mkdir(t, runDir)
			if err := os.Chmod(runDir, 0o777); err != nil {
				t.Fatal(err)
			}
			return runDir
		}, want: "unusable run directory: $BAD is writable by group or others (mode 0777): chmod 0711 $BAD"},
		{name: "containers another user's", setup: func(t *testing.T, runDir, elsewhere string) string {
			mkdir(t, filepath.Join(runDir, "containers"))
			if err := os.Chown(filepath.Join(runDir, "containers"), 1000, 1000); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(runDir, "containers")
		}, want: "unusable run directory: $BAD belongs to uid 1000: chown root $BAD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runDir, elsewhere := filepath.Join(t.TempDir(), "run"), t.TempDir()
			bad := tt.setup(t, runDir, elsewhere)
			// A container directory poststop would remove: where a symlink
			// leads, else in the refused directory itself.
			victim := container.Dir(runDir, "web1", bundle)
			if fi, err := os.Lstat(bad); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				victim = filepath.Join(elsewhere, container.Name("web1", bundle))
				if strings.HasSuffix(bad, "run") {
					victim = filepath.Join(elsewhere, "containers", container.Name("web1", bundle))
				}
			}
			mkdir(t, filepath.Join(victim, "krbdir"))
			want := "container web1: " + strings.ReplaceAll(tt.want, "$BAD", bad)
			f := &fakeFetch{expires: testNow.Add(time.Hour)}
			for _, stage := range []Stage{CreateRuntime, Poststop} {
				_, err := Run(context.Background(), Request{Stage: stage, State: stateOf("web1", bundle, 1<<22),
					Config: testConfig(runDir), Fetch: f.fetch, Now: func() time.Time { return testNow }})
				if err == nil || err.Error() != want || !errors.Is(err, ErrRunDir) {
					t.Errorf("%s: err = %v\nwant  %s", stage, err, want)
				}
			}
			if container.QuickRun(Poststop, &container.State{ID: "web1", Bundle: bundle}, runDir) {
				t.Error("quick poststop: done, want it left to the full run")
			}
			if entries, _ := os.ReadDir(filepath.Join(victim, "krbdir")); len(entries) != 0 {
				t.Errorf("written through %s: %v", bad, entries)
			}
			if _, err := os.Stat(victim); err != nil {
				t.Errorf("removed through %s: %v", bad, err)
			}
		})
	}
}

// TestConfigErrorStopsOnlyLabelled: a configuration file with a mistake
// fails a labelled container with that mistake, and leaves an unlabelled
// one (which the quick run handed over, e.g. a containerd bundle whose
// labels only containerd's API tells) alone.
func TestConfigErrorStopsOnlyLabelled(t *testing.T) {
	runDir := memRunDir(t)
	cause := fmt.Errorf("config /etc/gmsa-hook/config.json: %w: unknown key \"rundir\"", config.ErrConfig)
	f := &fakeFetch{expires: testNow.Add(10 * time.Hour)}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{"unlabelled", map[string]string{"org.example": "x"}, ""},
		{"labelled", map[string]string{container.Key: specDir + "/webapp01.json"}, "container web1: " + cause.Error()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), Request{Stage: CreateRuntime, State: stateOf("web1", testBundle(t, tt.labels), os.Getpid()),
				Config: config.Config{RunDir: runDir}, ConfigErr: cause, Fetch: f.fetch})
			if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
			if tt.want != "" && !errors.Is(err, config.ErrConfig) {
				t.Error("the error does not match config.ErrConfig")
			}
		})
	}
	if len(f.calls) != 0 {
		t.Errorf("fetched %v", f.calls)
	}
}

// TestPolicyMatchesDockerLabels: a rule on the ECS agent's Docker labels
// applies whichever place named the spec (here an annotation, as Docker 24
// passes --annotation).
func TestPolicyMatchesDockerLabels(t *testing.T) {
	for _, tt := range []struct {
		cluster, want string
	}{
		{"prod", ""},
		{"dev", `container web1: gMSA "webapp01" of corp.example.test refused by policy: rule "ecs-prod" grants it only to containers with label com.amazonaws.ecs.cluster=prod`},
	} {
		t.Run(tt.cluster, func(t *testing.T) {
			runDir := memRunDir(t)
			docker := t.TempDir()
			os.WriteFile(filepath.Join(docker, "hostname"), []byte("web1\n"), 0o644)
			os.WriteFile(filepath.Join(docker, "config.v2.json"), []byte(`{"ID":"web1","Config":{"Labels":{"com.amazonaws.ecs.cluster":"`+tt.cluster+`"}}}`), 0o644)
			bundle := t.TempDir()
			uid, gid := testUser()
			cfgJSON := fmt.Sprintf(`{"root":{"path":"rootfs"},"process":{"user":{"uid":%d,"gid":%d}},"annotations":{"credentialspec":%q},
				"mounts":[{"destination":"/etc/hostname","type":"bind","source":%q}]}`, uid, gid, specDir+"/webapp01.json", filepath.Join(docker, "hostname"))
			os.WriteFile(filepath.Join(bundle, "config.json"), []byte(cfgJSON), 0o644)
			cfg := testConfig(runDir)
			cfg.Policy.Rules = []config.Rule{{Name: "ecs-prod", GMSAs: []string{"webapp01"}, Match: config.Match{Labels: map[string]string{"com.amazonaws.ecs.cluster": "prod"}}}}
			f := &fakeFetch{expires: testNow.Add(10 * time.Hour)}
			rep, err := Run(context.Background(), Request{Stage: CreateRuntime, State: stateOf("web1", bundle, os.Getpid()), Config: cfg, Fetch: f.fetch})
			if tt.want == "" {
				if err != nil || rep.Rule != "ecs-prod" || len(f.calls) != 1 {
					t.Fatalf("err %v, rule %q, %d fetches", err, rep.Rule, len(f.calls))
				}
				return
			}
			if err == nil || err.Error() != tt.want || len(f.calls) != 0 {
				t.Fatalf("err %v (%d fetches)\nwant %s", err, len(f.calls), tt.want)
			}
		})
	}
}

// needRoot skips a test run by hand without root, and fails it in CI.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testdomain.Require(t, "needs root")
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}
