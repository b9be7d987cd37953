package linktest

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ProbeTimeout bounds one TCP or UDP probe. Between namespaces of one kernel an answer takes well under
// a millisecond, so this only decides how long a blocked probe takes to say so.
const ProbeTimeout = 400 * time.Millisecond

// Serve answers on port, TCP and UDP, both families, in namespace ns until the test ends: each TCP
// connection and each UDP datagram gets one line back, the source address the server saw. That is
// how tests see both reachability and whether the source was masqueraded.
func Serve(t testing.TB, ns string, port int) {
	t.Helper()
	var tcp net.Listener
	var udp net.PacketConn
	MustDo(t, ns, func() {
		var err error
		tcp, err = net.Listen("tcp", ":"+strconv.Itoa(port))
		Must(t, err)
		udp, err = net.ListenPacket("udp", ":"+strconv.Itoa(port))
		Must(t, err)
	})
	t.Cleanup(func() { tcp.Close(); udp.Close() })
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = udp.WriteTo([]byte(from.(*net.UDPAddr).IP.String()+"\n"), from)
		}
	}()
}

// Probe connects from namespace ns to a Serve server at ip:port over network ("tcp" or "udp") and
// returns the source address the server saw.
func Probe(ns, network string, ip net.IP, port int) (seenFrom string, err error) {
	if doErr := Do(ns, func() { seenFrom, err = probe(network, ip, port) }); doErr != nil {
		return "", doErr
	}
	return seenFrom, err
}

func probe(network string, ip net.IP, port int) (string, error) {
	c, err := net.DialTimeout(network, net.JoinHostPort(ip.String(), strconv.Itoa(port)), ProbeTimeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ProbeTimeout))
	if network == "udp" {
		if _, err := c.Write([]byte("?")); err != nil {
			return "", err
		}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// Conn is a TCP connection to an echo server, kept open to show that a change on its way leaves
// established connections alone.
type Conn struct {
	c  net.Conn
	rd *bufio.Reader
}

// Connect starts an echo server on port in the namespace server runs functions in (a Do or DoPID),
// connects to it at ip from client's, and checks a round trip. Both end with the test.
func Connect(t testing.TB, server, client func(func()) error, ip net.IP, port int) *Conn {
	t.Helper()
	var l net.Listener
	Must(t, server(func() {
		var err error
		l, err = net.Listen("tcp", ":"+strconv.Itoa(port))
		Must(t, err)
	}))
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s := bufio.NewScanner(c)
		for s.Scan() {
			fmt.Fprintln(c, s.Text())
		}
	}()
	var c net.Conn
	Must(t, client(func() {
		var err error
		c, err = net.DialTimeout("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)), time.Second)
		Must(t, err)
	}))
	t.Cleanup(func() { c.Close() })
	cn := &Conn{c: c, rd: bufio.NewReader(c)}
	cn.RoundTrip(t)
	return cn
}

// RoundTrip sends a line and expects it back within two seconds.
func (c *Conn) RoundTrip(t testing.TB) {
	t.Helper()
	_ = c.c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintln(c.c, "ping"); err != nil {
		t.Fatalf("established connection to %s: %v", c.c.RemoteAddr(), err)
	}
	if line, err := c.rd.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("established connection to %s: read %q, %v", c.c.RemoteAddr(), line, err)
	}
}
