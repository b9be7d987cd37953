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
			if err := enterNetns(a.cfg.Netns); err != nil {
				ready <- err
				return
			}
		}
		ready <- nil
		for {
			select {
			case job := <-a.work:
				job()
			case <-a.stop:
				return
			}
		}
	}()
	return <-ready
}

func enterNetns(name string) error {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", name, err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		return fmt.Errorf("entering network namespace %s: %w", name, err)
	}
	return nil
}

// do runs fn on the worker and returns its error.
func (a *Agent) do(ctx context.Context, fn func() error) error {
	result := make(chan error, 1)
	select {
	case a.work <- func() { result <- fn() }:
	case <-a.done:
		return errStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-result
}
