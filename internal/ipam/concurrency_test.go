package ipam

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// holders records who holds each address handed out, failing the test when one is handed out twice.
type holders struct {
	mu    sync.Mutex
	by    map[netip.Addr]string
	taken int // allocations that succeeded
}

func newHolders() *holders { return &holders{by: map[netip.Addr]string{}} }

func (h *holders) take(tb testing.TB, ip netip.Addr, who string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if prev, ok := h.by[ip]; ok {
		tb.Errorf("%s handed to %s while %s holds it", ip, who, prev)
	}
	h.by[ip] = who
	h.taken++
}

func (h *holders) drop(ip netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.by, ip)
}

// churnOpts shapes a churn run.
type churnOpts struct {
	workers, ops int
	ctx          func() (context.Context, context.CancelFunc) // context of each request
	tolerate     bool                                         // requests may fail (etcd is being restarted)
}

// churn runs workers spread over the given IPAMs, each allocating and releasing at random (by address or by
// handle). It returns what callers were told they hold, and the addresses whose release failed (so may
// or may not have happened), with their handles.
func churn(t *testing.T, ipams []*IPAM, o churnOpts) (*holders, map[netip.Addr]string) {
	h := newHolders()
	var mu sync.Mutex
	uncertain := map[netip.Addr]string{}
	var wg sync.WaitGroup
	for w := range o.workers {
		m := ipams[w%len(ipams)]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			var mine []netip.Addr
			handles := map[netip.Addr]string{}
			for i := range o.ops {
				ctx, cancel := o.ctx()
				if len(mine) > 0 && rng.IntN(3) == 0 {
					k := rng.IntN(len(mine))
					ip := mine[k]
					h.drop(ip)
					var err error
					if rng.IntN(2) == 0 {
						_, err = m.ReleaseIP(ctx, ip)
					} else {
						err = m.ReleaseByHandle(ctx, handles[ip])
					}
					if err != nil {
						if ctx.Err() == nil && !o.tolerate {
							t.Errorf("release %s: %v", ip, err)
						}
						mu.Lock()
						uncertain[ip] = handles[ip]
						mu.Unlock()
					}
					mine = append(mine[:k], mine[k+1:]...)
				} else {
					handle := fmt.Sprintf("libnetwork.w%d.%d", w, i)
					ip, _, err := m.AutoAssign(ctx, Request{Family: 4, Handle: handle})
					switch {
					case err == nil:
						h.take(t, ip, handle)
						mine = append(mine, ip)
						handles[ip] = handle
					case ctx.Err() == nil && !o.tolerate:
						t.Errorf("%s: AutoAssign: %v", m.node, err)
					}
				}
				cancel()
			}
		})
	}
	wg.Wait()
	return h, uncertain
}

func noDeadline() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// nodeIPAMs returns n IPAMs, for nodes <prefix>0 to <prefix>(n-1).
func nodeIPAMs(s *datastore.Store, prefix string, n int, unbatched bool) []*IPAM {
	out := make([]*IPAM, n)
	for i := range out {
		out[i] = newIPAM(s, fmt.Sprintf("%s%d", prefix, i), unbatched)
	}
	return out
}

func TestConcurrentNodes(t *testing.T) {
	modes(t, func(t *testing.T, unbatched bool) {
		reset(t, testStore)
		createPool(t, testStore, "p", "10.0.0.0/22", 26, nil)
		ipams := nodeIPAMs(testStore, "node", 8, unbatched)
		held, _ := churn(t, ipams, churnOpts{workers: 40, ops: 30, ctx: noDeadline})
		assertHeldExactly(t, testStore, held)
		assertConsistent(t, testStore)
		for cidr, b := range storedBlocks(t, testStore) {
			for _, a := range b.Allocated() {
				if b.Owner() != a.Secondary[AttrNode] {
					t.Logf("block %s of %s lends an address to %s", cidr, b.Owner(), a.Secondary[AttrNode])
				}
			}
		}
	})
}

// assertHeldExactly checks that the stored allocations are exactly what callers were told they hold.
func assertHeldExactly(tb testing.TB, s *datastore.Store, h *holders) {
	tb.Helper()
	stored := allocations(tb, s)
	for ip, who := range h.by {
		if stored[ip] != who {
			tb.Errorf("%s held by %s but stored for %q", ip, who, stored[ip])
		}
	}
	for ip, handle := range stored {
		if _, ok := h.by[ip]; !ok {
			tb.Errorf("%s (handle %s) is allocated but nobody was given it (leaked)", ip, handle)
		}
	}
}
