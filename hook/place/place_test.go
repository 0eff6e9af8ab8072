package place

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

// TestSeesTicketDir: a container whose config.json binds a directory of
// the run directory where it looks for the ticket must have its own ticket
// directory there, as the runtime mounted it; other binds are not checked.
func TestSeesTicketDir(t *testing.T) {
	runDir := t.TempDir()
	bundle := t.TempDir()
	os.MkdirAll(filepath.Join(bundle, "rootfs", "var", "credentials-fetcher", "krbdir"), 0o755)
	st := &container.State{ID: "c1", Bundle: bundle, Pid: os.Getpid()}
	own := container.TicketDir(runDir, "c1", bundle)
	os.MkdirAll(own, 0o700)
	cfg := func(src string) *container.Config {
		return &container.Config{Root: &container.Root{Path: "rootfs"}, Mounts: []container.Mount{{Destination: container.MountPoint, Type: "bind", Source: src}}}
	}
	for _, tc := range []struct {
		name string
		cfg  *container.Config
		ok   bool
	}{
		{"no such bind (the createContainer hook mounts)", &container.Config{Root: &container.Root{Path: "rootfs"}}, true},
		{"a bind from elsewhere (the user's own)", cfg("/srv/tickets"), true},
		{"another container's directory", cfg(container.TicketDir(runDir, "c2", bundle)), false},
		// The test's process does not have own mounted there: what it sees
		// at the mount point is the rootfs's empty directory.
		{"its own directory, not mounted", cfg(own), false},
	} {
		err := seesTicketDir(st, tc.cfg, runDir)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrNotBound)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
