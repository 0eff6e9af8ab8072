package test

// gmsa-hook ecs played against by a client generated from the published
// proto (test/ecsagent, its own generated code, not the server's types),
// as the ECS agent calls it: a new connection per call, insecure
// credentials, one minute per call.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/gmsa-hook/gmsa-hook/fetcher/ccache"
	pb "github.com/gmsa-hook/gmsa-hook/test/ecsagent"
)

// ecsServer is one gmsa-hook ecs process of the test's.
type ecsServer struct {
	sock   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startECS starts `gmsa-hook ecs --listen SOCK` with config and waits until
// it answers HealthCheck; the process is stopped at the test's end.
func startECS(t testing.TB, config string, args ...string) *ecsServer {
	t.Helper()
	s := &ecsServer{sock: filepath.Join(t.TempDir(), "credentials_fetcher.sock"), stderr: &lockedBuffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(gmsaHook(t), append([]string{"ecs", "--config", config, "--listen", s.sock}, args...)...)
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if _, err := os.Stat(s.sock); err == nil {
			if _, err := s.health(ctx); err == nil {
				return s
			}
		}
		select {
		case err := <-s.done:
			t.Fatalf("gmsa-hook ecs exited: %v\n%s", err, s.stderr)
		case <-ctx.Done():
			t.Fatalf("gmsa-hook ecs does not answer on %s\n%s", s.sock, s.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// call dials anew, as the agent does for every call, with its minute.
func (s *ecsServer) call(ctx context.Context, f func(context.Context, pb.CredentialsFetcherServiceClient) error) error {
	conn, err := grpc.NewClient("unix:"+s.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return f(ctx, pb.NewCredentialsFetcherServiceClient(conn))
}

func (s *ecsServer) health(ctx context.Context) (string, error) {
	var st string
	err := s.call(ctx, func(ctx context.Context, c pb.CredentialsFetcherServiceClient) error {
		r, err := c.HealthCheck(ctx, &pb.HealthCheckRequest{Service: "credentials-fetcher"})
		st = r.GetStatus()
		return err
	})
	return st, err
}

func (s *ecsServer) domainless(ctx context.Context, specs []string, user, password, domain string) (*pb.CreateNonDomainJoinedKerberosLeaseResponse, error) {
	var r *pb.CreateNonDomainJoinedKerberosLeaseResponse
	err := s.call(ctx, func(ctx context.Context, c pb.CredentialsFetcherServiceClient) (err error) {
		r, err = c.AddNonDomainJoinedKerberosLease(ctx, &pb.CreateNonDomainJoinedKerberosLeaseRequest{CredspecContents: specs, Username: user, Password: password, Domain: domain})
		return err
	})
	return r, err
}

func (s *ecsServer) joined(ctx context.Context, specs []string) (*pb.CreateKerberosLeaseResponse, error) {
	var r *pb.CreateKerberosLeaseResponse
	err := s.call(ctx, func(ctx context.Context, c pb.CredentialsFetcherServiceClient) (err error) {
		r, err = c.AddKerberosLease(ctx, &pb.CreateKerberosLeaseRequest{CredspecContents: specs})
		return err
	})
	return r, err
}

func readSpec(t testing.TB, d *Domain, name string) string {
	t.Helper()
	b, err := os.ReadFile(d.Credspec(name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// matchPath finds the path for a gMSA as the agent does for a
// domain-joined lease: a case-insensitive substring match of
// DomainJoinConfig.MachineAccountName.
func matchPath(paths []string, machineAccountName string) string {
	for _, p := range paths {
		if strings.Contains(strings.ToLower(p), strings.ToLower(machineAccountName)) {
			return p
		}
	}
	return ""
}

var leaseID = regexp.MustCompile(`^[0-9a-f]{20}$`)

// TestECSLeases plays the agent: HealthCheck, a domainless lease of
// webapp01 and a domain-joined lease of webapp01 and WebApp02, each
// directory matched to its gMSA, the domainless ticket used by a runc
// container running as uid 1000 with the directory bound read-only where
// the agent binds it, renewal of the domainless lease, and delete, which
// removes that lease's directories and leaves the other's.
func TestECSLeases(t *testing.T) {
	d := testDomain(t)
	rt := runtimeFor(t, "runc")
	env := newHookEnv(t, d, nil)
	srv := startECS(t, env.config, "--idle", "0")
	ctx := context.Background()
	if st, err := srv.health(ctx); err != nil || st != "OK" {
		t.Fatalf("HealthCheck: %q, %v", st, err)
	}

	dl, err := srv.domainless(ctx, []string{readSpec(t, d, "webapp01-domainless")}, d.ReaderUser, d.ReaderPassword, d.DNSDomain)
	if err != nil {
		t.Fatalf("AddNonDomainJoinedKerberosLease: %v\n%s", err, srv.stderr)
	}
	if !leaseID.MatchString(dl.GetLeaseId()) || len(dl.GetCreatedKerberosFilePaths()) != 1 {
		t.Fatalf("domainless lease: %v", dl)
	}
	dlDir := dl.GetCreatedKerberosFilePaths()[0] // the agent takes the first
	if matchPath([]string{dlDir}, "webapp01") == "" || !strings.HasPrefix(dlDir, env.runDir+"/") {
		t.Errorf("domainless path %q: want a directory of webapp01 under %s", dlDir, env.runDir)
	}

	dj, err := srv.joined(ctx, []string{readSpec(t, d, "webapp01"), readSpec(t, d, "webapp02")})
	if err != nil {
		t.Fatalf("AddKerberosLease: %v\n%s", err, srv.stderr)
	}
	if !leaseID.MatchString(dj.GetLeaseId()) || dj.GetLeaseId() == dl.GetLeaseId() || len(dj.GetCreatedKerberosFilePaths()) != 2 {
		t.Fatalf("domain-joined lease: %v", dj)
	}
	for _, g := range []string{"webapp01", "webapp02"} {
		p := matchPath(dj.GetCreatedKerberosFilePaths(), g)
		if p == "" {
			t.Fatalf("no path of the lease matches %s: %v", g, dj.GetCreatedKerberosFilePaths())
		}
		if out, err := exec.Command("klist", "-c", filepath.Join(p, "krb5cc")).CombinedOutput(); err != nil || !strings.Contains(strings.ToLower(string(out)), "principal: "+g+"$@"+strings.ToLower(d.Realm)) {
			t.Errorf("%s: klist: %v\n%s", p, err, out)
		}
	}

	// Readable by any user of the container, by no other host user: a
	// world-readable file behind a root-only leases/.
	for path, want := range map[string]fs.FileMode{
		filepath.Join(env.runDir, "leases"): fs.ModeDir | 0o700,
		dlDir:                               fs.ModeDir | 0o755,
		filepath.Join(dlDir, "krb5cc"):      0o644,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: %v, want mode %v", path, fi.Mode(), want)
		}
	}
	if out, err := exec.Command("setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "cat", filepath.Join(dlDir, "krb5cc")).CombinedOutput(); err == nil {
		t.Errorf("host uid 1000 read a lease's ticket:\n%q", out)
	}

	// The agent binds the directory read-only and tells no user: the ticket
	// serves the container's root and uid 1000 alike.
	for _, uid := range []int{1000, 0} {
		b := env.bundle(t, container{args: []string{"/probe"}, uid: uid, gid: uid, noHooks: true, mounts: []any{
			map[string]any{"destination": "/var/credentials-fetcher/krbdir", "type": "bind", "source": dlDir, "options": []string{"rbind", "ro"}},
		}})
		id := fmt.Sprintf("ecs-probe-%d", uid)
		out, err := rt.exec(t, "run", "--bundle", b, id)
		if err != nil {
			t.Fatalf("runc run %s: %v\n%s", id, err, out)
		}
		if !strings.Contains(out, fmt.Sprintf("probe: uid=%d read-only\n", uid)) || !strings.Contains(out, probeOK(d)) {
			t.Errorf("%s did not use the lease's ticket:\n%s", id, out)
		}
	}

	// Renewal: new credentials (here the same) for every lease of the user;
	// the ticket is fetched now and replaced in place.
	before, _ := os.ReadFile(filepath.Join(dlDir, "krb5cc"))
	var renewed []string
	err = srv.call(ctx, func(ctx context.Context, c pb.CredentialsFetcherServiceClient) error {
		r, err := c.RenewNonDomainJoinedKerberosLease(ctx, &pb.RenewNonDomainJoinedKerberosLeaseRequest{Username: d.ReaderUser, Password: d.ReaderPassword, Domain: d.DNSDomain})
		renewed = r.GetRenewedKerberosFilePaths()
		return err
	})
	if err != nil {
		t.Fatalf("RenewNonDomainJoinedKerberosLease: %v", err)
	}
	if len(renewed) != 1 || renewed[0] != dlDir {
		t.Errorf("renewed %v, want [%s]", renewed, dlDir)
	}
	if after, _ := os.ReadFile(filepath.Join(dlDir, "krb5cc")); bytes.Equal(before, after) || len(after) == 0 {
		t.Errorf("renewal left the same ticket in %s", dlDir)
	}

	// The renewal pass (the timer's) keeps leases valid as it keeps
	// containers': every lease directory gets its gMSA's renewed ticket,
	// the domain-joined ones too (the agent never renews those itself).
	tgtEndOf := func(dir string) time.Time {
		b, err := os.ReadFile(filepath.Join(dir, "krb5cc"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ccache.Parse(b)
		if err != nil || len(c.Credentials) == 0 {
			t.Fatalf("%s: %v", dir, err)
		}
		return c.Credentials[0].EndTime
	}
	leaseDirs := append([]string{dlDir}, dj.GetCreatedKerberosFilePaths()...)
	ends := map[string]time.Time{}
	for _, p := range leaseDirs {
		ends[p] = tgtEndOf(p)
	}
	for time.Now().Unix() <= ends[dlDir].Add(-10*time.Hour).Unix() {
		time.Sleep(100 * time.Millisecond) // the KDC stamps tickets to the second
	}
	if out, err := gmsaHookCmd(t, "renew", "--config", env.config, "--threshold", "11h"); err != nil {
		t.Fatalf("gmsa-hook renew: %v\n%s", err, out)
	}
	out, err := exec.Command(gmsaHook(t), "status", "--json", "--config", env.config).Output()
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var status struct {
		Leases []struct {
			Lease, Dir, Account string
			Renewed             time.Time
		} `json:"leases"`
	}
	if err := json.Unmarshal(out, &status); err != nil || len(status.Leases) != 3 {
		t.Errorf("status leases: %v\n%s", err, out)
	}
	for _, l := range status.Leases {
		if l.Renewed.IsZero() || !slices.Contains(leaseDirs, l.Dir) {
			t.Errorf("status of lease %s: %+v", l.Lease, l)
		}
	}
	for _, p := range leaseDirs {
		if end := tgtEndOf(p); !end.After(ends[p]) {
			t.Errorf("%s: ticket end %v after the pass, %v before", p, end, ends[p])
		}
		if fi, err := os.Stat(filepath.Join(p, "krb5cc")); err != nil || fi.Mode() != 0o644 {
			t.Errorf("%s: mode after the pass: %v, %v", p, fi, err)
		}
	}

	// Delete: the lease's directories go, the other lease's stay; an
	// unknown lease is no error.
	var deleted []string
	err = srv.call(ctx, func(ctx context.Context, c pb.CredentialsFetcherServiceClient) error {
		r, err := c.DeleteKerberosLease(ctx, &pb.DeleteKerberosLeaseRequest{LeaseId: dj.GetLeaseId()})
		deleted = r.GetDeletedKerberosFilePaths()
		if err == nil && r.GetLeaseId() != dj.GetLeaseId() {
			err = fmt.Errorf("lease id %q", r.GetLeaseId())
		}
		return err
	})
	if err != nil || len(deleted) != 2 {
		t.Fatalf("DeleteKerberosLease: %v, %v", deleted, err)
	}
	for _, p := range dj.GetCreatedKerberosFilePaths() {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left after delete: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dlDir, "krb5cc")); err != nil {
		t.Errorf("the other lease's ticket went: %v", err)
	}
	err = srv.call(ctx, func(ctx context.Context, c pb.CredentialsFetcherServiceClient) error {
		_, err := c.DeleteKerberosLease(ctx, &pb.DeleteKerberosLeaseRequest{LeaseId: strings.Repeat("0", 20)})
		return err
	})
	if err != nil {
		t.Errorf("delete of an unknown lease: %v", err)
	}
	assertNoSecrets(t, d, srv.stderr.String())
}

// TestECSErrors: each failure has the code the agent acts on and a message
// naming the cause; neither the message nor the server's output holds a
// password.
func TestECSErrors(t *testing.T) {
	d := testDomain(t)
	env := newHookEnv(t, d, nil)
	srv := startECS(t, env.config, "--idle", "0")
	down := newHookEnv(t, d, map[string]any{"domain_controllers": []string{"127.0.0.2"}, "timeout": "5s"})
	srvDown := startECS(t, down.config, "--idle", "0")
	wrong := d.ReaderPassword + "-wrong"
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		srv    *ecsServer
		call   func() error
		code   codes.Code
		want   string // in the message
		secret string // must not be
	}{
		{name: "unreadable gMSA", srv: srv, code: codes.PermissionDenied, want: `not permitted to retrieve the managed password`,
			call: func() error {
				_, err := srv.domainless(ctx, []string{readSpec(t, d, "webapp03-domainless")}, d.ReaderUser, d.ReaderPassword, d.DNSDomain)
				return err
			}},
		{name: "bad credspec JSON", srv: srv, code: codes.InvalidArgument, want: `credential spec from the ECS agent: malformed credential spec: `,
			call: func() error { _, err := srv.joined(ctx, []string{`{"CmsPlugins": [`}); return err }},
		{name: "wrong password", srv: srv, code: codes.Unauthenticated, want: `log in as "` + d.ReaderUser + `@`, secret: wrong,
			call: func() error {
				_, err := srv.domainless(ctx, []string{readSpec(t, d, "webapp01-domainless")}, d.ReaderUser, wrong, d.DNSDomain)
				return err
			}},
		{name: "domain not allowed", srv: srv, code: codes.PermissionDenied, want: `reader domain "elsewhere.test" of user "` + d.ReaderUser + `" refused by policy`,
			call: func() error {
				_, err := srv.domainless(ctx, []string{readSpec(t, d, "webapp01-domainless")}, d.ReaderUser, d.ReaderPassword, "elsewhere.test")
				return err
			}},
		{name: "empty password", srv: srv, code: codes.InvalidArgument, want: `username, password and domain must all be given`,
			call: func() error {
				_, err := srv.domainless(ctx, []string{readSpec(t, d, "webapp01-domainless")}, d.ReaderUser, "", d.DNSDomain)
				return err
			}},
		{name: "DC down", srv: srvDown, code: codes.Unavailable, want: `no kdc reachable`,
			call: func() error {
				_, err := srvDown.domainless(ctx, []string{readSpec(t, d, "webapp01-domainless")}, d.ReaderUser, d.ReaderPassword, d.DNSDomain)
				return err
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			st, _ := status.FromError(err)
			if err == nil || st.Code() != tt.code || !strings.Contains(st.Message(), tt.want) || !strings.HasPrefix(st.Message(), "gmsa-hook: ") {
				t.Errorf("got %v\nwant code %v and a message with %q", err, tt.code, tt.want)
			}
			for _, out := range []string{st.Message(), tt.srv.stderr.String()} {
				assertNoSecrets(t, d, out)
				if tt.secret != "" && strings.Contains(out, tt.secret) {
					t.Errorf("output reveals the request's password:\n%s", out)
				}
			}
		})
	}
	// Nothing of the failed calls is left in the store.
	if entries, _ := os.ReadDir(filepath.Join(env.runDir, "leases")); len(entries) != 0 {
		t.Errorf("failed calls left leases: %v", entries)
	}
}

// TestECSLeaseOfStoppedTask: the agent deletes a stopped task's lease only
// hours later (its task cleanup wait); gmsa-hook gc removes it once no
// container has its ticket directory bound for LeaseGrace, and keeps it
// while one does, and before any did.
func TestECSLeaseOfStoppedTask(t *testing.T) {
	d := testDomain(t)
	rt := runtimeFor(t, "runc")
	env := newHookEnv(t, d, nil)
	srv := startECS(t, env.config, "--idle", "0")
	ctx := context.Background()
	lease, err := srv.domainless(ctx, []string{readSpec(t, d, "webapp01-domainless")}, d.ReaderUser, d.ReaderPassword, d.DNSDomain)
	if err != nil {
		t.Fatalf("AddNonDomainJoinedKerberosLease: %v\n%s", err, srv.stderr)
	}
	dir := lease.GetCreatedKerberosFilePaths()[0]
	leaseDir := filepath.Dir(dir)
	gc := func() string {
		t.Helper()
		out, err := gmsaHookCmd(t, "gc", "--config", env.config)
		if err != nil {
			t.Fatalf("gmsa-hook gc: %v\n%s", err, out)
		}
		return out
	}
	readLease := func() map[string]any {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(leaseDir, "lease.json"))
		if err != nil {
			t.Fatal(err)
		}
		var l map[string]any
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		return l
	}

	// Before its task started: kept.
	gc()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("a lease not bound yet was removed: %v", err)
	}

	// Bound into a running container, as the agent binds it: kept, and
	// seen bound.
	id := fmt.Sprintf("ecs-task-%d", os.Getpid())
	b := env.bundle(t, container{args: []string{"sleep", "3600"}, uid: 1000, gid: 1000, noHooks: true, mounts: []any{
		map[string]any{"destination": "/var/credentials-fetcher/krbdir", "type": "bind", "source": dir, "options": []string{"rbind", "ro"}},
	}})
	rt.detach(t, b, id)
	gc()
	if l := readLease(); l["mounted"] == nil || l["unmounted"] != nil {
		t.Errorf("lease.json while bound: %v", l)
	}

	// The task stops: the first pass notes it, and the lease stays for the
	// grace time (a restarting container comes back within it).
	rt.mustExec(t, "delete", "-f", id)
	gc()
	l := readLease()
	if l["unmounted"] == nil {
		t.Fatalf("lease.json after the container went: %v", l)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("removed within the grace time: %v", err)
	}

	// Past the grace time (stood in for by moving the recorded time back).
	l["unmounted"] = time.Now().Add(-11 * time.Minute).UTC().Format(time.RFC3339Nano)
	raw, _ := json.Marshal(l)
	if err := os.WriteFile(filepath.Join(leaseDir, "lease.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := gc(); !strings.Contains(out, "removed lease "+lease.GetLeaseId()+" (its task stopped") {
		t.Errorf("gc said:\n%s", out)
	}
	if _, err := os.Stat(leaseDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the stopped task's lease is left: %v", err)
	}
	// The agent's late delete of it is no error.
	err = srv.call(ctx, func(ctx context.Context, c pb.CredentialsFetcherServiceClient) error {
		_, err := c.DeleteKerberosLease(ctx, &pb.DeleteKerberosLeaseRequest{LeaseId: lease.GetLeaseId()})
		return err
	})
	if err != nil {
		t.Errorf("the agent's delete after gc: %v", err)
	}
}
