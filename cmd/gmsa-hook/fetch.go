package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/fetcher/ccache"
	"github.com/gmsa-hook/gmsa-hook/spec"
)

func runFetch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fetch", stderr)
	src := fs.String("credspec", "", "credential spec `SOURCE`")
	out := fs.String("out", "", "write the credential cache to `PATH`")
	cfgPath := fs.String("config", "", "configuration `FILE` (JSON)")
	krb5conf := fs.String("krb5-conf", "", "krb5.conf `FILE` for finding KDCs")
	kt := fs.String("keytab", "", "host keytab `FILE` for domain-joined specs")
	timeout := fs.Duration("timeout", 0, "give up after `D` (default 20s)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *src == "" || *out == "" {
		fmt.Fprintln(stderr, "gmsa-hook: error: fetch needs --credspec and --out")
		return errUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *krb5conf != "" {
		cfg.KRB5Conf = *krb5conf
	}
	if *kt != "" {
		cfg.Keytab = *kt
	}
	if *timeout < 0 {
		return errors.New("--timeout must be positive")
	}
	if *timeout > 0 {
		cfg.Timeout = fetcher.Duration(*timeout)
	}
	res, err := fetcher.Fetch(ctx, fetcher.Request{Source: *src, Config: cfg, Remote: spec.NewAWS(cfg.AWS)})
	if err != nil {
		return err
	}
	if err := ccache.WriteFile(*out, res.Cache, -1, -1); err != nil {
		return fmt.Errorf("write credential cache %s: %w", *out, err)
	}
	fmt.Fprintf(stdout, "wrote ticket for %s@%s (kvno %d, from %s) to %s, valid until %s\n",
		res.Account, res.Realm, res.KVNO, res.DC, *out, res.Expires.Local().Format(time.RFC3339))
	return nil
}

func loadConfig(path string) (fetcher.Config, error) {
	if path == "" {
		return fetcher.Config{}, nil
	}
	return fetcher.LoadConfig(path)
}
