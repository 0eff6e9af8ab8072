// Command gmsa-hook gives Linux containers the Kerberos ticket of an Active
// Directory group Managed Service Account: as an OCI runtime hook, or by hand
// with "gmsa-hook fetch".
package main

import (
	"context"
	"os"

	// Initialised before nearly everything: execs the real runtime for a
	// run of the runtime wrapper that only passes through.
	_ "github.com/gmsa-hook/gmsa-hook/cmd/gmsa-hook/internal/early"
	// Initialised before the heavy packages: ends hook runs for containers
	// without the label before they are, and does the wrapper's other runs
	// (see the package's comment).
	"github.com/gmsa-hook/gmsa-hook/cmd/gmsa-hook/internal/quick"
	// Initialised after quick, before the AWS SDK, LDAP, Kerberos, TLS and
	// gRPC: ends a labelled createRuntime whose ticket is in the node's
	// cache (see the package's comment).
	_ "github.com/gmsa-hook/gmsa-hook/cmd/gmsa-hook/internal/warm"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], quick.Stdin(), os.Stdout, os.Stderr))
}
