package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/gmsa-hook/gmsa-hook/fetcher"
	"github.com/gmsa-hook/gmsa-hook/fetcher/ccache"
	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/spec/awsremote"
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
		cfg.Timeout = config.Duration(*timeout)
	}
	start := time.Now()
	res, err := fetcher.Fetch(ctx, fetcher.Request{Source: *src, Config: cfg, Remote: awsremote.New(cfg.AWS)})
	if err == nil {
		// WriteFile's errors say "write credential cache PATH: ...".
		err = ccache.WriteFile(*out, res.Cache, -1, -1)
	}
	if cfg.LogFile != "" {
		logFetch(cfg.LogFile, *src, res, err, time.Since(start))
	}
	if err != nil {
		return err
	}
	how := ""
	if res.Previous {
		how = ", with the previous password: " + previousWhy
	}
	fmt.Fprintf(stdout, "wrote ticket for %s@%s (kvno %d, from %s%s) to %s, valid until %s\n",
		res.Account, res.Realm, res.KVNO, res.DC, how, *out, res.Expires.Local().Format(time.RFC3339))
	return nil
}

// previousWhy says what a ticket got with the previous password means.
const previousWhy = "the KDC refused the current one, as a domain controller that has not yet applied the password rotation does; the next fetch tries the current one again"

func loadConfig(path string) (config.Config, error) {
	if path == "" {
		return config.Config{}, nil
	}
	return config.Load(path)
}

// logFetch appends a line like a hook run's to the debug log: the
// credential spec, the account and where the time went.
func logFetch(path, source string, res *fetcher.Result, fetchErr error, total time.Duration) {
	attrs := []any{slog.String("credspec", source)}
	if res != nil {
		steps := make([]any, 0, len(res.Steps))
		for _, s := range res.Steps {
			steps = append(steps, slog.Float64(s.Name, ms(s.Elapsed)))
		}
		attrs = append(attrs, slog.String("account", res.Account+"@"+res.Realm), slog.String("dc", res.DC),
			slog.Int("kvno", res.KVNO), slog.Bool("previous_password", res.Previous),
			slog.Time("expires", res.Expires), slog.Group("steps_ms", steps...))
	}
	attrs = append(attrs, slog.Float64("elapsed_ms", ms(total)))
	appendLog(path, "fetch", fetchErr, attrs)
}
