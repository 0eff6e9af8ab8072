package store

import (
	"encoding/json"
	"fmt"
	"io/fs"

	"github.com/gmsa-hook/gmsa-hook/hook/atomicfile"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

// WriteFile is atomicfile.WriteFile, the one writer of every file gmsa-hook
// replaces: tickets, meta.json, cache entries.
func WriteFile(path string, b []byte, mode fs.FileMode, uid, gid int) error {
	return atomicfile.WriteFile(path, b, mode, uid, gid)
}

// ReplaceFile is atomicfile.Replace.
func ReplaceFile(path string, b []byte, old fs.FileInfo) error {
	return atomicfile.Replace(path, b, old)
}

// TempInfix marks WriteFile's temporary files: .NAME.tmp-RANDOM.
const TempInfix = atomicfile.TempInfix

// readJSON reads one of the store's small JSON files (meta.json,
// entry.json, lease.json) into v.
func readJSON(file string, v any) error {
	b, err := container.ReadSmall(file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %v", file, container.JSONProblem(err))
	}
	return nil
}

// writeJSON replaces one of the store's JSON files with v, root's, 0600.
func writeJSON(file string, v any) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	if err := WriteFile(file, append(b, '\n'), 0o600, -1, -1); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}
