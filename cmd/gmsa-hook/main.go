// Command gmsa-hook gives Linux containers the Kerberos ticket of an Active
// Directory group Managed Service Account: as an OCI runtime hook, or by hand
// with "gmsa-hook fetch".
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
