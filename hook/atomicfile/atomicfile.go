// Package atomicfile is gmsa-hook's one writer of files it replaces:
// tickets, meta.json, cache entries (through package store), engine
// configuration and a bundle's config.json. A reader sees the old file or
// the complete new one, never a part or nothing, even when the writer is
// killed at any point.
//
// It imports only the standard library's most basic packages (no
// path/filepath, no x/sys): the runtime wrapper and the hook's quick path
// use it, and Go initialises them before anything that sorts after their
// imports (see package config).
package atomicfile

import (
	"io/fs"
	"os"
	"path"
	"syscall"
)

// TempInfix marks the temporary files: .NAME.tmp-RANDOM. A writer killed
// between create and rename leaves one; gc removes them.
const TempInfix = ".tmp-"

// WriteFile replaces name with b. The bytes go to a new temporary file in
// the same directory (created exclusively), which gets mode and, when
// uid >= 0, owner uid and group gid (gid -1 keeps the group), is synced,
// and renamed over name; the directory is synced after. On any error the
// temporary file is removed and name is left as it was. The temporary
// name does not end in .json, .toml or .conf, so a daemon scanning the
// directory meanwhile skips it.
func WriteFile(name string, b []byte, mode fs.FileMode, uid, gid int) (err error) {
	dir, base := path.Split(name)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+TempInfix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// The umask can only remove bits; set the mode exactly.
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if uid >= 0 {
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
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// Replace is WriteFile keeping the mode and owner of old, the file being
// replaced (an engine's configuration, a bundle's config.json); old nil is
// a new file, mode 0644, owned by the caller.
func Replace(name string, b []byte, old fs.FileInfo) error {
	if old == nil {
		return WriteFile(name, b, 0o644, -1, -1)
	}
	uid, gid := -1, -1
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		uid, gid = int(st.Uid), int(st.Gid)
	}
	return WriteFile(name, b, old.Mode().Perm(), uid, gid)
}

// syncDir makes a rename durable. It is best effort: the new file is in
// place whatever happens here, and some file systems refuse to sync a
// directory.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	d.Close()
}
