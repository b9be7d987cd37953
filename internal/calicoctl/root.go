// Package calicoctl implements a Calico-compatible subset of the calicoctl command line tool: resource
// management (create, apply, replace, delete, get, label, patch), IPAM inspection and configuration, node
// status (BGP sessions), version and shell completion, against the etcd datastore that calico-libnetwork
// uses.
package calicoctl

import (
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/projectcalico/calico-libnetwork/internal/config"
)

// options carries everything a command needs from its surroundings; nothing is read from globals.
type options struct {
	version        string
	stdin          io.Reader
	stdout, stderr io.Writer
	lookupEnv      config.Lookup
	// requestTimeout bounds each datastore request (and so how long an unreachable etcd takes to report).
	requestTimeout time.Duration
}

// NewRootCommand builds a fresh calicoctl command tree. version is the client version printed by
// `calicoctl version`; input and output go through the given streams. Errors are returned by Execute, not
// printed: the caller prints them and exits 1, as upstream calicoctl does.
func NewRootCommand(version string, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	return newRootCommand(&options{
		version:        version,
		stdin:          stdin,
		stdout:         stdout,
		stderr:         stderr,
		lookupEnv:      os.LookupEnv,
		requestTimeout: 5 * time.Second,
	})
}

func newRootCommand(o *options) *cobra.Command {
	root := &cobra.Command{
		Use:   "calicoctl",
		Short: "Manage Calico resources in the calico-libnetwork datastore",
		Long: `calicoctl manages Calico resources (IP pools, profiles, policies, endpoints, nodes) stored in etcd.

The datastore is found from ETCD_ENDPOINTS (and ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE), or
else from the embedded etcd endpoint that a running calico-libnetwork records in
$CALICO_DATA_DIR/etcd-endpoint (default /var/lib/calico).`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(o.stdin)
	root.SetOut(o.stdout)
	root.SetErr(o.stderr)
	root.PersistentFlags().Bool("allow-version-mismatch", false, "accepted for compatibility with upstream calicoctl; ignored")
	root.AddCommand(
		newCreateCommand(o),
		newApplyCommand(o),
		newReplaceCommand(o),
		newDeleteCommand(o),
		newGetCommand(o),
		newVersionCommand(o),
		newIPAMCommand(o),
		newNodeCommand(o),
		newLabelCommand(o),
		newPatchCommand(o),
	)
	return root
}
