package daemon

import (
	"fmt"
	"net"
)

// notifyReady tells systemd that the plugin sockets accept calls (the unit is Type=notify), so that
// docker.service, ordered after it, starts only when Docker can reach the plugin. socket is
// $NOTIFY_SOCKET; empty when not started by systemd, and then there is nobody to tell.
func notifyReady(socket string) error {
	if socket == "" {
		return nil
	}
	if socket[0] == '@' { // an abstract socket, named with a leading NUL
		socket = "\x00" + socket[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("telling systemd the plugin is ready: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("READY=1")); err != nil {
		return fmt.Errorf("telling systemd the plugin is ready: %w", err)
	}
	return nil
}
