package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"

	"github.com/moby/moby/api/types/network"
)

// dockerStandIn answers the few Docker API reads the daemon makes in the background (its leak collectors
// and network-name learner ask which endpoints run here) as a dockerd running this host's containers
// would: each container's endpoint on its network. Without an answer the collectors would behave as while
// Docker is down, which is not what a host of a large cluster does; a real dockerd per simulated host is
// more than this benchmark needs.
type dockerStandIn struct {
	nets map[string]network.Inspect // by ID
}

// dockerAPIVersion is the API version the stand-in announces; Docker's client then uses it in every path.
const dockerAPIVersion = "1.41"

func newDockerStandIn(c *cluster) (*dockerStandIn, error) {
	d := &dockerStandIn{nets: map[string]network.Inspect{}}
	for i := range c.Local {
		w, err := c.localWEP(i)
		if err != nil {
			return nil, err
		}
		addr, err := netip.ParsePrefix(w.Spec.IPNetworks[0])
		if err != nil {
			return nil, err
		}
		name := w.Spec.Profiles[0]
		netID := id("network/"+name, 0, 64)
		n, ok := d.nets[netID]
		if !ok {
			n = network.Inspect{Network: network.Network{ID: netID, Name: name, Driver: "calico"},
				Containers: map[string]network.EndpointResource{}}
			d.nets[netID] = n
		}
		n.Containers[id("container/local", i, 64)] = network.EndpointResource{EndpointID: w.Spec.Endpoint, IPv4Address: addr}
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
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Api-Version", dockerAPIVersion)
		_, _ = w.Write([]byte("OK"))
	})
	mux.HandleFunc("GET /v"+dockerAPIVersion+"/networks", func(w http.ResponseWriter, _ *http.Request) {
		list := []network.Summary{}
		for _, n := range d.nets {
			list = append(list, network.Summary{Network: n.Network})
		}
		_ = json.NewEncoder(w).Encode(list)
	})
	mux.HandleFunc("GET /v"+dockerAPIVersion+"/networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		n, ok := d.nets[r.PathValue("id")]
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"network not found"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(n)
	})
	// The event stream stays open with nothing to say: no network is created or removed.
	mux.HandleFunc("GET /v"+dockerAPIVersion+"/events", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	go func() { _ = http.Serve(l, mux) }()
	return l, nil
}
