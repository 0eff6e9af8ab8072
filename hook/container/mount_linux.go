package container

// Linux only: the createContainer stage bind-mounts the ticket directory
// into the container's rootfs with mount(2) and openat2(2).

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MountTicketDir binds src read-only onto MountPoint inside rootfs. It runs
// at createContainer, inside the container's mount namespace before
// pivot_root, where both the host's src and the rootfs are visible; the
// host never sees the mount, so there is nothing to unmount later.
//
// The mount point is resolved inside the rootfs (openat2 RESOLVE_IN_ROOT:
// a symlink in the image cannot lead out of it) and on the rootfs's own
// mount (RESOLVE_NO_XDEV: a symlink to /proc/sys or a volume mounted on
// /var cannot make the ticket hide part of another filesystem, nor a
// directory be made there), created when missing (an empty directory in
// the container's writable layer), and mounted through its /proc/self/fd
// path so the kernel mounts on exactly what was resolved.
func MountTicketDir(src, rootfs string) error {
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
	mounted, err := reopenMountPoint(root, rel)
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

// openat2 is unix.Openat2; a test stands in a kernel without it.
var openat2 = unix.Openat2

// inRoot resolves path as if root were "/": symlinks and ".." stay inside
// root, and /proc magic links are refused.
const inRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// openInRoot opens a directory as an O_PATH file, resolving relPath as if
// root were "/" (symlinks and ".." stay inside root) and without leaving
// root's mount: a path that reaches another filesystem, or a bind mount,
// is an error naming the first element that does.
func openInRoot(root int, relPath string) (int, error) {
	fd, err := openat2(root, relPath, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: inRoot | unix.RESOLVE_NO_XDEV,
	})
	if errors.Is(err, unix.ENOSYS) {
		return openNoSymlinks(root, relPath)
	}
	if errors.Is(err, unix.EXDEV) {
		return -1, crossing(root, relPath)
	}
	return fd, err
}

// crossing names the first element of relPath whose resolution leaves
// root's mount.
func crossing(root int, relPath string) error {
	elems := strings.Split(path.Clean(relPath), "/")
	prefix := relPath
	for i := range elems {
		p := strings.Join(elems[:i+1], "/")
		fd, err := openat2(root, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: inRoot | unix.RESOLVE_NO_XDEV})
		if err == nil {
			unix.Close(fd)
			continue
		}
		if errors.Is(err, unix.EXDEV) {
			prefix = p
		}
		break
	}
	return crossesMount(prefix)
}

func crossesMount(relPath string) error {
	return fmt.Errorf("/%s crosses a mount inside the rootfs: %w", relPath, unix.EXDEV)
}

// reopenMountPoint opens the mount point once the ticket directory is
// bound there: as openInRoot, except that the last element may, and
// should, lead into that mount (the caller checks that it is the bind).
func reopenMountPoint(root int, relPath string) (int, error) {
	fd, err := openat2(root, relPath, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: inRoot,
	})
	if !errors.Is(err, unix.ENOSYS) {
		return fd, err
	}
	// Without openat2 no element is a symlink: open the parent, checked,
	// and the last element in it.
	parent, err := openNoSymlinks(root, path.Dir(relPath))
	if err != nil {
		return -1, err
	}
	defer unix.Close(parent)
	return unix.Openat(parent, path.Base(relPath), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// mountID names the mount an open file is on: its device, and the mount
// ID of /proc/self/fdinfo (Linux 3.15), which tells a bind mount of the
// same filesystem apart too.
type mountID struct {
	dev uint64
	id  string
}

func mountOf(fd int) (mountID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return mountID{}, err
	}
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return mountID{}, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "mnt_id:"); ok {
			return mountID{dev: st.Dev, id: strings.TrimSpace(v)}, nil
		}
	}
	return mountID{}, errors.New("no mnt_id in /proc/self/fdinfo")
}

// openNoSymlinks is openInRoot for kernels before 5.6 (no openat2): it
// walks one element at a time, refuses any symlink on the way, and checks
// that each element is on root's mount.
func openNoSymlinks(root int, relPath string) (int, error) {
	rootMount, err := mountOf(root)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Dup(root)
	if err != nil {
		return -1, err
	}
	var walked []string
	for _, elem := range strings.Split(relPath, "/") {
		if elem == "" || elem == "." {
			continue
		}
		if elem == ".." {
			unix.Close(fd)
			return -1, fmt.Errorf("%q: %w", relPath, unix.EINVAL)
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
		walked = append(walked, elem)
		m, err := mountOf(fd)
		if err != nil {
			unix.Close(fd)
			return -1, err
		}
		if m != rootMount {
			unix.Close(fd)
			return -1, crossesMount(strings.Join(walked, "/"))
		}
	}
	return fd, nil
}

// mkdirInRoot opens relPath inside root, making the missing directories
// (0755) one by one, each created in a parent resolved inside root.
func mkdirInRoot(root int, relPath string) (int, error) {
	fd, err := openInRoot(root, relPath)
	if !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	elems := strings.Split(path.Clean(relPath), "/")
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

// OnMemoryFS reports whether dir is on a memory file system (tmpfs or
// ramfs), where tickets may be kept.
func OnMemoryFS(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && (st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC)
}
