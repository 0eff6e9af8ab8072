package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Names of the leases part of the layout.
const (
	LeasesDir = "leases"
	LeaseFile = "lease.json"
)

// Lease is one lease of the ECS agent (leases/<id>/lease.json): the
// tickets of one task's credential specs. It holds no secret: a domainless
// reader's password is never written down (the agent sends it again with
// RenewNonDomainJoinedKerberosLease).
type Lease struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Config  string    `json:"config,omitempty"` // gmsa-hook ecs's --config file
	// Domainless leases name their reader: RenewNonDomainJoinedKerberosLease
	// renews every lease of a user.
	Domainless bool          `json:"domainless,omitempty"`
	Username   string        `json:"username,omitempty"`
	Domain     string        `json:"domain,omitempty"`
	Tickets    []LeaseTicket `json:"tickets"`
	// Mounted is when a pass first found a ticket directory of the lease
	// bound into a container; Unmounted when a pass first found none bound
	// since. A lease once bound and unbound for a while belongs to a task
	// that stopped (the agent deletes it only hours later).
	Mounted   time.Time `json:"mounted,omitzero"`
	Unmounted time.Time `json:"unmounted,omitzero"`
}

// LeaseTicket is one credential spec's ticket in a lease.
type LeaseTicket struct {
	Name     string    `json:"name"` // the directory under the lease's, the gMSA's name
	Spec     string    `json:"spec"` // the credential spec's JSON, as the agent sent it
	Account  string    `json:"account"`
	Realm    string    `json:"realm"`
	CacheKey string    `json:"cache_key"` // cache/<key> this ticket is a copy of
	Expires  time.Time `json:"expires"`
	Renewed  time.Time `json:"renewed,omitzero"`
}

// NewLeaseID is a fresh lease id: 20 hex digits, as credentials-fetcher's.
func NewLeaseID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ValidLeaseID reports whether id can name a lease directory.
func ValidLeaseID(id string) bool {
	if len(id) != 20 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// LeaseDir is the directory of one lease.
func (s *Store) LeaseDir(id string) string { return filepath.Join(s.Dir, LeasesDir, id) }

// TicketDir is the directory of one of a lease's tickets: the path the
// agent binds into the task's container.
func (s *Store) TicketDir(id, name string) string { return filepath.Join(s.LeaseDir(id), name) }

// PlaceLease writes a new lease: its tickets (tickets[i] for l.Tickets[i])
// and lease.json last, so that a lease.json always describes tickets in
// place. On failure nothing is left.
func (s *Store) PlaceLease(l *Lease, tickets [][]byte) (err error) {
	if !ValidLeaseID(l.ID) {
		return fmt.Errorf("lease id %q: %w", l.ID, fs.ErrInvalid)
	}
	dir := s.LeaseDir(l.ID)
	if err := makeDir(dir, 0o755); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	for i, t := range l.Tickets {
		if !filepath.IsLocal(t.Name) || filepath.Base(t.Name) != t.Name || t.Name == LeaseFile {
			return fmt.Errorf("lease ticket name %q: %w", t.Name, fs.ErrInvalid)
		}
		td := filepath.Join(dir, t.Name)
		if err := makeDir(td, 0o755); errors.Is(err, fs.ErrExist) {
			// The same gMSA twice in one lease: one directory, one ticket.
			continue
		} else if err != nil {
			return err
		}
		if err := writeLeaseTicket(td, tickets[i]); err != nil {
			return err
		}
	}
	return WriteLease(dir, l)
}

// writeLeaseTicket replaces a lease ticket: readable by every user of the
// container it is bound into (see the package comment for why no other).
func writeLeaseTicket(dir string, ticket []byte) error {
	file := filepath.Join(dir, TicketFile)
	if err := WriteFile(file, ticket, 0o644, -1, -1); err != nil {
		return fmt.Errorf("write credential cache %s: %w", file, err)
	}
	return nil
}

// ReplaceLeaseTicket puts a new ticket into a lease's ticket directory,
// atomically, so that the task's container sees it at the same path.
func ReplaceLeaseTicket(leaseDir, name string, ticket []byte) error {
	return writeLeaseTicket(filepath.Join(leaseDir, name), ticket)
}

// WriteLease replaces a lease's lease.json.
func WriteLease(dir string, l *Lease) error {
	return writeJSON(filepath.Join(dir, LeaseFile), l)
}

// ReadLease reads a lease's lease.json.
func ReadLease(dir string) (*Lease, error) {
	var l Lease
	if err := readJSON(filepath.Join(dir, LeaseFile), &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// LeaseEntry is one lease directory as Leases finds it.
type LeaseEntry struct {
	Dir   string
	Lease *Lease // nil when lease.json cannot be read
	Err   error
}

// Leases lists the lease directories.
func (s *Store) Leases() ([]LeaseEntry, error) {
	root := filepath.Join(s.Dir, LeasesDir)
	des, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ls []LeaseEntry
	for _, d := range des {
		if !d.IsDir() || !ValidLeaseID(d.Name()) {
			continue
		}
		e := LeaseEntry{Dir: filepath.Join(root, d.Name())}
		e.Lease, e.Err = ReadLease(e.Dir)
		ls = append(ls, e)
	}
	return ls, nil
}

// RemoveLease removes a lease and returns its ticket directories; an
// unknown lease removes nothing and is no error.
func (s *Store) RemoveLease(id string) ([]string, error) {
	if !ValidLeaseID(id) {
		return nil, fmt.Errorf("lease id %q: %w", id, fs.ErrInvalid)
	}
	dir := s.LeaseDir(id)
	var paths []string
	if l, err := ReadLease(dir); err == nil {
		seen := map[string]bool{}
		for _, t := range l.Tickets {
			if !seen[t.Name] {
				seen[t.Name] = true
				paths = append(paths, filepath.Join(dir, t.Name))
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	return paths, nil
}
