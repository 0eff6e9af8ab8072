// Package store is gmsa-hook's state on the host: one directory on a memory
// file system, shared by the hook, the renewal pass, gc and status, and
// simple to inspect with ls and cat:
//
//	<run_dir>/                          root 0711, a tmpfs (mounted here if it is not one)
//	    version                         root 0644: "1", the layout's version
//	    containers/                     root 0711
//	        <id>-<hash>/                root 0711: one container (container.Name)
//	            meta.json               root 0600: Meta
//	            krbdir/                 container user 0700, bound read-only onto
//	                krb5cc              container user 0600  /var/credentials-fetcher/krbdir
//	    cache/                          root 0700
//	        <key>/                      root 0700: one gMSA ticket, shared by the containers
//	            entry.json              root 0600: Entry     that name the same spec, reader
//	            krb5cc                  root 0600            and domain settings (Key)
//	            lock                    root 0600: flock(2) held while the entry is fetched
//	    leases/                         root 0700: the ECS agent's leases (gmsa-hook ecs)
//	        <lease>/                    root 0755: one lease, 20 hex digits (LeaseID)
//	            lease.json              root 0600: Lease
//	            lock                    root 0600: flock(2) held while lease.json is replaced
//	            <gMSA>/                 root 0755: one credential spec's ticket, the path the
//	                krb5cc              root 0644  agent binds read-only onto
//	                                               /var/credentials-fetcher/krbdir
//
// <hash> is 16 hex digits of a SHA-256 of the bundle path and the container
// ID, so the same ID under two runtimes gets two directories. Only krbdir is
// mounted into its container. The parents are 0711, not 0700: other users
// can pass through but not list them, and a container in a user namespace,
// whose root is an unprivileged host user, can still reach krbdir to mount
// it. Every file is replaced with WriteFile, so a reader (a container's
// Kerberos library, or status) never sees a part of one.
//
// A lease's ticket is readable by everyone, because the ECS agent tells
// nobody which user the task's container runs as: any user inside the
// container it is bound into may read it. No other host user can: leases/
// is root's and 0700, and the bind mount is made by root. Each ticket is a
// copy of a cache entry's, named in lease.json, and the renewal pass keeps
// it valid as it does a container's.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

// Version is the layout's version, in <run_dir>/version.
const Version = "1"

// Names in the layout.
const (
	VersionFile = "version"
	CacheDir    = "cache"
	TicketFile  = "krb5cc"
	EntryFile   = "entry.json"
	LockFile    = "lock"
)

// ErrRunDir marks an unusable run directory (container.ErrRunDir).
var ErrRunDir = container.ErrRunDir

// Store is one run directory.
type Store struct {
	Dir string
}

// Open makes the store's directories when missing and checks what was
// there: real directories of root's (or the euid's) that nobody else can
// write (container.CheckRunDir), a memory file system (mounted when
// missing, see memoryFS), and a layout version this code knows. mounted
// says that Open mounted the tmpfs just now.
func Open(runDir string) (s *Store, mounted bool, err error) {
	if !filepath.IsAbs(runDir) {
		return nil, false, fmt.Errorf("%w: run_dir %q is not an absolute path", ErrRunDir, runDir)
	}
	s = &Store{Dir: runDir}
	if err := mkdir(runDir, 0o711); err != nil {
		return nil, false, err
	}
	if err := container.CheckRunDir(runDir); err != nil {
		return nil, false, err
	}
	if mounted, err = memoryFS(runDir); err != nil {
		return nil, false, err
	}
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{container.ContainersDir, 0o711}, {CacheDir, 0o700}, {LeasesDir, 0o700}} {
		if err := mkdir(filepath.Join(runDir, d.name), d.mode); err != nil {
			return nil, mounted, err
		}
	}
	if err := container.CheckRunDir(runDir); err != nil {
		return nil, mounted, err
	}
	vf := filepath.Join(runDir, VersionFile)
	switch b, err := os.ReadFile(vf); {
	case errors.Is(err, fs.ErrNotExist):
		if err := WriteFile(vf, []byte(Version+"\n"), 0o644, -1, -1); err != nil {
			return nil, mounted, fmt.Errorf("%w: write %s: %v", ErrRunDir, vf, err)
		}
	case err != nil:
		return nil, mounted, fmt.Errorf("%w: %v", ErrRunDir, err)
	case strings.TrimSpace(string(b)) != Version:
		return nil, mounted, fmt.Errorf("%w: %s says layout version %q; this gmsa-hook knows %s", ErrRunDir, vf, strings.TrimSpace(string(b)), Version)
	}
	return s, mounted, nil
}

// mkdir makes dir with exactly mode, or leaves an existing one alone.
func mkdir(dir string, mode os.FileMode) error {
	err := os.Mkdir(dir, mode)
	if errors.Is(err, fs.ErrNotExist) {
		err = os.MkdirAll(dir, mode)
	}
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: make %s: %v", ErrRunDir, dir, err)
	}
	// The umask may have taken bits.
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("%w: make %s: %v", ErrRunDir, dir, err)
	}
	return nil
}

// makeDir makes a new directory with exactly mode (the umask may take
// bits from Mkdir's); one already there is an error (fs.ErrExist).
func makeDir(dir string, mode os.FileMode) error {
	if err := os.Mkdir(dir, mode); err != nil {
		return fmt.Errorf("make %s: %w", dir, err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("make %s: %w", dir, err)
	}
	return nil
}

// keepDir is mkdir for a directory that may exist already and must end
// as a fresh one would (a directory of root's with exactly mode), keeping
// its inode.
func keepDir(dir string, mode os.FileMode) error {
	if err := mkdir(dir, mode); err != nil {
		return err
	}
	if info, err := os.Lstat(dir); err != nil || !info.IsDir() {
		return fmt.Errorf("make %s: not a directory", dir)
	}
	if err := os.Lchown(dir, os.Geteuid(), os.Getegid()); err != nil {
		return fmt.Errorf("make %s: %w", dir, err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("make %s: %w", dir, err)
	}
	return nil
}

// ContainerDir is the directory of one container.
func (s *Store) ContainerDir(id, bundle string) string { return container.Dir(s.Dir, id, bundle) }

// Meta records one container's ticket for the renewal pass, gc and status:
// which container, where the spec came from, which cache entry it shares,
// who owns the ticket and until when it is valid.
type Meta struct {
	ID       string    `json:"id"`
	Bundle   string    `json:"bundle"`
	Source   string    `json:"credspec"`
	Origin   string    `json:"origin"`
	Config   string    `json:"config,omitempty"` // the hook's --config file
	Account  string    `json:"account"`
	Realm    string    `json:"realm"`
	CacheKey string    `json:"cache_key,omitempty"` // cache/<key> this ticket is a copy of
	UID      int       `json:"uid"`
	GID      int       `json:"gid"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	Renewed  time.Time `json:"renewed,omitzero"` // when the renewal pass last replaced the ticket
	Pid      int       `json:"pid"`
	PidStart uint64    `json:"pid_start,omitempty"` // /proc/<pid>/stat start time, against pid reuse
}

// ReadMeta reads the meta.json of a container directory.
func ReadMeta(dir string) (*Meta, error) {
	var m Meta
	if err := readJSON(filepath.Join(dir, container.MetaFile), &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// WriteMeta replaces a container directory's meta.json.
func WriteMeta(dir string, m *Meta) error {
	return writeJSON(filepath.Join(dir, container.MetaFile), m)
}

// Place writes a container's ticket (an MIT ccache) and meta.json into a
// fresh container directory. On failure nothing is left.
func (s *Store) Place(m *Meta, ticket []byte) (err error) {
	dir := s.ContainerDir(m.ID, m.Bundle)
	kd := filepath.Join(dir, container.KrbDir)
	// A directory left by an earlier container of the same name and bundle
	// (one whose poststop never ran; the hook checked it is nobody's) is
	// replaced, all but its krbdir, which the runtime wrapper made before
	// runc ran and config.json's mount already names (emptied here).
	if err := clearExcept(dir, container.KrbDir); err != nil {
		return fmt.Errorf("remove stale %s: %w", dir, err)
	}
	if err := keepDir(dir, 0o711); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if err := clearExcept(kd, ""); err != nil {
		return fmt.Errorf("remove stale %s: %w", kd, err)
	}
	if err := keepDir(kd, 0o700); err != nil {
		return err
	}
	if err := os.Chown(kd, m.UID, m.GID); err != nil {
		return fmt.Errorf("make %s: %w", kd, err)
	}
	if err := WriteFile(filepath.Join(kd, TicketFile), ticket, 0o600, m.UID, m.GID); err != nil {
		return fmt.Errorf("write credential cache %s: %w", filepath.Join(kd, TicketFile), err)
	}
	return WriteMeta(dir, m)
}

// clearExcept empties dir but for its entry keep, when that is a
// directory (not a symlink); a dir that is not a directory is removed.
// None is no error.
func clearExcept(dir, keep string) error {
	info, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return os.Remove(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == keep && e.Type().IsDir() {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// Replace puts a new ticket into a live container's directory: atomically
// inside the bound krbdir, so that the container sees it at the same path,
// owned by the container's user as before.
func Replace(dir string, m *Meta, ticket []byte) error {
	file := filepath.Join(dir, container.KrbDir, TicketFile)
	if err := WriteFile(file, ticket, 0o600, m.UID, m.GID); err != nil {
		return fmt.Errorf("write credential cache %s: %w", file, err)
	}
	return WriteMeta(dir, m)
}

// Container is one container directory as List finds it.
type Container struct {
	Name string // the directory's name, <id>-<hash>
	Dir  string
	Meta *Meta // nil when meta.json cannot be read
	Err  error // why not
}

// Containers lists the container directories.
func (s *Store) Containers() ([]Container, error) {
	root := filepath.Join(s.Dir, container.ContainersDir)
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cs []Container
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		c := Container{Name: e.Name(), Dir: filepath.Join(root, e.Name())}
		c.Meta, c.Err = ReadMeta(c.Dir)
		cs = append(cs, c)
	}
	return cs, nil
}

// SweepAge is how old a container directory must be before cleanup may
// take it: older than any create in progress.
const SweepAge = 10 * time.Minute

// Sweep removes the directories of containers that are gone but whose
// poststop never ran: crun and Podman skip it when a create fails after
// createRuntime, and a killed runtime runs nothing. A directory goes when
// its meta.json names a process that no longer exists (or another process
// now holds its pid: the start time differs): the pid is the container's
// init, recorded at create, so its end is the container's. A directory
// without a readable meta.json goes once it is older than SweepAge (a
// create may be writing it); one whose meta.json names no process (a
// runtime that gave none) is kept. except is the name of the container at
// hand. It returns the names it removed; errors are ignored, the next sweep
// tries again. A live container's directory is never removed.
func (s *Store) Sweep(except string, now time.Time) []string {
	cs, _ := s.Containers()
	var removed []string
	for _, c := range cs {
		if c.Name == except {
			continue
		}
		if m := c.Meta; m != nil {
			if m.Pid <= 0 || container.ProcessAlive(m.Pid, m.PidStart) {
				continue
			}
		} else if info, err := os.Stat(c.Dir); err != nil || now.Sub(info.ModTime()) < SweepAge {
			continue
		}
		if os.RemoveAll(c.Dir) == nil {
			removed = append(removed, c.Name)
		}
	}
	return removed
}

// filesUnder lists (up to three of) the files under dir other than the
// version file: empty directories of the layout hide nothing when a tmpfs
// is mounted over them.
func filesUnder(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || p == filepath.Join(dir, VersionFile) {
			return nil
		}
		files = append(files, strings.TrimPrefix(p, dir+"/"))
		if len(files) == 3 {
			return filepath.SkipAll
		}
		return nil
	})
	return files, err
}
