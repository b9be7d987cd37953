package ipam

import (
	"errors"
	"fmt"

	"github.com/projectcalico/calico-libnetwork/internal/datastore"
)

// Error kinds; match them with errors.Is. The messages of the errors returned are meant for users.
var (
	ErrNoPool         = errors.New("no usable IP pool")
	ErrExhausted      = errors.New("IP pool exhausted")
	ErrInUse          = errors.New("address already in use")
	ErrNotAllocated   = errors.New("address not allocated")
	ErrTooManyRetries = errors.New("too many concurrent IPAM updates")
)

// maxRetries bounds how often one request re-reads and retries after losing a write race (Calico: 100).
const maxRetries = 100

type ipamError struct {
	kind error
	msg  string
}

func (e *ipamError) Error() string { return e.msg }
func (e *ipamError) Unwrap() error { return e.kind }

func newError(kind error, format string, args ...any) error {
	return &ipamError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// isConflict reports a failed transaction condition: someone else wrote first, so re-read and retry.
func isConflict(err error) bool {
	return errors.Is(err, datastore.ErrConflict) || errors.Is(err, datastore.ErrExists) || errors.Is(err, datastore.ErrNotFound)
}
