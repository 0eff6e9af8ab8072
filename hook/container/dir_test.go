package container

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestName(t *testing.T) {
	long := strings.Repeat("a", 255)
	tests := []struct {
		name, id, bundle string
		want             string
	}{
		{name: "runc", id: "web1", bundle: "/srv/a", want: "web1-" + "^[0-9a-f]{16}$"},
		{name: "containerd", id: "3f2a1c0d9e8b", bundle: "/run/containerd/io.containerd.runtime.v2.task/default/3f2a1c0d9e8b", want: "3f2a1c0d9e8b-" + "^[0-9a-f]{16}$"},
		{name: "longest id", id: long, bundle: "/srv/a", want: long[:255-17] + "-" + "^[0-9a-f]{16}$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Name(tt.id, tt.bundle)
			prefix, hash, _ := strings.Cut(tt.want, "^")
			if !strings.HasPrefix(got, prefix) || !regexp.MustCompile("^"+hash).MatchString(got[len(prefix):]) {
				t.Errorf("Name(%q, %q) = %q, want %s", tt.id, tt.bundle, got, tt.want)
			}
			if !ValidID(got) || len(got) > 255 {
				t.Errorf("Name(%q, %q) = %q: not one path element", tt.id, tt.bundle, got)
			}
			if again := Name(tt.id, tt.bundle); again != got {
				t.Errorf("Name is not stable: %q, then %q", got, again)
			}
		})
	}
	// The same ID under two runtimes: two bundles, two names.
	if a, b := Name("web1", "/srv/a"), Name("web1", "/srv/b"); a == b {
		t.Errorf("web1 in two bundles: both %q", a)
	}
	// The hash covers the whole ID: two long IDs cut to the same prefix
	// still differ.
	if a, b := Name(long, "/srv/a"), Name(long[:254]+"b", "/srv/a"); a == b {
		t.Errorf("two long IDs: both %q", a)
	}
	// Nothing of the bundle and the ID can run together.
	if a, b := Name("1", "/srv/a"), Name("", "/srv/a1"); a == b {
		t.Errorf("bundle and ID run together: both %q", a)
	}
}

func TestInUse(t *testing.T) {
	self, err := ProcessStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		meta string // "" for no meta.json
		pid  int
		want string // "" for nil; $DIR is the directory
	}{
		{name: "no meta.json", pid: 0},
		{name: "unreadable meta.json", meta: `{`, pid: 0},
		{name: "no pid", meta: `{}`, pid: 0},
		{name: "own process", meta: fmt.Sprintf(`{"pid":%d,"pid_start":%d}`, os.Getpid(), self), pid: os.Getpid()},
		{name: "gone", meta: `{"pid":4194304}`, pid: 0},
		{name: "pid reused", meta: fmt.Sprintf(`{"pid":%d,"pid_start":%d}`, os.Getpid(), self+1), pid: 0},
		{name: "another container's running process", meta: fmt.Sprintf(`{"pid":%d,"pid_start":%d}`, os.Getpid(), self), pid: 0,
			want: fmt.Sprintf("ticket directory in use by another container: $DIR: its meta.json names process %d, which still runs", os.Getpid())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.meta != "" {
				if err := os.WriteFile(filepath.Join(dir, "meta.json"), []byte(tt.meta), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := InUse(dir, tt.pid)
			want := strings.ReplaceAll(tt.want, "$DIR", dir)
			if (err == nil) != (want == "") || (err != nil && err.Error() != want) {
				t.Errorf("InUse = %v, want %q", err, want)
			}
		})
	}
}

// TestProcessAliveZombie: a process that has ended but is not reaped yet
// is dead, as runc sees it.
func TestProcessAliveZombie(t *testing.T) {
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	start, err := ProcessStart(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !ProcessAlive(pid, start) {
		t.Error("a running process is dead")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Wait for the end without reaping: the zombie stays until cmd.Wait.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if ProcessAlive(pid, start) {
		t.Error("a zombie is alive")
	}
	cmd.Wait()
}
