package hook

// Linux only: the createContainer stage bind-mounts the ticket directory
// into the container's rootfs with mount(2) and openat2(2).

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MountPoint is where the ticket directory appears in the container.
const MountPoint = "/var/credentials-fetcher/krbdir"

// ErrMount marks a failed mount of the ticket directory.
var ErrMount = errors.New("cannot mount the ticket directory")

// mountTicketDir binds src read-only onto MountPoint inside rootfs. It runs
// at createContainer, inside the container's mount namespace before
// pivot_root, where both the host's src and the rootfs are visible; the
// host never sees the mount, so there is nothing to unmount later.
//
// The mount point is resolved inside the rootfs (openat2 RESOLVE_IN_ROOT:
// a symlink in the image cannot lead out of it), created when missing (an
// empty directory in the container's writable layer), and mounted through
// its /proc/self/fd path so the kernel mounts on exactly what was resolved.
func mountTicketDir(src, rootfs string) error {
	fail := func(step string, err error) error {
		return fmt.Errorf("%w onto %s in %s: %s: %w", ErrMount, MountPoint, rootfs, step, err)
	}
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail("open rootfs", err)
	}
	defer unix.Close(root)
	rel := strings.TrimPrefix(MountPoint, "/")
	target, err := mkdirInRoot(root, rel)
	if err != nil {
		return fail("make mount point", err)
	}
	defer unix.Close(target)
	source, err := unix.Open(src, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail("open ticket directory", err)
	}
	defer unix.Close(source)

	if err := unix.Mount(fdPath(source), fdPath(target), "", unix.MS_BIND, ""); err != nil {
		return fail("bind", err)
	}
	// Reopen through the new mount: the read-only remount must name the
	// mount's root, and it must be our bind, not something else.
	mounted, err := openInRoot(root, rel)
	if err != nil {
		return fail("reopen mount point", err)
	}
	defer unix.Close(mounted)
	var a, b unix.Stat_t
	if err := unix.Fstat(source, &a); err != nil {
		return fail("stat ticket directory", err)
	}
	if err := unix.Fstat(mounted, &b); err != nil {
		return fail("stat mount point", err)
	}
	if a.Dev != b.Dev || a.Ino != b.Ino {
		return fail("check", errors.New("the mount point does not show the ticket directory"))
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount("", fdPath(mounted), "", flags, ""); err != nil {
		return fail("remount read-only", err)
	}
	return nil
}

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// openInRoot opens a directory as an O_PATH file, resolving path as if
// root were "/": symlinks and ".." stay inside root.
func openInRoot(root int, path string) (int, error) {
	fd, err := unix.Openat2(root, path, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		return openNoSymlinks(root, path)
	}
	return fd, err
}

// openNoSymlinks is openInRoot for kernels before 5.6 (no openat2): it
// walks one element at a time and refuses any symlink on the way.
func openNoSymlinks(root int, path string) (int, error) {
	fd, err := unix.Dup(root)
	if err != nil {
		return -1, err
	}
	for _, elem := range strings.Split(path, "/") {
		if elem == "" || elem == "." {
			continue
		}
		if elem == ".." {
			unix.Close(fd)
			return -1, fmt.Errorf("%q: %w", path, unix.EINVAL)
		}
		next, err := unix.Openat(fd, elem, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
				return -1, fmt.Errorf("%q is not a directory (symlinks are refused on kernels without openat2): %w", elem, err)
			}
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// mkdirInRoot opens path inside root, making the missing directories
// (0755) one by one, each created in a parent resolved inside root.
func mkdirInRoot(root int, path string) (int, error) {
	fd, err := openInRoot(root, path)
	if !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	elems := strings.Split(filepath.Clean(path), "/")
	for i := range elems {
		prefix := strings.Join(elems[:i+1], "/")
		fd, err := openInRoot(root, prefix)
		if err == nil {
			if i == len(elems)-1 {
				return fd, nil
			}
			unix.Close(fd)
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return -1, err
		}
		parent := root
		if i > 0 {
			if parent, err = openInRoot(root, strings.Join(elems[:i], "/")); err != nil {
				return -1, err
			}
		}
		// mkdirat does not follow a symlink in the last element: a dangling
		// one makes EEXIST, and the next open resolves it inside root.
		err = unix.Mkdirat(parent, elems[i], 0o755)
		if parent != root {
			unix.Close(parent)
		}
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, err
		}
		if fd, err = openInRoot(root, prefix); err != nil {
			return -1, err
		}
		if i == len(elems)-1 {
			return fd, nil
		}
		unix.Close(fd)
	}
	return -1, unix.ENOENT
}
