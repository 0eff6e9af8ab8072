// Package passthrough is what the runtime wrapper (gmsa-runc, package
// hook/wrapper) needs to tell a run that only execs the real runtime:
// its name, where its configuration is, and its reading of a runtime
// command line. It imports only os and what os imports, plus strconv: no
// strings, fmt or encoding/json, which Go initialises only after most of
// gmsa-hook's packages.
package passthrough

import (
	"errors"
	"slices"
	"strconv"
)

// Name is the name the gmsa-hook binary is linked under to be the wrapper.
const Name = "gmsa-runc"

// ConfigPath is the configuration file of the wrapper at path.
func ConfigPath(wrapper string) string { return wrapper + ".json" }

// Invocation is what the wrapper needs of a runtime command line.
type Invocation struct {
	Command string // create, start, delete, state, ...
	Bundle  string // create/run's --bundle, "" for the working directory
	ID      string // the container ID of create/run
}

// Global flags of runc (and crun) that take a value; the others are
// booleans (--debug, --systemd-cgroup). They are passed on untouched.
var globalValueFlags = []string{"root", "log", "log-format", "criu", "rootless", "log-level", "cgroup-manager"}

var globalBoolFlags = []string{"debug", "systemd-cgroup", "help", "h", "version", "v"}

// Flags of create and run that take a value.
var createValueFlags = []string{"bundle", "b", "console-socket", "pid-file", "preserve-fds"}

// ParseArgs reads a runc command line (without argv[0]) as far as the
// wrapper needs. A global flag it does not know is an error: it could take
// a value, and guessing wrong would pass a labelled container through
// without its hooks.
func ParseArgs(args []string) (Invocation, error) {
	var inv Invocation
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if !isFlag(a) || a == "-" {
			break
		}
		name, _, hasValue := flagParts(a)
		switch {
		case slices.Contains(globalValueFlags, name):
			if !hasValue {
				i++
			}
		case slices.Contains(globalBoolFlags, name):
		default:
			return inv, errors.New("unknown runtime flag " + strconv.Quote(a) + " before the command")
		}
	}
	if i >= len(args) {
		return inv, nil
	}
	inv.Command = args[i]
	if inv.Command != "create" && inv.Command != "run" {
		return inv, nil
	}
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			if j+1 < len(rest) {
				inv.ID = rest[j+1]
			}
			break
		}
		if !isFlag(a) {
			inv.ID = a
			continue
		}
		name, value, hasValue := flagParts(a)
		if !slices.Contains(createValueFlags, name) {
			continue
		}
		if !hasValue {
			if j+1 >= len(rest) {
				return inv, errors.New("runtime flag " + strconv.Quote(a) + " has no value")
			}
			j++
			value = rest[j]
		}
		if name == "bundle" || name == "b" {
			inv.Bundle = value
		}
	}
	return inv, nil
}

func isFlag(a string) bool { return len(a) > 0 && a[0] == '-' }

// flagParts splits --name=value (any number of leading dashes).
func flagParts(a string) (name, value string, hasValue bool) {
	for len(a) > 0 && a[0] == '-' {
		a = a[1:]
	}
	for i := 0; i < len(a); i++ {
		if a[i] == '=' {
			return a[:i], a[i+1:], true
		}
	}
	return a, "", false
}
