// Command calicoctl manages Calico resources in the calico-libnetwork datastore.
package main

import (
	"fmt"
	"os"

	"github.com/projectcalico/calico-libnetwork/internal/calicoctl"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := calicoctl.NewRootCommand(version, os.Stdin, os.Stdout, os.Stderr).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
