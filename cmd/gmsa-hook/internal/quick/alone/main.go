// Command alone is package quick linked by itself, with nothing else of
// gmsa-hook: what a hook run would cost if the hook were a binary of its
// own, split from the one gmsa-hook binary. Only the benchmark
// (test/runc_bench_test.go) builds it, to print that floor beside the
// target; a run quick does not finish exits 2.
package main

import (
	"fmt"
	"os"

	_ "github.com/gmsa-hook/gmsa-hook/cmd/gmsa-hook/internal/quick"
)

func main() {
	fmt.Fprintln(os.Stderr, "alone: not a quick run")
	os.Exit(2)
}
