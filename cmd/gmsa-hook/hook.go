package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gmsa-hook/gmsa-hook/hook"
	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

// runHook is one OCI hook stage: "gmsa-hook hook STAGE [--config FILE]",
// the container state on stdin. Stdout stays empty: runtimes print it.
func runHook(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "gmsa-hook: error: hook needs a STAGE (createRuntime, prestart, createContainer or poststop)")
		return errUsage
	}
	stage, err := hook.ParseStage(args[0])
	if err != nil {
		return err
	}
	fs := newFlags("hook", stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (JSON)")
	containerd := fs.String("containerd-address", "", "containerd's `SOCKET` (default: the shim's, else "+hook.DefaultContainerdAddress+")")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	// A mistake in the configuration stops labelled containers only: an
	// unlabelled one (whose label only containerd's API could tell, so the
	// quick run handed it over) runs with the file's run_dir and nothing
	// else, and the hook reports the mistake once a label is found.
	cfg, cfgErr := loadConfig(*cfgPath)
	if cfgErr != nil {
		runDir, _, ok := config.QuickSettings(*cfgPath, container.ReadSmall)
		if !ok {
			return cfgErr
		}
		cfg = config.Config{RunDir: runDir}
	}
	if *cfgPath != "" {
		if abs, err := filepath.Abs(*cfgPath); err == nil {
			*cfgPath = abs
		}
	}
	rep, err := hook.Run(ctx, hook.Request{
		Stage: stage, State: stdin,
		Config: cfg, ConfigPath: *cfgPath, ConfigErr: cfgErr,
		ContainerdAddress: *containerd,
	})
	if cfg.LogFile != "" {
		logRun(cfg.LogFile, rep, err)
	}
	return err
}

// logRun appends one structured line per run to the debug log. A log that
// cannot be written does not fail the container.
func logRun(path string, rep *hook.Report, runErr error) {
	attrs := []any{
		slog.String("stage", string(rep.Stage)),
		slog.String("container", rep.ID),
		slog.Int("pid", rep.Pid),
		slog.Bool("labelled", rep.Labelled),
	}
	if rep.Source != "" {
		attrs = append(attrs, slog.String("origin", rep.Origin), slog.String("credspec", rep.Source))
	}
	if rep.Account != "" {
		attrs = append(attrs, slog.String("account", rep.Account), slog.Int("uid", rep.Owner.UID),
			slog.Int("gid", rep.Owner.GID), slog.Time("expires", rep.Expires))
	}
	if rep.Previous {
		attrs = append(attrs, slog.Bool("previous_password", true))
	}
	if rep.Rule != "" {
		attrs = append(attrs, slog.String("rule", rep.Rule))
	}
	if rep.Skipped != "" {
		attrs = append(attrs, slog.String("skipped", rep.Skipped))
	}
	if len(rep.Swept) > 0 {
		attrs = append(attrs, slog.Any("swept", rep.Swept))
	}
	// Times in milliseconds: "steps_ms":{"state":0.04,"config":0.3,"fetch":136.0,...}.
	steps := make([]any, 0, len(rep.Steps))
	for _, s := range rep.Steps {
		steps = append(steps, slog.Float64(s.Name, ms(s.Elapsed)))
	}
	attrs = append(attrs, slog.Group("steps_ms", steps...), slog.Float64("elapsed_ms", ms(rep.Total)))
	appendLog(path, "hook", runErr, attrs)
}

// appendLog appends one JSON line to the debug log; an error makes it a
// line at level ERROR. A log that cannot be written fails nothing.
func appendLog(path, msg string, runErr error, attrs []any) {
	f, err := openLog(path)
	if err != nil {
		return
	}
	defer f.Close()
	level := slog.LevelInfo
	if runErr != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", runErr.Error()))
	}
	slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{})).Log(context.Background(), level, msg, attrs...)
}

// ms is a duration in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// openLog opens the debug log for appending, as root writes it: never
// through a symlink (O_NOFOLLOW), never a FIFO or device (O_NONBLOCK keeps
// a FIFO from holding the hook, then only a regular file is kept), never
// another user's file, and readable by its owner only (a file made by hand
// with group or other bits is set to 0600).
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); err == nil && ok && int(st.Uid) != os.Geteuid() {
		err = fmt.Errorf("%s belongs to uid %d", path, st.Uid)
	}
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		err = f.Chmod(0o600)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
