package dataplane

import (
	"sync/atomic"
	"testing"
	"time"
)

// A datastore change applied by the agent is observed with how long it took to reach the kernel.
func TestConvergenceObserved(t *testing.T) {
	var count, longest atomic.Int64
	r := newRig(t, Config{ObserveConvergence: func(d time.Duration) {
		count.Add(1)
		if int64(d) > longest.Load() {
			longest.Store(int64(d))
		}
	}})
	before := count.Load()
	r.put(networkProfile("net-a"))
	deadline := time.Now().Add(5 * time.Second)
	for count.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("applying a profile was not observed")
		}
		time.Sleep(time.Millisecond)
	}
	// Ten seconds would be a resync, not a change applied at once.
	if d := time.Duration(longest.Load()); d <= 0 || d > 10*time.Second {
		t.Errorf("convergence observed as %v", d)
	}
}
