package hook

import (
	"context"
	"fmt"
	"time"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/hook/place"
	"github.com/gmsa-hook/gmsa-hook/hook/store"
	"github.com/gmsa-hook/gmsa-hook/spec"
	"github.com/gmsa-hook/gmsa-hook/spec/policy"
)

// TicketRequest asks the node's cache for the ticket of an admitted
// request (place.TicketRequest), with a fetch of Fetch.
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
type TicketResult = place.TicketResult

// Ticket is the gMSA's ticket for an admitted request: the cached one when
// it is valid beyond the threshold, else a fresh fetch (place.Ticket).
func Ticket(ctx context.Context, s *store.Store, req TicketRequest) (*TicketResult, error) {
	return place.Ticket(ctx, s, place.TicketRequest{
		Key: req.Key, Entry: req.Entry, Threshold: req.Threshold, Fresh: req.Fresh, Now: req.Now,
		Fetch: func(ctx context.Context) (*place.Fetched, error) { return fetchTicket(ctx, req.FetchFunc, *req.Fetch) },
	})
}

// fetchTicket fetches with fetch (nil means fetcher.Fetch) and returns
// what the cache keeps of the result.
func fetchTicket(ctx context.Context, fetch FetchFunc, req fetcher.Request) (*place.Fetched, error) {
	if fetch == nil {
		fetch = fetcher.Fetch
	}
	res, err := fetch(ctx, req)
	if err != nil {
		return nil, err
	}
	cache, err := res.Cache.MarshalBinary()
	if err != nil {
		return nil, err
	}
	f := &place.Fetched{
		Cache: cache, Account: res.Account, Realm: res.Realm, DC: res.DC, Previous: res.Previous, Expires: res.Expires,
	}
	if len(res.Cache.Credentials) > 0 {
		f.RenewTill = res.Cache.Credentials[0].RenewTill
	}
	for _, fs := range res.Steps {
		// Where the fetch's time went: fetch.login, fetch.ldap, ...
		f.Steps = append(f.Steps, Step{Name: "fetch." + fs.Name, Elapsed: fs.Elapsed})
	}
	return f, nil
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
