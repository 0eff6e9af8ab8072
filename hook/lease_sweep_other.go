//go:build !linux

package hook

import (
	"context"
	"time"

	"github.com/gmsa-hook/gmsa-hook/hook/store"
)

// LeaseGrace is how long a lease may go without any container binding its
// tickets before the pass removes it (Linux only).
const LeaseGrace = 10 * time.Minute

// sweepLeases removes nothing outside Linux: there is no mountinfo to tell
// a stopped task's lease.
func sweepLeases(context.Context, *store.Store, time.Time) []string { return nil }
