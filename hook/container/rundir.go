package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"syscall"
)

// ErrRunDir marks an unusable run_dir.
var ErrRunDir = errors.New("unusable run directory")

// CheckRunDir checks, where they exist, the run directory and its
// containers directory: each must be a directory itself (not a symlink to
// one, which would put tickets, and removals, where it points), belong to
// root or to the user running gmsa-hook, and be writable by nobody else.
// What does not exist yet is no error.
func CheckRunDir(runDir string) error {
	for _, d := range []string{runDir, path.Join(runDir, ContainersDir)} {
		fi, err := os.Lstat(d)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrRunDir, err)
		}
		if err := checkDir(d, fi); err != nil {
			return err
		}
	}
	return nil
}

func checkDir(d string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %s is a symlink: make it a directory, or remove it and gmsa-hook makes one", ErrRunDir, d)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory: remove it and gmsa-hook makes one", ErrRunDir, d)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s belongs to uid %d: chown root %s", ErrRunDir, d, st.Uid, d)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o): chmod 0711 %s", ErrRunDir, d, perm, d)
	}
	return nil
}
