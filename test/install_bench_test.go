package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkDockerGmsaRuntime: docker run through the gmsa runtime as
// Docker's default (install --runtime docker --default) against
// --runtime runc, and labelled against unlabelled through gmsa. The four
// kinds of run take turns, so that drift of the machine hits all alike.
// Figures are printed beside the targets; nothing is asserted on
// time. Run: go test ./test -run '^$' -bench DockerGmsaRuntime -benchtime 10x
func BenchmarkDockerGmsaRuntime(b *testing.B) {
	dom := testDomain(b)
	runc, err := exec.LookPath("runc")
	if err != nil {
		needCI(b, "runc is not installed")
	}
	// Production settings: no debug log, so unlabelled hook runs would be
	// quick runs (and with the wrapper there are none).
	env := newHookEnv(b, dom, map[string]any{"log_file": nil})
	dir := b.TempDir()
	daemonJSON := filepath.Join(dir, "daemon.json")
	os.WriteFile(daemonJSON, []byte(`{"log-level": "warn"}`), 0o644)
	installCmd(b, "install", "--runtime", "docker", "--default", "--daemon-json", daemonJSON,
		"--wrapper", filepath.Join(dir, "lib", "gmsa-runc"), "--config", env.config, "--runc", runc, "--unit-dir", dir)
	d := startDockerConfig(b, daemonJSON)
	importRootfs(b, d)
	label := "credentialspec=file://" + dom.Credspec("webapp01-domainless")
	kinds := []struct {
		name string
		args []string
	}{
		{"unlabelled, --runtime runc", []string{"--runtime", "runc"}},
		{"unlabelled, gmsa (default)", nil},
		{"labelled, gmsa (default)", []string{"--label", label}},
	}
	times := make([][]time.Duration, len(kinds))
	for i := 0; i < b.N; i++ {
		for k, kind := range kinds {
			a := append([]string{"run", "--rm", "--pull", "never", "--network", "host", "--user", "1000:1000"}, kind.args...)
			start := time.Now()
			if out, err := d.docker(b, append(a, "busybox:local", "true")...); err != nil {
				b.Fatalf("docker run %s: %v\n%s", kind.name, err, out)
			}
			times[k] = append(times[k], time.Since(start))
		}
	}
	m := make([]time.Duration, len(kinds))
	for k := range kinds {
		m[k] = median(times[k])
	}
	// One runtime call, three ways: runc itself, the wrapper, and the
	// floor of any Go wrapper here (an empty static Go program that execs
	// runc), interleaved.
	execer := goExecProgram(b)
	wrapperBin := filepath.Join(dir, "lib", "gmsa-runc")
	calls := [][]string{{runc, "--version"}, {wrapperBin, "--version"}, {execer, runc, "--version"}}
	perCall := make([][]time.Duration, len(calls))
	for i := 0; i < 100; i++ {
		for k, c := range calls {
			start := time.Now()
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				b.Fatalf("%v: %v\n%s", c, err, out)
			}
			perCall[k] = append(perCall[k], time.Since(start))
		}
	}
	cRunc, cWrapper, cFloor := median(perCall[0]), median(perCall[1]), median(perCall[2])
	var w strings.Builder
	fmt.Fprintf(&w, "\ndocker run (Docker 20.10, median of %d each, p90 in brackets)\n", b.N)
	for k, kind := range kinds {
		fmt.Fprintf(&w, "  %-28s %s (%s)\n", kind.name, msStr(m[k]), msStr(p90(times[k])))
	}
	fmt.Fprintf(&w, "unlabelled through gmsa / --runtime runc: %.3fx (target at most 1.05x)\n", float64(m[1])/float64(m[0]))
	fmt.Fprintf(&w, "labelled / unlabelled, both through gmsa: %.3fx (target at most 1.15x; the gMSA ticket is in the node cache after the first)\n", float64(m[2])/float64(m[1]))
	fmt.Fprintf(&w, "one runtime call (--version, median of 100): runc %s, gmsa-runc %s, an empty Go program exec'ing runc %s\n",
		msStr(cRunc), msStr(cWrapper), msStr(cFloor))
	if extra := cWrapper - cRunc; extra > 0 && m[1] > m[0] {
		n := float64(m[1]-m[0]) / float64(extra)
		fmt.Fprintf(&w, "so docker run makes about %.1f runtime calls; any Go wrapper would cost at least %.3fx (the floor beside the 1.05x target)\n",
			n, (float64(m[0])+n*float64(cFloor-cRunc))/float64(m[0]))
	}
	if b.N > 1 {
		fmt.Print(w.String())
	}
	b.ReportMetric(float64(m[0])/1e6, "runc-ms")
	b.ReportMetric(float64(m[1])/1e6, "gmsa-unlabelled-ms")
	b.ReportMetric(float64(m[2])/1e6, "gmsa-labelled-ms")
}

// goExecProgram builds the smallest Go wrapper there is: a static program
// that execs its arguments.
func goExecProgram(b *testing.B) string {
	return buildGoProgram(b, "execer", "package main\n\nimport (\n\t\"os\"\n\t\"syscall\"\n)\n\nfunc main() {\n\tsyscall.Exec(os.Args[1], os.Args[1:], os.Environ())\n\tos.Exit(127)\n}\n")
}
