//go:build !linux

package hook

import (
	"context"
	"time"

	"github.com/gmsa-hook/gmsa-hook/hook/store"
)

// sweepLeases removes nothing outside Linux: there is no mountinfo to tell
// a stopped task's lease.
func sweepLeases(context.Context, *store.Store, time.Time) []string { return nil }
