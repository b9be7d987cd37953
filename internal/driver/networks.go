package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/docker"
)

// networkPrefix holds what the plugin must remember about each Docker network: Docker sends a network's
// settings once (CreateNetwork, never replayed) and never sends its name. Calico tools ignore this prefix.
const networkPrefix = "/calico/libnetwork/v1/networks/"

// networkRecord is one Docker network as the plugin knows it.
type networkRecord struct {
	ID       string `json:"id"`
	Node     string `json:"node"`
	Name     string `json:"name,omitempty"`
	IPv4Pool string `json:"ipv4Pool,omitempty"` // IPPool name from --subnet; empty = any enabled pool
	IPv6Pool string `json:"ipv6Pool,omitempty"`
	IPv4     bool   `json:"ipv4"`
	IPv6     bool   `json:"ipv6"`
}

// networks caches network records and learns their names from Docker in the background.
type networks struct {
	store  *datastore.Store
	node   string
	docker DockerAPI
	log    *slog.Logger

	mu    sync.Mutex
	byID  map[string]*networkRecord
	named map[string]chan struct{} // closed when the network's name becomes known
}

func newNetworks(store *datastore.Store, node string, dockerAPI DockerAPI, log *slog.Logger) *networks {
	return &networks{store: store, node: node, docker: dockerAPI, log: log, byID: map[string]*networkRecord{},
		named: map[string]chan struct{}{}}
}

// key is where a network's record lives. A local network's ID is unique to its host, but a swarm
// network's is the same on every node that runs its tasks, and each node creates and deletes its own copy
// of the network: its record is kept per node, so that one node dropping it leaves the others' alone.
func (n *networks) key(id string) string {
	if api.IsDockerID(id) {
		return networkPrefix + id
	}
	return networkPrefix + id + "/" + n.node
}

// get returns a network's record from the cache or the datastore.
func (n *networks) get(ctx context.Context, id string) (*networkRecord, error) {
	n.mu.Lock()
	rec, ok := n.byID[id]
	n.mu.Unlock()
	if ok {
		return rec, nil
	}
	kv, err := n.store.Get(ctx, n.key(id))
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, fmt.Errorf("network %s is not a Calico network known to this host (was it created with -d calico before the datastore was reset?)", short(id))
	}
	if err != nil {
		return nil, err
	}
	rec = &networkRecord{}
	if err := json.Unmarshal(kv.Value, rec); err != nil {
		return nil, fmt.Errorf("network %s: stored record is corrupt: %w", short(id), err)
	}
	n.remember(rec)
	return rec, nil
}

func (n *networks) remember(rec *networkRecord) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.byID[rec.ID] = rec
	if rec.Name != "" {
		n.signal(rec.ID)
	}
}

// signal wakes whoever waits for the name of id; n.mu must be held.
func (n *networks) signal(id string) {
	if ch, ok := n.named[id]; ok {
		close(ch)
		delete(n.named, id)
	}
}

// create stores a new record (overwriting a stale one with the same ID).
func (n *networks) create(ctx context.Context, rec *networkRecord) error {
	data, _ := json.Marshal(rec)
	if err := n.put(ctx, rec.ID, data); err != nil {
		return fmt.Errorf("recording network %s: %w", short(rec.ID), err)
	}
	n.remember(rec)
	go n.learnName(rec.ID)
	return nil
}

func (n *networks) put(ctx context.Context, id string, data []byte) error {
	for {
		kv, err := n.store.Get(ctx, n.key(id))
		var rev int64
		if err == nil {
			rev = kv.Revision
		} else if !errors.Is(err, datastore.ErrNotFound) {
			return err
		}
		_, err = n.store.Txn(ctx, datastore.Put(n.key(id), data, rev))
		if !errors.Is(err, datastore.ErrConflict) && !errors.Is(err, datastore.ErrExists) {
			return err
		}
	}
}

// remove forgets a network; a missing record is fine (DeleteNetwork must be idempotent).
func (n *networks) remove(ctx context.Context, id string) error {
	n.mu.Lock()
	delete(n.byID, id)
	n.mu.Unlock()
	err := n.store.DeleteKey(ctx, n.key(id), 0)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil
	}
	return err
}

// others reports whether any other network record (on any host, including other nodes' records of the
// same swarm network) carries this name: the profile of a network name is shared by all hosts and must
// outlive any one of their networks.
func (n *networks) others(ctx context.Context, name, exceptID string) (bool, error) {
	kvs, _, err := n.store.List(ctx, networkPrefix)
	if err != nil {
		return false, err
	}
	for _, kv := range kvs {
		var rec networkRecord
		if json.Unmarshal(kv.Value, &rec) == nil && rec.Name == name && kv.Key != n.key(exceptID) {
			return true, nil
		}
	}
	return false, nil
}

// name waits up to timeout for the background learner to know the network's name. It never calls Docker
// itself: Docker may be blocked on this very driver call.
func (n *networks) name(ctx context.Context, id string, timeout time.Duration) (string, error) {
	rec, err := n.get(ctx, id)
	if err != nil {
		return "", err
	}
	n.mu.Lock()
	if rec.Name != "" {
		n.mu.Unlock()
		return rec.Name, nil
	}
	ch, ok := n.named[id]
	if !ok {
		ch = make(chan struct{})
		n.named[id] = ch
	}
	n.mu.Unlock()
	go n.learnName(id)
	select {
	case <-ch:
	case <-time.After(timeout):
	case <-ctx.Done():
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if rec := n.byID[id]; rec != nil && rec.Name != "" {
		return rec.Name, nil
	}
	return "", fmt.Errorf("the name of Docker network %s is not known yet (is the Docker API at DOCKER_HOST reachable by the plugin?)", short(id))
}

// setName records a learnt name, once.
func (n *networks) setName(id, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := n.get(ctx, id)
	if err != nil || rec.Name == name {
		return
	}
	updated := *rec
	updated.Name = name
	data, _ := json.Marshal(&updated)
	if err := n.put(ctx, id, data); err != nil {
		n.log.Warn("could not record network name", "network", short(id), "name", name, "error", err.Error())
	}
	n.remember(&updated)
	n.log.Info("learnt network name", "network", short(id), "name", name)
}

// learnName asks Docker for a network's name in the background; Docker stores a network only after
// CreateNetwork returns, so it retries briefly.
func (n *networks) learnName(id string) {
	if n.docker == nil {
		return
	}
	for attempt := 0; attempt < 20; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		net, err := n.docker.Network(ctx, id)
		cancel()
		if err == nil && net.Name != "" {
			n.setName(id, net.Name)
			return
		}
		time.Sleep(time.Duration(100*(attempt+1)) * time.Millisecond)
	}
}

// run follows Docker's network events (reconnecting as needed) so names are known before they are needed,
// and catches up with networks created while the plugin was down.
func (n *networks) run(ctx context.Context) {
	if n.docker == nil {
		return
	}
	for ctx.Err() == nil {
		if all, err := n.docker.Networks(ctx); err == nil {
			for _, net := range all {
				if rec, err := n.get(ctx, net.ID); err == nil && rec.Name == "" {
					n.setName(net.ID, net.Name)
				}
			}
		}
		err := n.docker.WatchNetworks(ctx, func(ev docker.NetworkEvent) {
			if ev.Action == "create" && ev.Name != "" {
				if _, err := n.get(ctx, ev.ID); err == nil {
					n.setName(ev.ID, ev.Name)
				}
			}
		})
		if ctx.Err() == nil {
			n.log.Debug("docker event stream ended, reconnecting", "error", err)
			sleepCtx(ctx, 2*time.Second)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// short abbreviates a Docker ID (checked by checkIDs) for messages.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
