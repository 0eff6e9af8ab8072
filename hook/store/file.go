package store

import (
	"io/fs"

	"github.com/gmsa-hook/gmsa-hook/hook/atomicfile"
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
