// Package passthrough tells a run of the runtime wrapper (gmsa-runc,
// package hook/wrapper) that only execs the real runtime, and names the
// runtime, before the rest of gmsa-hook is initialised.
//
// Docker and containerd call the wrapper several times for every
// container (create, start, state, kill, delete) and once to start
// (--version, features); all but create and run of a labelled container
// go straight to the real runtime. Go initialises packages one at a time,
// each time the one that sorts first by import path among those whose
// imports are initialised. "strings" sorts late, and most of gmsa-hook's
// packages can be initialised before it, so a package that imports
// strings, as encoding/json does, waits for them: the wrapper used to
// start after 73 package inits (all of crypto, encoding/gob, the AWS SDK's,
// protobuf's, which reads the binary to seed itself), 4.4 ms of its
// 14.4 ms over runc's own. This package imports only os, what os imports,
// and strconv, so that package early (cmd/gmsa-hook/internal/early) can
// exec the runtime right after os is initialised, after 22.
//
// It reads the wrapper's configuration without encoding/json, and only
// configurations that wrapper.ReadConfig reads with the same result:
// strings without escapes, integers, the keys it knows each once, nothing
// after the object but white space. Anything else (a create, another
// configuration, an error) it leaves to package wrapper, which decides as
// it always has and reports problems.
package passthrough

import (
	"errors"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Name is the name the gmsa-hook binary is linked under to be the wrapper.
const Name = "gmsa-runc"

// ConfigPath is the configuration file of the wrapper at path.
func ConfigPath(wrapper string) string { return wrapper + ".json" }

// maxConfig is container.MaxState, the most container.ReadSmall (and so
// wrapper.ReadConfig) reads.
const maxConfig = 1 << 20

// Runtime tells a wrapper run (args are os.Args) that only execs the real
// runtime: ok, the runtime, and its arguments (args[1:], untouched). It is
// what wrapper.Prepare returns for such a run, without an error.
func Runtime(args []string) (runtime string, argv []string, ok bool) {
	if len(args) == 0 || !path.IsAbs(args[0]) || path.Base(args[0]) != Name {
		return "", nil, false
	}
	inv, err := ParseArgs(args[1:])
	if err != nil || inv.Command == "create" || inv.Command == "run" {
		return "", nil, false
	}
	b, ok := readConfig(ConfigPath(args[0]))
	if !ok {
		return "", nil, false
	}
	runtime, ok = configRuntime(b)
	if !ok || !path.IsAbs(runtime) || path.Base(runtime) == Name {
		return "", nil, false
	}
	return runtime, append([]string{runtime}, args[1:]...), true
}

func readConfig(file string) ([]byte, bool) {
	f, err := os.Open(file)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfig+1))
	return b, err == nil && len(b) <= maxConfig
}

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

// configRuntime reads the wrapper's configuration, {"runtime": "...",
// "hooks": {...}} as gmsa-hook install writes it, and returns its runtime.
// ok is false for anything wrapper.ReadConfig might read differently or
// refuse; the rules are in the package comment.
func configRuntime(b []byte) (string, bool) {
	r := &reader{b: b}
	var runtime string
	ok := r.object(func(key string) bool {
		switch key {
		case "runtime":
			s, ok := r.string()
			runtime = s
			return ok
		case "hooks":
			return r.hooks()
		}
		return false
	})
	r.space()
	return runtime, ok && r.i == len(r.b)
}

// stages are runtime-spec's Hooks fields, by their JSON names.
var stages = []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}

// hooks reads a runtime-spec Hooks object.
func (r *reader) hooks() bool {
	return r.object(func(key string) bool {
		if !slices.Contains(stages, key) {
			return false
		}
		return r.array(r.hook)
	})
}

// hook reads a runtime-spec Hook object.
func (r *reader) hook() bool {
	return r.object(func(key string) bool {
		switch key {
		case "path":
			_, ok := r.string()
			return ok
		case "args", "env":
			return r.array(func() bool { _, ok := r.string(); return ok })
		case "timeout":
			return r.int()
		}
		return false
	})
}

// reader reads the part of JSON configRuntime accepts. Every method skips
// the white space before its value.
type reader struct {
	b []byte
	i int
}

func (r *reader) space() {
	for r.i < len(r.b) && (r.b[r.i] == ' ' || r.b[r.i] == '\t' || r.b[r.i] == '\n' || r.b[r.i] == '\r') {
		r.i++
	}
}

// next consumes c, the next byte after white space, if it is.
func (r *reader) next(c byte) bool {
	r.space()
	if r.i < len(r.b) && r.b[r.i] == c {
		r.i++
		return true
	}
	return false
}

// object reads {"key": value, ...}; value reads the value of each key,
// which may appear once.
func (r *reader) object(value func(key string) bool) bool {
	if !r.next('{') {
		return false
	}
	if r.next('}') {
		return true
	}
	var seen []string
	for {
		key, ok := r.string()
		if !ok || slices.Contains(seen, key) || !r.next(':') || !value(key) {
			return false
		}
		seen = append(seen, key)
		if r.next('}') {
			return true
		}
		if !r.next(',') {
			return false
		}
	}
}

// array reads [elem, ...].
func (r *reader) array(elem func() bool) bool {
	if !r.next('[') {
		return false
	}
	if r.next(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if r.next(']') {
			return true
		}
		if !r.next(',') {
			return false
		}
	}
}

// string reads a string of valid UTF-8 without escapes or control
// characters: its value is its bytes.
func (r *reader) string() (string, bool) {
	if !r.next('"') {
		return "", false
	}
	start := r.i
	for r.i < len(r.b) {
		switch c := r.b[r.i]; {
		case c == '"':
			s := r.b[start:r.i]
			r.i++
			return string(s), utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return "", false
		}
		r.i++
	}
	return "", false
}

// int reads an integer of at most 9 digits, which fits an int anywhere. A
// fraction or an exponent after it is no ',', '}' or ']': the caller
// refuses it.
func (r *reader) int() bool {
	r.space()
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	digits := r.i
	for r.i < len(r.b) && '0' <= r.b[r.i] && r.b[r.i] <= '9' {
		r.i++
	}
	n := r.i - digits
	return n > 0 && n <= 9 && (n == 1 || r.b[digits] != '0')
}
