package dataplane

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// errStopped is returned to callers once the agent's Run has ended.
var errStopped = errors.New("dataplane agent stopped")

// job is work for the worker: a step, and whether an apply must follow it.
type job struct {
	step  func() error
	apply bool
	done  chan<- outcome // buffered
}

// outcome is what a job's sender learns: its step's error and, if it asked for an apply, that apply's
// errors (see apply) and how many jobs shared it.
type outcome struct {
	step, policy, rest error
	sharedBy           int
}

// startWorker starts the goroutine that runs every job touching the kernel or the agent's state. With
// Config.Netns it locks itself to an OS thread in that namespace for good: netlink sockets, /proc/sys
// and the nft and iptables commands it starts then all act there. Go discards a thread whose goroutine
// exits locked, so the namespace never leaks to other goroutines.
func (a *Agent) startWorker() error {
	ready := make(chan error)
	go func() {
		defer close(a.done)
		if a.cfg.Netns != "" {
			runtime.LockOSThread()
			ns, err := enterNetns(a.cfg.Netns)
			if err != nil {
				ready <- err
				return
			}
			defer ns.Close()
			a.fw.InNetns(int(ns)) // for its reads from other goroutines (Prefetch)
		}
		ready <- nil
		for {
			select {
			case j := <-a.work:
				a.pass(a.gather(j))
			case <-a.stop:
				return
			}
		}
	}()
	return <-ready
}

// enterNetns moves the calling thread into the named network namespace and returns a handle to it.
func enterNetns(name string) (netns.NsHandle, error) {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return ns, fmt.Errorf("opening network namespace %s: %w", name, err)
	}
	if err := netns.Set(ns); err != nil {
		ns.Close()
		return ns, fmt.Errorf("entering network namespace %s: %w", name, err)
	}
	return ns, nil
}

// gather takes, after first, every job whose sender is already waiting: those that came while the
// worker was busy.
func (a *Agent) gather(first job) []job {
	batch := []job{first}
	for {
		select {
		case j := <-a.work:
			batch = append(batch, j)
		default:
			return batch
		}
	}
}

// pass serves jobs together: each one's step in the order they came, then one apply for all that asked
// for one, so that a burst of Joins costs one firewall transaction, not one each.
func (a *Agent) pass(batch []job) {
	outs := make([]outcome, len(batch))
	var errs []error
	sharedBy := 0
	for i, j := range batch {
		outs[i].step = j.step()
		errs = append(errs, outs[i].step)
		if j.apply {
			sharedBy++
		}
	}
	var policyErr, restErr error
	if sharedBy > 0 {
		policyErr, restErr = a.apply()
	}
	if !a.isSynced {
		a.setSyncStatus(errors.Join(append(errs, policyErr, restErr)...))
	}
	for i, j := range batch {
		if j.apply {
			outs[i].policy, outs[i].rest, outs[i].sharedBy = policyErr, restErr, sharedBy
		}
		j.done <- outs[i]
	}
}

// submit has the worker serve step, followed by an apply if asked, and returns the outcome.
func (a *Agent) submit(ctx context.Context, step func() error, apply bool) outcome {
	done := make(chan outcome, 1)
	select {
	case a.work <- job{step: step, apply: apply, done: done}:
	case <-a.done:
		return outcome{step: errStopped}
	case <-ctx.Done():
		return outcome{step: ctx.Err()}
	}
	return <-done
}

// do runs fn on the worker and returns its error.
func (a *Agent) do(ctx context.Context, fn func() error) error {
	return a.submit(ctx, fn, false).step
}
