package test

// Calls of gmsa-hook ecs for one gMSA at once, as task starts come:
//
//	go test ./test -run '^$' -bench ECSConcurrentLeases -benchtime 3x

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fetches counts the successful fetches (password reads) in a debug log.
func fetches(t testing.TB, log string) int {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"level":"INFO"`) && strings.Contains(l, `"msg":"fetch"`) {
			n++
		}
	}
	return n
}

// leases makes n domainless leases of webapp01, concurrently or one after
// another, and returns each call's latency.
func leases(t testing.TB, d *Domain, srv *ecsServer, n int, concurrent bool) []time.Duration {
	t.Helper()
	spec := readSpec(t, d, "webapp01-domainless")
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	one := func(i int) {
		start := time.Now()
		r, err := srv.domainless(context.Background(), []string{spec}, d.ReaderUser, d.ReaderPassword, d.DNSDomain)
		lat[i] = time.Since(start)
		if err == nil && len(r.GetCreatedKerberosFilePaths()) != 1 {
			err = fmt.Errorf("paths %v", r.GetCreatedKerberosFilePaths())
		}
		errs[i] = err
	}
	var wg sync.WaitGroup
	for i := range n {
		if !concurrent {
			one(i)
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); one(i) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("lease %d: %v", i, err)
		}
	}
	return lat
}

// emptyCache removes the cache entries: the next lease fetches.
func emptyCache(t testing.TB, runDir string) {
	entries, _ := filepath.Glob(filepath.Join(runDir, "cache", "*"))
	for _, e := range entries {
		if err := os.RemoveAll(e); err != nil {
			t.Fatal(err)
		}
	}
}

// TestECSConcurrentLeases: ten task starts of one gMSA at once share the
// cache: the password is read once, and every lease has its own directory.
func TestECSConcurrentLeases(t *testing.T) {
	d := testDomain(t)
	env := newHookEnv(t, d, nil)
	srv := startECS(t, env.config, "--idle", "0")
	leases(t, d, srv, 10, true)
	if n := fetches(t, env.log); n != 1 {
		t.Errorf("10 concurrent leases read the password %d times, want 1", n)
	}
	if es, _ := os.ReadDir(filepath.Join(env.runDir, "leases")); len(es) != 10 {
		t.Errorf("%d lease directories, want 10", len(es))
	}
}

func p95(ts []time.Duration) time.Duration {
	if len(ts) == 0 {
		return 0
	}
	s := slices.Clone(ts)
	slices.Sort(s)
	return s[(len(s)*95+99)/100-1]
}

// BenchmarkECSConcurrentLeases: 20 AddNonDomainJoinedKerberosLease calls
// for one gMSA with a cold cache, at once and one after another, side by
// side: password reads (fetches in the server's log, and LDAP connections
// counted by nftables, which other users of the DC add to), and the median
// and p95 latency of a call.
func BenchmarkECSConcurrentLeases(b *testing.B) {
	d := testDomain(b)
	env := newHookEnv(b, d, map[string]any{"timeout": "60s"})
	srv := startECS(b, env.config, "--idle", "0")
	count := newDCCounter(b)
	const n = 20
	type row struct {
		lat   []time.Duration
		reads []int
		ldap  []int
	}
	rows := map[bool]*row{true: {}, false: {}}
	b.ResetTimer()
	for range b.N {
		for _, concurrent := range []bool{true, false} {
			emptyCache(b, env.runDir)
			before := fetches(b, env.log)
			count.reset(b)
			r := rows[concurrent]
			r.lat = append(r.lat, leases(b, d, srv, n, concurrent)...)
			r.reads = append(r.reads, fetches(b, env.log)-before)
			r.ldap = append(r.ldap, count.get(b, "ldap"))
		}
	}
	b.StopTimer()
	fmt.Printf("\n%d AddNonDomainJoinedKerberosLease calls of one gMSA, cold cache, %d rounds:\n", n, b.N)
	fmt.Printf("  %-12s %-16s %-18s %10s %10s\n", "", "password reads", "LDAP connections", "median", "p95")
	for _, c := range []bool{true, false} {
		name := "sequential"
		if c {
			name = "concurrent"
		}
		r := rows[c]
		fmt.Printf("  %-12s %-16s %-18s %10s %10s\n", name, fmt.Sprint(r.reads), fmt.Sprint(r.ldap), msStr(median(r.lat)), msStr(p95(r.lat)))
	}
	fmt.Printf("  (target: 1 password read per round either way)\n")
}
