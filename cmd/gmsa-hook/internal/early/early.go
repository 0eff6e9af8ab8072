// Package early execs the real runtime for a run of the runtime wrapper
// that only passes through (package hook/wrapper/passthrough decides), in
// its init, right after package os is initialised and before nearly every
// other package of gmsa-hook is: such a run costs little more than the
// start of a Go program. Every other run goes on, and a wrapper run that
// does not pass through is done by package quick (cmd/gmsa-hook/internal/quick).
//
// It imports only os, syscall and passthrough, which imports only os and
// what os imports, plus strconv. Anything that imports strings would wait
// for most of the program's packages (see package passthrough);
// TestWrapperPassThroughSkipsInit guards this.
package early

import (
	"os"
	"syscall"

	"github.com/gmsa-hook/gmsa-hook/hook/wrapper/passthrough"
)

func init() {
	if runtime, argv, ok := passthrough.Runtime(os.Args); ok {
		// Exec returns only on failure; the wrapper's run in package
		// quick then execs again and reports the error.
		syscall.Exec(runtime, argv, os.Environ())
	}
}
