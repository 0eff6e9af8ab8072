package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gmsa-hook/gmsa-hook/hook"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/hook/store"
	"github.com/gmsa-hook/gmsa-hook/install"
)

// runRenew is "gmsa-hook renew": one renewal pass over the store, as the
// systemd timer runs it. It exits non-zero when any gMSA's ticket could not
// be renewed, naming each.
func runRenew(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("renew", stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (JSON): run_dir and renew_threshold")
	threshold := fs.Duration("threshold", 0, "renew tickets ending within `D` (default renew_threshold, 1h)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *threshold < 0 {
		return fmt.Errorf("--threshold must be positive")
	}
	if *threshold == 0 {
		*threshold = cfg.RenewThresholdOrDefault()
	}
	rep, err := hook.Renew(ctx, hook.RenewRequest{RunDir: cfg.RunDirOrDefault(), Threshold: *threshold})
	if err != nil {
		return err
	}
	printPass(stdout, rep)
	if err := rep.Failed(); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	return nil
}

// runGC is "gmsa-hook gc": what containers that are gone left behind.
func runGC(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("gc", stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (JSON): run_dir")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	rep, err := hook.GC(cfg.RunDirOrDefault(), time.Now())
	if err != nil {
		return err
	}
	printPass(stdout, rep)
	return rep.Failed()
}

func printPass(w io.Writer, rep *hook.RenewReport) {
	for _, e := range rep.Entries {
		line := fmt.Sprintf("%s@%s: %s", e.Account, e.Realm, e.Outcome)
		if !e.Expires.IsZero() && e.Outcome != "removed" {
			line += ", valid until " + e.Expires.Local().Format(time.RFC3339)
		}
		if e.Previous && e.Outcome == "fetched" {
			line += ", with the previous password (" + previousWhy + ")"
		}
		if e.Containers > 0 {
			line += fmt.Sprintf(", written to %d containers", e.Containers)
		}
		if e.Err != nil {
			line += ": " + e.Err.Error()
		}
		fmt.Fprintln(w, line)
	}
	for _, s := range rep.Swept {
		if strings.HasPrefix(s, "lease ") {
			fmt.Fprintf(w, "removed %s (its task stopped: bound into no container for %v)\n", s, hook.LeaseGrace)
			continue
		}
		fmt.Fprintf(w, "removed %s (its container is gone)\n", s)
	}
}

// Status is what "gmsa-hook status --json" prints; the schema is stable:
// fields are added, never renamed or removed, and Version changes when
// that promise breaks.
type Status struct {
	Version    string            `json:"version"` // "1"
	RunDir     string            `json:"run_dir"`
	Containers []ContainerStatus `json:"containers"`
	Leases     []LeaseStatus     `json:"leases"` // ECS agent leases (gmsa-hook ecs)
	Cache      []store.Entry     `json:"cache"`
}

// LeaseStatus is one ticket of an ECS lease.
type LeaseStatus struct {
	Lease      string    `json:"lease"`
	Dir        string    `json:"dir"` // the directory the agent binds
	Domainless bool      `json:"domainless"`
	Account    string    `json:"account"`
	Realm      string    `json:"realm"`
	Expires    time.Time `json:"expires"`
	RenewTill  time.Time `json:"renew_till,omitzero"`
	Renewed    time.Time `json:"renewed,omitzero"`
	Outcome    string    `json:"last_outcome,omitempty"`
	Error      string    `json:"last_error,omitempty"`
	CacheKey   string    `json:"cache_key,omitempty"`
}

// ContainerStatus is one container's ticket.
type ContainerStatus struct {
	ID        string    `json:"id"`
	Dir       string    `json:"dir"` // its directory under run_dir/containers
	Engine    string    `json:"engine"`
	Bundle    string    `json:"bundle"`
	Account   string    `json:"account"`
	Realm     string    `json:"realm"`
	UID       int       `json:"uid"`
	GID       int       `json:"gid"`
	Expires   time.Time `json:"expires"`
	RenewTill time.Time `json:"renew_till,omitzero"`
	Renewed   time.Time `json:"renewed,omitzero"` // last renewal written into it
	Outcome   string    `json:"last_outcome,omitempty"`
	Error     string    `json:"last_error,omitempty"`
	Alive     bool      `json:"alive"` // its process still runs
	CacheKey  string    `json:"cache_key,omitempty"`
}

// engineOf tells which engine made a bundle.
func engineOf(bundle, id string) string {
	if ns, ok := container.ContainerdNamespace(bundle, id); ok {
		if ns == "moby" {
			return "docker"
		}
		return "containerd/" + ns
	}
	if strings.Contains(bundle, "/overlay-containers/") {
		return "podman"
	}
	return "oci"
}

// runStatus is "gmsa-hook status [--json]": every ticket in the store.
func runStatus(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (JSON): run_dir")
	asJSON := fs.Bool("json", false, "print JSON (a stable schema)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	st := Status{Version: "1", RunDir: cfg.RunDirOrDefault(), Containers: []ContainerStatus{}, Leases: []LeaseStatus{}, Cache: []store.Entry{}}
	s := &store.Store{Dir: st.RunDir}
	entries, err := s.Entries()
	if err != nil {
		return fmt.Errorf("%w: %v", hook.ErrRunDir, err)
	}
	byKey := map[string]*store.Entry{}
	for _, e := range entries {
		st.Cache = append(st.Cache, *e)
		byKey[e.Key] = e
	}
	cs, err := s.Containers()
	if err != nil {
		return fmt.Errorf("%w: %v", hook.ErrRunDir, err)
	}
	for _, c := range cs {
		if c.Meta == nil {
			continue
		}
		m := c.Meta
		cst := ContainerStatus{ID: m.ID, Dir: filepath.Base(c.Dir), Engine: engineOf(m.Bundle, m.ID), Bundle: m.Bundle,
			Account: m.Account, Realm: m.Realm, UID: m.UID, GID: m.GID, Expires: m.Expires, Renewed: m.Renewed,
			Alive: container.ProcessAlive(m.Pid, m.PidStart), CacheKey: m.CacheKey}
		if e := byKey[m.CacheKey]; e != nil {
			cst.RenewTill, cst.Outcome, cst.Error = e.RenewTill, e.Outcome, e.Error
		}
		st.Containers = append(st.Containers, cst)
	}
	ls, err := s.Leases()
	if err != nil {
		return fmt.Errorf("%w: %v", hook.ErrRunDir, err)
	}
	for _, l := range ls {
		if l.Lease == nil {
			continue
		}
		for _, t := range l.Lease.Tickets {
			lst := LeaseStatus{Lease: l.Lease.ID, Dir: s.TicketDir(l.Lease.ID, t.Name), Domainless: l.Lease.Domainless,
				Account: t.Account, Realm: t.Realm, Expires: t.Expires, Renewed: t.Renewed, CacheKey: t.CacheKey}
			if e := byKey[t.CacheKey]; e != nil {
				lst.RenewTill, lst.Outcome, lst.Error = e.RenewTill, e.Outcome, e.Error
			}
			st.Leases = append(st.Leases, lst)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER\tENGINE\tGMSA\tUID\tEXPIRES\tRENEWED\tLAST\tALIVE")
	for _, c := range st.Containers {
		fmt.Fprintf(tw, "%s\t%s\t%s@%s\t%d\t%s\t%s\t%s\t%v\n", container.Short(c.ID), c.Engine, c.Account, c.Realm, c.UID,
			stamp(c.Expires), stamp(c.Renewed), dash(c.Outcome), c.Alive)
	}
	tw.Flush()
	if len(st.Leases) > 0 {
		fmt.Fprintln(stdout)
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ECS LEASE\tGMSA\tEXPIRES\tRENEWED\tLAST")
		for _, l := range st.Leases {
			fmt.Fprintf(tw, "%s\t%s@%s\t%s\t%s\t%s\n", l.Lease, l.Account, l.Realm, stamp(l.Expires), stamp(l.Renewed), dash(l.Outcome))
		}
		tw.Flush()
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CACHE\tGMSA\tEXPIRES\tRENEW-TILL\tLAST\tERROR")
	for _, e := range st.Cache {
		fmt.Fprintf(tw, "%s\t%s@%s\t%s\t%s\t%s\t%s\n", e.Key[:12], e.Account, e.Realm, stamp(e.Expires), stamp(e.RenewTill), lastOf(e), dash(e.Error))
	}
	return tw.Flush()
}

// lastOf is a cache entry's LAST column: the pass's outcome, and whether
// its ticket came with the previous password.
func lastOf(e store.Entry) string {
	if e.Previous {
		return dash(e.Outcome) + " (previous password)"
	}
	return dash(e.Outcome)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// runInstallRenewal is "gmsa-hook install --renewal [--unit-dir DIR]
// [--config FILE]": the systemd timer of the renewal pass, and the store's
// tmpfs mounted now, before any container is made.
func runInstallRenewal(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("install --renewal", stderr)
	fs.Bool("renewal", true, "install the renewal timer units")
	unitDir := fs.String("unit-dir", install.DefaultUnitDir, "systemd unit `DIR`")
	cfgPath := fs.String("config", "", "configuration `FILE` the renewal pass reads")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	var h install.Hooks
	if *cfgPath != "" {
		if h.Config, err = filepath.Abs(*cfgPath); err != nil {
			return err
		}
	}
	if h.Binary, err = os.Executable(); err != nil {
		return fmt.Errorf("install: find the gmsa-hook binary: %w", err)
	}
	_, mounted, err := store.Open(cfg.RunDirOrDefault())
	if err != nil {
		return err
	}
	if mounted {
		fmt.Fprintf(stdout, "mounted a tmpfs on %s: tickets never reach the disk (mount one there at boot, e.g. in /etc/fstab, where /run is not a tmpfs)\n", cfg.RunDirOrDefault())
	}
	written, err := install.Renewal(*unitDir, h)
	if err != nil {
		return err
	}
	if len(written) == 0 {
		fmt.Fprintf(stdout, "the renewal units in %s are up to date\n", *unitDir)
		return nil
	}
	fmt.Fprintf(stdout, "wrote %s\nthen run: systemctl daemon-reload && systemctl enable --now %s\n", strings.Join(written, " "), install.RenewTimer)
	return nil
}
