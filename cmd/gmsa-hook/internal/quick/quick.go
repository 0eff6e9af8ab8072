// Package quick ends a hook run that has nothing to do, or nothing that
// needs more than files, before the rest of gmsa-hook is initialised.
//
// Go initialises every package a program links before main runs, and
// gmsa-hook links the AWS SDK, an LDAP client and Kerberos: most of a hook
// run for a container without the credentialspec label went there. The Go
// specification initialises packages one at a time, each time the first in
// import-path order whose imports are all initialised. This package imports
// only the standard library's basics and hook/container, so it comes before
// net/http, crypto/tls, the SDK and everything that needs them, and its
// init can end such a run with exit status 0.
//
// It does only what needs nothing but files (container.QuickRun): nothing,
// for a container without the label; mounting a labelled container's
// ticket directory at createContainer, once createRuntime has placed it;
// and removing a stopped container's directory at poststop. A labelled
// createRuntime it leaves (Left) to package warm, which places a ticket
// the node's cache holds, and to the full run, which fetches: a labelled
// container pays the full initialisation only when its gMSA's ticket is
// fetched. Whatever it is unsure of, or finds wrong, it leaves to the full
// run, which gets the container state it read back from Stdin and
// reports any problem.
//
// A run under the wrapper's name (gmsa-runc, package hook/wrapper) that
// only passes through has exec'd the real runtime already, in package
// early's init. Every other one (create and run, an unusual configuration,
// an error) is done here entirely: it adds the hooks to a labelled
// container's bundle and execs the real runtime, or reports the problem.
package quick

import (
	"bytes"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/gmsa-hook/gmsa-hook/hook/config"
	"github.com/gmsa-hook/gmsa-hook/hook/container"
	"github.com/gmsa-hook/gmsa-hook/hook/wrapper"
)

// consumed is what init read from stdin, when it read it.
var consumed []byte

// left is the hook run init read the state of and left for later.
var left struct {
	stage  container.Stage
	config string
}

func init() {
	if len(os.Args) > 0 && wrapper.Is(os.Args[0]) {
		// The runtime wrapper needs nothing but files either, labelled or
		// not, and ends in the real runtime's exec.
		os.Exit(wrapper.Main(os.Args, os.Stderr))
	}
	if len(os.Args) < 3 || os.Args[1] != "hook" {
		return
	}
	if quickRun(os.Args[2:], os.Stdin) {
		os.Exit(0)
	}
}

// quickRun reads the state from stdin and decides; what it read stays in
// consumed for the full run.
func quickRun(args []string, stdin io.Reader) bool {
	stage := container.Stage(args[0])
	if !slices.Contains(container.Stages, stage) {
		// Not a hook run (gmsa-hook hook --help, a typo): the full run
		// says so without waiting for stdin.
		return false
	}
	cfgPath, ok := configFlag(args[1:])
	if !ok {
		return false
	}
	runDir, ok := runDirOf(cfgPath)
	if !ok {
		return false
	}
	var read bytes.Buffer
	st, err := container.ReadState(io.TeeReader(stdin, &read))
	consumed = read.Bytes()
	if err != nil {
		return false
	}
	if container.QuickRun(stage, st, runDir) {
		return true
	}
	left.stage, left.config = stage, cfgPath
	return false
}

// Left is the hook run init read the state of and left to be done: its
// stage, its --config file and the state read; ok is false when there is
// none (not a hook run, one with a debug log, one done here). Package
// warm (cmd/gmsa-hook/internal/warm) looks at it before the full run.
func Left() (stage container.Stage, config string, state []byte, ok bool) {
	if left.stage == "" {
		return "", "", nil, false
	}
	return left.stage, left.config, consumed, true
}

// configFlag finds --config in the flags install writes after the stage;
// ok is false for anything else, which the full run's flag parsing judges.
func configFlag(args []string) (path string, ok bool) {
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") || (name != "config" && name != "containerd-address") {
			return "", false
		}
		if !hasValue {
			if i+1 >= len(args) {
				return "", false
			}
			i++
			value = args[i]
		}
		if name == "config" {
			path = value
		}
	}
	return path, true
}

// runDirOf reads run_dir from the configuration file, the only setting a
// quick run depends on, as package config reads it for every run. ok is
// false when the file cannot be read or asks for a debug log (log_file):
// every run then gets its line from the full run. The full run validates
// the whole file once it has work to do.
func runDirOf(path string) (string, bool) {
	runDir, logFile, ok := config.QuickSettings(path, container.ReadSmall)
	return runDir, ok && !logFile
}

// Stdin is the hook's standard input for the full run: what init read of
// it, then the rest.
func Stdin() io.Reader {
	if consumed == nil {
		return os.Stdin
	}
	return io.MultiReader(bytes.NewReader(consumed), os.Stdin)
}
