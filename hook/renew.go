package hook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/fetcher/ccache"
	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/hook/store"
	"github.com/gmsa-hook/gmsa-hook/spec/awsremote"
	"github.com/gmsa-hook/gmsa-hook/spec/policy"
)

// RenewRequest is one renewal pass over a store: every cached gMSA ticket
// that live containers or ECS leases use and that ends within Threshold is
// renewed (or fetched anew) once, and copied into each of those containers
// and leases; leftovers of containers that are gone are removed. A lease
// lives until the agent deletes it.
type RenewRequest struct {
	RunDir    string
	Threshold time.Duration // default config.DefaultRenewThreshold
	// LoadConfig reads the configuration file an entry was fetched with
	// ("" for none); nil means config.Load.
	LoadConfig func(path string) (config.Config, error)
	// Fetch and Renew get tickets; nil means fetcher.Fetch and
	// fetcher.Renew.
	Fetch FetchFunc
	Renew func(ctx context.Context, req fetcher.RenewRequest) (*fetcher.Result, error)
	Now   func() time.Time
}

// EntryReport is what a pass did for one cache entry.
type EntryReport struct {
	Key        string
	Account    string
	Realm      string
	Outcome    string // "valid", "renewed", "fetched", "unused", "removed" or "failed"
	Err        error
	Expires    time.Time
	Containers int // live containers whose ticket the pass replaced
	// Previous: the entry's ticket was last fetched with the gMSA's
	// previous password (Entry.Previous).
	Previous bool
	Leases   int // ECS lease tickets the pass replaced
}

// RenewReport is what a pass did.
type RenewReport struct {
	Entries []EntryReport
	Swept   []string // container directories removed (gone containers)
}

// Failed lists the entries that failed, as one error naming each.
func (r *RenewReport) Failed() error {
	var errs []error
	for _, e := range r.Entries {
		if e.Err != nil {
			errs = append(errs, e.Err)
		}
	}
	return errors.Join(errs...)
}

// Renew runs one renewal pass. One KDC exchange per gMSA that needs it, not
// one per container. A failure for one entry does not stop the others; the
// report names each.
func Renew(ctx context.Context, req RenewRequest) (*RenewReport, error) {
	if req.Threshold <= 0 {
		req.Threshold = config.DefaultRenewThreshold
	}
	if req.Now == nil {
		req.Now = time.Now
	}
	if req.LoadConfig == nil {
		req.LoadConfig = loadConfig
	}
	s, _, err := store.Open(req.RunDir)
	if err != nil {
		return nil, err
	}
	rep := &RenewReport{Swept: s.Sweep("", req.Now())}
	rep.Swept = append(rep.Swept, sweepLeases(ctx, s, req.Now())...)
	users := map[string][]store.Container{}
	if cs, err := s.Containers(); err == nil {
		for _, c := range cs {
			if c.Meta != nil && c.Meta.CacheKey != "" && container.ProcessAlive(c.Meta.Pid, c.Meta.PidStart) {
				users[c.Meta.CacheKey] = append(users[c.Meta.CacheKey], c)
			}
		}
	}
	leases := leaseUsers(s)
	entries, err := s.Entries()
	if err != nil {
		return rep, fmt.Errorf("%w: read cache: %v", ErrRunDir, err)
	}
	for _, e := range entries {
		rep.Entries = append(rep.Entries, req.entry(ctx, s, e.Key, users[e.Key], leases[e.Key]))
	}
	return rep, nil
}

// leaseUsers maps each cache key to the leases that hold a copy of its
// ticket.
func leaseUsers(s *store.Store) map[string][]string {
	users := map[string][]string{}
	ls, _ := s.Leases()
	for _, l := range ls {
		if l.Lease == nil {
			continue
		}
		seen := map[string]bool{}
		for _, t := range l.Lease.Tickets {
			if !seen[t.CacheKey] {
				seen[t.CacheKey] = true
				users[t.CacheKey] = append(users[t.CacheKey], l.Lease.ID)
			}
		}
	}
	return users
}

// CopyToLease writes an entry's ticket into every ticket directory of a
// lease that is a copy of it and older, under the lease's lock, and
// returns how many it replaced.
func CopyToLease(ctx context.Context, s *store.Store, id string, e *store.Entry, ticket []byte, now time.Time) (int, error) {
	unlock, err := s.LockLease(ctx, id)
	if err != nil {
		return 0, err
	}
	defer unlock()
	dir := s.LeaseDir(id)
	l, err := store.ReadLease(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range l.Tickets {
		t := &l.Tickets[i]
		if t.CacheKey != e.Key || !t.Expires.Before(e.Expires) {
			continue
		}
		if err := store.ReplaceLeaseTicket(dir, t.Name, ticket); err != nil {
			return n, err
		}
		t.Expires, t.Renewed = e.Expires, now.UTC()
		n++
	}
	if n == 0 {
		return 0, nil
	}
	return n, store.WriteLease(dir, l)
}

func loadConfig(path string) (config.Config, error) {
	if path == "" {
		return config.Config{}, nil
	}
	return config.Load(path)
}

// entry renews one cache entry under its lock and copies the result into
// the containers that use it.
func (req *RenewRequest) entry(ctx context.Context, s *store.Store, key string, users []store.Container, leases []string) EntryReport {
	r := EntryReport{Key: key}
	// A create holding the lock gives up at its own deadline (the default
	// fetch timeout, unless configured longer): wait as long, and a little.
	lctx, cancel := context.WithTimeout(ctx, config.DefaultTimeout+5*time.Second)
	defer cancel()
	unlock, err := s.Lock(lctx, key)
	if err != nil {
		r.Outcome, r.Err = "failed", err
		return r
	}
	defer unlock()
	e, ticket, err := s.Get(key)
	if err != nil {
		r.Outcome, r.Err = "failed", fmt.Errorf("cache entry %s: %w", key, err)
		return r
	}
	r.Account, r.Realm, r.Expires = e.Account, e.Realm, e.Expires
	now := req.Now()
	e.Checked = now.UTC()
	switch {
	case len(users) == 0 && len(leases) == 0 && !e.Expires.After(now):
		// Nobody uses it and it can serve no new container: gone.
		r.Outcome = "removed"
		if err := s.Remove(key); err != nil {
			r.Outcome, r.Err = "failed", err
		}
		return r
	case len(users) == 0 && len(leases) == 0:
		r.Outcome = "unused"
	case e.Expires.Sub(now) > req.Threshold:
		r.Outcome = "valid"
	default:
		nt, ne, err := req.refresh(ctx, e, ticket)
		if err != nil {
			e.Outcome, e.Error = "failed", err.Error()
			_ = s.PutEntry(e)
			r.Outcome, r.Err = "failed", fmt.Errorf("%s@%s: %w", e.Account, e.Realm, err)
			return r
		}
		e, ticket = ne, nt
		if err := s.Put(e, ticket); err != nil {
			r.Outcome, r.Err = "failed", err
			return r
		}
		r.Outcome, r.Expires = e.Outcome, e.Expires
	}
	r.Previous = e.Previous
	if r.Outcome == "valid" || r.Outcome == "unused" {
		e.Outcome, e.Error = r.Outcome, ""
		_ = s.PutEntry(e)
	}
	// Every live container whose copy is older than the entry's gets the
	// entry's ticket: renewed now, or fetched by a create since.
	for _, c := range users {
		if !c.Meta.Expires.Before(e.Expires) {
			continue
		}
		m := *c.Meta
		m.Expires, m.Renewed = e.Expires, now.UTC()
		if err := store.Replace(c.Dir, &m, ticket); err != nil {
			r.Outcome, r.Err = "failed", fmt.Errorf("%s@%s: container %s: %w", e.Account, e.Realm, container.Short(m.ID), err)
			return r
		}
		r.Containers++
	}
	for _, id := range leases {
		n, err := CopyToLease(ctx, s, id, e, ticket, now)
		r.Leases += n
		if err != nil {
			r.Outcome, r.Err = "failed", fmt.Errorf("%s@%s: lease %s: %w", e.Account, e.Realm, id, err)
			return r
		}
	}
	return r
}

// refresh gets a new ticket for an entry: a TGS renewal while the ticket is
// renewable beyond the threshold, else (or when the renewal fails) a fresh
// fetch, which re-reads the managed password so that a rotation is picked
// up. The spec is read again under the policy, as at create.
func (req *RenewRequest) refresh(ctx context.Context, e *store.Entry, ticket []byte) ([]byte, *store.Entry, error) {
	cfg, err := req.LoadConfig(e.Config)
	if err != nil {
		return nil, nil, err
	}
	now := req.Now()
	old, err := ccache.Parse(ticket)
	if err != nil {
		return nil, nil, fmt.Errorf("cached ticket: %w", err)
	}
	var renewErr error
	if len(old.Credentials) > 0 && old.Credentials[0].RenewTill.Sub(now) > req.Threshold {
		renew := req.Renew
		if renew == nil {
			renew = fetcher.Renew
		}
		res, err := renew(ctx, fetcher.RenewRequest{Cache: old, Domain: domainOf(e.Realm), Config: cfg, Now: req.Now})
		if err == nil {
			b, err := res.Cache.MarshalBinary()
			if err != nil {
				return nil, nil, err
			}
			ne := *e
			ne.Renewed, ne.Expires, ne.Outcome, ne.Error = now.UTC(), res.Expires.UTC(), "renewed", ""
			return b, &ne, nil
		}
		renewErr = err
	}
	var freq *fetcher.Request
	switch {
	case e.ReaderGiven:
		return nil, nil, joinRenew(renewErr, fmt.Errorf("%w: fetch anew for %s", ErrReaderNotKept, e.Account))
	case e.Spec != "":
		freq, _, err = AdmitSpec(cfg, e.Spec, nil)
	default:
		freq, err = readmit(ctx, cfg, e.Source)
	}
	if err != nil {
		return nil, nil, joinRenew(renewErr, err)
	}
	fetch := req.Fetch
	if fetch == nil {
		fetch = fetcher.Fetch
	}
	res, err := fetch(ctx, *freq)
	if err != nil {
		return nil, nil, joinRenew(renewErr, err)
	}
	b, err := res.Cache.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	ne := *e
	ne.Fetched, ne.Expires, ne.DC, ne.Outcome, ne.Error = now.UTC(), res.Expires.UTC(), res.DC, "fetched", ""
	ne.Previous = res.Previous
	ne.RenewTill = time.Time{}
	if len(res.Cache.Credentials) > 0 {
		ne.RenewTill = res.Cache.Credentials[0].RenewTill.UTC()
	}
	return b, &ne, nil
}

// ErrReaderNotKept marks a domainless ECS lease's ticket that can no
// longer be renewed: a fresh fetch needs the reader's password, which
// gmsa-hook does not keep; the agent sends it again with
// RenewNonDomainJoinedKerberosLease.
var ErrReaderNotKept = errors.New("the domainless reader's password came from the ECS agent and is not kept")

// joinRenew names a failed renewal beside the fetch that followed it.
func joinRenew(renewErr, err error) error {
	if renewErr == nil {
		return err
	}
	return fmt.Errorf("%w (after the renewal failed: %v)", err, renewErr)
}

// domainOf is the DNS domain of an AD realm.
func domainOf(realm string) string { return strings.ToLower(realm) }

// readmit reads a cached entry's spec and reader secret again under the
// policy, as the hook did at create.
func readmit(ctx context.Context, cfg config.Config, source string) (*fetcher.Request, error) {
	remote := awsremote.New(cfg.AWS)
	a, err := policy.New(cfg).Admit(ctx, source, nil, remote)
	if err != nil {
		return nil, err
	}
	return &fetcher.Request{Source: source, Spec: a.Spec, Secret: a.Secret, Config: cfg, Remote: remote}, nil
}

// GC removes what containers that are gone left behind (their directories,
// judged from the process recorded at create), the leases of ECS tasks that
// stopped (bound into no container for LeaseGrace, once bound), cache
// entries nobody uses that have ended, and temporary files of killed
// writers. A live container's ticket is never removed, nor a lease in use,
// nor a cache entry a lease uses.
func GC(runDir string, now time.Time) (*RenewReport, error) {
	s, _, err := store.Open(runDir)
	if err != nil {
		return nil, err
	}
	rep := &RenewReport{Swept: s.Sweep("", now)}
	rep.Swept = append(rep.Swept, sweepLeases(context.Background(), s, now)...)
	used := map[string]bool{}
	cs, _ := s.Containers()
	for _, c := range cs {
		if c.Meta != nil {
			used[c.Meta.CacheKey] = true
		}
		removeTemps(filepath.Join(c.Dir, container.KrbDir), now)
		removeTemps(c.Dir, now)
	}
	for key := range leaseUsers(s) {
		used[key] = true
	}
	if ls, err := s.Leases(); err == nil {
		for _, l := range ls {
			removeTemps(l.Dir, now)
			if l.Lease != nil {
				for _, t := range l.Lease.Tickets {
					removeTemps(filepath.Join(l.Dir, t.Name), now)
				}
			}
		}
	}
	entries, _ := s.Entries()
	for _, e := range entries {
		removeTemps(filepath.Join(s.Dir, store.CacheDir, e.Key), now)
		if used[e.Key] || e.Expires.After(now) {
			continue
		}
		r := EntryReport{Key: e.Key, Account: e.Account, Realm: e.Realm, Outcome: "removed", Expires: e.Expires}
		if err := s.Remove(e.Key); err != nil {
			r.Outcome, r.Err = "failed", err
		}
		rep.Entries = append(rep.Entries, r)
	}
	return rep, nil
}

// removeTemps removes store.WriteFile's temporary files older than a
// minute: a writer killed between create and rename leaves one.
func removeTemps(dir string, now time.Time) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, d := range des {
		if !strings.HasPrefix(d.Name(), ".") || !strings.Contains(d.Name(), store.TempInfix) {
			continue
		}
		if info, err := d.Info(); err == nil && now.Sub(info.ModTime()) > time.Minute {
			os.Remove(filepath.Join(dir, d.Name()))
		}
	}
}
