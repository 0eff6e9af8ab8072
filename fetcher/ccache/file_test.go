package ccache

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dirNames lists dir, so tests can see that no temporary file was left.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "krb5cc")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := goldenCaches(t)["tgt"]
	if err := WriteFile(path, c, -1, -1); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := c.MarshalBinary()
	if !bytes.Equal(got, want) {
		t.Error("file content differs from MarshalBinary")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("mode %v, want -rw-------", fi.Mode())
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("directory holds %q, want only krb5cc", names)
	}
}

func TestWriteFileUmask(t *testing.T) {
	old := syscall.Umask(0o277)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "krb5cc")
	if err := WriteFile(path, goldenCaches(t)["empty"], -1, -1); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("mode %v under umask 0277, want -rw-------", fi.Mode())
	}
}

func TestWriteFileChown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "krb5cc")
	err := WriteFile(path, goldenCaches(t)["empty"], 4321, 8765)
	if os.Geteuid() != 0 {
		// Only root may give a file away; the failure must leave nothing.
		if err == nil {
			t.Fatal("WriteFile with a foreign uid succeeded without root")
		}
		if names := dirNames(t, filepath.Dir(path)); len(names) != 0 {
			t.Errorf("failed WriteFile left %q", names)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 4321 || st.Gid != 8765 {
		t.Errorf("owner %d:%d, want 4321:8765", st.Uid, st.Gid)
	}
}

func TestWriteFileErrorsLeaveNothing(t *testing.T) {
	bad := &Cache{Credentials: []Credential{{EndTime: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)}}}
	for _, tc := range []struct {
		name string
		// setup returns the path to write to; it may create things in dir.
		setup func(dir string) string
		c     *Cache
		want  string // error prefix after "write credential cache <path>: "
	}{
		{"cache does not marshal", func(dir string) string {
			p := filepath.Join(dir, "krb5cc")
			os.WriteFile(p, []byte("old"), 0o600)
			return p
		}, bad, "credential 1: endtime: time 1960-01-01T00:00:00Z outside the 32-bit range of the format"},
		{"directory missing", func(dir string) string {
			return filepath.Join(dir, "missing", "krb5cc")
		}, &Cache{}, "open "},
		{"path is a directory", func(dir string) string {
			p := filepath.Join(dir, "krb5cc")
			os.Mkdir(p, 0o700)
			os.WriteFile(filepath.Join(p, "keep"), nil, 0o600)
			return p
		}, &Cache{}, "rename "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.setup(dir)
			before := dirNames(t, dir)
			err := WriteFile(path, tc.c, -1, -1)
			if err == nil {
				t.Fatal("WriteFile succeeded")
			}
			prefix := "write credential cache " + path + ": " + tc.want
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q, want prefix %q", err, prefix)
			}
			if after := dirNames(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("directory changed from %q to %q", before, after)
			}
			if b, err := os.ReadFile(path); err == nil && string(b) != "old" {
				t.Errorf("path content changed to %q", b)
			}
		})
	}
}
