package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/config"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// register writes what calico/node writes at start when it is missing: the cluster information, the
// default tier, this node, and the default pools. It never overwrites what an operator set.
func register(ctx context.Context, store *datastore.Store, cfg *config.Config, log *slog.Logger) error {
	if err := registerCluster(ctx, store); err != nil {
		return err
	}
	order := 1000000.0
	tier := &api.Tier{Spec: api.TierSpec{Order: &order, DefaultAction: "Deny"}}
	tier.Name = "default"
	if err := createIfMissing(ctx, store, tier); err != nil {
		return err
	}
	if err := createDefaultFelixConfiguration(ctx, store); err != nil {
		return err
	}
	if err := registerNode(ctx, store, cfg, log); err != nil {
		return err
	}
	return createDefaultPools(ctx, store, cfg, log)
}

// clusterTypeLibnetwork is the clusterType of a ClusterInformation this plugin created.
const clusterTypeLibnetwork = "libnetwork"

// registerCluster creates the ClusterInformation "default" when there is none. It leaves calicoVersion
// unset: that is the Calico release a cluster runs, which calico/node records, and upstream calicoctl
// refuses every command ("version mismatch") when it differs from its own. Earlier versions of this
// plugin recorded their own version there; that is cleared.
func registerCluster(ctx context.Context, store *datastore.Store) error {
	ready := true
	info := &api.ClusterInformation{Spec: api.ClusterInformationSpec{ClusterGUID: randomHex(16),
		ClusterType: clusterTypeLibnetwork, DatastoreReady: &ready}}
	info.Name = "default"
	err := store.Create(ctx, info)
	if !errors.Is(err, datastore.ErrExists) {
		return err
	}
	had, err := datastore.Get[*api.ClusterInformation](ctx, store, "", "default")
	if err != nil || had.Spec.ClusterType != clusterTypeLibnetwork || had.Spec.CalicoVersion == "" {
		return err
	}
	had.Spec.CalicoVersion = ""
	if err := store.Update(ctx, had); err != nil && !errors.Is(err, datastore.ErrConflict) {
		return fmt.Errorf("clearing the calicoVersion an earlier calico-libnetwork recorded: %w", err)
	}
	return nil
}

// createDefaultFelixConfiguration writes the global FelixConfiguration "default" as calico/node does when
// there is none, so that a Felix sharing the datastore starts from the same settings. Felix's own defaults
// apply to everything not set here; an existing configuration is left as it is.
func createDefaultFelixConfiguration(ctx context.Context, store *datastore.Store) error {
	fc := &api.FelixConfiguration{Spec: api.FelixConfigurationSpec{LogSeverityScreen: "Info", ReportingInterval: "0s"}}
	fc.Name = "default"
	if err := createIfMissing(ctx, store, fc); err != nil {
		return fmt.Errorf("creating the default FelixConfiguration: %w", err)
	}
	return nil
}

func createIfMissing(ctx context.Context, store *datastore.Store, o api.Object) error {
	if err := store.Create(ctx, o); err != nil && !errors.Is(err, datastore.ErrExists) {
		return err
	}
	return nil
}

// registerNode creates or updates this host's Node with its addresses (with prefix length), keeping every
// other field as it is.
func registerNode(ctx context.Context, store *datastore.Store, cfg *config.Config, log *slog.Logger) error {
	v4, err := nodeAddress(cfg.IPv4, cfg.AutodetectIPv4, false)
	if err != nil {
		return err
	}
	v6, _ := nodeAddress(cfg.IPv6, cfg.AutodetectIPv4, true)
	for {
		node, err := datastore.Get[*api.Node](ctx, store, "", cfg.NodeName)
		if errors.Is(err, datastore.ErrNotFound) {
			node = &api.Node{}
			node.Name = cfg.NodeName
		} else if err != nil {
			return fmt.Errorf("reading node %q: %w", cfg.NodeName, err)
		}
		if node.Spec.BGP == nil {
			node.Spec.BGP = &api.NodeBGPSpec{}
		}
		if v4.IsValid() {
			node.Spec.BGP.IPv4Address = v4.String()
		}
		if v6.IsValid() {
			node.Spec.BGP.IPv6Address = v6.String()
		}
		node.Spec.OrchRefs = []api.OrchRef{{NodeName: cfg.NodeName, Orchestrator: api.OrchestratorLibnetwork}}
		if node.ResourceVersion == "" {
			err = store.Create(ctx, node)
		} else {
			err = store.Update(ctx, node)
		}
		if errors.Is(err, datastore.ErrConflict) || errors.Is(err, datastore.ErrExists) {
			continue
		}
		if err != nil {
			return fmt.Errorf("registering node %q: %w", cfg.NodeName, err)
		}
		log.Info("registered node", "node", cfg.NodeName, "ipv4", v4.String(), "ipv6", v6.String())
		return nil
	}
}

// nodeAddress takes IP/IP6 when set (a bare address gets the prefix of the matching interface address, or
// a host prefix), else autodetects.
func nodeAddress(configured, method string, v6 bool) (netip.Prefix, error) {
	if configured == "" || configured == "autodetect" {
		p, err := link.DetectAddress(method, v6)
		if err != nil && !v6 {
			return p, fmt.Errorf("cannot detect this host's IPv4 address (set IP, or IP_AUTODETECTION_METHOD): %w", err)
		}
		return p, nil
	}
	if p, err := netip.ParsePrefix(configured); err == nil {
		return p, nil
	}
	a := netip.MustParseAddr(configured)
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// createDefaultPools creates the default pools when no pool exists at all, as calico/node does.
func createDefaultPools(ctx context.Context, store *datastore.Store, cfg *config.Config, log *slog.Logger) error {
	if cfg.NoDefaultPools {
		return nil
	}
	pools, err := datastore.List[*api.IPPool](ctx, store, "")
	if err != nil {
		return fmt.Errorf("reading IP pools: %w", err)
	}
	if len(pools) > 0 {
		return nil
	}
	for _, def := range []struct {
		name, cidr string
		block      int
		nat        bool
	}{
		{"default-ipv4-ippool", cfg.DefaultIPv4Pool, cfg.IPv4BlockSize, cfg.IPv4PoolNAT},
		{"default-ipv6-ippool", cfg.DefaultIPv6Pool, cfg.IPv6BlockSize, false},
	} {
		if def.cidr == "" {
			continue
		}
		pool := &api.IPPool{Spec: api.IPPoolSpec{CIDR: def.cidr, BlockSize: def.block, NATOutgoing: def.nat}}
		pool.Name = def.name
		if err := createIfMissing(ctx, store, pool); err != nil {
			return fmt.Errorf("creating default pool: %w", err)
		}
		log.Info("created default IP pool", "name", def.name, "cidr", def.cidr)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
