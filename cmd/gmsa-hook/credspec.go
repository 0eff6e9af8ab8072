package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/spec"
	"github.com/gmsa-hook/gmsa-hook/spec/awsremote"
)

// Findings of gmsa-hook credspec check that have a fix.
var (
	errSpecMismatch = errors.New("does not match the directory")
	errNoSPN        = errors.New("the gMSA has no service principal names")
)

// runCredspec is "gmsa-hook credspec create" and "gmsa-hook credspec check".
func runCredspec(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "gmsa-hook: error: credspec needs a verb: create or check")
		return errUsage
	}
	switch args[0] {
	case "create":
		return runCredspecCreate(ctx, args[1:], stdout, stderr)
	case "check":
		return runCredspecCheck(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "gmsa-hook: error: unknown credspec verb %q: want create or check\n", args[0])
	return errUsage
}

// runCredspecCreate reads the domain and the gMSA from a DC, as the reader
// a fetch logs in as, and writes the credential spec New-CredentialSpec
// would write for it.
func runCredspecCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("credspec create", stderr)
	name := fs.String("gmsa", "", "the gMSA's `NAME` (its sAMAccountName, with or without \"$\")")
	domain := fs.String("domain", "", "the DNS name of the gMSA's `DOMAIN`")
	kt := fs.String("keytab", "", "read as the host: its machine account's keytab `FILE`")
	secretSrc := fs.String("secret", "", "read as the domainless reader in the secret at `SOURCE` (a path, file://, Secrets Manager or SSM ARN)")
	domainless := fs.Bool("domainless", false, "write a domainless spec whose HostAccountConfig names --secret")
	out := fs.String("out", "", "write the spec to `DEST` (a path, written atomically, or an SSM parameter or S3 object ARN); default stdout")
	cfgPath := fs.String("config", "", "configuration `FILE` (JSON)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *name == "" || *domain == "":
		fmt.Fprintln(stderr, "gmsa-hook: error: credspec create needs --gmsa and --domain")
		return errUsage
	case *kt != "" && *secretSrc != "":
		fmt.Fprintln(stderr, "gmsa-hook: error: credspec create takes --keytab or --secret, not both")
		return errUsage
	case *domainless && *secretSrc == "":
		fmt.Fprintln(stderr, "gmsa-hook: error: credspec create --domainless needs --secret: the spec names it as its reader")
		return errUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *kt != "" {
		cfg.Keytab = *kt
	}
	var dst spec.Source
	if *out != "" {
		if dst, err = spec.ParseSource(*out); err != nil {
			return fmt.Errorf("credspec create: --out: %w", err)
		}
	}
	remote := awsremote.New(cfg.AWS)
	sec, err := readerSecret(ctx, *secretSrc, remote)
	if err != nil {
		return err
	}
	// The password is asked for as fetch asks for it (and dropped at once),
	// to say whether the reader may retrieve it.
	desc, err := fetcher.Describe(ctx, fetcher.DescribeRequest{Domain: *domain, Account: *name, Secret: sec, Config: cfg, ReadPassword: true})
	if err != nil {
		return err
	}
	acct, err := checkAccount(desc, *name, *domain)
	if err != nil {
		return fmt.Errorf("create credential spec of %q in %s: %w", *name, strings.ToLower(*domain), err)
	}
	arn := ""
	if *domainless {
		arn = credentialArn(*secretSrc)
	}
	b, err := spec.New(domainInfo(desc.Domain), acct.SAM, arn).Marshal()
	if err != nil {
		return err
	}
	if *out == "" {
		if _, err := stdout.Write(b); err != nil {
			return err
		}
	} else {
		if err := spec.Store(ctx, dst, b, remote); err != nil {
			return fmt.Errorf("credspec create: %w", err)
		}
		fmt.Fprintf(stdout, "wrote credential spec for gMSA %q of %s (read from %s) to %s\n", acct.SAM, desc.Domain.DNSName, desc.DC, *out)
	}
	// As New-CredentialSpec does, a reader that may not (yet) retrieve the
	// password is a warning, not a refusal: the spec does not depend on it,
	// the permission is often granted after the spec is made, and a
	// domain-joined spec is read by the container hosts, not by the
	// account create logged in as.
	if !acct.Readable {
		warn(stderr, fmt.Errorf("%s reading gMSA %q: %w", desc.Reader, acct.SAM, fetcher.ErrNotPermitted))
	}
	return nil
}

// credentialArn is the secret's source as a spec's CredentialArn: an
// absolute path becomes a file:// URL, as ECS and credentials-fetcher
// name a local secret; ARNs and URLs stay as given.
func credentialArn(src string) string {
	if filepath.IsAbs(src) {
		return (&url.URL{Scheme: "file", Path: src}).String()
	}
	return src
}

// readerSecret reads the domainless reader's secret as fetch does; "" is
// the host.
func readerSecret(ctx context.Context, src string, remote spec.Remote) (*spec.Secret, error) {
	if src == "" {
		return nil, nil
	}
	s, err := spec.ParseSecretSource(src)
	if err != nil {
		return nil, err
	}
	sec, err := spec.LoadSecret(ctx, s, remote)
	if err != nil {
		return nil, fmt.Errorf("read reader secret: %w", err)
	}
	return &sec, nil
}

// checkAccount refuses what is not an enabled gMSA.
func checkAccount(desc *fetcher.Description, name, domain string) (*fetcher.Account, error) {
	a := desc.Account
	bare := strings.TrimSuffix(name, "$")
	switch {
	case a == nil:
		return nil, fmt.Errorf("%w: no account %s$ or %s in %s (asked %s as %q)", fetcher.ErrNoSuchGMSA, bare, bare, strings.ToLower(domain), desc.DC, desc.Reader)
	case !a.GMSA:
		return nil, fmt.Errorf("%w: %s is a %s account (%s)", fetcher.ErrNotGMSA, a.SAM, a.Class, a.DN)
	case a.Disabled:
		return nil, fmt.Errorf("%w (%s)", fetcher.ErrDisabled, a.DN)
	}
	return a, nil
}

func domainInfo(d fetcher.Domain) spec.DomainInfo {
	return spec.DomainInfo{SID: d.SID, GUID: d.GUID, DNSName: d.DNSName, DNSTreeName: d.DNSTreeName, NetBIOSName: d.NetBIOSName}
}

// finding is one line of credspec check or doctor: a pass, a warning or a
// failure, with what was seen and, for the latter two, the error whose
// hints say what to do.
type finding struct {
	Name    string        `json:"name"`
	Status  string        `json:"status"` // pass, warn, fail, skip
	Elapsed time.Duration `json:"-"`
	Detail  string        `json:"detail,omitempty"`
	Err     error         `json:"-"`
}

const (
	statusPass = "pass"
	statusWarn = "warn"
	statusFail = "fail"
	statusSkip = "skip"
)

// printFindings writes one line per finding and its hints under it.
func printFindings(w io.Writer, fs []finding, timed bool) {
	width := 0
	for _, f := range fs {
		width = max(width, len(f.Name))
	}
	for _, f := range fs {
		msg := f.Detail
		if f.Err != nil {
			msg = strings.ReplaceAll(f.Err.Error(), "\n", " ")
		}
		if timed {
			fmt.Fprintf(w, "%-4s  %-*s  %8s  %s\n", f.Status, width, f.Name, fmtElapsed(f.Elapsed), msg)
		} else {
			fmt.Fprintf(w, "%-4s  %-*s  %s\n", f.Status, width, f.Name, msg)
		}
		if f.Err != nil {
			for _, h := range hints(f.Err) {
				fmt.Fprintf(w, "      hint: %s\n", h)
			}
		}
	}
}

func fmtElapsed(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// failed is the error that ends a run with failures: the first failure's,
// with the count, so that report's hints are the first failure's.
func failed(what string, fs []finding) error {
	var first *finding
	n := 0
	for i := range fs {
		if fs[i].Status == statusFail {
			n++
			if first == nil {
				first = &fs[i]
			}
		}
	}
	if first == nil {
		return nil
	}
	return fmt.Errorf("%s: %d of %d %s failed; the first, %s: %w", what, n, len(fs), plural(len(fs), "check", "checks"), first.Name, first.Err)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// runCredspecCheck validates a spec against the domain.
func runCredspecCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("credspec check", stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (JSON)")
	kt := fs.String("keytab", "", "host keytab `FILE` for domain-joined specs")
	var src string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		src, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if src == "" {
		fmt.Fprintln(stderr, "gmsa-hook: error: credspec check needs the credential spec: gmsa-hook credspec check SOURCE")
		return errUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *kt != "" {
		cfg.Keytab = *kt
	}
	remote := awsremote.New(cfg.AWS)
	cs, err := loadSpec(ctx, src, remote)
	if err != nil {
		return err
	}
	sec, err := specSecret(ctx, cs, remote)
	if err != nil {
		return err
	}
	desc, err := fetcher.Describe(ctx, fetcher.DescribeRequest{Domain: cs.DNSDomain(), Account: cs.Account(), Secret: sec, Config: cfg, ReadPassword: true})
	if err != nil {
		return err
	}
	found := checkSpec(cs, desc)
	printFindings(stdout, found, false)
	return failed("credential spec "+src, found)
}

// loadSpec reads a spec as fetch does: the operator's source is trusted.
func loadSpec(ctx context.Context, raw string, remote spec.Remote) (*spec.CredSpec, error) {
	src, err := spec.ParseSource(raw)
	if err != nil {
		return nil, fmt.Errorf("read credential spec: %w", err)
	}
	cs, err := spec.Load(ctx, src, remote)
	if err != nil {
		return nil, fmt.Errorf("read credential spec: %w", err)
	}
	return cs, nil
}

// specSecret reads a domainless spec's reader secret; nil for the host.
func specSecret(ctx context.Context, cs *spec.CredSpec, remote spec.Remote) (*spec.Secret, error) {
	if !cs.Domainless() {
		return nil, nil
	}
	sec, err := readerSecret(ctx, cs.CredentialArn(), remote)
	if err != nil {
		return nil, fmt.Errorf("gMSA %q: %w", cs.Account()+"$", err)
	}
	return sec, nil
}

// checkSpec compares the spec with what the directory says.
func checkSpec(cs *spec.CredSpec, desc *fetcher.Description) []finding {
	var out []finding
	add := func(name string, err error, detail string) {
		f := finding{Name: name, Status: statusPass, Detail: detail, Err: err}
		if err != nil {
			f.Status = statusFail
		}
		out = append(out, f)
	}
	a, err := checkAccount(desc, cs.Account(), cs.DNSDomain())
	if a == nil && desc.Account != nil {
		a = desc.Account
	}
	switch {
	case desc.Account == nil || !desc.Account.GMSA:
		add("gMSA", fmt.Errorf("gMSA %q of %s: %w", cs.Account(), cs.DNSDomain(), err), "")
		return out
	default:
		add("gMSA", nil, fmt.Sprintf("%s is %s", a.SAM, a.DN))
	}
	if a.Disabled {
		add("enabled", fmt.Errorf("gMSA %q: %w", a.SAM, err), "")
	} else {
		add("enabled", nil, a.SAM+" is enabled")
	}
	if a.Readable {
		add("password", nil, fmt.Sprintf("%s may retrieve the managed password", desc.Reader))
	} else {
		add("password", fmt.Errorf("%s reading gMSA %q: %w", desc.Reader, a.SAM, fetcher.ErrNotPermitted), "")
	}
	d, dj := desc.Domain, cs.DomainJoinConfig
	same := func(field, have, want string, fold bool) {
		ok := have == want || (fold && strings.EqualFold(strings.TrimSuffix(have, "."), want))
		if ok {
			add(field, nil, want)
		} else {
			add(field, fmt.Errorf("%s %q %w: it says %q", field, have, errSpecMismatch, want), "")
		}
	}
	same("DomainJoinConfig.Sid", dj.Sid, d.SID, false)
	same("DomainJoinConfig.Guid", strings.Trim(dj.Guid, "{}"), d.GUID, true)
	same("DomainJoinConfig.DnsName", dj.DnsName, d.DNSName, true)
	same("DomainJoinConfig.DnsTreeName", dj.DnsTreeName, d.DNSTreeName, true)
	same("DomainJoinConfig.NetBiosName", dj.NetBiosName, d.NetBIOSName, true)
	same("DomainJoinConfig.MachineAccountName", dj.MachineAccountName, strings.TrimSuffix(a.SAM, "$"), true)
	for i, g := range cs.ActiveDirectoryConfig.GroupManagedServiceAccounts {
		field := fmt.Sprintf("GroupManagedServiceAccounts[%d]", i)
		switch {
		case !strings.EqualFold(strings.TrimSuffix(g.Name, "$"), strings.TrimSuffix(a.SAM, "$")) && i == 0:
			add(field, fmt.Errorf("%s.Name %q %w: the gMSA is %q", field, g.Name, errSpecMismatch, strings.TrimSuffix(a.SAM, "$")), "")
		case !strings.EqualFold(g.Scope, d.DNSName) && !strings.EqualFold(g.Scope, d.NetBIOSName):
			add(field, fmt.Errorf("%s.Scope %q %w: it is %q or %q", field, g.Scope, errSpecMismatch, d.DNSName, d.NetBIOSName), "")
		default:
			add(field, nil, g.Name+" in "+g.Scope)
		}
	}
	if len(a.SPNs) == 0 {
		out = append(out, finding{Name: "SPNs", Status: statusWarn, Err: fmt.Errorf("gMSA %q: %w", a.SAM, errNoSPN)})
	} else {
		add("SPNs", nil, strings.Join(a.SPNs, " "))
	}
	return out
}
