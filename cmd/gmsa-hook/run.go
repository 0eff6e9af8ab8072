package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

const usage = `gmsa-hook gives containers the Kerberos ticket of an AD group Managed Service Account.

Usage:
    gmsa-hook fetch --credspec SOURCE --out PATH [--config FILE] [--krb5-conf FILE] [--keytab FILE] [--timeout D]
    gmsa-hook hook STAGE [--config FILE]     (called by the OCI runtime, state on stdin)
    gmsa-hook install --runtime docker|containerd|kubernetes|podman|cri-o|runc [--dry-run] [--config FILE] [flags]
    gmsa-hook uninstall --runtime ... [--dry-run] [flags]
    gmsa-hook install --renewal [--unit-dir DIR] [--config FILE]
    gmsa-hook renew [--config FILE] [--threshold D]     (what the renewal timer runs)
    gmsa-hook ecs [--config FILE] [--listen PATH] [--idle D]     (the ECS agent's credentials-fetcher API)
    gmsa-hook install --runtime ecs [--unit-dir DIR] [--config FILE]
    gmsa-hook gc [--config FILE]
    gmsa-hook status [--config FILE] [--json]
    gmsa-hook policy check --credspec SOURCE [--config FILE] [--annotation K=V ...] [--label K=V ...] [--containerd-namespace NS]
    gmsa-hook credspec create --gmsa NAME --domain DNSNAME [--keytab FILE | --secret SOURCE [--domainless]] [--out DEST] [--config FILE]
    gmsa-hook credspec check SOURCE [--config FILE] [--keytab FILE]
    gmsa-hook doctor [--credspec SOURCE] [--config FILE] [--hooks-dir DIR ...] [--bundle DIR ...] [--unit-dir DIR] [--daemon-json FILE] [--containerd-config FILE] [--wrapper PATH] [--json]

SOURCE is a credential spec: a path, file:///path, arn:aws:ssm:REGION:ACCOUNT:parameter/NAME
or arn:aws:s3:::BUCKET/KEY, optionally prefixed credentialspec: or credentialspecdomainless:.

A container's label is checked against the policy (README.md, docs/security.md):
by default it may name only file://NAME.json in /etc/gmsa-hook/credspecs.

Examples:
    gmsa-hook fetch --credspec /etc/gmsa/webapp01.json --out /tmp/krb5cc
    KRB5CCNAME=/tmp/krb5cc klist
    gmsa-hook install --renewal --config /etc/gmsa-hook/config.json
    gmsa-hook status
    gmsa-hook policy check --credspec file://webapp01.json --annotation io.kubernetes.cri.sandbox-namespace=payments
    gmsa-hook credspec create --gmsa webapp01 --domain corp.example.test --secret /etc/gmsa-hook/secrets/reader.json \
        --domainless --out /etc/gmsa-hook/credspecs/webapp01.json
    gmsa-hook doctor --credspec file://webapp01.json --config /etc/gmsa-hook/config.json
    gmsa-hook install --runtime docker --default --dry-run --config /etc/gmsa-hook/config.json
    gmsa-hook install --runtime kubernetes --config /etc/gmsa-hook/config.json
`

// exitError is a failure already reported.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "fetch":
		err = runFetch(ctx, args[1:], stdout, stderr)
	case "hook":
		err = runHook(ctx, args[1:], stdin, stderr)
	case "install":
		err = runInstall(ctx, args[1:], stdout, stderr, false)
	case "uninstall":
		err = runInstall(ctx, args[1:], stdout, stderr, true)
	case "policy":
		err = runPolicy(ctx, args[1:], stdout, stderr)
	case "renew":
		err = runRenew(ctx, args[1:], stdout, stderr)
	case "gc":
		err = runGC(ctx, args[1:], stdout, stderr)
	case "ecs":
		err = runECS(ctx, args[1:], stderr)
	case "status":
		err = runStatus(ctx, args[1:], stdout, stderr)
	case "credspec":
		err = runCredspec(ctx, args[1:], stdout, stderr)
	case "doctor":
		err = runDoctor(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "gmsa-hook: error: unknown command %q\n", args[0])
		fmt.Fprintf(stderr, "gmsa-hook: hint: run gmsa-hook help\n")
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	report(stderr, err)
	return 1
}

// report prints an error as one line, then its hints.
func report(w io.Writer, err error) {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(w, "gmsa-hook: error: %s\n", msg)
	for _, h := range hints(err) {
		fmt.Fprintf(w, "gmsa-hook: hint: %s\n", h)
	}
}

// warn prints a condition that did not stop the command as one line, then
// its hints.
func warn(w io.Writer, err error) {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(w, "gmsa-hook: warning: %s\n", msg)
	for _, h := range hints(err) {
		fmt.Fprintf(w, "gmsa-hook: hint: %s\n", h)
	}
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gmsa-hook "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "gmsa-hook: error: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	return nil
}
