package hook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gmsa-hook/gmsa-hook/fetcher/ccache"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

// The per-container state on the host, kept simple for the renewal timer
// and garbage collector to come:
//
//	<RunDir>/                       root 0711
//	<RunDir>/containers/            root 0711
//	<RunDir>/containers/<id>/       root 0711
//	    meta.json                   root 0600: Meta
//	    krbdir/                     container user 0700, bound onto
//	        krb5cc                  container user 0600  /var/credentials-fetcher/krbdir
//
// Only krbdir is mounted into the container, so meta.json never shows
// there. The parents are 0711, not 0700: other users can pass through but
// not list them, and a container in a user namespace, whose root is an
// unprivileged host user, can still reach krbdir to mount it.
const (
	cacheFile = "krb5cc"
	metaFile  = "meta.json"
)

// Meta records one container's ticket for the renewer and garbage
// collector: which container, where the spec came from, who owns the
// ticket and until when it is valid.
type Meta struct {
	ID       string    `json:"id"`
	Bundle   string    `json:"bundle"`
	Source   string    `json:"credspec"`
	Origin   string    `json:"origin"`
	Config   string    `json:"config,omitempty"` // the hook's --config file
	Account  string    `json:"account"`
	Realm    string    `json:"realm"`
	UID      int       `json:"uid"`
	GID      int       `json:"gid"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	Pid      int       `json:"pid"`
	PidStart uint64    `json:"pid_start,omitempty"` // /proc/<pid>/stat start time, against pid reuse
}

// ReadMeta reads a container's meta.json.
func ReadMeta(runDir, id string) (*Meta, error) {
	b, err := container.ReadSmall(filepath.Join(container.Dir(runDir, id), metaFile))
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(container.Dir(runDir, id), metaFile), container.JSONProblem(err))
	}
	return &m, nil
}

// ensureRunDir makes <RunDir>/containers, root-owned 0711.
func ensureRunDir(runDir string) error {
	for _, d := range []string{runDir, filepath.Join(runDir, container.ContainersDir)} {
		err := os.Mkdir(d, 0o711)
		if errors.Is(err, fs.ErrNotExist) {
			err = os.MkdirAll(d, 0o711)
		}
		if err == nil {
			// The umask may have taken the x bits.
			if err := os.Chmod(d, 0o711); err != nil {
				return err
			}
			continue
		}
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// place writes a container's ticket and meta.json into a fresh container
// directory. On failure nothing is left.
func place(runDir string, m *Meta, cache *ccache.Cache) (err error) {
	if err := ensureRunDir(runDir); err != nil {
		return fmt.Errorf("make %s: %w", runDir, err)
	}
	dir := container.Dir(runDir, m.ID)
	// A directory left by an earlier container of the same name (one whose
	// poststop never ran) is replaced.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove stale %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o711); err != nil {
		return fmt.Errorf("make %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("make %s: %w", dir, err)
	}
	kd := filepath.Join(dir, container.KrbDir)
	if err := os.Mkdir(kd, 0o700); err != nil {
		return fmt.Errorf("make %s: %w", kd, err)
	}
	if err := os.Chown(kd, m.UID, m.GID); err != nil {
		return fmt.Errorf("make %s: %w", kd, err)
	}
	if err := ccache.WriteFile(filepath.Join(kd, cacheFile), cache, m.UID, m.GID); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return err
	}
	if err := writeRootFile(filepath.Join(dir, metaFile), append(b, '\n')); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, metaFile), err)
	}
	return nil
}

// writeRootFile writes a root-only (0600) file atomically.
func writeRootFile(path string, b []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// sweepAge is how old a container directory must be before the sweep may
// take it: older than any create in progress.
const sweepAge = 10 * time.Minute

// sweep removes the directories of containers that are gone but whose
// poststop never ran: crun and Podman skip it when a create fails after our
// createRuntime, and a killed runtime runs nothing. A directory goes when
// its meta.json names a process that no longer exists (or another process
// now holds its pid) and it is older than sweepAge, or when it has no
// readable meta.json and is older than sweepAge. It returns what it
// removed; errors are ignored, the next sweep tries again.
func sweep(runDir, except string, now time.Time) []string {
	root := filepath.Join(runDir, container.ContainersDir)
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		id := e.Name()
		if id == except || !e.IsDir() || !container.ValidID(id) {
			continue
		}
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < sweepAge {
			continue
		}
		m, err := ReadMeta(runDir, id)
		if err == nil && (now.Sub(m.Created) < sweepAge || processAlive(m.Pid, m.PidStart)) {
			continue
		}
		if os.RemoveAll(filepath.Join(root, id)) == nil {
			removed = append(removed, id)
		}
	}
	return removed
}

// processAlive reports whether pid still runs and is the process that was
// recorded (same start time). A pid of 0 is unknown: alive.
func processAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return true
	}
	s, err := processStart(pid)
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist)
	}
	return start == 0 || s == start
}

// processStart is field 22 of /proc/PID/stat: the start time in clock ticks
// after boot, which with the pid names one process.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); the start time is field 22.
	if len(f) < 20 {
		return 0, errors.New("bad /proc stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}
