// Command sweep deletes network namespaces and markers left behind by test labs of crashed test
// binaries (see lab.Sweep). make test runs it before the integration tests. Labs of running
// test binaries are left alone.
package main

import (
	"fmt"
	"os"

	"github.com/vipd/vipd/integration/lab"
)

func main() {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "sweep: not root, nothing to sweep (labs need root)")
		return
	}
	removed, err := lab.Sweep()
	for _, ns := range removed {
		fmt.Printf("sweep: deleted leaked lab namespace %s\n", ns)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sweep: %v\n", err)
		os.Exit(1)
	}
}
