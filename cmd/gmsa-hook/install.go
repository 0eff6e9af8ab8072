package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gmsa-hook/gmsa-hook/install"
)

// runInstall writes gmsa-hook into a runtime's configuration:
// "--runtime runc --bundle DIR", the hook entries of one bundle, or
// "--runtime podman --hooks-dir DIR", hooks.d files run for every container
// with a credentialspec annotation.
func runInstall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	for _, a := range args {
		if a == "--renewal" || a == "-renewal" {
			return runInstallRenewal(args, stdout, stderr)
		}
	}
	fs := newFlags("install", stderr)
	runtime := fs.String("runtime", "", "the `RUNTIME` to install into (runc or podman)")
	bundle := fs.String("bundle", "", "runc: the OCI bundle `DIR` whose config.json gets the hooks")
	hooksDir := fs.String("hooks-dir", "", "podman: the hooks.d `DIR` to write gmsa-hook's hook files to")
	cfgPath := fs.String("config", "", "configuration `FILE` passed to every hook stage")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch *runtime {
	case "runc":
		if *bundle == "" || *hooksDir != "" {
			fmt.Fprintln(stderr, "gmsa-hook: error: install needs --runtime and --bundle")
			return errUsage
		}
	case "podman":
		if *hooksDir == "" || *bundle != "" {
			fmt.Fprintln(stderr, "gmsa-hook: error: install --runtime podman needs --hooks-dir (and no --bundle)")
			return errUsage
		}
	case "":
		fmt.Fprintln(stderr, "gmsa-hook: error: install needs --runtime and --bundle (runc) or --hooks-dir (podman)")
		return errUsage
	default:
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
	if *runtime == "podman" {
		paths, err := install.HooksDir(*hooksDir, h)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote gmsa-hook's createRuntime, createContainer and poststop hooks for containers annotated credentialspec: %s\n",
			strings.Join(paths, " "))
		return nil
	}
	if err := install.Bundle(*bundle, h); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added gmsa-hook's createRuntime, createContainer and poststop hooks to %s\n",
		filepath.Join(*bundle, "config.json"))
	return nil
}
