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
	"strings"
	"time"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/hook/store"
	"github.com/gmsa-hook/gmsa-hook/spec/policy"
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
type Report struct {
	Stage    Stage
	ID       string
	Labelled bool
	Source   string
	Origin   string
	Rule     string // the policy rule that granted the gMSA, if any
	Account  string
	Owner    container.Owner
	Expires  time.Time
	Cached   bool     // the ticket came from the node's cache
	Previous bool     // it was fetched with the gMSA's previous password (store.Entry.Previous)
	Skipped  string   // why a labelled stage did nothing, e.g. "already fetched"
	Swept    []string // leftover directories removed
	Steps    []Step
	Pid      int
	Bundle   string
	// Total is the run's time from reading stdin to the end.
	Total time.Duration
}

// Step is a timed part of a run.
type Step struct {
	Name    string
	Elapsed time.Duration
}

func (r *Report) step(name string, t0 time.Time) time.Time {
	now := time.Now()
	r.Steps = append(r.Steps, Step{name, now.Sub(t0)})
	return now
}

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
	t = rep.step("state", t)
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

func (r *Request) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// create is createRuntime and prestart: find the label, fetch, place.
func (r *Request) create(ctx context.Context, st *container.State, rep *Report, t time.Time) error {
	cfg, err := container.ReadConfig(st.Bundle)
	if err != nil {
		return err
	}
	t = rep.step("config", t)
	lab, err := r.find(ctx, st, cfg)
	if err != nil {
		return err
	}
	t = rep.step("label", t)
	runDir := r.runDir()
	dir := container.Dir(runDir, st.ID, st.Bundle)
	_, err = os.Lstat(dir)
	exists := err == nil
	if exists {
		if err := container.CheckRunDir(runDir); err != nil {
			return err
		}
		// The directory of this container's own earlier stage, of an
		// earlier container of the same name and bundle that is gone (both
		// ours to replace), or of one that runs under another runtime.
		if err := container.InUse(dir, st.Pid); err != nil {
			return err
		}
	}
	if lab.Source == "" {
		// A directory of an earlier labelled container of the same name
		// must not be mounted into this one.
		if exists {
			if err := container.Remove(runDir, st.ID, st.Bundle); err != nil {
				return err
			}
		}
		return nil
	}
	rep.Labelled, rep.Source, rep.Origin = true, lab.Source, lab.Origin
	if r.ConfigErr != nil {
		return r.ConfigErr
	}
	// Both createRuntime and prestart may be configured: the second finds
	// the ticket placed for this very process and keeps it.
	if m, err := store.ReadMeta(dir); err == nil && st.Pid > 0 && m.Pid == st.Pid && m.Source == lab.Source {
		if _, err := os.Stat(filepath.Join(dir, container.KrbDir, store.TicketFile)); err == nil {
			rep.Skipped = "already fetched at an earlier stage"
			rep.Account, rep.Owner, rep.Expires = m.Account+"@"+m.Realm, container.Owner{UID: m.UID, GID: m.GID}, m.Expires
			return nil
		}
	}
	owner, err := cfg.Owner(st.Pid)
	if err != nil {
		return fmt.Errorf("ticket owner: %w", err)
	}
	rep.Owner = owner
	freq, rule, err := r.admit(ctx, st, cfg, lab)
	if err != nil {
		// Refused: an old ticket of this name and bundle must not stay.
		_ = container.Remove(runDir, st.ID, st.Bundle)
		return err
	}
	rep.Rule = rule
	t = rep.step("policy", t)
	s, mounted, err := store.Open(runDir)
	if err != nil {
		return err
	}
	if mounted && st.Pid > 0 && !store.OnMemoryFS(fmt.Sprintf("/proc/%d/root%s", st.Pid, runDir)) {
		// The container's mount namespace was made before the tmpfs and
		// does not share mounts with the host's: createContainer would not
		// find the ticket there.
		return fmt.Errorf("%w: %s was not a memory file system; gmsa-hook mounted a tmpfs on it just now, which this container, made before, cannot see: start it again (gmsa-hook install --renewal, or a tmpfs mounted on %s at boot, avoids this)", ErrRunDir, runDir, runDir)
	}
	ticket, entry, err := r.ticket(ctx, s, freq, lab, rep)
	if err != nil {
		// A failed fetch of a new container must not leave an old ticket.
		_ = container.Remove(runDir, st.ID, st.Bundle)
		return err
	}
	t = rep.step("fetch", t)
	rep.Account, rep.Expires = entry.Account+"@"+entry.Realm, entry.Expires
	m := &store.Meta{
		ID: st.ID, Bundle: st.Bundle, Source: lab.Source, Origin: lab.Origin, Config: r.ConfigPath,
		Account: entry.Account, Realm: entry.Realm, CacheKey: entry.Key, UID: owner.UID, GID: owner.GID,
		Created: r.now().UTC(), Expires: entry.Expires.UTC(), Pid: st.Pid,
	}
	if st.Pid > 0 {
		m.PidStart, _ = container.ProcessStart(st.Pid)
	}
	if err := s.Place(m, ticket); err != nil {
		return err
	}
	t = rep.step("write", t)
	rep.Swept = s.Sweep(filepath.Base(dir), r.now())
	rep.step("sweep", t)
	return nil
}

// ticket is the gMSA's ticket for an admitted request (Ticket), from the
// node's cache when it is valid beyond the renewal threshold.
func (r *Request) ticket(ctx context.Context, s *store.Store, freq *fetcher.Request, lab container.Label, rep *Report) ([]byte, *store.Entry, error) {
	res, err := Ticket(ctx, s, TicketRequest{
		Key: CacheKey(freq), Fetch: freq, Entry: store.Entry{Source: lab.Source, Config: r.ConfigPath},
		Threshold: r.Config.RenewThresholdOrDefault(), FetchFunc: r.Fetch, Now: r.Now,
	})
	if err != nil {
		return nil, nil, err
	}
	rep.Cached, rep.Previous = res.Cached, res.Entry.Previous
	rep.Steps = append(rep.Steps, res.Steps...)
	return res.Ticket, res.Entry, nil
}

// CacheKey names the cache entry of an admitted request: everything that
// decides which ticket a fetch would get. Two containers share an entry
// only when each one's own spec, reader and settings would fetch the same
// ticket; the policy has admitted each of them before.
func CacheKey(req *fetcher.Request) string {
	cs, c := req.Spec, req.Config
	parts := []string{"v1", cs.Account(), strings.ToLower(cs.DNSDomain()), cs.Realm(), fmt.Sprint(cs.Domainless()), cs.CredentialArn()}
	if sec := req.Secret; sec != nil {
		parts = append(parts, sec.Username, strings.ToLower(sec.DomainName), sec.DistinguishedName)
	} else {
		parts = append(parts, c.Keytab, c.KeytabPrincipal)
	}
	parts = append(parts, strings.Join(c.DomainControllers, ","), c.DNSServer, c.KRB5Conf, fmt.Sprint(c.LDAPS), c.LDAPSCAFile,
		c.LDAPSecurity, fmt.Sprint(c.AllowRC4), time.Duration(c.TicketLifetime).String(), time.Duration(c.RenewLifetime).String())
	return store.Key(parts...)
}

// admit applies the policy to a label (whoever set it is not trusted):
// the source, the spec it names, the container and the reader's secret.
// Nothing reaches the network before the policy allowed the spec and the
// secret, and a refusal names the rule.
func (r *Request) admit(ctx context.Context, st *container.State, cfg *container.Config, lab container.Label) (*fetcher.Request, string, error) {
	remote := newRemote(r.Config)
	ct := policy.Container{Annotations: map[string]string{}, Labels: lab.Labels}
	if ct.Labels == nil {
		ct.Labels = container.DockerLabels(st, cfg)
	}
	for k, v := range cfg.Annotations {
		ct.Annotations[k] = v
	}
	for k, v := range st.Annotations {
		ct.Annotations[k] = v
	}
	ct.ContainerdNamespace, _ = container.ContainerdNamespace(st.Bundle, st.ID)
	a, err := policy.New(r.Config).Admit(ctx, lab.Source, &ct, remote)
	if err != nil {
		return nil, "", err
	}
	req := &fetcher.Request{Source: lab.Source, Spec: a.Spec, Secret: a.Secret, Config: r.Config, Remote: remote}
	rule := a.Rule
	return req, rule, nil
}

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
		t = rep.step("config", t)
		if err := container.MountTicketDir(src, rootfs); err != nil {
			return err
		}
		rep.step("mount", t)
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
	rep.step("remove", t)
	return nil
}
