package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gmsa-hook/gmsa-hook/install"
)

const runtimeNames = "docker, containerd, kubernetes, podman, cri-o, ecs or runc"

// runInstall writes gmsa-hook into an engine's configuration (remove false)
// or takes it out again (uninstall): the engine writers of package install
// say what to change, this prints it (--dry-run) or writes it, wrapper and
// binary first, then says what to restart.
func runInstall(ctx context.Context, args []string, stdout, stderr io.Writer, remove bool) error {
	if !remove {
		for i, a := range args {
			if a == "--renewal" || a == "-renewal" {
				return runInstallRenewal(args, stdout, stderr)
			}
			if a == "--runtime=ecs" || a == "-runtime=ecs" || (a == "--runtime" || a == "-runtime") && i+1 < len(args) && args[i+1] == "ecs" {
				return runInstallECS(args, stdout, stderr)
			}
		}
	}
	verb := "install"
	if remove {
		verb = "uninstall"
	}
	fs := newFlags(verb, stderr)
	runtime := fs.String("runtime", "", "the engine: `"+runtimeNames+"`")
	dryRun := fs.Bool("dry-run", false, "print the changes as a unified diff and change nothing")
	bundle := fs.String("bundle", "", "runc: the OCI bundle `DIR` whose config.json gets the hooks")
	hooksDir := fs.String("hooks-dir", "/usr/share/containers/oci/hooks.d", "podman, cri-o: the hooks.d `DIR`")
	daemonJSON := fs.String("daemon-json", "/etc/docker/daemon.json", "docker: the daemon.json `FILE`")
	dflt := fs.Bool("default", false, "docker: make gmsa Docker's default-runtime")
	ctrdConfig := fs.String("containerd-config", "/etc/containerd/config.toml", "containerd, kubernetes: containerd's config.toml `FILE`")
	crioDropIn := fs.String("crio-dropin", "/etc/crio/crio.conf.d/99-gmsa-hook.conf", "cri-o: gmsa-hook's drop-in `FILE`")
	wrapperPath := fs.String("wrapper", "/usr/local/lib/gmsa-hook/gmsa-runc", "docker, containerd, kubernetes: where the binary is linked as the runtime wrapper (its configuration is `PATH`.json)")
	runc := fs.String("runc", "", "the real runtime's absolute `PATH` the wrapper execs (default: runc as found in $PATH now, recorded)")
	cfgPath := fs.String("config", "", "configuration `FILE` passed to every hook stage")
	unitDir := fs.String("unit-dir", install.DefaultUnitDir, "docker, containerd, kubernetes, podman, cri-o: the systemd unit `DIR` for the renewal timer (\"\" for none)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	engine, ok := install.Engines[*runtime]
	switch {
	case *runtime == "":
		fmt.Fprintf(stderr, "gmsa-hook: error: %s needs --runtime (%s)\n", verb, runtimeNames)
		return errUsage
	case !ok:
		return fmt.Errorf("%s: runtime %q: %w", verb, *runtime, install.ErrRuntime)
	case *runtime == "runc" && *bundle == "":
		fmt.Fprintf(stderr, "gmsa-hook: error: %s --runtime runc needs --bundle\n", verb)
		return errUsage
	case *runtime != "runc" && *bundle != "":
		fmt.Fprintf(stderr, "gmsa-hook: error: --bundle is for --runtime runc only\n")
		return errUsage
	case *dflt && *runtime != "docker":
		fmt.Fprintf(stderr, "gmsa-hook: error: --default is for --runtime docker only\n")
		return errUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	o := install.Options{
		Hooks:      install.Hooks{FetchTimeout: cfg.TimeoutOrDefault()},
		Wrapper:    *wrapperPath,
		Runtime:    *runc,
		DaemonJSON: *daemonJSON, Default: *dflt,
		ContainerdConfig: *ctrdConfig,
		HooksDir:         *hooksDir,
		CrioDropIn:       *crioDropIn,
		Bundle:           *bundle,
	}
	if *cfgPath != "" {
		if o.Hooks.Config, err = filepath.Abs(*cfgPath); err != nil {
			return err
		}
	}
	if o.Hooks.Binary, err = os.Executable(); err != nil {
		return fmt.Errorf("%s: find the gmsa-hook binary: %w", verb, err)
	}
	if o.Hooks.Binary, err = filepath.EvalSymlinks(o.Hooks.Binary); err != nil {
		return fmt.Errorf("%s: find the gmsa-hook binary: %w", verb, err)
	}
	if o.Runtime == "" && !remove && slices.Contains([]string{"docker", "containerd", "kubernetes", "cri-o"}, *runtime) {
		p, err := exec.LookPath("runc")
		if err != nil {
			return fmt.Errorf("%s: find runc for the wrapper: %w: %w", verb, install.ErrEngineConfig, err)
		}
		if o.Runtime, err = filepath.Abs(p); err != nil {
			return err
		}
	}
	var changes []install.Change
	if remove {
		changes, err = engine.Uninstall(o)
	} else {
		changes, err = engine.Install(o)
	}
	if err != nil {
		return fmt.Errorf("%s --runtime %s: %w", verb, *runtime, err)
	}
	// An engine wired host-wide gets the renewal timer with it (a runc
	// bundle is one container: its operator runs the timer as they like).
	renewal := "" // why no units were written, when none were
	if *runtime != "runc" {
		switch fi, err := os.Stat(*unitDir); {
		case *unitDir == "":
			renewal = "no --unit-dir given"
		case err != nil || !fi.IsDir():
			renewal = "no systemd unit directory " + *unitDir
		default:
			rc, err := install.RenewalChanges(*unitDir, o.Hooks, remove)
			if err != nil {
				return fmt.Errorf("%s --runtime %s: %w", verb, *runtime, err)
			}
			changes = append(changes, rc...)
		}
	}
	paths, err := install.Apply(changes, *dryRun, stdout)
	if err != nil {
		return fmt.Errorf("%s --runtime %s: %w", verb, *runtime, err)
	}
	switch {
	case *dryRun && len(paths) == 0:
		fmt.Fprintf(stdout, "%s --runtime %s --dry-run: nothing to change\n", verb, *runtime)
	case *dryRun:
		// the diff is the output
	case len(paths) == 0:
		fmt.Fprintf(stdout, "%s --runtime %s: nothing to change, already done\n", verb, *runtime)
	default:
		what := "wrote"
		if remove {
			what = "changed or removed"
		}
		fmt.Fprintf(stdout, "%s --runtime %s: %s %s\n", verb, *runtime, what, strings.Join(paths, " "))
		fmt.Fprintf(stdout, "next: %s\n", engine.Restart(o))
		switch {
		case remove || *runtime == "runc":
		case renewal != "":
			fmt.Fprintf(stdout, "note: %s: the renewal timer was not installed; run gmsa-hook renew every 5 minutes (cron, or gmsa-hook install --renewal --unit-dir DIR)\n", renewal)
		default:
			fmt.Fprintf(stdout, "then: systemctl daemon-reload && systemctl enable --now %s\n", install.RenewTimer)
		}
	}
	if *runtime == "kubernetes" && !remove && !*dryRun {
		fmt.Fprint(stdout, "\nthe RuntimeClass for pods (kubectl apply -f -):\n"+install.RuntimeClass)
	}
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
