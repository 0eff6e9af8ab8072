// Package ecs answers the ECS agent as AWS's credentials-fetcher daemon
// does: the credentialsfetcher.CredentialsFetcherService gRPC API on a unix
// socket, over the same store as the hook's tickets (hook/store: leases/,
// with tickets copied from the per-gMSA cache and kept valid by the same
// renewal pass). It keeps no process resident: Serve returns once no call
// has been in flight for the idle time, and systemd's socket unit starts
// it again on the next connection.
//
// Every spec the agent sends goes through the policy as a label's does
// (hook.AdmitSpec), and a domainless reader's domain too. The reader's
// password is used for the fetch and never written, logged or echoed.
package ecs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/gmsa-hook/gmsa-hook/ecs/credentialsfetcher"
	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/hook"
	"github.com/gmsa-hook/gmsa-hook/hook/store"
	"github.com/gmsa-hook/gmsa-hook/spec"
	"github.com/gmsa-hook/gmsa-hook/spec/policy"
)

// ErrRequest marks a request the agent should not send as it is (an empty
// field, a malformed lease id).
var ErrRequest = errors.New("bad request")

// Server is the CredentialsFetcherService over one configuration's store.
type Server struct {
	pb.UnimplementedCredentialsFetcherServiceServer
	// Config is gmsa-hook's configuration; ConfigPath its file, recorded
	// in leases and cache entries for the renewal pass.
	Config     fetcher.Config
	ConfigPath string
	// Fetch gets tickets; nil means fetcher.Fetch.
	Fetch hook.FetchFunc
	// Hints gives the operator hints of an error, appended to a failed
	// call's message (the task's stop reason); nil for none.
	Hints func(error) []string
	// Log receives one line per failed call (never a password); nil for
	// none.
	Log io.Writer
	Now func() time.Time
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// HealthCheck answers "OK" when the store can be opened.
func (s *Server) HealthCheck(ctx context.Context, _ *pb.HealthCheckRequest) (*pb.HealthCheckResponse, error) {
	if _, _, err := store.Open(s.Config.RunDirOrDefault()); err != nil {
		return nil, s.status("HealthCheck", err)
	}
	return &pb.HealthCheckResponse{Status: "OK"}, nil
}

// AddKerberosLease fetches (or finds in the cache) the ticket of every
// domain-joined spec of a task, read with the host's keytab, into one lease.
func (s *Server) AddKerberosLease(ctx context.Context, req *pb.CreateKerberosLeaseRequest) (*pb.CreateKerberosLeaseResponse, error) {
	if len(req.GetCredspecContents()) == 0 {
		return nil, s.status("AddKerberosLease", fmt.Errorf("%w: no credential spec contents", ErrRequest))
	}
	id, paths, err := s.lease(ctx, req.GetCredspecContents(), nil)
	if err != nil {
		return nil, s.status("AddKerberosLease", err)
	}
	return &pb.CreateKerberosLeaseResponse{LeaseId: id, CreatedKerberosFilePaths: paths}, nil
}

// AddNonDomainJoinedKerberosLease does the same for domainless specs, read
// as the user whose name, password and domain the agent sends.
func (s *Server) AddNonDomainJoinedKerberosLease(ctx context.Context, req *pb.CreateNonDomainJoinedKerberosLeaseRequest) (*pb.CreateNonDomainJoinedKerberosLeaseResponse, error) {
	const call = "AddNonDomainJoinedKerberosLease"
	if len(req.GetCredspecContents()) == 0 {
		return nil, s.status(call, fmt.Errorf("%w: no credential spec contents", ErrRequest))
	}
	reader, err := readerOf(req.GetUsername(), req.GetPassword(), req.GetDomain())
	if err != nil {
		return nil, s.status(call, err)
	}
	id, paths, err := s.lease(ctx, req.GetCredspecContents(), reader)
	if err != nil {
		return nil, s.status(call, err)
	}
	return &pb.CreateNonDomainJoinedKerberosLeaseResponse{LeaseId: id, CreatedKerberosFilePaths: paths}, nil
}

// readerOf is a domainless reader from a request, its user name as
// ParseSecret takes it ("CORP\user" and "user@corp" name "user").
func readerOf(username, password, domain string) (*spec.Secret, error) {
	if username == "" || password == "" || domain == "" {
		return nil, fmt.Errorf("%w: username, password and domain must all be given", ErrRequest)
	}
	if i := strings.LastIndexByte(username, '\\'); i >= 0 {
		username = username[i+1:]
	}
	if i := strings.IndexByte(username, '@'); i >= 0 {
		username = username[:i]
	}
	if username == "" {
		return nil, fmt.Errorf("%w: username names no user", ErrRequest)
	}
	return &spec.Secret{Username: username, Password: password, DomainName: strings.TrimSuffix(domain, ".")}, nil
}

// admitted is one spec of a request, admitted and keyed.
type admitted struct {
	contents string
	freq     *fetcher.Request
	key      string
}

func (s *Server) admit(contents string, reader *spec.Secret) (*admitted, error) {
	freq, _, err := hook.AdmitSpec(s.Config, contents, reader)
	if err != nil {
		return nil, err
	}
	return &admitted{contents: contents, freq: freq, key: cacheKey(freq)}, nil
}

// cacheKey is the cache entry of an ECS request: the hook's key, kept
// apart from the hook's entries (which a fresh fetch re-reads from a
// label's source), and for a domainless reader, a hash of its password,
// so that a request with a wrong password never gets the ticket another
// request's right one fetched, and a changed password fetches anew. The
// hash lies only in names under cache/, which is root's and 0700.
func cacheKey(freq *fetcher.Request) string {
	parts := []string{"ecs", hook.CacheKey(freq)}
	if freq.Secret != nil {
		h := sha256.Sum256([]byte("gmsa-hook ecs reader\x00" + freq.Secret.Password))
		parts = append(parts, hex.EncodeToString(h[:]))
	}
	return store.Key(parts...)
}

func (s *Server) ticket(ctx context.Context, st *store.Store, a *admitted, fresh bool) (*hook.TicketResult, error) {
	return hook.Ticket(ctx, st, hook.TicketRequest{
		Key: a.key, Fetch: a.freq,
		Entry:     store.Entry{Source: policy.ECSAgent, Spec: a.contents, Config: s.ConfigPath, ReaderGiven: a.freq.Secret != nil},
		Threshold: s.Config.RenewThresholdOrDefault(), Fresh: fresh, FetchFunc: s.Fetch, Now: s.Now,
	})
}

// lease admits every spec before anything reaches the network, gets each
// ticket and writes the lease. It returns the lease id and one ticket
// directory per spec, in the request's order.
func (s *Server) lease(ctx context.Context, specs []string, reader *spec.Secret) (string, []string, error) {
	var as []*admitted
	for i, c := range specs {
		a, err := s.admit(c, reader)
		if err != nil {
			if len(specs) > 1 {
				err = fmt.Errorf("credential spec %d of %d: %w", i+1, len(specs), err)
			}
			return "", nil, err
		}
		as = append(as, a)
	}
	st, _, err := store.Open(s.Config.RunDirOrDefault())
	if err != nil {
		return "", nil, err
	}
	l := &store.Lease{ID: store.NewLeaseID(), Created: s.now().UTC(), Config: s.ConfigPath}
	if reader != nil {
		l.Domainless, l.Username, l.Domain = true, reader.Username, reader.DomainName
	}
	var tickets [][]byte
	var paths []string
	for _, a := range as {
		res, err := s.ticket(ctx, st, a, false)
		if err != nil {
			return "", nil, err
		}
		name := a.freq.Spec.Account()
		l.Tickets = append(l.Tickets, store.LeaseTicket{
			Name: name, Spec: a.contents, Account: res.Entry.Account, Realm: res.Entry.Realm,
			CacheKey: res.Entry.Key, Expires: res.Entry.Expires,
		})
		tickets = append(tickets, res.Ticket)
		paths = append(paths, st.TicketDir(l.ID, name))
	}
	if err := st.PlaceLease(l, tickets); err != nil {
		return "", nil, err
	}
	return l.ID, paths, nil
}

// RenewNonDomainJoinedKerberosLease fetches anew, with the credentials
// sent, the tickets of every lease of that user, and replaces them in
// place. The agent calls it when the task's role credentials are
// refreshed, once per distinct secret.
func (s *Server) RenewNonDomainJoinedKerberosLease(ctx context.Context, req *pb.RenewNonDomainJoinedKerberosLeaseRequest) (*pb.RenewNonDomainJoinedKerberosLeaseResponse, error) {
	const call = "RenewNonDomainJoinedKerberosLease"
	reader, err := readerOf(req.GetUsername(), req.GetPassword(), req.GetDomain())
	if err != nil {
		return nil, s.status(call, err)
	}
	paths, err := s.renew(ctx, reader)
	if err != nil {
		return nil, s.status(call, err)
	}
	return &pb.RenewNonDomainJoinedKerberosLeaseResponse{RenewedKerberosFilePaths: paths}, nil
}

func (s *Server) renew(ctx context.Context, reader *spec.Secret) ([]string, error) {
	st, _, err := store.Open(s.Config.RunDirOrDefault())
	if err != nil {
		return nil, err
	}
	ls, err := st.Leases()
	if err != nil {
		return nil, err
	}
	// One fresh fetch per distinct spec, before any lease is touched: no
	// lease lock is held while a cache entry's is waited for (the renewal
	// pass takes them the other way round).
	fetched := map[string]*hook.TicketResult{}
	keyOf := map[string]string{} // spec contents -> key
	var mine []string
	for _, le := range ls {
		l := le.Lease
		if l == nil || !l.Domainless || !strings.EqualFold(l.Username, reader.Username) || !strings.EqualFold(l.Domain, reader.DomainName) {
			continue
		}
		mine = append(mine, l.ID)
		for _, t := range l.Tickets {
			if _, ok := keyOf[t.Spec]; ok {
				continue
			}
			a, err := s.admit(t.Spec, reader)
			if err != nil {
				return nil, fmt.Errorf("lease %s: %w", l.ID, err)
			}
			keyOf[t.Spec] = a.key
			if fetched[a.key] != nil {
				continue
			}
			if fetched[a.key], err = s.ticket(ctx, st, a, true); err != nil {
				return nil, fmt.Errorf("lease %s: %w", l.ID, err)
			}
		}
	}
	var paths []string
	for _, id := range mine {
		p, err := s.replace(ctx, st, id, keyOf, fetched)
		paths = append(paths, p...)
		if err != nil {
			return paths, fmt.Errorf("lease %s: %w", id, err)
		}
	}
	return paths, nil
}

// replace writes freshly fetched tickets into a lease, under its lock.
func (s *Server) replace(ctx context.Context, st *store.Store, id string, keyOf map[string]string, fetched map[string]*hook.TicketResult) ([]string, error) {
	unlock, err := st.LockLease(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	dir := st.LeaseDir(id)
	l, err := store.ReadLease(dir)
	if err != nil {
		return nil, err
	}
	var paths []string
	for i := range l.Tickets {
		t := &l.Tickets[i]
		res := fetched[keyOf[t.Spec]]
		if res == nil {
			continue
		}
		if err := store.ReplaceLeaseTicket(dir, t.Name, res.Ticket); err != nil {
			return paths, err
		}
		t.CacheKey, t.Expires, t.Renewed = res.Entry.Key, res.Entry.Expires, s.now().UTC()
		paths = append(paths, st.TicketDir(id, t.Name))
	}
	return paths, store.WriteLease(dir, l)
}

// DeleteKerberosLease removes a lease's directories; an unknown lease is
// no error (the agent may ask again after a restart).
func (s *Server) DeleteKerberosLease(ctx context.Context, req *pb.DeleteKerberosLeaseRequest) (*pb.DeleteKerberosLeaseResponse, error) {
	const call = "DeleteKerberosLease"
	id := req.GetLeaseId()
	if !store.ValidLeaseID(id) {
		return nil, s.status(call, fmt.Errorf("%w: lease id %q is not 20 hex digits", ErrRequest, id))
	}
	st, _, err := store.Open(s.Config.RunDirOrDefault())
	if err != nil {
		return nil, s.status(call, err)
	}
	unlock, err := st.LockLease(ctx, id)
	if errors.Is(err, fs.ErrNotExist) {
		return &pb.DeleteKerberosLeaseResponse{LeaseId: id}, nil
	}
	if err != nil {
		return nil, s.status(call, err)
	}
	defer unlock()
	paths, err := st.RemoveLease(id)
	if err != nil {
		return nil, s.status(call, err)
	}
	return &pb.DeleteKerberosLeaseResponse{LeaseId: id, DeletedKerberosFilePaths: paths}, nil
}

// AddKerberosArnLease is Fargate's; the EC2 agent never calls it.
func (s *Server) AddKerberosArnLease(context.Context, *pb.KerberosArnLeaseRequest) (*pb.CreateKerberosArnLeaseResponse, error) {
	return nil, status.Error(codes.Unimplemented, "gmsa-hook: AddKerberosArnLease is not implemented: the ECS agent on EC2 sends credential spec contents (AddKerberosLease, AddNonDomainJoinedKerberosLease)")
}

// RenewKerberosArnLease is Fargate's; the EC2 agent never calls it.
func (s *Server) RenewKerberosArnLease(context.Context, *pb.KerberosArnLeaseRequest) (*pb.RenewKerberosArnLeaseResponse, error) {
	return nil, status.Error(codes.Unimplemented, "gmsa-hook: RenewKerberosArnLease is not implemented: the ECS agent on EC2 never calls it")
}
