// Package bgpstatus is the report through which the daemon's BGP speaker tells `calicoctl node status` its
// sessions: a file in the data directory, rewritten every few seconds while the speaker runs. (calico/node's
// calicoctl asks BIRD's control socket instead; a file needs no server and no BGP library in calicoctl.)
package bgpstatus

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// File is the report's name in the data directory (CALICO_DATA_DIR).
const File = "bgp-status.json"

// Interval is how often the daemon rewrites the report; one older than Stale means the daemon is gone.
const (
	Interval = 2 * time.Second
	Stale    = 5 * Interval
)

// Session is one BGP session.
type Session struct {
	Peer  string `json:"peer"`  // the peer's address
	Type  string `json:"type"`  // "node-to-node mesh", "global" or "node specific"
	State string `json:"state"` // BGP FSM state: Idle, Connect, Active, OpenSent, OpenConfirm, Established
	Since string `json:"since"` // when it reached that state, HH:MM:SS (UTC), for an established session
}

// Report is what the daemon writes.
type Report struct {
	Written  time.Time `json:"written"`
	Sessions []Session `json:"sessions"`
}

// Write replaces the report in dir atomically.
func Write(dir string, r Report) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, File+".*")
	if err != nil {
		return fmt.Errorf("writing the BGP status: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the BGP status: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the BGP status: %w", err)
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, File))
}

// Read returns the report in dir; ok is false when there is none or it is stale (no speaker runs).
func Read(dir string, now time.Time) (r Report, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, File))
	if os.IsNotExist(err) {
		return Report{}, false, nil
	}
	if err != nil {
		return Report{}, false, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return Report{}, false, fmt.Errorf("reading %s: %w", filepath.Join(dir, File), err)
	}
	return r, now.Sub(r.Written) < Stale, nil
}

// Remove deletes the report, when the speaker stops.
func Remove(dir string) { os.Remove(filepath.Join(dir, File)) }
