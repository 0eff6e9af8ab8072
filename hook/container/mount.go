package container

import "errors"

// MountPoint is where the ticket directory appears in the container.
const MountPoint = "/var/credentials-fetcher/krbdir"

// ErrMount marks a failed mount of the ticket directory.
var ErrMount = errors.New("cannot mount the ticket directory")
