package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	krbconfig "github.com/jcmturner/gokrb5/v8/config"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/fetcher/kdc"
	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/hook/store"
	"github.com/gmsa-hook/gmsa-hook/hook/wrapper"
	"github.com/gmsa-hook/gmsa-hook/install"
	"github.com/gmsa-hook/gmsa-hook/spec"
	"github.com/gmsa-hook/gmsa-hook/spec/awsremote"
	"github.com/gmsa-hook/gmsa-hook/spec/policy"
)

// doctorState is what the steps learn, for the steps after them.
type doctorState struct {
	cfgPath  string
	cfg      config.Config
	src      string // --credspec
	cs       *spec.CredSpec
	secret   *spec.Secret
	dcs      *fetcher.DCs
	desc     *fetcher.Description
	descErr  error
	hooksDir []string
	bundles  []string
	unitDir  string
	// Where the engine installs write (install's flags of the same names).
	daemonJSON, ctrdConfig, wrapper string
	remote                          spec.Remote
	// took, when a step sets it, is the step's own time inside a larger
	// exchange (the login, bind and read of one Describe).
	took time.Duration
}

// doctorStep is one line of gmsa-hook doctor. A step runs only when the
// steps it needs passed; otherwise it is skipped and says which failed.
// A step that returns a warning (warned) passes with status warn. New
// checks (the ECS socket units, daemon.json and containerd's config) slot
// in as rows.
type doctorStep struct {
	name  string
	needs []string
	run   func(ctx context.Context, st *doctorState) (detail string, err error)
}

var doctorSteps = []doctorStep{
	{name: "config", run: stepConfig},
	{name: "krb5.conf", needs: []string{"config"}, run: stepKRB5Conf},
	{name: "credential spec", needs: []string{"config"}, run: stepCredspec},
	{name: "domain controllers", needs: []string{"credential spec"}, run: stepLocate},
	{name: "ports", needs: []string{"domain controllers"}, run: stepPorts},
	{name: "clock", needs: []string{"ports"}, run: stepClock},
	{name: "reader credentials", needs: []string{"credential spec"}, run: stepReader},
	{name: "reader login", needs: []string{"ports", "reader credentials"}, run: stepLogin},
	{name: "sealed bind", needs: []string{"reader login"}, run: stepBind},
	{name: "gMSA found", needs: []string{"sealed bind"}, run: stepFound},
	{name: "gMSA enabled", needs: []string{"gMSA found"}, run: stepEnabled},
	{name: "gMSA readable", needs: []string{"gMSA found"}, run: stepReadable},
	{name: "gMSA ticket", needs: []string{"gMSA enabled", "gMSA readable"}, run: stepTicket},
	{name: "policy", needs: []string{"credential spec"}, run: stepPolicy},
	{name: "runtime wiring", needs: []string{"config"}, run: stepWiring},
	{name: "renewal timer", needs: []string{"config"}, run: stepRenewal},
	{name: "ecs units", needs: []string{"config"}, run: stepECS},
	{name: "store", needs: []string{"config"}, run: stepStore},
}

// warning is a step's finding that does not fail it.
type warning struct{ err error }

func (w warning) Error() string { return w.err.Error() }
func (w warning) Unwrap() error { return w.err }

func warned(err error) error { return warning{err} }

// Conditions of the doctor's own steps that have a fix.
var (
	errNoRenewal   = errors.New("the renewal timer is not installed as this gmsa-hook would install it")
	errNoStore     = errors.New("the store is not set up")
	errRenewFailed = errors.New("the last renewal pass failed")
	errAwaitingGC  = errors.New("containers that are gone await gc")
	errECSUnits    = errors.New("the ECS units are not as this gmsa-hook would install them")
)

// errNoWiring marks a host where no runtime runs gmsa-hook.
var errNoWiring = errors.New("no runtime runs gmsa-hook")

// errNoCredspec is a step that needs the spec when none was given.
var errNoCredspec = errors.New("no --credspec given")

// defaultHooksDirs are where Podman and CRI-O read hooks.d files.
var defaultHooksDirs = []string{"/usr/share/containers/oci/hooks.d", "/etc/containers/oci/hooks.d"}

// runDoctor walks the path a ticket takes, step by step.
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("doctor", stderr)
	st := &doctorState{}
	fs.StringVar(&st.src, "credspec", "", "the credential spec `SOURCE` a container is labelled with")
	fs.StringVar(&st.cfgPath, "config", "", "configuration `FILE` (JSON)")
	fs.Func("hooks-dir", "a hooks.d `DIR` to look for gmsa-hook's files in (repeatable; default the Podman and CRI-O directories)", func(s string) error {
		st.hooksDir = append(st.hooksDir, s)
		return nil
	})
	fs.Func("bundle", "an OCI bundle `DIR` whose config.json should run gmsa-hook (repeatable)", func(s string) error {
		st.bundles = append(st.bundles, s)
		return nil
	})
	fs.StringVar(&st.unitDir, "unit-dir", install.DefaultUnitDir, "the systemd unit `DIR` gmsa-hook install --renewal wrote the renewal units to")
	fs.StringVar(&st.daemonJSON, "daemon-json", "/etc/docker/daemon.json", "Docker's daemon.json `FILE`")
	fs.StringVar(&st.ctrdConfig, "containerd-config", "/etc/containerd/config.toml", "containerd's config.toml `FILE`")
	fs.StringVar(&st.wrapper, "wrapper", "/usr/local/lib/gmsa-hook/gmsa-runc", "the runtime wrapper's `PATH`, as given to install")
	asJSON := fs.Bool("json", false, "print the steps as one JSON object")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(st.hooksDir) == 0 {
		st.hooksDir = defaultHooksDirs
	}
	found := walk(ctx, st, doctorSteps)
	if *asJSON {
		type jsonStep struct {
			Name      string   `json:"name"`
			Status    string   `json:"status"`
			ElapsedMS float64  `json:"elapsed_ms"`
			Detail    string   `json:"detail,omitempty"`
			Error     string   `json:"error,omitempty"`
			Hints     []string `json:"hints,omitempty"`
		}
		out := struct {
			OK    bool       `json:"ok"`
			Steps []jsonStep `json:"steps"`
		}{OK: true, Steps: []jsonStep{}}
		for _, f := range found {
			j := jsonStep{Name: f.Name, Status: f.Status, ElapsedMS: ms(f.Elapsed), Detail: f.Detail}
			if f.Err != nil {
				j.Error, j.Hints = f.Err.Error(), hints(f.Err)
			}
			out.OK = out.OK && f.Status != statusFail
			out.Steps = append(out.Steps, j)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printFindings(stdout, found, true)
	}
	return failed("doctor", found)
}

// walk runs the steps in order.
func walk(ctx context.Context, st *doctorState, steps []doctorStep) []finding {
	passed := map[string]bool{}
	var out []finding
	for _, s := range steps {
		f := finding{Name: s.name}
		var missing []string
		for _, n := range s.needs {
			if !passed[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			f.Status, f.Detail = statusSkip, "needs "+strings.Join(missing, ", ")
			out = append(out, f)
			continue
		}
		start := time.Now()
		st.took = 0
		detail, err := s.run(ctx, st)
		f.Elapsed, f.Detail, f.Err = time.Since(start), detail, err
		if st.took > 0 {
			f.Elapsed = st.took
		}
		var w warning
		switch {
		case errors.Is(err, errNoCredspec):
			f.Status, f.Detail, f.Err, f.Elapsed = statusSkip, err.Error(), nil, 0
		case errors.As(err, &w):
			f.Status = statusWarn
			passed[s.name] = true
		case err != nil:
			f.Status = statusFail
		default:
			f.Status = statusPass
			passed[s.name] = true
		}
		out = append(out, f)
	}
	return out
}

func stepConfig(ctx context.Context, st *doctorState) (string, error) {
	if st.cfgPath == "" {
		return "no --config: defaults", nil
	}
	cfg, err := config.Load(st.cfgPath)
	if err != nil {
		return "", err
	}
	st.cfg = cfg
	st.remote = awsremote.New(cfg.AWS)
	return st.cfgPath, nil
}

func stepKRB5Conf(ctx context.Context, st *doctorState) (string, error) {
	path := st.cfg.KRB5ConfOrDefault()
	kc, err := krbconfig.Load(path)
	if err != nil {
		if len(st.cfg.DomainControllers) > 0 || errors.Is(err, os.ErrNotExist) {
			// Only a fallback when DNS has no SRV records.
			return fmt.Sprintf("%s not read (%v): dns srv records or domain_controllers must find the dcs", path, firstLine(err)), nil
		}
		return "", fmt.Errorf("krb5 config %s: %w", path, err)
	}
	var realms []string
	for _, r := range kc.Realms {
		realms = append(realms, r.Realm)
	}
	return fmt.Sprintf("%s: realms %s", path, strings.Join(realms, " ")), nil
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

func stepCredspec(ctx context.Context, st *doctorState) (string, error) {
	if st.src == "" {
		return "", errNoCredspec
	}
	if st.remote == nil {
		st.remote = awsremote.New(st.cfg.AWS)
	}
	// A label names a spec as the policy reads it (file://NAME.json in the
	// credential spec directory); a path the operator gives is read as
	// fetch reads it. The policy's decision is its own step.
	pol := policy.New(st.cfg)
	if l, err := pol.Source(st.src); err == nil {
		cs, err := pol.Load(ctx, l, st.remote)
		if err != nil {
			return "", fmt.Errorf("read credential spec: %w", err)
		}
		st.cs = cs
	} else {
		cs, err := loadSpec(ctx, st.src, st.remote)
		if err != nil {
			return "", err
		}
		st.cs = cs
	}
	mode := "domain-joined"
	if st.cs.Domainless() {
		mode = "domainless, reader in " + st.cs.CredentialArn()
	}
	return fmt.Sprintf("gMSA %q of %s (%s)", st.cs.Account(), st.cs.DNSDomain(), mode), nil
}

func stepLocate(ctx context.Context, st *doctorState) (string, error) {
	d, err := fetcher.Locate(ctx, st.cfg, st.cs.DNSDomain())
	if err != nil {
		return "", fmt.Errorf("find domain controllers of %s: %w", st.cs.DNSDomain(), err)
	}
	st.dcs = d
	how := d.How
	if strings.HasPrefix(how, "dns srv records") && st.cfg.DNSServer != "" {
		how += " from " + st.cfg.DNSServer
	}
	return fmt.Sprintf("kdc %s, ldap %s (%s)", strings.Join(d.KDCs, " "), strings.Join(d.LDAP, " "), how), nil
}

// portTimeout bounds one connection attempt of the ports step.
const portTimeout = 3 * time.Second

func stepPorts(ctx context.Context, st *doctorState) (string, error) {
	// LDAPS is 636, but a DC answers on 389 too and clients (and the
	// issue's checklist) expect both.
	ldapPorts := []string{"389"}
	if st.cfg.LDAPS {
		ldapPorts = append(ldapPorts, "636")
	}
	var addrs []string
	addrs = append(addrs, st.dcs.KDCs...)
	for _, h := range st.dcs.LDAP {
		for _, p := range ldapPorts {
			addrs = append(addrs, net.JoinHostPort(h, p))
		}
	}
	var ok, bad []string
	for _, a := range addrs {
		if slices.Contains(ok, a) || slices.Contains(bad, a) {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, portTimeout)
		c, err := st.dcs.Dial(dctx, "tcp", a)
		cancel()
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", a, dialCause(err)))
			continue
		}
		c.Close()
		ok = append(ok, a)
	}
	if len(bad) > 0 {
		return "", fmt.Errorf("%w: %s", fetcher.ErrUnreachable, strings.Join(bad, "; "))
	}
	return "tcp " + strings.Join(ok, " "), nil
}

// dialCause is what a failed dial ran into, without the "dial tcp ADDR"
// the row already names.
func dialCause(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// maxOffset is Kerberos' default tolerance (AD's "maximum tolerance for
// computer clock synchronization").
const maxOffset = 5 * time.Minute

func stepClock(ctx context.Context, st *doctorState) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, st.cfg.TimeoutOrDefault())
	defer cancel()
	off, server, err := st.dcs.ClockOffset(ctx, st.cfg, st.cs.Realm(), st.cs.Account()+"$")
	if err != nil {
		return "", fmt.Errorf("ask the kdc's time: %w", err)
	}
	off = off.Round(time.Millisecond)
	if off > maxOffset || off < -maxOffset {
		return "", fmt.Errorf("kdc %s is %s off this host's clock: %w (kerberos allows %s)", server, off, kdc.ErrSkew, maxOffset)
	}
	return fmt.Sprintf("kdc %s is %s off this host's clock", server, off), nil
}

func stepReader(ctx context.Context, st *doctorState) (string, error) {
	if !st.cs.Domainless() {
		p, err := fetcher.CheckKeytab(st.cfg)
		if err != nil {
			return "", fmt.Errorf("read host keytab: %w", err)
		}
		return "host keytab: " + p, nil
	}
	sec, err := specSecret(ctx, st.cs, st.remote)
	if err != nil {
		return "", err
	}
	st.secret = sec
	return fmt.Sprintf("secret %s: user %s of %s", st.cs.CredentialArn(), sec.Username, sec.DomainName), nil
}

// describe reads the directory once for the login, bind and gMSA steps.
func (st *doctorState) describe(ctx context.Context) {
	if st.desc != nil || st.descErr != nil {
		return
	}
	st.desc, st.descErr = fetcher.Describe(ctx, fetcher.DescribeRequest{Domain: st.cs.DNSDomain(), Account: st.cs.Account(),
		Secret: st.secret, Config: st.cfg, ReadPassword: true})
}

// phaseErr is the Describe error when it failed at one of phases.
func (st *doctorState) phaseErr(phases ...fetcher.Phase) error {
	var fe *fetcher.Error
	if errors.As(st.descErr, &fe) && slices.Contains(phases, fe.Phase) {
		return st.descErr
	}
	if st.descErr != nil && !errors.As(st.descErr, &fe) {
		return st.descErr
	}
	return nil
}

// phaseTime makes the step's time that of the Describe phase name.
func (st *doctorState) phaseTime(name string) {
	if st.desc == nil {
		return
	}
	for _, s := range st.desc.Steps {
		if s.Name == name {
			st.took = s.Elapsed
		}
	}
}

func stepLogin(ctx context.Context, st *doctorState) (string, error) {
	st.describe(ctx)
	if err := st.phaseErr(fetcher.PhaseCredspec, fetcher.PhaseLocate, fetcher.PhaseLogin); err != nil {
		return "", err
	}
	reader := ""
	if st.desc != nil {
		reader = st.desc.Reader
	}
	st.phaseTime("login")
	return fmt.Sprintf("%s has a ticket for ldap/%s", reader, firstOr(st.dcs.LDAP)), nil
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func stepBind(ctx context.Context, st *doctorState) (string, error) {
	if err := st.phaseErr(fetcher.PhaseBind); err != nil {
		return "", err
	}
	layer := "sasl gssapi, sealed"
	if st.cfg.LDAPS {
		layer = "ldaps"
	}
	if st.desc == nil {
		return layer, nil
	}
	st.phaseTime("bind")
	return fmt.Sprintf("%s at %s", layer, st.desc.DC), nil
}

func stepFound(ctx context.Context, st *doctorState) (string, error) {
	if err := st.phaseErr(fetcher.PhaseRead); err != nil {
		return "", err
	}
	a := st.desc.Account
	if a == nil || !a.GMSA {
		_, err := checkAccount(st.desc, st.cs.Account(), st.cs.DNSDomain())
		return "", fmt.Errorf("gMSA %q of %s: %w", st.cs.Account(), st.cs.DNSDomain(), err)
	}
	st.phaseTime("read")
	return fmt.Sprintf("%s is %s", a.SAM, a.DN), nil
}

func stepEnabled(ctx context.Context, st *doctorState) (string, error) {
	a := st.desc.Account
	if a.Disabled {
		return "", fmt.Errorf("gMSA %q: %w", a.SAM, fetcher.ErrDisabled)
	}
	return a.SAM + " is enabled", nil
}

func stepReadable(ctx context.Context, st *doctorState) (string, error) {
	a := st.desc.Account
	if !a.Readable {
		return "", fmt.Errorf("%s reading gMSA %q: %w", st.desc.Reader, a.SAM, fetcher.ErrNotPermitted)
	}
	return st.desc.Reader + " may retrieve the managed password", nil
}

func stepTicket(ctx context.Context, st *doctorState) (string, error) {
	res, err := fetcher.Fetch(ctx, fetcher.Request{Spec: st.cs, Secret: st.secret, Config: st.cfg, Remote: st.remote})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("tgt for %s@%s (kvno %d), valid until %s", res.Account, res.Realm, res.KVNO, res.Expires.Local().Format(time.RFC3339)), nil
}

// stepPolicy is the decision the hook would take for a container labelled
// with the spec and nothing else (gmsa-hook policy check says more).
func stepPolicy(ctx context.Context, st *doctorState) (string, error) {
	a, err := policy.New(st.cfg).Admit(ctx, st.src, &policy.Container{}, st.remote)
	if err != nil {
		return "", err
	}
	rule, cs := a.Rule, a.Spec
	if rule == "" {
		return fmt.Sprintf("a container labelled %s gets gMSA %q (no rules are configured)", st.src, cs.Account()), nil
	}
	return fmt.Sprintf("a container labelled %s gets gMSA %q by rule %q", st.src, cs.Account(), rule), nil
}

// stepWiring looks for what gmsa-hook install writes today: the hooks.d
// files (Podman, CRI-O) and the hooks of the runc bundles named.
func stepWiring(ctx context.Context, st *doctorState) (string, error) {
	var found, problems []string
	for _, dir := range st.hooksDir {
		n := 0
		for _, stage := range []string{"createRuntime", "createContainer", "poststop"} {
			path := filepath.Join(dir, install.HooksdName(stage))
			b, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			if p := checkHookEntry(path, b, true); p != "" {
				problems = append(problems, p)
				continue
			}
			n++
		}
		switch n {
		case 0:
		case 3:
			found = append(found, "hooks.d "+dir)
		default:
			problems = append(problems, fmt.Sprintf("%s has %d of gmsa-hook's 3 hooks.d files: run gmsa-hook install --runtime podman --hooks-dir %s", dir, n, dir))
		}
	}
	for _, b := range st.bundles {
		path := filepath.Join(b, "config.json")
		raw, err := os.ReadFile(path)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if p := checkHookEntry(path, raw, false); p != "" {
			problems = append(problems, p)
			continue
		}
		found = append(found, "bundle "+b)
	}
	f, p := engineWiring(st)
	found, problems = append(found, f...), append(problems, p...)
	if len(problems) > 0 {
		return "", fmt.Errorf("%w: %s", errNoWiring, strings.Join(problems, "; "))
	}
	if len(found) == 0 {
		return "", fmt.Errorf("%w: no gmsa-hook hooks.d files in %s, no gmsa runtime in %s or %s, and no --bundle given", errNoWiring, strings.Join(st.hooksDir, " or "), st.daemonJSON, st.ctrdConfig)
	}
	return strings.Join(found, ", "), nil
}

// checkHookEntry checks a hooks.d file (hooksd) or a bundle's config.json
// for gmsa-hook's hooks, each naming an executable that exists.
func checkHookEntry(path string, b []byte, hooksd bool) string {
	type hook struct {
		Path string   `json:"path"`
		Args []string `json:"args"`
	}
	var hooks []hook
	if hooksd {
		var f struct {
			Hook hook `json:"hook"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Sprintf("%s: not a hooks.d file: %v", path, err)
		}
		hooks = []hook{f.Hook}
	} else {
		var c struct {
			Hooks map[string][]hook `json:"hooks"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			return fmt.Sprintf("%s: not an OCI config: %v", path, err)
		}
		for _, stage := range []string{"createRuntime", "createContainer", "poststop"} {
			var ours []hook
			for _, h := range c.Hooks[stage] {
				if len(h.Args) > 1 && h.Args[0] == "gmsa-hook" && h.Args[1] == "hook" {
					ours = append(ours, h)
				}
			}
			if len(ours) == 0 {
				return fmt.Sprintf("%s: no gmsa-hook %s hook: run gmsa-hook install --runtime runc --bundle %s", path, stage, filepath.Dir(path))
			}
			hooks = append(hooks, ours...)
		}
	}
	for _, h := range hooks {
		fi, err := os.Stat(h.Path)
		if err != nil || fi.Mode()&0o111 == 0 {
			return fmt.Sprintf("%s: the hook's binary %s is missing or not executable", path, h.Path)
		}
	}
	return ""
}

// stepRenewal checks the renewal units in the unit directory are what
// gmsa-hook install --renewal writes for this binary and configuration.
func stepRenewal(ctx context.Context, st *doctorState) (string, error) {
	h, err := st.installHooks()
	if err != nil {
		return "", err
	}
	units := install.RenewalUnits(h)
	if _, problems := st.checkUnits(units, install.RenewService, install.RenewTimer); len(problems) > 0 {
		return "", fmt.Errorf("%w: %s", errNoRenewal, strings.Join(problems, "; "))
	}
	return fmt.Sprintf("%s and %s in %s run %s", install.RenewService, install.RenewTimer, st.unitDir, strings.TrimPrefix(unitLine(units[install.RenewService], "ExecStart="), "ExecStart=")), nil
}

// stepECS checks the socket-activated ECS units, when installed: exactly
// as gmsa-hook install --runtime ecs would write them for this binary and
// --config. None installed is a host whose ECS agent (if any) is not sent
// to gmsa-hook: not a failure.
func stepECS(ctx context.Context, st *doctorState) (string, error) {
	h, err := st.installHooks()
	if err != nil {
		return "", err
	}
	present, problems := st.checkUnits(install.ECSUnits(h), install.ECSSocket, install.ECSService)
	if present == 0 {
		return fmt.Sprintf("not installed in %s (gmsa-hook install --runtime ecs serves the ECS agent)", st.unitDir), nil
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("%w: %s", errECSUnits, strings.Join(problems, "; "))
	}
	return fmt.Sprintf("%s and %s in %s serve %s", install.ECSSocket, install.ECSService, st.unitDir, install.ECSSocketPath), nil
}

// installHooks is what gmsa-hook install would put in units for this
// binary and --config.
func (st *doctorState) installHooks() (install.Hooks, error) {
	var h install.Hooks
	if st.cfgPath != "" {
		abs, err := filepath.Abs(st.cfgPath)
		if err != nil {
			return h, err
		}
		h.Config = abs
	}
	bin, err := os.Executable()
	if err != nil {
		return h, fmt.Errorf("find the gmsa-hook binary: %w", err)
	}
	h.Binary = bin
	return h, nil
}

// checkUnits compares the named units in the unit directory with what
// install writes; present counts those found.
func (st *doctorState) checkUnits(units map[string][]byte, names ...string) (present int, problems []string) {
	for _, name := range names {
		path := filepath.Join(st.unitDir, name)
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			problems = append(problems, path+" is missing")
			continue
		case err != nil:
			problems = append(problems, err.Error())
		case !bytes.Equal(b, units[name]):
			problems = append(problems, fmt.Sprintf("%s differs: %s", path, firstDiff(b, units[name])))
		}
		present++
	}
	return present, problems
}

// firstDiff names the first line where a unit file differs from want.
func firstDiff(have, want []byte) string {
	h, w := strings.Split(string(have), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(h), len(w)) {
		var hl, wl string
		if i < len(h) {
			hl = h[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if hl != wl {
			return fmt.Sprintf("line %d is %q, want %q", i+1, hl, wl)
		}
	}
	return "same lines"
}

func unitLine(b []byte, prefix string) string {
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// stepStore looks at the run directory as the hook, renew and gc use it:
// on a memory file system, of the layout version this gmsa-hook knows, no
// cache entry whose last renewal failed, no gone container left (gc's work;
// a warning, as the timer removes them within minutes).
func stepStore(ctx context.Context, st *doctorState) (string, error) {
	dir := st.cfg.RunDirOrDefault()
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: run_dir %s does not exist", errNoStore, dir)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %v", store.ErrRunDir, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%w: run_dir %s is not a directory", store.ErrRunDir, dir)
	}
	if !container.OnMemoryFS(dir) {
		return "", fmt.Errorf("%w: run_dir %s is on a disk, not a memory file system: tickets must not reach a disk", store.ErrRunDir, dir)
	}
	vf := filepath.Join(dir, store.VersionFile)
	b, err := os.ReadFile(vf)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("%w: %s is missing", errNoStore, vf)
	case err != nil:
		return "", fmt.Errorf("%w: %v", store.ErrRunDir, err)
	case strings.TrimSpace(string(b)) != store.Version:
		return "", fmt.Errorf("%w: %s says layout version %q; this gmsa-hook knows %s", store.ErrRunDir, vf, strings.TrimSpace(string(b)), store.Version)
	}
	s := &store.Store{Dir: dir}
	entries, err := s.Entries()
	if err != nil {
		return "", fmt.Errorf("%w: %v", store.ErrRunDir, err)
	}
	var bad []string
	for _, e := range entries {
		if e.Outcome == "failed" {
			bad = append(bad, fmt.Sprintf("%s@%s (cache %s): %s", e.Account, e.Realm, e.Key[:12], e.Error))
		}
	}
	cs, err := s.Containers()
	if err != nil {
		return "", fmt.Errorf("%w: %v", store.ErrRunDir, err)
	}
	var gone []string
	for _, c := range cs {
		if m := c.Meta; m != nil && m.Pid > 0 && !container.ProcessAlive(m.Pid, m.PidStart) {
			gone = append(gone, c.Name)
		}
	}
	var goneErr error
	if len(gone) > 0 {
		goneErr = fmt.Errorf("%w: %s", errAwaitingGC, strings.Join(gone, " "))
	}
	switch {
	case len(bad) > 0 && goneErr != nil:
		return "", fmt.Errorf("%w: %s; %w", errRenewFailed, strings.Join(bad, "; "), goneErr)
	case len(bad) > 0:
		return "", fmt.Errorf("%w: %s", errRenewFailed, strings.Join(bad, "; "))
	case goneErr != nil:
		return "", warned(goneErr)
	}
	return fmt.Sprintf("%s on a memory file system, layout version %s: %d %s, %d cache %s", dir, store.Version,
		len(cs), plural(len(cs), "container", "containers"), len(entries), plural(len(entries), "entry", "entries")), nil
}

// engineWiring checks Docker's daemon.json and containerd's config.toml:
// an engine whose file names the runtime wrapper must be wired exactly as
// gmsa-hook install would wire it now (its writer would change nothing,
// the wrapper and its configuration included); a file that does not name
// the wrapper is an engine gmsa-hook is not installed into.
func engineWiring(st *doctorState) (found, problems []string) {
	o := install.Options{
		Hooks:   install.Hooks{FetchTimeout: st.cfg.TimeoutOrDefault()},
		Wrapper: st.wrapper, DaemonJSON: st.daemonJSON, ContainerdConfig: st.ctrdConfig,
	}
	if st.cfgPath != "" {
		o.Hooks.Config, _ = filepath.Abs(st.cfgPath)
	}
	if exe, err := os.Executable(); err == nil {
		o.Hooks.Binary, _ = filepath.EvalSymlinks(exe)
	}
	// The real runtime is the one install recorded.
	if wc, err := wrapper.ReadConfig(wrapper.ConfigPath(st.wrapper)); err == nil {
		o.Runtime = wc.Runtime
	}
	for _, e := range []struct {
		name, file string
		variants   []bool // docker: with and without --default
	}{
		{"docker", st.daemonJSON, []bool{true, false}},
		{"kubernetes", st.ctrdConfig, []bool{false}},
		{"containerd", st.ctrdConfig, []bool{false}},
	} {
		b, err := os.ReadFile(e.file)
		if err != nil || !strings.Contains(string(b), st.wrapper) {
			continue
		}
		if e.name == "containerd" && slices.ContainsFunc(found, func(f string) bool { return strings.HasPrefix(f, "kubernetes ") }) {
			continue
		}
		wired := false
		for _, def := range e.variants {
			o.Default = def
			changes, err := install.Engines[e.name].Install(o)
			if err == nil && !slices.ContainsFunc(changes, func(c install.Change) bool { return !c.Noop() }) {
				wired = true
				what := e.name + " " + e.file + " (runtime gmsa"
				if def {
					what += ", the default"
				}
				found = append(found, what+")")
				break
			}
		}
		if !wired && e.name != "kubernetes" {
			problems = append(problems, fmt.Sprintf("%s names the wrapper %s but is not as gmsa-hook install --runtime %s would write it: gmsa-hook install --runtime %s --dry-run shows the difference", e.file, st.wrapper, e.name, e.name))
		}
	}
	return found, problems
}
