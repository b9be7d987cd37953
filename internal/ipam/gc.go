package ipam

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// CollectedHandlePrefix marks the allocations the collector may release: those this plugin made. Others
// (CNI, tunnel addresses, calicoctl) belong to someone else and are never touched.
const CollectedHandlePrefix = "libnetwork"

// Collector releases this node's leaked addresses: allocations whose endpoint is gone (a daemon crash
// between allocation and endpoint creation, a container removed while the plugin was down). The daemon
// says what is alive; the collector only releases what has been seen dead for longer than Grace, and never
// an allocation younger than Grace (its endpoint may still be being created). It also gives up this
// node's blocks that have stayed empty for Grace, so that pools can shrink and be deleted.
type Collector struct {
	IPAM     *IPAM
	Grace    time.Duration
	IsLive   func(ctx context.Context, a AllocationInfo) (bool, error)
	Interval time.Duration // between runs of Run (default 1 minute)
	Log      *slog.Logger  // default: the IPAM's
	Now      func() time.Time

	mu         sync.Mutex
	deadSince  map[held]time.Time
	emptySince map[netip.Prefix]time.Time
}

// held identifies an allocation across runs: the same address under a new handle is a new allocation.
type held struct {
	ip     netip.Addr
	handle string
}

// RunOnce makes one pass and returns the addresses it released.
func (c *Collector) RunOnce(ctx context.Context) ([]netip.Addr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := &pass{c: c, now: time.Now(), dead: map[held]time.Time{}, empty: map[netip.Prefix]time.Time{}}
	if c.Now != nil {
		p.now = c.Now()
	}
	// Every block of the cluster: an address this node borrowed lies in another node's block.
	if err := c.IPAM.eachBlock(ctx, func(b *Block) { p.block(ctx, b) }); err != nil {
		// What was not listed keeps its first-seen times for the next pass.
		return p.released, errors.Join(append(p.errs, err)...)
	}
	c.deadSince, c.emptySince = p.dead, p.empty
	return p.released, errors.Join(p.errs...)
}

// pass is one RunOnce's progress.
type pass struct {
	c        *Collector
	now      time.Time
	dead     map[held]time.Time         // allocations without an owner, since when
	empty    map[netip.Prefix]time.Time // this node's empty blocks, since when
	released []netip.Addr
	errs     []error
}

// block releases what of b has been dead or empty for the grace period.
func (p *pass) block(ctx context.Context, b *Block) {
	c, m, log := p.c, p.c.IPAM, p.c.log()
	if b.Owner() == m.node && b.InUse() == 0 {
		since := firstSeen(c.emptySince, b.CIDR, p.now)
		p.empty[b.CIDR] = since
		if p.now.Sub(since) >= c.Grace {
			ok, err := m.releaseEmptyBlock(ctx, b.CIDR)
			if err != nil {
				p.errs = append(p.errs, err)
			} else if ok {
				log.Info("released empty IPAM block", "block", b.CIDR.String(), "emptyFor", p.now.Sub(since).String())
			}
		}
		return
	}
	for ord, a := range b.Allocated() {
		info := allocationInfo(b, ord, a)
		if info.Attrs[AttrNode] != m.node || !strings.HasPrefix(info.Handle, CollectedHandlePrefix) {
			continue
		}
		if ts, err := time.Parse(time.RFC3339, info.Attrs[AttrTimestamp]); err == nil && p.now.Sub(ts) < c.Grace {
			continue
		}
		key := held{info.IP, info.Handle}
		live, err := c.IsLive(ctx, info)
		if err != nil {
			p.errs = append(p.errs, err)
			if since, ok := c.deadSince[key]; ok {
				p.dead[key] = since
			}
			continue
		}
		if live {
			continue
		}
		since := firstSeen(c.deadSince, key, p.now)
		p.dead[key] = since
		if p.now.Sub(since) < c.Grace {
			continue
		}
		ok, err := m.releaseHeld(ctx, info.IP, info.Handle)
		switch {
		case err != nil:
			p.errs = append(p.errs, err)
		case ok:
			p.released = append(p.released, info.IP)
			delete(p.dead, key)
			log.Info("released leaked address", "ip", info.IP.String(), "handle", info.Handle, "deadFor", p.now.Sub(since).String(), "attrs", info.Attrs)
		}
	}
}

func firstSeen[K comparable](seen map[K]time.Time, k K, now time.Time) time.Time {
	if t, ok := seen[k]; ok {
		return t
	}
	return now
}

// Run calls RunOnce every Interval until ctx ends, logging failures.
func (c *Collector) Run(ctx context.Context) {
	interval := c.Interval
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := c.RunOnce(ctx); err != nil && ctx.Err() == nil {
			c.log().Warn("IPAM leak collection incomplete", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Collector) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return c.IPAM.log
}

// releaseHeld frees ip; when handle is set, only if that handle still holds it.
func (m *IPAM) releaseHeld(ctx context.Context, ip netip.Addr, handle string) (bool, error) {
	o := &op{kind: opRelease, ip: ip, handle: handle}
	if err := m.do(ctx, o); err != nil {
		return false, err
	}
	return o.released > 0, nil
}

// releaseEmptyBlock deletes an empty block of this node together with its affinity, in one transaction
// that fails (returning false) if anything was allocated from it meanwhile.
func (m *IPAM) releaseEmptyBlock(ctx context.Context, cidr netip.Prefix) (bool, error) {
	rec, err := m.newRound(ctx).block(cidr)
	if err != nil || rec.b == nil || rec.b.Owner() != m.node || rec.b.InUse() > 0 {
		return false, err
	}
	_, err = m.store.Txn(ctx, datastore.Del(BlockKey(cidr), rec.rev), datastore.Del(affinityKey(m.node, cidr), 0))
	if isConflict(err) {
		return false, nil
	}
	return err == nil, err
}
