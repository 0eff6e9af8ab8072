package place

import (
	"context"
	"fmt"
	"time"

	"github.com/gmsa-hook/gmsa-hook/hook/store"
)

// TicketRequest asks the node's cache for the ticket of an admitted
// request: the hook's creates and the ECS server's leases both go through
// Ticket.
type TicketRequest struct {
	Key string // the cache entry (CacheKey, or a key derived from it)
	// Entry is what a fresh fetch records beside the ticket: Source or
	// Spec, Config, ReaderGiven.
	Entry store.Entry
	// Threshold: a cached ticket valid for less is fetched anew. Fresh
	// fetches even a valid cached ticket.
	Threshold time.Duration
	Fresh     bool
	// Fetch gets a fresh ticket. Without it only a cached ticket is
	// taken, and the entry's lock only if it is free: a run that cannot
	// fetch does not wait for one that does (ErrFullRun).
	Fetch func(ctx context.Context) (*Fetched, error)
	Now   func() time.Time
}

// TicketResult is a ticket Ticket had.
type TicketResult struct {
	Ticket []byte
	Entry  *store.Entry
	Cached bool   // it came from the cache
	Steps  []Step // a fresh fetch's, as "fetch.<step>"
}

// Ticket is the gMSA's ticket for an admitted request: the cached one when
// it is valid beyond the threshold, else a fresh fetch, which replaces the
// cache entry. Concurrent requests of one entry, in this process or
// another, take the entry's lock in turn: the first fetches, the others
// find its ticket.
func Ticket(ctx context.Context, s *store.Store, req TicketRequest) (*TicketResult, error) {
	lockCtx := ctx
	if req.Fetch == nil {
		// One try of the lock (store.Lock tries before it looks at ctx).
		c, cancel := context.WithCancel(ctx)
		cancel()
		lockCtx = c
	}
	unlock, err := s.Lock(lockCtx, req.Key)
	if err != nil {
		if req.Fetch == nil {
			return nil, fmt.Errorf("%w: %w", ErrFullRun, err)
		}
		return nil, err
	}
	defer unlock()
	now := time.Now()
	if req.Now != nil {
		now = req.Now()
	}
	if e, t, err := s.Get(req.Key); err == nil && !req.Fresh && e.Expires.Sub(now) > req.Threshold {
		return &TicketResult{Ticket: t, Entry: e, Cached: true}, nil
	}
	if req.Fetch == nil {
		return nil, fmt.Errorf("%w: no cached ticket valid for more than %s", ErrFullRun, req.Threshold)
	}
	res, err := req.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	e := req.Entry
	e.Key, e.Account, e.Realm, e.DC, e.Previous = req.Key, res.Account, res.Realm, res.DC, res.Previous
	e.Fetched, e.Expires, e.Outcome, e.Error = now.UTC(), res.Expires.UTC(), "fetched", ""
	e.Renewed, e.RenewTill = time.Time{}, res.RenewTill.UTC()
	if err := s.Put(&e, res.Cache); err != nil {
		return nil, err
	}
	return &TicketResult{Ticket: res.Cache, Entry: &e, Steps: res.Steps}, nil
}
