package ipam

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// randomDeadline gives requests 0-150 ms, so many are cancelled at a random point of their round.
func randomDeadline() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Duration(rand.IntN(150000))*time.Microsecond)
}

// releaseEverything frees what callers hold and what they failed to release, each only if still held by
// the same handle, retrying while etcd recovers.
func releaseEverything(t *testing.T, m *IPAM, held *holders, uncertain map[netip.Addr]string) {
	t.Helper()
	for ip, handle := range held.by {
		uncertain[ip] = handle
	}
	for ip, handle := range uncertain {
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := m.releaseHeld(bg, ip, handle)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("releasing %s: %v", ip, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// assertEmptied waits until no allocation and no handle is left (requests abandoned by their callers are
// released in the background), then checks consistency.
func assertEmptied(t *testing.T, s *datastore.Store) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		handles, _, err := s.List(bg, handlePrefix)
		left := allocations(t, s)
		if err == nil && len(left) == 0 && len(handles) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leaked: %d allocations %v, %d handles (err %v)", len(left), left, len(handles), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	assertConsistent(t, s)
}

func TestCancelledRequests(t *testing.T) {
	modes(t, func(t *testing.T, unbatched bool) {
		reset(t, testStore)
		createPool(t, testStore, "p", "10.0.0.0/22", 26, nil)
		ipams := nodeIPAMs(testStore, "node", 4, unbatched)
		// tolerate: etcd may time a request out just before the client's deadline passes.
		held, uncertain := churn(t, ipams, churnOpts{workers: 32, ops: 25, ctx: randomDeadline, tolerate: true})
		t.Logf("%d of %d allocations succeeded, %d releases may have failed", held.taken, 32*25, len(uncertain))
		// Abandoned allocations are still being released in the background: the checks hold meanwhile.
		assertConsistent(t, testStore)
		releaseEverything(t, ipams[0], held, uncertain)
		assertEmptied(t, testStore)
	})
}

// TestEtcdRestart kills etcd (SIGKILL) in the middle of concurrent allocation by batched and per-request
// nodes, restarts it on the same data, and checks that nothing was handed out twice and nothing leaked.
func TestEtcdRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts an etcd process")
	}
	e := startExternalEtcd(t)
	s := e.connect(t)
	defer s.Close()
	createPool(t, s, "p", "10.0.0.0/22", 26, nil)
	ipams := append(nodeIPAMs(s, "batch", 4, false), nodeIPAMs(s, "percas", 4, true)...)
	type outcome struct {
		held      *holders
		uncertain map[netip.Addr]string
	}
	done := make(chan outcome)
	go func() {
		held, uncertain := churn(t, ipams, churnOpts{workers: 32, ops: 60, tolerate: true, ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 3*time.Second)
		}})
		done <- outcome{held, uncertain}
	}()
	time.Sleep(400 * time.Millisecond)
	e.kill()
	time.Sleep(time.Second)
	e.start(t)
	got := <-done
	t.Logf("%d allocations succeeded, %d releases may have failed", got.held.taken, len(got.uncertain))
	if n := len(got.held.by); n == 0 {
		t.Error("no allocation survived; the test proves nothing")
	}
	assertConsistent(t, s)
	releaseEverything(t, ipams[0], got.held, got.uncertain)
	assertEmptied(t, s)
}

// A batched request returns when its context ends, with the context's cause, even though the round
// serving it still waits on an etcd that does not answer: the caller never runs the round itself.
func TestRequestBoundedWhileEtcdSilent(t *testing.T) {
	silent, err := datastore.Connect(datastore.ClientConfig{Endpoints: []string{"http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	m := newIPAM(silent, "node", false)
	cause := errors.New("etcd is down")
	ctx, cancel := context.WithTimeoutCause(bg, 200*time.Millisecond, cause)
	defer cancel()
	began := time.Now()
	_, _, err = m.AutoAssign(ctx, Request{Family: 4, Handle: "h"})
	if took := time.Since(began); !errors.Is(err, cause) || took > 2*time.Second {
		t.Errorf("AutoAssign with etcd silent: %v after %v, want %q within 2 s", err, took, cause)
	}
}
