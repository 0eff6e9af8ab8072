// Package place does createRuntime's (or prestart's) work for a labelled
// container: it finds the label, applies the policy to it, gets the gMSA's
// ticket (the node's cached one, else a fetch) and places it in the
// container's directory, <RunDir>/containers/<name>/krbdir.
//
// It links no AWS SDK, LDAP or Kerberos client: package hook runs it with
// all of them plugged in (a fetch, AWS sources, containerd's labels), and
// a hook run whose ticket is in the cache runs it before they are
// initialised (cmd/gmsa-hook/internal/warm) with files only. Whatever
// needs more than files ends in an error, and the full run then does it
// all again and reports. Both runs are this one code: the policy applied
// is the same.
package place

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/hook/store"
	"github.com/gmsa-hook/gmsa-hook/spec"
	"github.com/gmsa-hook/gmsa-hook/spec/policy"
)

// ErrFullRun marks what only the full run can do: a fetch, an AWS source,
// a label only containerd's API tells.
var ErrFullRun = errors.New("needs the full run")

// Request is createRuntime (or prestart) for one container.
type Request struct {
	// Config is gmsa-hook's configuration; ConfigPath is its file, recorded
	// in meta.json for the renewer. ConfigErr, when set, is why the file
	// could not be used: a labelled container fails with it.
	Config     config.Config
	ConfigPath string
	ConfigErr  error
	// FindLabel finds the label of a container whose files do not tell
	// (containerd's labels); nil means ErrFullRun for such a container.
	FindLabel func(ctx context.Context, st *container.State, cfg *container.Config) (container.Label, error)
	// Remote reads AWS sources; nil means files only.
	Remote spec.Remote
	// Fetch gets a ticket the cache does not hold; nil means ErrFullRun,
	// without waiting for a fetch another run holds the entry's lock for.
	Fetch FetchFunc
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Admitted is a label the policy allowed: the spec it names, the
// domainless reader's secret, the rule that granted the gMSA.
type Admitted struct {
	Source string
	Spec   *spec.CredSpec
	Secret *spec.Secret
	Rule   string
}

// FetchFunc fetches the ticket of an admitted label.
type FetchFunc func(ctx context.Context, a *Admitted) (*Fetched, error)

// Fetched is a fresh ticket and what the cache records of it.
type Fetched struct {
	Cache              []byte // the MIT ccache
	Account, Realm, DC string
	Previous           bool // got with the gMSA's previous password
	Expires, RenewTill time.Time
	Steps              []Step // the fetch's own, as "fetch.<step>"
}

// Report says what a run did, for the debug log.
type Report struct {
	Stage    container.Stage
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

// Lap records the step name as taking from t0 to now, and returns now.
func (r *Report) Lap(name string, t0 time.Time) time.Time {
	now := time.Now()
	r.Steps = append(r.Steps, Step{name, now.Sub(t0)})
	return now
}

func (r *Request) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Create finds the label, fetches, places. t is when the run's steps
// began (rep.Lap).
func Create(ctx context.Context, r Request, st *container.State, rep *Report, t time.Time) error {
	cfg, err := container.ReadConfig(st.Bundle)
	if err != nil {
		return err
	}
	t = rep.Lap("config", t)
	lab, err := r.find(ctx, st, cfg)
	if err != nil {
		return err
	}
	t = rep.Lap("label", t)
	runDir := r.Config.RunDirOrDefault()
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
	adm, err := r.admit(ctx, st, cfg, lab)
	if err != nil {
		// Refused: an old ticket of this name and bundle must not stay.
		_ = container.Remove(runDir, st.ID, st.Bundle)
		return err
	}
	rep.Rule = adm.Rule
	t = rep.Lap("policy", t)
	if r.Fetch == nil && !container.OnMemoryFS(runDir) {
		// Opening the store would mount a tmpfs there, which a container
		// made before may not see: the full run says so.
		return fmt.Errorf("%w: %s is not a memory file system yet", ErrFullRun, runDir)
	}
	s, mounted, err := store.Open(runDir)
	if err != nil {
		return err
	}
	if mounted && st.Pid > 0 && !container.OnMemoryFS(fmt.Sprintf("/proc/%d/root%s", st.Pid, runDir)) {
		// The container's mount namespace was made before the tmpfs and
		// does not share mounts with the host's: createContainer would not
		// find the ticket there.
		return fmt.Errorf("%w: %s was not a memory file system; gmsa-hook mounted a tmpfs on it just now, which this container, made before, cannot see: start it again (gmsa-hook install --renewal, or a tmpfs mounted on %s at boot, avoids this)", container.ErrRunDir, runDir, runDir)
	}
	res, err := Ticket(ctx, s, r.ticketRequest(adm))
	if err != nil {
		if !errors.Is(err, ErrFullRun) {
			// A failed fetch of a new container must not leave an old ticket.
			_ = container.Remove(runDir, st.ID, st.Bundle)
		}
		return err
	}
	rep.Cached, rep.Previous = res.Cached, res.Entry.Previous
	rep.Steps = append(rep.Steps, res.Steps...)
	t = rep.Lap("fetch", t)
	entry := res.Entry
	rep.Account, rep.Expires = entry.Account+"@"+entry.Realm, entry.Expires
	m := &store.Meta{
		ID: st.ID, Bundle: st.Bundle, Source: lab.Source, Origin: lab.Origin, Config: r.ConfigPath,
		Account: entry.Account, Realm: entry.Realm, CacheKey: entry.Key, UID: owner.UID, GID: owner.GID,
		Created: r.now().UTC(), Expires: entry.Expires.UTC(), Pid: st.Pid,
	}
	if st.Pid > 0 {
		m.PidStart, _ = container.ProcessStart(st.Pid)
	}
	if err := s.Place(m, res.Ticket); err != nil {
		return err
	}
	if err := seesTicketDir(st, cfg, runDir); err != nil {
		_ = container.Remove(runDir, st.ID, st.Bundle)
		return err
	}
	t = rep.Lap("write", t)
	rep.Swept = s.Sweep(filepath.Base(dir), r.now())
	rep.Lap("sweep", t)
	return nil
}

// find looks for the credential spec where the files say it
// (container.LabelFromFiles), else with FindLabel.
func (r *Request) find(ctx context.Context, st *container.State, cfg *container.Config) (container.Label, error) {
	lab, decided, err := container.LabelFromFiles(st, cfg)
	if err != nil || decided {
		return lab, err
	}
	if r.FindLabel == nil {
		return container.Label{}, fmt.Errorf("%w: the label is not in the container's files", ErrFullRun)
	}
	return r.FindLabel(ctx, st, cfg)
}

// admit applies the policy to a label (whoever set it is not trusted):
// the source, the spec it names, the container and the reader's secret.
// Nothing reaches the network before the policy allowed the spec and the
// secret, and a refusal names the rule.
func (r *Request) admit(ctx context.Context, st *container.State, cfg *container.Config, lab container.Label) (*Admitted, error) {
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
	a, err := policy.New(r.Config).Admit(ctx, lab.Source, &ct, r.Remote)
	if err != nil {
		return nil, err
	}
	return &Admitted{Source: lab.Source, Spec: a.Spec, Secret: a.Secret, Rule: a.Rule}, nil
}

// ticketRequest asks the cache for an admitted label's ticket, valid
// beyond the renewal threshold.
func (r *Request) ticketRequest(a *Admitted) TicketRequest {
	req := TicketRequest{
		Key: CacheKey(a.Spec, a.Secret, r.Config), Entry: store.Entry{Source: a.Source, Config: r.ConfigPath},
		Threshold: r.Config.RenewThresholdOrDefault(), Now: r.Now,
	}
	if r.Fetch != nil {
		req.Fetch = func(ctx context.Context) (*Fetched, error) { return r.Fetch(ctx, a) }
	}
	return req
}

// CacheKey names the cache entry of an admitted request: everything that
// decides which ticket a fetch would get. Two containers share an entry
// only when each one's own spec, reader and settings would fetch the same
// ticket; the policy has admitted each of them before.
func CacheKey(cs *spec.CredSpec, sec *spec.Secret, c config.Config) string {
	parts := []string{"v1", cs.Account(), strings.ToLower(cs.DNSDomain()), cs.Realm(), fmt.Sprint(cs.Domainless()), cs.CredentialArn()}
	if sec != nil {
		parts = append(parts, sec.Username, strings.ToLower(sec.DomainName), sec.DistinguishedName)
	} else {
		parts = append(parts, c.Keytab, c.KeytabPrincipal)
	}
	parts = append(parts, strings.Join(c.DomainControllers, ","), c.DNSServer, c.KRB5Conf, fmt.Sprint(c.LDAPS), c.LDAPSCAFile,
		c.LDAPSecurity, fmt.Sprint(c.AllowRC4), time.Duration(c.TicketLifetime).String(), time.Duration(c.RenewLifetime).String())
	return store.Key(parts...)
}

// ErrNotBound marks a container whose runtime bound another directory
// than its ticket directory where it looks for the ticket.
var ErrNotBound = errors.New("the container does not see its ticket directory")

// seesTicketDir checks a container whose config.json binds a directory of
// run_dir where it looks for the ticket (the runtime wrapper's
// TicketMount, instead of the createContainer hook): the runtime mounted
// it before this stage, so what the container has at the mount point must
// be the very directory the ticket was placed in. It fails closed: a
// container started without its ticket would fail later, and less clearly.
func seesTicketDir(st *container.State, cfg *container.Config, runDir string) error {
	want := container.TicketDir(runDir, st.ID, st.Bundle)
	var src string
	for _, m := range cfg.Mounts {
		if path.Clean(m.Destination) == container.MountPoint && strings.HasPrefix(m.Source, runDir+"/") {
			src = m.Source
		}
	}
	if src == "" {
		return nil
	}
	if src != want {
		return fmt.Errorf("%w: config.json binds %s onto %s, not its ticket directory %s (the runtime wrapper saw another bundle path than the runtime reports, %s)", ErrNotBound, src, container.MountPoint, want, st.Bundle)
	}
	rootfs, err := cfg.Rootfs(st.Bundle)
	if err != nil {
		return err
	}
	if st.Pid <= 0 {
		return fmt.Errorf("%w: the runtime gave no process to look through (state pid %d)", ErrNotBound, st.Pid)
	}
	seen, err := os.Stat(fmt.Sprintf("/proc/%d/root%s%s", st.Pid, rootfs, container.MountPoint))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotBound, err)
	}
	placed, err := os.Stat(want)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotBound, err)
	}
	if !os.SameFile(seen, placed) {
		return fmt.Errorf("%w: what it has at %s is not %s", ErrNotBound, container.MountPoint, want)
	}
	return nil
}
