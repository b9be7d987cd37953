package daemon

import (
	"fmt"
	"net"
)

// notify sends systemd a state: READY=1 once the plugin sockets accept calls (the unit is Type=notify,
// so docker.service, ordered after it, starts only when Docker can reach the plugin), STATUS=... while
// it waits. socket is $NOTIFY_SOCKET; empty when not started by systemd, and then there is nobody to tell.
func notify(socket, state string) error {
	if socket == "" {
		return nil
	}
	if socket[0] == '@' { // an abstract socket, named with a leading NUL
		socket = "\x00" + socket[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("telling systemd %q: %w", state, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("telling systemd %q: %w", state, err)
	}
	return nil
}
