package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

// Entry describes one cached gMSA ticket (cache/<key>/entry.json). It holds
// no secret: the ticket is in krb5cc beside it, root's and 0600.
type Entry struct {
	Key     string `json:"key"`
	Account string `json:"account"` // e.g. "webapp01$"
	Realm   string `json:"realm"`
	Source  string `json:"credspec"` // the label's text, for a fresh fetch
	// Spec is the credential spec's JSON when an ECS lease fetched the
	// entry (the agent sends contents, not a source): a fresh fetch admits
	// it again under the policy instead of Source.
	Spec string `json:"spec,omitempty"`
	// ReaderGiven says that the domainless reader's credentials came with
	// the ECS agent's request and were not kept: the renewal pass renews
	// the ticket but cannot fetch it anew (the agent's
	// RenewNonDomainJoinedKerberosLease does).
	ReaderGiven bool   `json:"reader_given,omitempty"`
	Config      string `json:"config,omitempty"` // the configuration file it was fetched with
	DC          string `json:"dc,omitempty"`     // where the password was last read
	// Previous says that the last fetch's ticket came with the gMSA's
	// previous password: the KDC refused the current one, as a DC that has
	// not yet applied the domain's rotation does. The next fetch tries the
	// current password first again.
	Previous  bool      `json:"previous_password,omitempty"`
	Fetched   time.Time `json:"fetched"`          // the last password read (a full fetch)
	Renewed   time.Time `json:"renewed,omitzero"` // the last TGS renewal
	Expires   time.Time `json:"expires"`
	RenewTill time.Time `json:"renew_till,omitzero"`
	// Outcome of the last renewal pass for this entry: "fetched",
	// "renewed", "valid" or "failed"; Error is the failure's one line.
	Outcome string    `json:"outcome,omitempty"`
	Error   string    `json:"error,omitempty"`
	Checked time.Time `json:"checked,omitzero"` // when a pass last looked at it
}

// Key names a cache entry: a hash of everything that decides which ticket
// a fetch gets (the gMSA and its domain, the reader and where its secret
// lies, the domain settings), so two containers share an entry only when a
// fetch for either would get the same ticket.
func Key(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func (s *Store) entryDir(key string) string { return filepath.Join(s.Dir, CacheDir, key) }

// validKey reports whether key can name a cache directory.
func validKey(key string) bool {
	if len(key) != 32 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Get returns a cache entry and its ticket; fs.ErrNotExist when there is
// none.
func (s *Store) Get(key string) (*Entry, []byte, error) {
	if !validKey(key) {
		return nil, nil, fmt.Errorf("cache key %q: %w", key, fs.ErrInvalid)
	}
	dir := s.entryDir(key)
	var e Entry
	if err := readJSON(filepath.Join(dir, EntryFile), &e); err != nil {
		return nil, nil, err
	}
	t, err := container.ReadSmall(filepath.Join(dir, TicketFile))
	if err != nil {
		return nil, nil, err
	}
	return &e, t, nil
}

// Put replaces a cache entry's ticket and description: the ticket first,
// so that an entry never describes a ticket older than the one beside it.
func (s *Store) Put(e *Entry, ticket []byte) error {
	if !validKey(e.Key) {
		return fmt.Errorf("cache key %q: %w", e.Key, fs.ErrInvalid)
	}
	dir := s.entryDir(e.Key)
	if err := mkdir(dir, 0o700); err != nil {
		return err
	}
	if ticket != nil {
		if err := WriteFile(filepath.Join(dir, TicketFile), ticket, 0o600, -1, -1); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(dir, TicketFile), err)
		}
	}
	return s.PutEntry(e)
}

// PutEntry replaces an entry's description only.
func (s *Store) PutEntry(e *Entry) error {
	return writeJSON(filepath.Join(s.entryDir(e.Key), EntryFile), e)
}

// Remove deletes a cache entry.
func (s *Store) Remove(key string) error {
	if !validKey(key) {
		return fmt.Errorf("cache key %q: %w", key, fs.ErrInvalid)
	}
	return os.RemoveAll(s.entryDir(key))
}

// Entries lists the cache's entries (those whose entry.json reads).
func (s *Store) Entries() ([]*Entry, error) {
	des, err := os.ReadDir(filepath.Join(s.Dir, CacheDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var es []*Entry
	for _, d := range des {
		if !d.IsDir() || !validKey(d.Name()) {
			continue
		}
		if e, _, err := s.Get(d.Name()); err == nil {
			es = append(es, e)
		}
	}
	return es, nil
}

// ErrLocked marks a cache entry whose lock was not had by the deadline.
var ErrLocked = errors.New("another gmsa-hook holds the cache entry's lock")

// lockPoll is how often Lock tries again while another process holds the
// lock: flock(2) itself cannot wait with a deadline.
const lockPoll = 5 * time.Millisecond

// Lock takes the cache entry's lock (flock on cache/<key>/lock), waiting
// while another process holds it, until ctx is done. The lock is the
// kernel's: a holder that dies releases it. unlock releases it.
func (s *Store) Lock(ctx context.Context, key string) (unlock func(), err error) {
	if !validKey(key) {
		return nil, fmt.Errorf("cache key %q: %w", key, fs.ErrInvalid)
	}
	dir := s.entryDir(key)
	if err := mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	return s.lock(ctx, filepath.Join(dir, LockFile))
}

// LockLease takes a lease's lock (flock on leases/<id>/lock), held while
// its lease.json is read and replaced, as Lock does for a cache entry.
func (s *Store) LockLease(ctx context.Context, id string) (unlock func(), err error) {
	if !ValidLeaseID(id) {
		return nil, fmt.Errorf("lease id %q: %w", id, fs.ErrInvalid)
	}
	return s.lock(ctx, filepath.Join(s.LeaseDir(id), LockFile))
}

func (s *Store) lock(ctx context.Context, file string) (unlock func(), err error) {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", file, err)
	}
	t := time.NewTicker(lockPoll)
	defer t.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", file, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("%w %s: %v", ErrLocked, strings.TrimPrefix(file, s.Dir+"/"), context.Cause(ctx))
		case <-t.C:
		}
	}
}
