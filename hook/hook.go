// Package hook is gmsa-hook's OCI runtime hook: it reads the container state
// the runtime writes on stdin and the bundle's config.json, decides whether
// the container asked for a gMSA ticket (a "credentialspec" annotation or
// label), and at each stage does its part:
//
//	createRuntime (or prestart)  fetch the ticket in the host namespaces and
//	                             write it to <RunDir>/containers/<name>/krbdir
//	                             (<name> is the ID and a hash of the bundle
//	                             path: container.Name)
//	createContainer              bind that directory read-only onto
//	                             /var/credentials-fetcher/krbdir in the rootfs
//	poststop                     remove the container's directory
//
// A container without the label costs a read of stdin and config.json. A
// labelled container whose ticket cannot be had does not start: every stage
// removes what it made before failing, because crun and Podman do not run
// poststop after a failed create.
package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/hook/place"
)

// Stage is an OCI hook stage the hook acts at (container.Stage, which the
// quick run shares).
type Stage = container.Stage

// The stages. Prestart is createRuntime for runtimes that lack it; when a
// runtime runs both, the second finds the ticket in place and does nothing.
const (
	CreateRuntime   = container.CreateRuntime
	Prestart        = container.Prestart
	CreateContainer = container.CreateContainer
	Poststop        = container.Poststop
)

// Stages lists the stages in the order a runtime runs them.
var Stages = container.Stages

// ErrRunDir marks an unusable run_dir (container.ErrRunDir).
var ErrRunDir = container.ErrRunDir

// ErrMount marks a failed mount of the ticket directory.
var ErrMount = container.ErrMount

// ErrNoTicket marks a labelled container that reached createContainer
// without a ticket: the createRuntime (or prestart) hook did not run.
var ErrNoTicket = errors.New("labelled container without a ticket")

// ErrInUse marks a container directory that another container's running
// process holds (container.ErrInUse).
var ErrInUse = container.ErrInUse

// ErrStage marks an unknown stage name.
var ErrStage = errors.New("unknown hook stage")

// ParseStage reads a stage name as it appears in config.json's hooks.
func ParseStage(s string) (Stage, error) {
	for _, st := range Stages {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("%w %q (want createRuntime, prestart, createContainer or poststop)", ErrStage, s)
}

// FetchFunc gets a ticket for a request the policy admitted (its Spec, and
// Secret for a domainless spec, already read).
type FetchFunc func(ctx context.Context, req fetcher.Request) (*fetcher.Result, error)

// Request is one hook run.
type Request struct {
	Stage Stage
	// State is the runtime's container state (the hook's stdin).
	State io.Reader
	// Config is gmsa-hook's configuration; ConfigPath is its file, recorded
	// in meta.json for the renewer.
	Config     fetcher.Config
	ConfigPath string
	// ConfigErr, when set, is why the configuration file could not be
	// used: a labelled container fails with it, an unlabelled one does not
	// (Config then holds only the file's run_dir).
	ConfigErr error
	// Fetch gets the ticket; nil means fetcher.Fetch.
	Fetch FetchFunc
	// ContainerdAddress is containerd's socket; empty means the one the
	// container's shim was started with, else the default.
	ContainerdAddress string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Report says what a run did, for the debug log.
type Report = place.Report

// Step is a timed part of a run.
type Step = place.Step

// Error is a failed run for one container.
type Error struct {
	ID  string
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("container %s: %v", container.Short(e.ID), e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Run runs one stage. The report is never nil; it holds what was learnt
// even when the run failed.
func Run(ctx context.Context, req Request) (*Report, error) {
	// The hook gives up on its own, before the runtime's hook timeout
	// (install sets it 5 s above the fetch timeout): a runtime that kills a
	// hook drops its stderr, and the operator would not learn why.
	ctx, cancel := context.WithTimeout(ctx, req.Config.TimeoutOrDefault()+containerdTimeout+time.Second)
	defer cancel()
	rep := &Report{Stage: req.Stage}
	t := time.Now()
	defer func(start time.Time) { rep.Total = time.Since(start) }(t)
	st, err := container.ReadState(req.State)
	if err != nil {
		return rep, fmt.Errorf("read container state from stdin: %w", err)
	}
	rep.ID, rep.Pid, rep.Bundle = st.ID, st.Pid, st.Bundle
	t = rep.Lap("state", t)
	// Each stage runs in another working directory: a relative run_dir
	// would put the ticket where createContainer does not look.
	if !filepath.IsAbs(req.runDir()) {
		return rep, &Error{ID: st.ID, Err: fmt.Errorf("%w: run_dir %q is not an absolute path", ErrRunDir, req.runDir())}
	}
	switch req.Stage {
	case CreateRuntime, Prestart:
		err = req.create(ctx, st, rep, t)
	case CreateContainer:
		err = req.mount(st, rep, t)
	case Poststop:
		err = req.poststop(st, rep, t)
	default:
		err = fmt.Errorf("%w %q", ErrStage, req.Stage)
	}
	if err != nil {
		return rep, &Error{ID: st.ID, Err: err}
	}
	return rep, nil
}

func (r *Request) runDir() string { return r.Config.RunDirOrDefault() }

// create is createRuntime and prestart: find the label, fetch, place
// (package place), with every source and a fetch.
func (r *Request) create(ctx context.Context, st *container.State, rep *Report, t time.Time) error {
	remote := newRemote(r.Config)
	return place.Create(ctx, place.Request{
		Config: r.Config, ConfigPath: r.ConfigPath, ConfigErr: r.ConfigErr,
		FindLabel: r.find, Remote: remote, Now: r.Now,
		Fetch: func(ctx context.Context, a *place.Admitted) (*place.Fetched, error) {
			return fetchTicket(ctx, r.Fetch, fetcher.Request{Source: a.Source, Spec: a.Spec, Secret: a.Secret, Config: r.Config, Remote: remote})
		},
	}, st, rep, t)
}

// CacheKey names the cache entry of an admitted request (place.CacheKey).
func CacheKey(req *fetcher.Request) string { return place.CacheKey(req.Spec, req.Secret, req.Config) }

// mount is createContainer: a container with a placed ticket directory gets
// it mounted; one without is not labelled. A failed mount removes the
// directory, since the container will not start.
func (r *Request) mount(st *container.State, rep *Report, t time.Time) error {
	runDir := r.runDir()
	src := container.TicketDir(runDir, st.ID, st.Bundle)
	if _, err := os.Lstat(src); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("find ticket directory: %w", err)
		}
		// Not labelled, as far as createRuntime saw. An annotation says
		// otherwise when createRuntime never ran: fail, do not start the
		// container without its ticket.
		if v := st.Annotations[container.Key]; v != "" {
			rep.Labelled, rep.Source, rep.Origin = true, v, container.FromState
			return fmt.Errorf("%w: %s has no ticket directory", ErrNoTicket, runDir)
		}
		return nil
	}
	rep.Labelled = true
	err := func() error {
		cfg, err := container.ReadConfig(st.Bundle)
		if err != nil {
			return err
		}
		rootfs, err := cfg.Rootfs(st.Bundle)
		if err != nil {
			return err
		}
		t = rep.Lap("config", t)
		if err := container.MountTicketDir(src, rootfs); err != nil {
			return err
		}
		rep.Lap("mount", t)
		return nil
	}()
	if err != nil {
		_ = container.Remove(runDir, st.ID, st.Bundle)
		return err
	}
	return nil
}

// poststop removes the container's directory; none is no error. One that
// another container's running process holds (the same ID and bundle under
// another runtime) stays, and the error says so.
func (r *Request) poststop(st *container.State, rep *Report, t time.Time) error {
	runDir := r.runDir()
	dir := container.Dir(runDir, st.ID, st.Bundle)
	if _, err := os.Lstat(dir); err != nil {
		return nil
	}
	rep.Labelled = true
	if err := container.CheckRunDir(runDir); err != nil {
		return err
	}
	if err := container.InUse(dir, st.Pid); err != nil {
		return err
	}
	if err := container.Remove(runDir, st.ID, st.Bundle); err != nil {
		return err
	}
	rep.Lap("remove", t)
	return nil
}
