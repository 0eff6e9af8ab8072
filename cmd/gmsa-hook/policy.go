package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/gmsa-hook/gmsa-hook/spec/awsremote"
	"github.com/gmsa-hook/gmsa-hook/spec/policy"
)

// runPolicy is "gmsa-hook policy check": the decision the hook would take
// for a container labelled --credspec SRC with the given annotations and
// labels, and the rule that made it. Nothing is fetched from the domain.
func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "gmsa-hook: error: policy needs a verb: check")
		return errUsage
	}
	fs := newFlags("policy check", stderr)
	src := fs.String("credspec", "", "the credentialspec label's `SOURCE`")
	cfgPath := fs.String("config", "", "configuration `FILE` (JSON)")
	ns := fs.String("containerd-namespace", "", "the container's containerd `NAMESPACE`")
	ct := policy.Container{Annotations: map[string]string{}, Labels: map[string]string{}}
	fs.Func("annotation", "an OCI annotation `KEY=VALUE` of the container (repeatable)", keyValue(ct.Annotations))
	fs.Func("label", "a Docker or containerd label `KEY=VALUE` of the container (repeatable)", keyValue(ct.Labels))
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *src == "" {
		fmt.Fprintln(stderr, "gmsa-hook: error: policy check needs --credspec")
		return errUsage
	}
	ct.ContainerdNamespace = *ns
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	a, err := policy.New(cfg).Admit(ctx, *src, &ct, awsremote.New(cfg.AWS))
	if err != nil {
		return err
	}
	rule, cs := a.Rule, a.Spec
	by := "no rules are configured: any gMSA of an admitted spec"
	if rule != "" {
		by = fmt.Sprintf("rule %q", rule)
	}
	fmt.Fprintf(stdout, "allowed: gMSA %q of %s (%s)\n", cs.Account(), cs.DNSDomain(), by)
	return nil
}

// keyValue is a flag.Func that adds KEY=VALUE to m.
func keyValue(m map[string]string) func(string) error {
	return func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, not %q", s)
		}
		m[k] = v
		return nil
	}
}
