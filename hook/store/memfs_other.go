//go:build !linux

package store

import "fmt"

// memoryFS cannot tell a memory file system outside Linux: the store
// refuses, since tickets must not reach a disk.
func memoryFS(dir string) (bool, error) {
	return false, fmt.Errorf("%w: %s: gmsa-hook keeps tickets on a Linux tmpfs only", ErrRunDir, dir)
}
