// Package reconcile runs level-triggered passes: a pass recomputes everything it is responsible for from
// the current state, so it can run on any change, on a timer to repair drift, and again after a failure.
package reconcile

import (
	"context"
	"log/slog"
	"time"
)

// retryDelay is how soon a failed pass first runs again; it doubles while passes keep failing (etcd down),
// up to the loop's interval.
const retryDelay = time.Second

// Loop says how often a pass runs and how its failures are reported.
type Loop struct {
	Interval time.Duration // a pass at least this often
	What     string        // names what the pass converges, in the log
	Log      *slog.Logger
}

// Run runs pass on each kick and each Interval, and again after a delay when it fails, until ctx ends.
func (l Loop) Run(ctx context.Context, kick <-chan struct{}, pass func() error) {
	resync := time.NewTicker(l.Interval)
	defer resync.Stop()
	var retry <-chan time.Time
	delay := retryDelay
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-resync.C:
		case <-retry:
		}
		retry = nil
		err := pass()
		switch {
		case err == nil:
			delay = retryDelay
		case ctx.Err() == nil:
			l.Log.Warn(l.What+" not converged; retrying", "in", delay.String(), "error", err.Error())
			retry = time.After(delay)
			delay = min(2*delay, l.Interval)
		}
	}
}

// Kick asks the loop reading c for a pass, without blocking: one pending kick covers any number.
func Kick(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
