package ccache

import (
	"fmt"

	"github.com/gmsa-hook/gmsa-hook/hook/store"
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
	if err := store.WriteFile(path, b, 0o600, uid, gid); err != nil {
		return fmt.Errorf("write credential cache %s: %w", path, err)
	}
	return nil
}
