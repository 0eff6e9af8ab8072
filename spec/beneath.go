package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Conditions of ReadBeneath, for a request whose sender is not trusted.
var (
	// ErrOutside marks a name that leads out of its directory ("..", an
	// absolute path, or a symlink pointing elsewhere).
	ErrOutside = errors.New("leads outside the directory")
	// ErrUntrustedDir marks a directory that others than root (or the
	// user running gmsa-hook) could write to: a file in it proves nothing.
	ErrUntrustedDir = errors.New("directory is writable by others than its owner, or not owned by root")
)

// ReadBeneath reads the regular file name inside dir for a request whose
// sender is not trusted (a container's label): name is resolved inside dir
// (os.Root: neither ".." nor a symlink leads out), dir must belong to root
// or the user running gmsa-hook and be writable by its owner only, and
// nothing but a regular file is opened (no FIFO, no device). secret adds
// readOpened's checks of a secret file. Errors name name and dir only,
// never what lies outside dir.
func ReadBeneath(dir, name string, secret bool) ([]byte, error) {
	if !filepath.IsLocal(name) {
		return nil, fmt.Errorf("%s: %w %s", name, ErrOutside, dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", dir, unwrapPath(err))
	}
	defer root.Close()
	if err := trustedDir(root, dir); err != nil {
		return nil, err
	}
	f, err := root.OpenFile(name, openFlags, 0)
	if err != nil {
		var pe *fs.PathError
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, name), fs.ErrNotExist)
		case errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes"):
			return nil, fmt.Errorf("%s: %w %s", name, ErrOutside, dir)
		}
		return nil, fmt.Errorf("%s in %s: %w", name, dir, unwrapPath(err))
	}
	defer f.Close()
	return readOpened(f, filepath.Join(dir, name), secret)
}

// trustedDir checks dir's owner and mode.
func trustedDir(root *os.Root, dir string) error {
	fi, err := root.Stat(".")
	if err != nil {
		return fmt.Errorf("directory %s: %w", dir, unwrapPath(err))
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm()&0o022 != 0 || (ok && st.Uid != 0 && int(st.Uid) != os.Geteuid()) {
		return fmt.Errorf("%s: %w (mode %04o)", dir, ErrUntrustedDir, fi.Mode().Perm())
	}
	return nil
}

// unwrapPath drops a PathError's repetition of the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
