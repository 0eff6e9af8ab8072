// Package atomicfile replaces a file through a temporary file in the same
// directory and a rename, so a reader (a runtime reading config.json, a
// daemon reading its configuration) sees the old file or the new one, never
// a part. It imports only the standard library's basics: the runtime
// wrapper uses it on every labelled create.
package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFile replaces path with b. The new file gets mode perm and, when run
// by root, the owner uid:gid (uid < 0 keeps root's). The temporary file's
// name starts with a dot and does not end in .json, .toml or .conf, so a
// daemon scanning the directory meanwhile skips it.
func WriteFile(path string, b []byte, perm fs.FileMode, uid, gid int) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm.Perm()); err != nil {
		return err
	}
	if uid >= 0 && os.Geteuid() == 0 {
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Replace is WriteFile keeping the mode and owner of old, the file being
// replaced; old nil is a new file, mode 0644, owned by the caller.
func Replace(path string, b []byte, old fs.FileInfo) error {
	if old == nil {
		return WriteFile(path, b, 0o644, -1, -1)
	}
	uid, gid := -1, -1
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		uid, gid = int(st.Uid), int(st.Gid)
	}
	return WriteFile(path, b, old.Mode(), uid, gid)
}
