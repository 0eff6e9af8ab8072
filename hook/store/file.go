package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFile replaces path with b atomically: a reader of path sees the old
// file or the complete new one, never a part or nothing, even when the
// writer is killed at any point. The bytes go to a new temporary file in the
// same directory (created exclusively), which gets mode and, when uid >= 0,
// owner uid and group gid (gid -1 keeps the group), is synced, and renamed
// over path; the directory is synced after. On any error the temporary file
// is removed and path is left as it was. A temporary file left by a killed
// writer is named .NAME.tmp-*: Clean removes it. It is the one writer of
// every file gmsa-hook replaces: tickets, meta.json, cache entries.
func WriteFile(path string, b []byte, mode os.FileMode, uid, gid int) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// os.CreateTemp opens with O_CREATE|O_EXCL and mode 0600.
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
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// TempInfix marks WriteFile's temporary files: .NAME.tmp-RANDOM.
const TempInfix = ".tmp-"

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

// ReplaceFile is WriteFile keeping the mode and owner of old, the file being
// replaced (an engine's configuration, a bundle's config.json); old nil is a
// new file, mode 0644, owned by the caller.
func ReplaceFile(path string, b []byte, old fs.FileInfo) error {
	if old == nil {
		return WriteFile(path, b, 0o644, -1, -1)
	}
	uid, gid := -1, -1
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		uid, gid = int(st.Uid), int(st.Gid)
	}
	return WriteFile(path, b, old.Mode().Perm(), uid, gid)
}
