package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gmsa-hook/gmsa-hook/ecs"
	"github.com/gmsa-hook/gmsa-hook/fetcher"
)

// runECS is "gmsa-hook ecs": the credentials-fetcher API the ECS agent
// calls, on the socket systemd passes (gmsa-hook install --runtime ecs
// writes the units) or on --listen, until no call has come for --idle.
func runECS(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("ecs", stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (JSON): run_dir, the domain settings, the policy")
	listen := fs.String("listen", ecs.DefaultSocket, "the unix socket `PATH` to listen on when systemd passes none")
	idle := fs.Duration("idle", ecs.DefaultIdle, "exit after `D` with no call in flight (0: never)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *idle < 0 {
		return fmt.Errorf("--idle must not be negative")
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	srv := &ecs.Server{Config: cfg, Hints: hints, Log: stderr}
	if *cfgPath != "" {
		if srv.ConfigPath, err = filepath.Abs(*cfgPath); err != nil {
			return err
		}
	}
	if cfg.LogFile != "" {
		srv.Fetch = func(ctx context.Context, req fetcher.Request) (*fetcher.Result, error) {
			t := time.Now()
			res, err := fetcher.Fetch(ctx, req)
			logFetch(cfg.LogFile, req.Source, res, err, time.Since(t))
			return res, err
		}
	}
	l, _, err := ecs.Listener(*listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return ecs.Serve(ctx, l, srv, *idle)
}
