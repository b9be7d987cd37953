package libnetwork

import (
	"log/slog"
	"net/http"
	"strings"
)

// Subsystem names, as Docker spells them in paths and in the handshake.
const (
	networkSubsystem = "NetworkDriver"
	ipamSubsystem    = "IpamDriver"
)

// pluginMux serves both protocols on one socket by sending each path to the
// handler of its subsystem.
type pluginMux struct {
	network, ipam, activate http.Handler
}

// NewPluginHandler serves NetworkDriver and IpamDriver on one socket, as a
// managed (v2) plugin must: its config names a single socket, and Docker
// learns from /Plugin.Activate that it implements both. Each subsystem is
// served exactly as by NewNetworkHandler and NewIpamHandler. A nil log
// discards; a nil observe observes nothing.
func NewPluginHandler(network NetworkDriver, ipam IpamDriver, log *slog.Logger, observe Observer) http.Handler {
	activate := newHandler("Plugin", log, observe, nil)
	activate.methods[activatePath] = activation(networkSubsystem, ipamSubsystem)
	return &pluginMux{
		network:  NewNetworkHandler(network, log, observe),
		ipam:     NewIpamHandler(ipam, log, observe),
		activate: activate,
	}
}

func (m *pluginMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == activatePath:
		m.activate.ServeHTTP(w, r)
	case strings.HasPrefix(r.URL.Path, "/"+ipamSubsystem+"."):
		m.ipam.ServeHTTP(w, r)
	default:
		// Includes unknown paths, which the network handler refuses.
		m.network.ServeHTTP(w, r)
	}
}
