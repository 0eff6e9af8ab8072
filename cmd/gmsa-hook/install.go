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
	for i, a := range args {
		if a == "--renewal" || a == "-renewal" {
			return runInstallRenewal(args, stdout, stderr)
		}
		if a == "--runtime=ecs" || a == "-runtime=ecs" || (a == "--runtime" || a == "-runtime") && i+1 < len(args) && args[i+1] == "ecs" {
			return runInstallECS(args, stdout, stderr)
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

// runInstallECS is "install --runtime ecs": the socket and service units
// of gmsa-hook ecs, and the ecs.config lines that send the agent there.
func runInstallECS(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("install --runtime ecs", stderr)
	fs.String("runtime", "ecs", "ecs")
	unitDir := fs.String("unit-dir", install.DefaultUnitDir, "systemd unit `DIR`")
	cfgPath := fs.String("config", "", "configuration `FILE` gmsa-hook ecs reads")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, err := loadConfig(*cfgPath); err != nil {
		return err
	}
	var h install.Hooks
	var err error
	if *cfgPath != "" {
		if h.Config, err = filepath.Abs(*cfgPath); err != nil {
			return err
		}
	}
	if h.Binary, err = os.Executable(); err != nil {
		return fmt.Errorf("install: find the gmsa-hook binary: %w", err)
	}
	written, err := install.ECS(*unitDir, h)
	if err != nil {
		return err
	}
	if len(written) == 0 {
		fmt.Fprintf(stdout, "the ECS units in %s are up to date\n", *unitDir)
	} else {
		fmt.Fprintf(stdout, "wrote %s\nthen run: systemctl daemon-reload && systemctl enable --now %s\n", strings.Join(written, " "), install.ECSSocket)
	}
	fmt.Fprintf(stdout, "and set in /etc/ecs/ecs.config (then restart ecs):\n%s", install.ECSConfig)
	return nil
}
