package store

// Linux only: tickets must never reach a persistent disk, so the store
// checks run_dir's file system with statfs(2) and mounts a tmpfs with
// mount(2) where it is not a memory file system.

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// tmpfsSize bounds the tmpfs the store mounts: a ticket and its meta.json
// take a few kilobytes, so this holds thousands of containers.
const tmpfsSize = "16m"

// memoryFS makes sure dir is on a memory file system (tmpfs or ramfs): when
// it is not, it mounts a size-limited tmpfs on it (nosuid, nodev, noexec,
// mode 0711), and says so. A directory that already holds files on the disk
// is not mounted over (they would be hidden and stay on the disk): that,
// and a mount that fails, is an error naming the fix.
func memoryFS(dir string) (mounted bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, fmt.Errorf("%w: statfs %s: %v", ErrRunDir, dir, err)
	}
	if st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC {
		return false, nil
	}
	if files, err := filesUnder(dir); err != nil || len(files) > 0 {
		return false, fmt.Errorf("%w: %s is on a disk, not a memory file system, and holds files (%s): tickets must not reach a disk; remove them, or mount a tmpfs on it (mount -t tmpfs -o mode=0711,size=%s tmpfs %s)", ErrRunDir, dir, strings.Join(files, ", "), tmpfsSize, dir)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0711,size="+tmpfsSize); err != nil {
		return false, fmt.Errorf("%w: %s is on a disk, not a memory file system, and mounting a tmpfs there failed: %v; mount one (mount -t tmpfs -o mode=0711,size=%s tmpfs %s) or set run_dir to a directory on a tmpfs", ErrRunDir, dir, err, tmpfsSize, dir)
	}
	return true, nil
}
