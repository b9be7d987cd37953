package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// Block affinity states. A claim goes pending → confirmed; an empty state (old data) counts as confirmed.
const (
	statePending         = "pending"
	stateConfirmed       = "confirmed"
	statePendingDeletion = "pendingDeletion"
)

// affinity is the value at /calico/ipam/v2/host/<node>/ipvN/block/<cidr>.
type affinity struct {
	State   string `json:"state"`
	Deleted bool   `json:"deleted"`

	extra extraFields
}

func (a *affinity) UnmarshalJSON(data []byte) error {
	type plain affinity
	extra, err := decodeKeeping(data, (*plain)(a))
	a.extra = extra
	return err
}

func (a affinity) MarshalJSON() ([]byte, error) {
	type plain affinity
	return encodeKeeping(plain(a), a.extra)
}

func (a *affinity) confirmed() bool { return a.State == "" || a.State == stateConfirmed }

// decodeAffinity reads an affinity value; very old data stores an empty value.
func decodeAffinity(data []byte) (affinity, error) {
	var a affinity
	if len(data) == 0 {
		return a, nil
	}
	err := json.Unmarshal(data, &a)
	return a, err
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("ipam: encoding %T: %v", v, err)) // only our own plain types get here
	}
	return data
}

// handleRecord is the value at /calico/ipam/v2/handle/<id>: how many addresses the handle holds per block.
type handleRecord struct {
	Block   map[string]int `json:"block"`
	Deleted bool           `json:"deleted"`

	extra extraFields
}

func (h *handleRecord) UnmarshalJSON(data []byte) error {
	type plain handleRecord
	extra, err := decodeKeeping(data, (*plain)(h))
	h.extra = extra
	return err
}

func (h handleRecord) MarshalJSON() ([]byte, error) {
	type plain handleRecord
	return encodeKeeping(plain(h), h.extra)
}

// Config is Calico's cluster-wide IPAM configuration, stored at /calico/ipam/v2/config.
type Config struct {
	// StrictAffinity forbids borrowing addresses from another node's block.
	StrictAffinity bool `json:"strict_affinity"`
	// AutoAllocateBlocks lets a node claim new blocks; without it a node only uses blocks it already has.
	AutoAllocateBlocks bool `json:"auto_allocate_blocks"`
	// MaxBlocksPerHost caps the blocks one node may claim (0: no cap).
	MaxBlocksPerHost int `json:"maxBlocksPerHost,omitempty"`

	extra extraFields
}

// UnmarshalJSON keeps the members this version does not know (ipCooldownSeconds, ...).
func (c *Config) UnmarshalJSON(data []byte) error {
	type plain Config
	extra, err := decodeKeeping(data, (*plain)(c))
	c.extra = extra
	return err
}

// MarshalJSON writes the configuration with the unknown members it was read with.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config
	return encodeKeeping(plain(c), c.extra)
}

// DefaultConfig is what applies while no configuration is stored (Calico does not write it either).
func DefaultConfig() Config { return Config{AutoAllocateBlocks: true} }

// Config reads the IPAM configuration, or the defaults when none is stored.
func (m *IPAM) Config(ctx context.Context) (Config, error) {
	c, _, err := m.readConfig(ctx)
	return c, err
}

func (m *IPAM) readConfig(ctx context.Context) (Config, int64, error) {
	kv, err := m.store.Get(ctx, configKey)
	if errors.Is(err, datastore.ErrNotFound) {
		return DefaultConfig(), 0, nil
	}
	if err != nil {
		return Config{}, 0, err
	}
	var c Config
	if err := json.Unmarshal(kv.Value, &c); err != nil {
		return Config{}, 0, fmt.Errorf("IPAM configuration at %s is not valid JSON: %w", configKey, err)
	}
	return c, kv.Revision, nil
}

// UpdateConfig changes the stored IPAM configuration (the defaults while none is stored) with change,
// compare-and-swap, so that concurrent updates of other fields are kept; stored fields this version does
// not know are kept too.
func (m *IPAM) UpdateConfig(ctx context.Context, change func(*Config)) error {
	for attempt := 0; ; attempt++ {
		c, rev, err := m.readConfig(ctx)
		if err != nil {
			return err
		}
		change(&c)
		if !c.StrictAffinity && !c.AutoAllocateBlocks {
			return errors.New("IPAM configuration: StrictAffinity and AutoAllocateBlocks cannot both be false")
		}
		if c.MaxBlocksPerHost < 0 {
			return errors.New("IPAM configuration: MaxBlocksPerHost must not be negative")
		}
		_, err = m.store.Txn(ctx, datastore.Put(configKey, mustJSON(c), rev))
		if !isConflict(err) || attempt >= maxRetries {
			return err
		}
	}
}
