package calicoctl

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/projectcalico/calico-libnetwork/internal/bgpstatus"
)

func TestNodeStatus(t *testing.T) {
	dir, now := t.TempDir(), time.Now()
	var out bytes.Buffer
	if err := nodeStatus(&out, dir, now); !errors.Is(err, errNotRunning) || out.String() != "Calico process is not running.\n" {
		t.Errorf("without a report: %v\n%s", err, out.String())
	}
	report := bgpstatus.Report{Written: now, Sessions: []bgpstatus.Session{
		{Peer: "198.18.0.12", Type: "node-to-node mesh", State: "Established", Since: "07:30:04"},
		{Peer: "198.18.0.1", Type: "node specific", State: "Active"},
	}}
	if err := bgpstatus.Write(dir, report); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := nodeStatus(&out, dir, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// upstream calicoctl node status's layout
	want := `Calico process is running.

IPv4 BGP status
+--------------+-------------------+-------+----------+-------------+
| PEER ADDRESS | PEER TYPE         | STATE | SINCE    | INFO        |
+--------------+-------------------+-------+----------+-------------+
| 198.18.0.12  | node-to-node mesh | up    | 07:30:04 | Established |
| 198.18.0.1   | node specific     | start |          | Active      |
+--------------+-------------------+-------+----------+-------------+

IPv6 BGP status
No IPv6 peers found.

`
	if out.String() != want {
		t.Errorf("node status:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := nodeStatus(&out, dir, now.Add(bgpstatus.Stale)); !errors.Is(err, errNotRunning) {
		t.Errorf("stale report: %v\n%s", err, out.String())
	}
}
