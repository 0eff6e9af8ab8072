package hook

// Linux only: whether a lease is bound into a container is read from every
// mount namespace's /proc/PID/mountinfo.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gmsa-hook/gmsa-hook/hook/store"
)

// LeaseGrace is how long a lease whose tickets were bound into a container
// may go without any bound before the pass removes it: longer than a
// container restart (an ECS restart policy) takes, shorter than the agent's
// own cleanup, which deletes a stopped task's lease hours later.
const LeaseGrace = 10 * time.Minute

// sweepLeases removes the leases of ECS tasks that stopped. The agent binds
// a lease's ticket directories into the task's containers; a lease whose
// directories some mount namespace has bound is in use, and one once bound
// and bound nowhere for LeaseGrace belongs to a task that is gone. A lease
// never bound yet (its task not started) is left to the agent's delete. It
// returns what it removed, as "lease ID".
func sweepLeases(ctx context.Context, s *store.Store, now time.Time) []string {
	ls, err := s.Leases()
	if err != nil || len(ls) == 0 {
		return nil
	}
	bound, err := boundLeases(filepath.Join(s.Dir, store.LeasesDir))
	if err != nil {
		return nil // cannot tell: remove nothing
	}
	var removed []string
	for _, le := range ls {
		if le.Lease == nil {
			continue
		}
		id := le.Lease.ID
		func() {
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			unlock, err := s.LockLease(lctx, id)
			if err != nil {
				return
			}
			defer unlock()
			l, err := store.ReadLease(le.Dir)
			if err != nil {
				return
			}
			switch {
			case bound[id]:
				if l.Mounted.IsZero() || !l.Unmounted.IsZero() {
					if l.Mounted.IsZero() {
						l.Mounted = now.UTC()
					}
					l.Unmounted = time.Time{}
					_ = store.WriteLease(le.Dir, l)
				}
			case l.Mounted.IsZero():
				// Not started yet.
			case l.Unmounted.IsZero():
				l.Unmounted = now.UTC()
				_ = store.WriteLease(le.Dir, l)
			case now.Sub(l.Unmounted) >= LeaseGrace:
				if _, err := s.RemoveLease(id); err == nil {
					removed = append(removed, "lease "+id)
				}
			}
		}()
	}
	return removed
}

// boundLeases is the set of lease ids whose ticket directories (under
// leasesDir) some process's mount namespace has bound: each namespace's
// mountinfo is read once, a bind of the store's file system whose root lies
// under leases/ names the lease.
func boundLeases(leasesDir string) (map[string]bool, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(leasesDir, &st); err != nil {
		return nil, err
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	bound := map[string]bool{}
	seen := map[string]bool{}
	marker := "/" + store.LeasesDir + "/"
	for _, p := range procs {
		if p.Name()[0] < '0' || p.Name()[0] > '9' {
			continue
		}
		ns, err := os.Readlink("/proc/" + p.Name() + "/ns/mnt")
		if err != nil || seen[ns] {
			continue
		}
		seen[ns] = true
		f, err := os.Open("/proc/" + p.Name() + "/mountinfo")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			// ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ...
			fields := strings.Fields(sc.Text())
			if len(fields) < 5 || fields[2] != dev {
				continue
			}
			i := strings.Index(fields[3], marker)
			if i < 0 {
				continue
			}
			id, _, _ := strings.Cut(fields[3][i+len(marker):], "/")
			if store.ValidLeaseID(id) {
				bound[id] = true
			}
		}
		f.Close()
	}
	return bound, nil
}
