package hook

import (
	"context"
	"fmt"
	"time"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/hook/store"
	"github.com/gmsa-hook/gmsa-hook/spec"
	"github.com/gmsa-hook/gmsa-hook/spec/policy"
)

// TicketRequest asks the node's cache for the ticket of an admitted
// request: the hook's creates and the ECS server's leases both go through
// Ticket.
type TicketRequest struct {
	Key   string           // the cache entry (CacheKey, or a key derived from it)
	Fetch *fetcher.Request // what a fresh fetch asks
	// Entry is what a fresh fetch records beside the ticket: Source or
	// Spec, Config, ReaderGiven.
	Entry store.Entry
	// Threshold: a cached ticket valid for less is fetched anew. Fresh
	// fetches even a valid cached ticket.
	Threshold time.Duration
	Fresh     bool
	FetchFunc FetchFunc // nil means fetcher.Fetch
	Now       func() time.Time
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
	unlock, err := s.Lock(ctx, req.Key)
	if err != nil {
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
	fetch := req.FetchFunc
	if fetch == nil {
		fetch = fetcher.Fetch
	}
	res, err := fetch(ctx, *req.Fetch)
	if err != nil {
		return nil, err
	}
	out := &TicketResult{}
	for _, fs := range res.Steps {
		// Where the fetch's time went: fetch.login, fetch.ldap, ...
		out.Steps = append(out.Steps, Step{"fetch." + fs.Name, fs.Elapsed})
	}
	if out.Ticket, err = res.Cache.MarshalBinary(); err != nil {
		return nil, err
	}
	e := req.Entry
	e.Key, e.Account, e.Realm, e.DC, e.Previous = req.Key, res.Account, res.Realm, res.DC, res.Previous
	e.Fetched, e.Expires, e.Outcome, e.Error = now.UTC(), res.Expires.UTC(), "fetched", ""
	e.Renewed, e.RenewTill = time.Time{}, time.Time{}
	if len(res.Cache.Credentials) > 0 && !res.Cache.Credentials[0].RenewTill.IsZero() {
		e.RenewTill = res.Cache.Credentials[0].RenewTill.UTC()
	}
	if err := s.Put(&e, out.Ticket); err != nil {
		return nil, err
	}
	out.Entry = &e
	return out, nil
}

// AdmitSpec applies the policy to a credential spec the ECS agent sent as
// JSON, with the domainless reader's credentials that came with it (nil
// for a domain-joined spec): the spec's domain and the rules as for a
// label (the agent tells nothing of the task: rules with match conditions
// do not apply), and the reader's domain as for a secret. It returns the
// fetch to make and the rule that granted the gMSA.
func AdmitSpec(cfg fetcher.Config, contents string, reader *spec.Secret) (*fetcher.Request, string, error) {
	pol := policy.New(cfg)
	cs, err := pol.Contents([]byte(contents))
	if err != nil {
		return nil, "", err
	}
	switch {
	case cs.Domainless() && reader == nil:
		return nil, "", fmt.Errorf("credential spec %s: %w: gMSA %q: the spec has HostAccountConfig (domainless) but came with AddKerberosLease; the agent sends domainless specs with AddNonDomainJoinedKerberosLease", policy.ECSAgent, spec.ErrMalformed, cs.Account())
	case !cs.Domainless() && reader != nil:
		return nil, "", fmt.Errorf("credential spec %s: %w: gMSA %q: the spec has no HostAccountConfig (domain-joined) but came with a domainless reader", policy.ECSAgent, spec.ErrMalformed, cs.Account())
	}
	rule, err := pol.Decide(cs, policy.Container{ReaderGiven: reader != nil})
	if err != nil {
		return nil, "", err
	}
	req := &fetcher.Request{Source: policy.ECSAgent, Spec: cs, Config: cfg}
	if reader != nil {
		if err := pol.Reader(reader); err != nil {
			return nil, "", err
		}
		req.Secret = reader
	}
	return req, rule, nil
}
