// Package policy decides what a container's credentialspec label or
// annotation may name. Whoever sets a label is not trusted: a label could
// otherwise make the root hook read any host file, use any secret the host
// can read, or send the reader's login to a KDC of the label's choosing.
// The operator's policy (config.Policy, with safe defaults when there is
// none) is applied in three steps, each before anything further is read or
// sent:
//
//	Source  the label's text: file://NAME.json or an absolute path inside a
//	        credential spec directory, or an ARN the policy allows
//	Load    the spec, read beneath its directory (no "..", no symlink out,
//	        regular files only) or from the allowed ARN
//	Decide  the spec's domain, its reader secret's location, and the rules:
//	        which containers may use which gMSA
//
// and Secret reads a domainless spec's reader secret beneath a secret
// directory, checking the reader's domain too.
//
// The ECS agent (gmsa-hook ecs) sends a spec's contents rather than its
// source, and a domainless reader's credentials rather than the secret's
// location: Contents stands in for Source and Load, Decide is told that the
// reader came with the request (Container.ReaderGiven), and Reader checks
// the request's reader domain as Secret checks a secret's. A refusal is one line that
// names what was asked and the rule or default that refused it, in the
// operator's terms; it never says anything of files outside the policy's
// directories.
package policy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/spec"
)

// ErrRefused marks a request the policy does not allow.
var ErrRefused = errors.New("refused by policy")

// Refusal is a request the policy does not allow: what was asked, and why.
type Refusal struct {
	What   string // e.g. `credential spec "file:///etc/shadow"`
	Reason string // e.g. "a label may name only file://NAME.json in /etc/gmsa-hook/credspecs"
}

func (r *Refusal) Error() string { return fmt.Sprintf("%s %v: %s", r.What, ErrRefused, r.Reason) }
func (r *Refusal) Unwrap() error { return ErrRefused }

// Container is what the engine tells about the container asking.
type Container struct {
	Annotations map[string]string // OCI annotations (state and config.json)
	Labels      map[string]string // Docker or containerd labels
	// ContainerdNamespace is the bundle path's namespace, when containerd
	// made the bundle.
	ContainerdNamespace string
	// ReaderGiven says that the domainless reader's credentials came with
	// the request (the ECS agent read the secret itself): where the spec
	// says they lie is then not checked, the reader's domain is (Reader).
	ReaderGiven bool
}

// Checker applies one configuration's policy.
type Checker struct {
	p        *config.Policy
	domains  []string // allowed DNS domains and realms, lower case
	krb5Conf string
}

// New returns the checker of cfg's policy (the defaults when it has none).
// The realms of the host's krb5.conf (cfg.KRB5Conf, else $KRB5_CONFIG,
// else /etc/krb5.conf, as the fetch reads it; a hook has no environment)
// count as configured domains; a krb5.conf that cannot be read adds none.
func New(cfg config.Config) *Checker {
	c := &Checker{p: cfg.Policy, krb5Conf: cfg.KRB5ConfOrDefault()}
	if c.p == nil {
		c.p = &config.Policy{}
	}
	for _, d := range c.p.Domains {
		c.domains = append(c.domains, strings.ToLower(strings.TrimSuffix(d, ".")))
	}
	if b, err := os.ReadFile(c.krb5Conf); err == nil {
		c.domains = append(c.domains, krb5Realms(b)...)
	}
	return c
}

// Label is a label's credential spec source, checked.
type Label struct {
	Source spec.Source
	// Dir and Name locate a file source: Name inside Dir.
	Dir, Name string
}

// Source checks a label's text before anything is read.
func (c *Checker) Source(raw string) (*Label, error) {
	refuse := func(reason string) (*Label, error) {
		return nil, &Refusal{What: fmt.Sprintf("credential spec %q", raw), Reason: reason}
	}
	dirs := c.p.CredSpecDirsOrDefault()
	fileRule := fmt.Sprintf("a label may name a credential spec only as file://NAME.json in %s, or an absolute path inside it", strings.Join(dirs, " or "))
	rest := raw
	for _, p := range []string{"credentialspecdomainless:", "credentialspec:"} {
		if r, ok := strings.CutPrefix(rest, p); ok {
			rest = r
			break
		}
	}
	// file://NAME.json: a name inside the credential spec directories, as
	// Docker on Windows reads file:// in its CredentialSpecs directory.
	if name, ok := strings.CutPrefix(rest, "file://"); ok && name != "" && !strings.HasPrefix(name, "/") {
		if !filepath.IsLocal(name) || filepath.Clean(name) != name || strings.ContainsAny(name, "?#\\") {
			return refuse(fileRule + " (no \"..\", no query)")
		}
		src, err := spec.ParseSource(strings.TrimSuffix(raw, rest) + "file:///" + name)
		if err != nil {
			return nil, err
		}
		src.Raw = raw
		for _, d := range dirs {
			if _, err := os.Lstat(filepath.Join(d, name)); err == nil {
				return &Label{Source: src, Dir: d, Name: name}, nil
			}
		}
		return &Label{Source: src, Dir: dirs[0], Name: name}, nil
	}
	src, err := spec.ParseSource(raw)
	if err != nil {
		return nil, err
	}
	switch src.Kind {
	case spec.File:
		if !filepath.IsAbs(src.Path) {
			return refuse(fileRule)
		}
		clean := filepath.Clean(src.Path)
		for _, d := range dirs {
			if rel, err := filepath.Rel(d, clean); err == nil && filepath.IsLocal(rel) && clean == src.Path {
				return &Label{Source: src, Dir: d, Name: rel}, nil
			}
		}
		return refuse(fileRule)
	default:
		if !matchAny(c.p.CredSpecARNs, src.ARN) {
			return refuse("the policy allows no such ARN from labels (policy key \"credspec_arns\")")
		}
		return &Label{Source: src}, nil
	}
}

// Load reads the spec a checked label names.
func (c *Checker) Load(ctx context.Context, l *Label, remote spec.Remote) (*spec.CredSpec, error) {
	if l.Source.Kind != spec.File {
		return spec.Load(ctx, l.Source, remote)
	}
	b, err := spec.ReadBeneath(l.Dir, l.Name, false)
	if err != nil {
		return nil, fmt.Errorf("credential spec %s: %w", l.Source.Raw, err)
	}
	return spec.Decode(l.Source, b)
}

// Decide checks a loaded spec for the container: its domain, where its
// reader secret lies, and the rules. It returns the rule that granted the
// gMSA ("" when the policy has no rules).
func (c *Checker) Decide(cs *spec.CredSpec, ct Container) (rule string, err error) {
	gmsa := fmt.Sprintf("gMSA %q of %s", cs.Account(), cs.DNSDomain())
	if !c.domainAllowed(cs.DNSDomain()) {
		return "", &Refusal{What: gmsa, Reason: c.domainRule()}
	}
	if cs.Domainless() && !ct.ReaderGiven {
		if _, err := c.secretLocation(cs.CredentialArn()); err != nil {
			return "", err
		}
	}
	if len(c.p.Rules) == 0 {
		return "", nil
	}
	// The first rule that grants the gMSA but not to this container is
	// named in the refusal, with the condition it failed.
	var near, why string
	for i := range c.p.Rules {
		r := &c.p.Rules[i]
		if !grants(r, cs) {
			continue
		}
		w := mismatch(r.Match, ct)
		if w == "" {
			return r.Name, nil
		}
		if near == "" {
			near, why = r.Name, w
		}
	}
	if near != "" {
		return "", &Refusal{What: gmsa, Reason: fmt.Sprintf("rule %q grants it only to containers with %s", near, why)}
	}
	return "", &Refusal{What: gmsa, Reason: "no policy rule grants it"}
}

// Admission is a label the policy admitted: the spec it names, the
// domainless reader's secret (nil for a domain-joined spec) and the rule
// that granted the gMSA ("" when the policy has no rules).
type Admission struct {
	Spec   *spec.CredSpec
	Secret *spec.Secret
	Rule   string
}

// Admit runs every step for a label, in the order that reads nothing the
// policy has not allowed yet: Source, Load, Decide for the container, and
// Secret. A nil ct skips Decide: the renewal pass re-reads a spec whose
// containers the rules admitted at create.
func (c *Checker) Admit(ctx context.Context, raw string, ct *Container, remote spec.Remote) (*Admission, error) {
	l, err := c.Source(raw)
	if err != nil {
		return nil, err
	}
	cs, err := c.Load(ctx, l, remote)
	if err != nil {
		return nil, fmt.Errorf("read credential spec: %w", err)
	}
	a := &Admission{Spec: cs}
	if ct != nil {
		if a.Rule, err = c.Decide(cs, *ct); err != nil {
			return nil, err
		}
	}
	if cs.Domainless() {
		if a.Secret, err = c.Secret(ctx, cs, remote); err != nil {
			return nil, fmt.Errorf("read reader secret for gMSA %q: %w", cs.Account()+"$", err)
		}
	}
	return a, nil
}

// Secret reads a domainless spec's reader secret, beneath a secret
// directory or from an allowed ARN, and checks the reader's domain.
func (c *Checker) Secret(ctx context.Context, cs *spec.CredSpec, remote spec.Remote) (*spec.Secret, error) {
	loc, err := c.secretLocation(cs.CredentialArn())
	if err != nil {
		return nil, err
	}
	var sec spec.Secret
	if loc.src.Kind == spec.File {
		b, err := spec.ReadBeneath(loc.dir, loc.name, true)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", loc.src.Raw, err)
		}
		if sec, err = spec.ParseSecret(b); err != nil {
			return nil, fmt.Errorf("secret %s: %w", loc.src.Raw, err)
		}
	} else if sec, err = spec.LoadSecret(ctx, loc.src, remote); err != nil {
		return nil, err
	}
	if !c.domainAllowed(sec.DomainName) {
		return nil, &Refusal{What: fmt.Sprintf("reader domain %q of secret %s", sec.DomainName, loc.src.Raw), Reason: c.domainRule()}
	}
	return &sec, nil
}

// ECSAgent is how a spec the ECS agent sent is named in messages.
const ECSAgent = "from the ECS agent"

// Contents reads a spec the ECS agent sent as JSON. The agent read it with
// the task's execution role from the task definition's credentialSpecs;
// the domain and the rules are still checked by Decide.
func (c *Checker) Contents(b []byte) (*spec.CredSpec, error) {
	return spec.Decode(spec.Source{Raw: ECSAgent}, b)
}

// Reader checks a domainless reader that came with a request: its domain
// must be one the policy allows, as a secret's must.
func (c *Checker) Reader(sec *spec.Secret) error {
	if !c.domainAllowed(sec.DomainName) {
		return &Refusal{What: fmt.Sprintf("reader domain %q of user %q", sec.DomainName, sec.Username), Reason: c.domainRule()}
	}
	return nil
}

type secretLoc struct {
	src       spec.Source
	dir, name string
}

func (c *Checker) secretLocation(arn string) (*secretLoc, error) {
	src, err := spec.ParseSecretSource(arn)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("reader secret %q", arn)
	if src.Kind != spec.File {
		if !matchAny(c.p.SecretARNs, src.ARN) {
			return nil, &Refusal{What: what, Reason: "the policy allows no such ARN for secrets of label specs (policy key \"secret_arns\")"}
		}
		return &secretLoc{src: src}, nil
	}
	clean := filepath.Clean(src.Path)
	for _, d := range c.p.SecretDirsOrDefault() {
		if rel, err := filepath.Rel(d, clean); err == nil && filepath.IsLocal(rel) && clean == src.Path {
			return &secretLoc{src: src, dir: d, name: rel}, nil
		}
	}
	return nil, &Refusal{What: what, Reason: "a label spec's secret must lie in " + strings.Join(c.p.SecretDirsOrDefault(), " or ") + " (policy key \"secret_dirs\")"}
}

func (c *Checker) domainAllowed(domain string) bool {
	return slices.Contains(c.domains, strings.ToLower(strings.TrimSuffix(domain, ".")))
}

func (c *Checker) domainRule() string {
	return fmt.Sprintf("the domain is neither in the policy's \"domains\" nor a realm of %s", c.krb5Conf)
}

// grants reports whether r names cs's gMSA (and its domain, if r says).
func grants(r *config.Rule, cs *spec.CredSpec) bool {
	name := strings.ToLower(cs.Account())
	ok := slices.ContainsFunc(r.GMSAs, func(g string) bool { return match(strings.ToLower(strings.TrimSuffix(g, "$")), name) })
	if !ok || len(r.Domains) == 0 {
		return ok
	}
	return slices.ContainsFunc(r.Domains, func(d string) bool { return strings.EqualFold(strings.TrimSuffix(d, "."), cs.DNSDomain()) })
}

// Annotations that carry what a Kubernetes CRI runtime says of the pod.
var (
	namespaceKeys = []string{"io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace"}
	podKeys       = []string{"io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"}
	imageKeys     = []string{"io.kubernetes.cri.image-name"}
)

// mismatch is the first condition of m that ct does not meet, in the
// policy's terms; "" when ct meets them all.
func mismatch(m config.Match, ct Container) string {
	lists := []struct {
		key      string
		patterns []string
		value    string
	}{
		{"kubernetes_namespace", m.KubernetesNamespaces, firstOf(ct.Annotations, namespaceKeys)},
		{"kubernetes_pod", m.KubernetesPods, firstOf(ct.Annotations, podKeys)},
		{"containerd_namespace", m.ContainerdNamespaces, ct.ContainerdNamespace},
		{"image", m.Images, firstOf(ct.Annotations, imageKeys)},
	}
	for _, l := range lists {
		if len(l.patterns) > 0 && !matchAny(l.patterns, l.value) {
			return fmt.Sprintf("%s %s, not %q", l.key, strings.Join(l.patterns, " or "), l.value)
		}
	}
	for _, set := range []struct {
		key  string
		want map[string]string
		have map[string]string
	}{{"label", m.Labels, ct.Labels}, {"annotation", m.Annotations, ct.Annotations}} {
		keys := make([]string, 0, len(set.want))
		for k := range set.want {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v, ok := set.have[k]
			if !ok || !match(set.want[k], v) {
				return fmt.Sprintf("%s %s=%s", set.key, k, set.want[k])
			}
		}
	}
	return ""
}

func firstOf(m map[string]string, keys []string) string {
	for _, k := range keys {
		if v := m[k]; v != "" {
			return v
		}
	}
	return ""
}

func matchAny(patterns []string, s string) bool {
	return s != "" && slices.ContainsFunc(patterns, func(p string) bool { return match(p, s) })
}

// match reports whether s matches pattern, where "*" stands for any run of
// characters ("/" and ":" included) and everything else for itself.
func match(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

// krb5Realms lists the realms a krb5.conf names: [libdefaults]
// default_realm and the sections of [realms], lower case.
func krb5Realms(b []byte) []string {
	var realms []string
	section := ""
	depth := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if depth == 0 && strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.ToLower(strings.Trim(line, "[]"))
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case strings.HasSuffix(line, "{"):
			if section == "realms" && depth == 0 && k != "" {
				realms = append(realms, strings.ToLower(k))
			}
			depth++
		case line == "}":
			depth = max(depth-1, 0)
		case section == "libdefaults" && depth == 0 && strings.EqualFold(k, "default_realm") && v != "":
			realms = append(realms, strings.ToLower(v))
		}
	}
	return realms
}
