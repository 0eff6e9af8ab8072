package test

import (
	"bytes"
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
// --runtime runc, and labelled against unlabelled through gmsa. Beside
// them, the floor of any Go wrapper: Docker's runtime "go-exec", a static
// Go program that does nothing but exec runc, counting its calls. The
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
	calls := filepath.Join(dir, "go-exec.calls")
	floor := goExecProgram(b, runc, calls)
	daemonJSON := filepath.Join(dir, "daemon.json")
	os.WriteFile(daemonJSON, []byte(`{"log-level": "warn", "runtimes": {"go-exec": {"path": "`+floor+`"}}}`), 0o644)
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
		{"unlabelled, --runtime go-exec", []string{"--runtime", "go-exec"}},
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
	logged, err := os.ReadFile(calls)
	if err != nil {
		b.Fatal(err)
	}
	perRun := float64(bytes.Count(logged, []byte("\n"))) / float64(b.N)
	// One runtime call, three ways: runc itself, the wrapper passing
	// through, and the floor (without the count's write), interleaved.
	wrapperBin := filepath.Join(dir, "lib", "gmsa-runc")
	root := b.TempDir()
	bare := goExecProgram(b, runc, "")
	one := [][]string{{runc, "--root", root, "list"}, {wrapperBin, "--root", root, "list"}, {bare, "--root", root, "list"}}
	perCall := make([][]time.Duration, len(one))
	for i := 0; i < 100; i++ {
		for k, c := range one {
			start := time.Now()
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				b.Fatalf("%v: %v\n%s", c, err, out)
			}
			perCall[k] = append(perCall[k], time.Since(start))
		}
	}
	var w strings.Builder
	fmt.Fprintf(&w, "\ndocker run (Docker 20.10, median of %d each, p90 in brackets)\n", b.N)
	for k, kind := range kinds {
		fmt.Fprintf(&w, "  %-30s %s (%s)\n", kind.name, msStr(m[k]), msStr(p90(times[k])))
	}
	fmt.Fprintf(&w, "unlabelled through gmsa / --runtime runc:     %.3fx (target at most 1.05x)\n", float64(m[1])/float64(m[0]))
	fmt.Fprintf(&w, "  floor, through go-exec / --runtime runc:    %.3fx (a static Go program that only execs runc; %.1f runtime calls per docker run)\n",
		float64(m[3])/float64(m[0]), perRun)
	fmt.Fprintf(&w, "labelled / unlabelled, both through gmsa:     %.3fx (target at most 1.15x; the gMSA ticket is in the node cache after the first)\n", float64(m[2])/float64(m[1]))
	fmt.Fprintf(&w, "one pass-through call (runc list, median of 100): runc %s, gmsa-runc %s, go-exec %s\n",
		msStr(median(perCall[0])), msStr(median(perCall[1])), msStr(median(perCall[2])))
	if b.N > 1 {
		fmt.Print(w.String())
	}
	b.ReportMetric(float64(m[0])/1e6, "runc-ms")
	b.ReportMetric(float64(m[1])/1e6, "gmsa-unlabelled-ms")
	b.ReportMetric(float64(m[2])/1e6, "gmsa-labelled-ms")
	b.ReportMetric(float64(m[3])/1e6, "go-exec-ms")
}

// goExecProgram builds the smallest Go runtime wrapper there is: a static
// program that execs runc with its arguments. When calls is not "", each
// call first appends a line to that file (one write, O_APPEND).
func goExecProgram(b *testing.B, runc, calls string) string {
	return buildGoProgram(b, "go-exec", fmt.Sprintf(`package main

import (
	"os"
	"syscall"
)

func main() {
	if calls := %q; calls != "" {
		if fd, err := syscall.Open(calls, syscall.O_WRONLY|syscall.O_APPEND|syscall.O_CREAT, 0o644); err == nil {
			syscall.Write(fd, []byte("call\n"))
			syscall.Close(fd)
		}
	}
	syscall.Exec(%q, append([]string{%q}, os.Args[1:]...), os.Environ())
	os.Exit(127)
}
`, calls, runc, runc))
}
