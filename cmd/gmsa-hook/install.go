package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gmsa-hook/gmsa-hook/install"
)

// runInstall writes gmsa-hook into a runtime's configuration. For now:
// "--runtime runc --bundle DIR", the hook entries of one bundle.
func runInstall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("install", stderr)
	runtime := fs.String("runtime", "", "the `RUNTIME` to install into (runc)")
	bundle := fs.String("bundle", "", "the OCI bundle `DIR` whose config.json gets the hooks")
	cfgPath := fs.String("config", "", "configuration `FILE` passed to every hook stage")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *runtime == "" || *bundle == "" {
		fmt.Fprintln(stderr, "gmsa-hook: error: install needs --runtime and --bundle")
		return errUsage
	}
	if *runtime != "runc" {
		return fmt.Errorf("install: runtime %q: %w", *runtime, install.ErrRuntime)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	h := install.Hooks{FetchTimeout: cfg.TimeoutOrDefault()}
	if *cfgPath != "" {
		if h.Config, err = filepath.Abs(*cfgPath); err != nil {
			return err
		}
	}
	if h.Binary, err = os.Executable(); err != nil {
		return fmt.Errorf("install: find the gmsa-hook binary: %w", err)
	}
	if err := install.Bundle(*bundle, h); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added gmsa-hook's createRuntime, createContainer and poststop hooks to %s\n",
		filepath.Join(*bundle, "config.json"))
	return nil
}
