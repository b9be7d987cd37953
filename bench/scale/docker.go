package main

import (
	"encoding/json"
	"net"
	"net/http"

	"github.com/projectcalico/calico-libnetwork/internal/docker"
)

// dockerStandIn answers the few Docker API reads the daemon makes in the background (its leak collectors
// and network-name learner ask which endpoints run here) as a dockerd running this host's containers
// would: each container's endpoint on its network. Without an answer the collectors would behave as while
// Docker is down, which is not what a host of a large cluster does; a real dockerd per simulated host is
// more than this benchmark needs.
type dockerStandIn struct {
	nets map[string]docker.Network // by ID
}

func newDockerStandIn(c *cluster) (*dockerStandIn, error) {
	d := &dockerStandIn{nets: map[string]docker.Network{}}
	for i := range c.Local {
		w, err := c.localWEP(i)
		if err != nil {
			return nil, err
		}
		name := w.Spec.Profiles[0]
		netID := id("network/"+name, 0, 64)
		n, ok := d.nets[netID]
		if !ok {
			n = docker.Network{ID: netID, Name: name, Driver: "calico", Containers: map[string]docker.NetworkEndpoint{}}
			d.nets[netID] = n
		}
		n.Containers[id("container/local", i, 64)] = docker.NetworkEndpoint{EndpointID: w.Spec.Endpoint,
			IPv4Address: w.Spec.IPNetworks[0]}
	}
	return d, nil
}

// serve answers on a unix socket until the listener closes.
func (d *dockerStandIn) serve(socket string) (net.Listener, error) {
	l, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /networks", func(w http.ResponseWriter, _ *http.Request) {
		list := []docker.Network{}
		for _, n := range d.nets {
			list = append(list, docker.Network{ID: n.ID, Name: n.Name, Driver: n.Driver})
		}
		_ = json.NewEncoder(w).Encode(list)
	})
	mux.HandleFunc("GET /networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		n, ok := d.nets[r.PathValue("id")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(n)
	})
	// The event stream stays open with nothing to say: no network is created or removed.
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	go func() { _ = http.Serve(l, mux) }()
	return l, nil
}
