//go:build !linux

package container

import (
	"errors"
	"fmt"
)

// MountPoint is where the ticket directory appears in the container.
const MountPoint = "/var/credentials-fetcher/krbdir"

// ErrMount marks a failed mount of the ticket directory.
var ErrMount = errors.New("cannot mount the ticket directory")

// MountTicketDir needs Linux's mount(2) and openat2(2).
func MountTicketDir(src, rootfs string) error {
	return fmt.Errorf("%w onto %s in %s: containers' ticket mounts need Linux", ErrMount, MountPoint, rootfs)
}
