//go:build !linux

package container

import (
	"fmt"
)

// MountTicketDir needs Linux's mount(2) and openat2(2).
func MountTicketDir(src, rootfs string) error {
	return fmt.Errorf("%w onto %s in %s: containers' ticket mounts need Linux", ErrMount, MountPoint, rootfs)
}

// OnMemoryFS is false outside Linux.
func OnMemoryFS(string) bool { return false }
