//go:build ipvsvm

// Package vmcheck2 is the second test binary of one VM: it runs after
// vmcheck, in its own directory, with the same environment.
package vmcheck2

import (
	"flag"
	"os"
	"testing"
)

var _ = flag.String("vmcheck.arg", "", "every binary gets Payload.Args")

func TestSecondBinary(t *testing.T) {
	if os.Getenv("VMCHECK_QUOTED") == "" {
		t.Fatal("no VMCHECK_QUOTED")
	}
	if _, err := os.Stat("/usr/local/bin/hello"); err != nil {
		t.Fatal(err)
	}
}
