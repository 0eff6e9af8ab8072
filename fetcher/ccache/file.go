package ccache

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes c to path atomically: a reader of path sees the old file
// or the complete new one, never a part. The bytes go to a new temporary file
// in the same directory (created exclusively, mode 0600), which is given to
// uid and gid when uid >= 0 (gid -1 keeps the group), synced, and renamed
// over path. On any error the temporary file is removed and path is left as
// it was.
func WriteFile(path string, c *Cache, uid, gid int) error {
	b, err := c.MarshalBinary()
	if err != nil {
		return fmt.Errorf("write credential cache %s: %w", path, err)
	}
	if err := writeAtomic(path, b, uid, gid); err != nil {
		return fmt.Errorf("write credential cache %s: %w", path, err)
	}
	return nil
}

func writeAtomic(path string, b []byte, uid, gid int) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// os.CreateTemp opens with O_CREATE|O_EXCL and mode 0600.
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
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
	// The umask can only remove bits from 0600; set it exactly anyway so a
	// restrictive umask does not leave the owner unable to read its ticket.
	if err := f.Chmod(0o600); err != nil {
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

// syncDir makes the rename durable. It is best effort: the new file is in
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
