package harness

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"time"
)

// pluginCallTimeout bounds one direct plugin call; the slowest driver calls wait on etcd (5 s per request).
const pluginCallTimeout = 30 * time.Second

// Socket names one of the plugin's two sockets.
type Socket string

// The plugin's sockets, as Docker finds them.
const (
	NetworkSocket Socket = networkSocket
	IpamSocket    Socket = ipamSocket
)

// Call POSTs body to /<method> (e.g. "NetworkDriver.Join") on one of the plugin's sockets, as Docker does,
// and returns the HTTP status and response body. An error means no HTTP answer at all.
func (p *Plugin) Call(sock Socket, method string, body []byte) (int, []byte, error) {
	c := unixClient(filepath.Join(p.pluginDir, string(sock)), pluginCallTimeout)
	resp, err := c.Post("http://plugin/"+method, "application/vnd.docker.plugins.v1.2+json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("%s on %s: %w", method, sock, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, out, fmt.Errorf("%s on %s: reading the answer: %w", method, sock, err)
	}
	return resp.StatusCode, out, nil
}
