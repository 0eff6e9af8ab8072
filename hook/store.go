package hook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gmsa-hook/gmsa-hook/fetcher/ccache"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

// The per-container state on the host, kept simple for the renewal timer
// and garbage collector to come:
//
//	<RunDir>/                       root 0711
//	<RunDir>/containers/            root 0711
//	<RunDir>/containers/<name>/     root 0711
//	    meta.json                   root 0600: Meta
//	    krbdir/                     container user 0700, bound onto
//	        krb5cc                  container user 0600  /var/credentials-fetcher/krbdir
//
// <name> is container.Name: the container ID, a dash and 16 hex digits of
// a hash of the bundle path and the ID (web1-3f2a1c0d9e8b7a6f), so that the
// same ID under two runtimes (two runc --root directories, two containerd
// namespaces), which comes with two bundles, gets two directories, and ls
// still shows which container a directory is for.
//
// Only krbdir is mounted into the container, so meta.json never shows
// there. The parents are 0711, not 0700: other users can pass through but
// not list them, and a container in a user namespace, whose root is an
// unprivileged host user, can still reach krbdir to mount it.
const (
	cacheFile = "krb5cc"
	metaFile  = container.MetaFile
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

// ReadMeta reads the meta.json of a container directory (container.Dir).
func ReadMeta(dir string) (*Meta, error) {
	file := filepath.Join(dir, metaFile)
	b, err := container.ReadSmall(file)
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", file, container.JSONProblem(err))
	}
	return &m, nil
}

// ensureRunDir makes <RunDir>/containers, root-owned 0711, and checks
// what was there already (container.CheckRunDir).
func ensureRunDir(runDir string) error {
	for _, d := range []string{runDir, filepath.Join(runDir, container.ContainersDir)} {
		err := os.Mkdir(d, 0o711)
		if errors.Is(err, fs.ErrNotExist) {
			err = os.MkdirAll(d, 0o711)
		}
		if err == nil {
			// The umask may have taken the x bits.
			if err := os.Chmod(d, 0o711); err != nil {
				return fmt.Errorf("make %s: %w", d, err)
			}
			continue
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("make %s: %w", d, err)
		}
		if err := container.CheckRunDir(runDir); err != nil {
			return err
		}
	}
	return nil
}

// place writes a container's ticket and meta.json into a fresh container
// directory. On failure nothing is left.
func place(runDir string, m *Meta, cache *ccache.Cache) (err error) {
	if err := ensureRunDir(runDir); err != nil {
		return err
	}
	dir := container.Dir(runDir, m.ID, m.Bundle)
	// A directory left by an earlier container of the same name and bundle
	// (one whose poststop never ran; create checked it is nobody's) is
	// replaced.
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
// readable meta.json and is older than sweepAge. except is the directory
// name of the container at hand. It returns the names it removed; errors
// are ignored, the next sweep tries again.
func sweep(runDir, except string, now time.Time) []string {
	root := filepath.Join(runDir, container.ContainersDir)
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if name == except || !e.IsDir() || !container.ValidID(name) {
			continue
		}
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < sweepAge {
			continue
		}
		m, err := ReadMeta(filepath.Join(root, name))
		if err == nil && (now.Sub(m.Created) < sweepAge || container.ProcessAlive(m.Pid, m.PidStart)) {
			continue
		}
		if os.RemoveAll(filepath.Join(root, name)) == nil {
			removed = append(removed, name)
		}
	}
	return removed
}
