package test

// Benchmarks of the ticket's life, printed beside their targets:
//
//	go test ./test -run '^$' -bench 'RenewPass|ConcurrentCreates' -benchtime 5x
//
// Live containers are stood in for by the benchmark's own process: the hook
// records its pid and start time as it records a container's init.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmsa-hook/gmsa-hook/hook"
	"github.com/gmsa-hook/gmsa-hook/hook/config"
)

// labelledBundle is a bundle directory whose config.json names spec.
func labelledBundle(b testing.TB, spec string) string {
	dir := b.TempDir()
	cfg := fmt.Sprintf(`{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"user":{"uid":1000,"gid":1000}},"annotations":{"credentialspec":%q}}`, spec)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

func stateJSON(id, bundle string, pid int) string {
	return fmt.Sprintf(`{"ociVersion":"1.0.2","id":%q,"status":"creating","pid":%d,"bundle":%q}`, id, pid, bundle)
}

// BenchmarkRenewPass: one renewal pass (the binary, as the timer runs it)
// over 500 live tickets on 5 cache entries. Targets: 5 KDC exchanges, under
// 2 s.
func BenchmarkRenewPass(b *testing.B) {
	d := testDomain(b)
	env := newHookEnv(b, d, map[string]any{"log_file": nil})
	cfg, err := config.Load(env.config)
	if err != nil {
		b.Fatal(err)
	}
	// A second configuration asking for another ticket lifetime: its tickets
	// are another cache entry (the test domain has two gMSAs a reader may
	// read and that are enabled, webapp01 and webapp02).
	short := cfg
	short.TicketLifetime = config.Duration(9 * time.Hour)
	shortPath := writeJSON2(b, short)
	// Five entries: two gMSAs read by the domain user, the same two read by
	// the host, and one read by the user with the other lifetime.
	specs := []struct {
		spec string
		cfg  config.Config
		path string
	}{
		{"credentialspecdomainless:" + d.Credspec("webapp01-domainless"), cfg, env.config},
		{"credentialspecdomainless:" + d.Credspec("webapp02-domainless"), cfg, env.config},
		{"credentialspec:" + d.Credspec("webapp01"), cfg, env.config},
		{"credentialspec:" + d.Credspec("webapp02"), cfg, env.config},
		{"credentialspecdomainless:" + d.Credspec("webapp01-domainless"), short, shortPath},
	}
	const perEntry = 100
	for i, sp := range specs {
		bundle := labelledBundle(b, sp.spec)
		for j := range perEntry {
			_, err := hook.Run(context.Background(), hook.Request{Stage: hook.CreateRuntime, Config: sp.cfg, ConfigPath: sp.path,
				State: strings.NewReader(stateJSON(fmt.Sprintf("renew-bench-%d-%d", i, j), bundle, os.Getpid()))})
			if err != nil {
				b.Fatalf("create %d/%d (%s): %v", i, j, sp.spec, err)
			}
		}
	}
	count := newDCCounter(b)
	var times []time.Duration
	var kdcs, ldaps []int
	b.ResetTimer()
	for range b.N {
		count.reset(b)
		start := time.Now()
		out, err := exec.Command(gmsaHook(b), "renew", "--config", env.config, "--threshold", "11h").CombinedOutput()
		times = append(times, time.Since(start))
		if err != nil || strings.Count(string(out), "written to 100 containers") != 5 {
			b.Fatalf("renew: %v\n%s", err, out)
		}
		kdcs, ldaps = append(kdcs, count.get(b, "kdc")), append(ldaps, count.get(b, "ldap"))
		time.Sleep(time.Second) // the next pass's tickets end a second later
	}
	b.StopTimer()
	if b.N > 1 {
		fmt.Printf("\nrenewal pass over %d live tickets on %d cache entries, %d passes:\n", perEntry*len(specs), len(specs), b.N)
		fmt.Printf("  wall time      median %s  p90 %s   (target < 2 s)\n", msStr(median(times)), msStr(p90(times)))
		fmt.Printf("  KDC exchanges  %v   (target %d each)\n", kdcs, len(specs))
		fmt.Printf("  LDAP connections %v   (target 0: renewals read no password)\n", ldaps)
	}
	b.ReportMetric(float64(median(times))/1e6, "pass-ms")
}

// writeJSON2 writes a configuration to a file of the benchmark's own.
func writeJSON2(b *testing.B, c config.Config) string {
	data, err := json.Marshal(c)
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), "config.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkConcurrentCreates: 50 concurrent createRuntime runs of the hook
// binary for one gMSA with a cold cache. Target: 1 password read.
func BenchmarkConcurrentCreates(b *testing.B) {
	d := testDomain(b)
	env := newHookEnv(b, d, map[string]any{"log_file": nil, "timeout": "60s"})
	bundle := labelledBundle(b, "credentialspecdomainless:"+d.Credspec("webapp01-domainless"))
	count := newDCCounter(b)
	const n = 50
	var reads []int
	var walls []time.Duration
	b.ResetTimer()
	for it := range b.N {
		for _, sub := range []string{"cache", "containers"} {
			entries, _ := filepath.Glob(filepath.Join(env.runDir, sub, "*"))
			for _, e := range entries {
				os.RemoveAll(e)
			}
		}
		count.reset(b)
		var wg sync.WaitGroup
		errs := make([]string, n)
		start := time.Now()
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := exec.Command(gmsaHook(b), "hook", "createRuntime", "--config", env.config)
				cmd.Stdin = strings.NewReader(stateJSON(fmt.Sprintf("conc-%d-%d", it, i), bundle, os.Getpid()))
				if out, err := cmd.CombinedOutput(); err != nil {
					errs[i] = fmt.Sprintf("%v: %s", err, out)
				}
			}()
		}
		wg.Wait()
		walls = append(walls, time.Since(start))
		for i, e := range errs {
			if e != "" {
				b.Fatalf("create %d: %s", i, e)
			}
		}
		reads = append(reads, count.get(b, "ldap"))
	}
	b.StopTimer()
	if b.N > 1 {
		fmt.Printf("\n%d concurrent creates of one gMSA, cold cache, %d rounds:\n", n, b.N)
		fmt.Printf("  password reads (LDAP connections) %v   (target 1 each)\n", reads)
		fmt.Printf("  wall time for all %d               median %s\n", n, msStr(median(walls)))
	}
}
