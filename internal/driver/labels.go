package driver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/api"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/docker"
)

// labelPrefix marks the container labels copied onto the endpoint (prefix removed).
const labelPrefix = "org.projectcalico.label."

// labeller copies container labels onto endpoints in the background: Docker does not pass labels to
// drivers, and asking Docker from inside a driver call could deadlock it.
type labeller struct {
	d       *Driver
	mu      sync.Mutex
	cancels map[string]context.CancelFunc
}

func newLabeller(d *Driver) *labeller {
	return &labeller{d: d, cancels: map[string]context.CancelFunc{}}
}

// start polls Docker until the endpoint's container is known (it is attached only after Join), then
// copies its labels; it gives up after the poll timeout.
func (l *labeller) start(networkID, endpointID string) {
	if l.d.docker == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.d.cfg.LabelPollTimeout)
	l.mu.Lock()
	l.cancels[endpointID] = cancel
	l.mu.Unlock()
	go func() {
		defer l.stop(endpointID)
		labels, err := l.containerLabels(ctx, networkID, endpointID)
		if err != nil {
			l.d.log.Warn("could not copy container labels to the endpoint", "endpoint", short(endpointID), "error", err.Error())
			return
		}
		if len(labels) > 0 {
			l.apply(ctx, endpointID, labels)
		}
	}()
}

// stop cancels a pending poll (the endpoint is going away).
func (l *labeller) stop(endpointID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cancel, ok := l.cancels[endpointID]; ok {
		cancel()
		delete(l.cancels, endpointID)
	}
}

func (l *labeller) containerLabels(ctx context.Context, networkID, endpointID string) (map[string]string, error) {
	var failed error // why Docker could not be asked, the last time
	for {
		net, err := l.d.docker.Network(ctx, networkID)
		switch {
		case err == nil || errors.Is(err, docker.ErrNotFound):
			failed = nil
		case ctx.Err() == nil: // not our own deadline
			failed = err
		}
		if err == nil {
			for containerID, ep := range net.Containers {
				// Docker lists an endpoint under "ep-<id>" until its container is attached.
				if ep.EndpointID != endpointID || strings.HasPrefix(containerID, "ep-") {
					continue
				}
				all, err := l.d.docker.ContainerLabels(ctx, containerID)
				if err != nil {
					return nil, err
				}
				out := map[string]string{}
				for k, v := range all {
					key, ok := strings.CutPrefix(k, labelPrefix)
					if !ok {
						continue
					}
					if !validLabel(key, v) {
						l.d.log.Warn("container label is not a valid Calico label; not copied", "endpoint", short(endpointID),
							"label", clip(k), "value", clip(v))
						continue
					}
					out[key] = v
				}
				return out, nil
			}
		}
		select {
		case <-ctx.Done():
			if failed != nil {
				return nil, fmt.Errorf("gave up after CALICO_LIBNETWORK_LABEL_POLL_TIMEOUT: %w", failed)
			}
			return nil, errors.New("container not found on its network within CALICO_LIBNETWORK_LABEL_POLL_TIMEOUT")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// validLabel reports whether a label may go on an endpoint (Calico's rules for keys and values); one bad
// label would make the whole update fail.
func validLabel(key, value string) bool {
	probe := &api.Profile{}
	probe.Name = "label-check"
	probe.Labels = map[string]string{key: value}
	return api.Validate(probe) == nil
}

// apply merges the labels into the endpoint with compare-and-swap retries.
func (l *labeller) apply(ctx context.Context, endpointID string, labels map[string]string) {
	ident, err := api.LibnetworkEndpoint(l.d.cfg.Node, endpointID)
	if err != nil {
		return
	}
	for ctx.Err() == nil {
		wep, err := datastore.Get[*api.WorkloadEndpoint](ctx, l.d.store, ident.Namespace, ident.Name)
		if err != nil {
			l.d.log.Warn("endpoint vanished before its labels were copied", "endpoint", short(endpointID), "error", err.Error())
			return
		}
		if wep.Labels == nil {
			wep.Labels = map[string]string{}
		}
		maps.Copy(wep.Labels, labels)
		err = l.d.store.Update(ctx, wep)
		if err == nil {
			l.d.log.Info("copied container labels to endpoint", "endpoint", short(endpointID), "labels", labels)
			return
		}
		if !errors.Is(err, datastore.ErrConflict) {
			l.d.log.Warn("could not label endpoint", "endpoint", short(endpointID), "error", err.Error())
			return
		}
	}
}
