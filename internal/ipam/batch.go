package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/projectcalico/calico-libnetwork/internal/api"
)

type opKind int

const (
	opRelease opKind = iota // kinds in the order a round plans them: frees first, so they can be reused
	opReleaseHandle
	opSetAttrs
	opAssign
	opAuto
)

// op is one request, planned by rounds until one commits.
type op struct {
	kind   opKind
	ctx    context.Context
	family int
	pools  []string
	ip     netip.Addr
	handle string
	attrs  map[string]string

	// Outcome of the latest round.
	addr     netip.Addr
	pool     *api.IPPool
	released int
	err      error

	mu                  sync.Mutex
	done                chan struct{}
	finished, abandoned bool
}

// finish publishes the outcome to the caller; false if the caller has given up waiting.
func (o *op) finish() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.abandoned {
		return false
	}
	o.finished = true
	close(o.done)
	return true
}

// abandon withdraws the caller; false if the outcome is already published.
func (o *op) abandon() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.abandoned = !o.finished
	return o.abandoned
}

// do runs an op: in the caller's goroutine when unbatched, otherwise through the batch writer. When it
// returns an error the op's outcome fields must not be read: an abandoned op may still be being planned.
func (m *IPAM) do(ctx context.Context, o *op) error {
	o.ctx, o.done = ctx, make(chan struct{})
	if m.unbatched {
		m.process(ctx, []*op{o})
		return o.err
	}
	if m.queue.submit(o) {
		go m.queue.drain()
	}
	select {
	case <-o.done:
	case <-ctx.Done():
		if o.abandon() {
			return context.Cause(ctx) // the driver's deadline says which dependency did not answer
		}
	}
	return o.err
}

// maxBatch bounds the ops of one round so that its transaction stays within etcd's default limit of 128
// operations (an op changes at most one handle and, for a handle spanning families, two blocks).
const maxBatch = 40

// queue feeds the batch writer, which applies everything queued so far in one round, so concurrent
// requests share reads and one transaction instead of racing for the block. There is at most one writer
// at a time and none while nothing is queued.
type queue struct {
	m       *IPAM
	mu      sync.Mutex
	pending []*op
	running bool
}

// submit queues o and reports whether the caller must start the writer (none is running).
func (q *queue) submit(o *op) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending, o)
	if q.running {
		return false
	}
	q.running = true
	return true
}

// drain runs rounds until the queue is empty. It runs in a goroutine of its own, never a caller's: a round
// waits for etcd as long as its requests allow, and each caller must be free to stop waiting when its own
// context ends.
func (q *queue) drain() {
	for {
		q.mu.Lock()
		n := min(len(q.pending), maxBatch)
		if n == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		batch := q.pending[:n:n]
		q.pending = append([]*op(nil), q.pending[n:]...)
		q.mu.Unlock()
		// Callers' contexts only decide whether an op is still wanted; the writes themselves must not be
		// cut short by one caller leaving.
		q.m.process(context.Background(), batch)
	}
}

// process applies ops in rounds until one commits, re-reading after every lost write race (at most
// maxRetries times). Results are published as the round ends.
func (m *IPAM) process(ctx context.Context, ops []*op) {
	for attempt := 1; ; attempt++ {
		var live []*op
		for _, o := range ops {
			if err := o.ctx.Err(); err != nil {
				o.addr, o.err = netip.Addr{}, err
				m.settle(o)
				continue
			}
			o.addr, o.pool, o.released, o.err = netip.Addr{}, nil, 0, nil
			live = append(live, o)
		}
		if ops = live; len(ops) == 0 {
			return
		}
		r := m.newRound(ctx)
		r.prefetchHandles(ops)
		r.preload(ops)
		r.plan(ops)
		err := r.commit()
		if err != nil && !isConflict(err) {
			// The transaction may or may not have been applied: find out before answering or retrying.
			applied, verr := r.applied()
			switch {
			case applied:
				err = nil
			case verr != nil:
				err = fmt.Errorf("IPAM write failed (%w) and etcd could not be asked whether it was applied: %v", err, verr)
			default:
				err = errRetry
			}
		}
		if err == errRetry || isConflict(err) {
			if attempt < maxRetries {
				continue
			}
			err = newError(ErrTooManyRetries, "too many concurrent IPAM updates: gave up after %d attempts", attempt)
		}
		for _, o := range ops {
			if err != nil {
				o.addr = netip.Addr{}
				if o.err == nil {
					o.err = err
				}
			}
			m.settle(o)
		}
		return
	}
}

// errRetry: an interrupted transaction turned out not to be applied; run the round again.
var errRetry = errors.New("retry")

// plan plans every op against one round's view of the datastore.
func (r *round) plan(ops []*op) {
	var auto4, auto6 []*op
	for kind := range opAuto + 1 {
		for _, o := range ops {
			switch {
			case o.kind != kind:
			case kind == opRelease:
				r.planRelease(o)
			case kind == opReleaseHandle:
				r.planReleaseHandle(o)
			case kind == opSetAttrs:
				r.planSetAttrs(o)
			case kind == opAssign:
				r.planAssign(o)
			case o.family == 4:
				auto4 = append(auto4, o)
			default:
				auto6 = append(auto6, o)
			}
		}
	}
	r.planAuto(4, auto4)
	r.planAuto(6, auto6)
}

// settle publishes an op's outcome. If its caller left after the address was committed, the address is
// released again so that it does not leak.
func (m *IPAM) settle(o *op) {
	if o.finish() || !o.addr.IsValid() {
		return
	}
	m.log.Info("releasing address of an abandoned request", "ip", o.addr.String(), "handle", o.handle)
	if m.queue.submit(&op{kind: opRelease, ctx: context.Background(), ip: o.addr, handle: o.handle, done: make(chan struct{})}) {
		go m.queue.drain()
	}
}
