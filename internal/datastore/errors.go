// Package datastore stores Calico's v3 resources and IPAM records in etcd, in Calico's own key layout.
// Every write is a compare-and-swap on the etcd mod revision, so concurrent writers (goroutines, daemons on
// other hosts, upstream Calico tools) never overwrite each other silently.
package datastore

import (
	"errors"
	"fmt"
)

// Sentinel errors; match them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("update conflict: the resource changed since it was read")
)

// KeyError ties a datastore error to the key it concerns.
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return fmt.Sprintf("%s: %v", e.Key, e.Err) }
func (e *KeyError) Unwrap() error { return e.Err }
