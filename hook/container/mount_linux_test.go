package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gmsa-hook/gmsa-hook/test/testdomain"
)

func TestMkdirInRootStaysInside(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, rootfs, outside string)
		want  string // the directory made, relative to rootfs
	}{
		{name: "plain", setup: func(*testing.T, string, string) {}, want: "a/b/c"},
		{name: "absolute symlink to a host path", setup: func(t *testing.T, rootfs, outside string) {
			symlink(t, outside, filepath.Join(rootfs, "a"))
			mkdir(t, filepath.Join(rootfs, outside))
		}, want: "$OUTSIDE/b/c"},
		{name: "dot dot symlink", setup: func(t *testing.T, rootfs, outside string) {
			mkdir(t, filepath.Join(rootfs, "a"))
			mkdir(t, filepath.Join(rootfs, "x"))
			symlink(t, "../../../../../../../../x", filepath.Join(rootfs, "a", "b"))
		}, want: "x/c"},
		{name: "dangling symlink to a host path", setup: func(t *testing.T, rootfs, outside string) {
			symlink(t, outside, filepath.Join(rootfs, "a"))
		}, want: ""},
		{name: "existing", setup: func(t *testing.T, rootfs, _ string) {
			mkdir(t, filepath.Join(rootfs, "a", "b", "c"))
		}, want: "a/b/c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rootfs, outside := t.TempDir(), t.TempDir()
			tt.setup(t, rootfs, outside)
			root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(root)
			fd, err := mkdirInRoot(root, "a/b/c")
			if tt.want == "" {
				// Refused: the symlink's target is not in the rootfs.
				if !errors.Is(err, unix.ENOENT) {
					t.Errorf("err = %v, want ENOENT", err)
				}
				if entries, _ := os.ReadDir(outside); len(entries) != 0 {
					t.Errorf("wrote outside the rootfs: %v", entries)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			got, err := os.Readlink(fdPath(fd))
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(rootfs, strings.ReplaceAll(tt.want, "$OUTSIDE", outside)); got != want {
				t.Errorf("made %s, want %s", got, want)
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Errorf("wrote outside the rootfs: %v", entries)
			}
		})
	}
}

func TestMkdirInRootFile(t *testing.T) {
	rootfs := t.TempDir()
	mkdir(t, filepath.Join(rootfs, "a", "b"))
	if err := os.WriteFile(filepath.Join(rootfs, "a", "b", "c"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	root, _ := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY, 0)
	defer unix.Close(root)
	if _, err := mkdirInRoot(root, "a/b/c"); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("err = %v, want ENOTDIR", err)
	}
}

func TestOpenNoSymlinks(t *testing.T) {
	rootfs := t.TempDir()
	mkdir(t, filepath.Join(rootfs, "a", "b"))
	symlink(t, "a", filepath.Join(rootfs, "l"))
	root, _ := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY, 0)
	defer unix.Close(root)
	fd, err := openNoSymlinks(root, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if _, err := openNoSymlinks(root, "l/b"); err == nil {
		t.Error("followed a symlink")
	}
	if _, err := openNoSymlinks(root, "a/../../x"); err == nil {
		t.Error("followed ..")
	}
}

// TestMountTicketDir mounts for real in a private mount namespace of one
// thread, as the createContainer stage does in the container's.
func TestMountTicketDir(t *testing.T) {
	needRoot(t)
	src, rootfs := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "krb5cc"), []byte("ticket"), 0o600); err != nil {
		t.Fatal(err)
	}
	symlink(t, "/", filepath.Join(rootfs, "var")) // var -> / inside the rootfs
	errc := make(chan error, 1)
	go func() {
		// The thread ends with the goroutine, namespace and all: never unlocked.
		runtime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return err
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return err
			}
			if err := MountTicketDir(src, rootfs); err != nil {
				return err
			}
			target := filepath.Join(rootfs, "credentials-fetcher", "krbdir")
			if b, err := os.ReadFile(filepath.Join(target, "krb5cc")); err != nil || string(b) != "ticket" {
				return errors.New("the ticket is not visible through the mount")
			}
			if err := os.WriteFile(filepath.Join(target, "x"), nil, 0o600); !errors.Is(err, unix.EROFS) {
				return errors.New("the mount is writable")
			}
			var st unix.Statfs_t
			if err := unix.Statfs(target, &st); err != nil {
				return err
			}
			const want = unix.ST_RDONLY | unix.ST_NOSUID | unix.ST_NODEV | unix.ST_NOEXEC
			if st.Flags&want != want {
				return errors.New("the mount lacks ro,nosuid,nodev,noexec")
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// This thread's namespace never saw the mount.
	if entries, _ := os.ReadDir(filepath.Join(rootfs, "credentials-fetcher", "krbdir")); len(entries) != 0 {
		t.Errorf("mount visible outside its namespace: %v", entries)
	}
}

// needRoot skips a test run by hand without root, and fails it in CI.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testdomain.Require(t, "needs root")
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, old, new string) {
	t.Helper()
	if err := os.Symlink(old, new); err != nil {
		t.Fatal(err)
	}
}

// inMountNS runs f on a thread of its own in a private mount namespace, as
// the createContainer stage runs in the container's; the namespace and its
// mounts end with the thread.
func inMountNS(t *testing.T, f func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine.
		runtime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return err
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return err
			}
			return f()
		}()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// mountsUnder lists the mount points of this thread's namespace at or
// under dir.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out, nil
}

// procSymlink is a rootfs setup: link (relative to the rootfs) a symlink
// to /proc/sys/kernel, with a procfs mounted on the rootfs's /proc.
func procSymlink(link string) func(rootfs string) error {
	return func(rootfs string) error {
		for _, d := range []string{"proc", filepath.Dir(link)} {
			if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
				return err
			}
		}
		if err := os.Symlink("/proc/sys/kernel", filepath.Join(rootfs, link)); err != nil {
			return err
		}
		return unix.Mount("proc", filepath.Join(rootfs, "proc"), "proc", 0, "")
	}
}

// TestMountRefusesOtherFilesystems: a mount point that resolves onto
// another filesystem inside the rootfs (procfs through a symlink in the
// image, a volume mounted on /var) is refused, with openat2 and with the
// walk of kernels without it: nothing is mounted, nothing is made there.
func TestMountRefusesOtherFilesystems(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name  string
		setup func(rootfs string) error // in the test's mount namespace
		want  string                    // after "... in ROOTFS: "
		walk  string                    // the walk's error, when it differs
		other string                    // a directory of the other filesystem, which must stay as it was
	}{
		{name: "symlink to procfs", setup: procSymlink("var/credentials-fetcher/krbdir"), want: "make mount point: /var/credentials-fetcher/krbdir crosses a mount inside the rootfs: invalid cross-device link", other: "proc/sys/kernel",
			walk: `make mount point: "krbdir" is not a directory (symlinks are refused on kernels without openat2): not a directory`},
		{name: "parent symlink to procfs", setup: procSymlink("var/credentials-fetcher"), want: "make mount point: /var/credentials-fetcher crosses a mount inside the rootfs: invalid cross-device link", other: "proc/sys/kernel",
			walk: `make mount point: "credentials-fetcher" is not a directory (symlinks are refused on kernels without openat2): not a directory`},
		{name: "tmpfs on /var", setup: func(rootfs string) error {
			if err := os.MkdirAll(filepath.Join(rootfs, "var"), 0o755); err != nil {
				return err
			}
			return unix.Mount("tmpfs", filepath.Join(rootfs, "var"), "tmpfs", 0, "size=1m")
		}, want: "make mount point: /var crosses a mount inside the rootfs: invalid cross-device link", other: "var"},
	}
	for _, walk := range []string{"openat2", "no openat2"} {
		for _, tt := range tests {
			t.Run(walk+"/"+tt.name, func(t *testing.T) {
				if walk == "no openat2" {
					openat2 = func(int, string, *unix.OpenHow) (int, error) { return -1, unix.ENOSYS }
					t.Cleanup(func() { openat2 = unix.Openat2 })
				}
				src, rootfs := t.TempDir(), t.TempDir()
				if err := os.WriteFile(filepath.Join(src, "krb5cc"), []byte("ticket"), 0o600); err != nil {
					t.Fatal(err)
				}
				inMountNS(t, func() error {
					if err := tt.setup(rootfs); err != nil {
						return err
					}
					other := filepath.Join(rootfs, tt.other)
					before, _ := os.ReadDir(other)
					mounts, err := mountsUnder(rootfs)
					if err != nil {
						return err
					}
					err = MountTicketDir(src, rootfs)
					reason := tt.want
					if walk == "no openat2" && tt.walk != "" {
						reason = tt.walk
					}
					want := "cannot mount the ticket directory onto /var/credentials-fetcher/krbdir in " + rootfs + ": " + reason
					if err == nil || err.Error() != want || !errors.Is(err, ErrMount) {
						t.Errorf("err = %v\nwant  %s", err, want)
					}
					if after, _ := mountsUnder(rootfs); !slices.Equal(mounts, after) {
						t.Errorf("mounts under the rootfs: %v, want %v", after, mounts)
					}
					if after, _ := os.ReadDir(other); len(after) != len(before) {
						t.Errorf("%s: %d entries, before %d", other, len(after), len(before))
					}
					return nil
				})
			})
		}
	}
}

// TestMountTicketDirWithoutOpenat2: the walk of kernels before 5.6 mounts
// too, and finds its own bind when it reopens the mount point.
func TestMountTicketDirWithoutOpenat2(t *testing.T) {
	needRoot(t)
	openat2 = func(int, string, *unix.OpenHow) (int, error) { return -1, unix.ENOSYS }
	t.Cleanup(func() { openat2 = unix.Openat2 })
	src, rootfs := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "krb5cc"), []byte("ticket"), 0o600); err != nil {
		t.Fatal(err)
	}
	inMountNS(t, func() error {
		if err := MountTicketDir(src, rootfs); err != nil {
			return err
		}
		if b, err := os.ReadFile(filepath.Join(rootfs, "var/credentials-fetcher/krbdir/krb5cc")); err != nil || string(b) != "ticket" {
			return fmt.Errorf("the ticket through the mount: %q, %v", b, err)
		}
		return nil
	})
}
