package datastore

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EventType says what a watch event carries.
type EventType int

// Event types. Resyncs carry the complete current contents of the prefix, a page at a time: consumers apply
// every page and, after the last, drop what that listing did not contain (see Listing). A listing is sent
// first, and again whenever events may have been missed.
const (
	EventResync EventType = iota
	EventPut
	EventDelete
)

// Event is one change under a watched prefix.
type Event struct {
	Type     EventType
	KV       KV   // Put: the new value; Delete: the key (and the value before deletion, when known)
	Snapshot []KV // Resync: one page of everything under the prefix, in key order
	More     bool // Resync: further pages of the same listing (same Revision) follow
	Revision int64
	applied  func() // Resync with More: lets the watch send the page after next (see Listing.Add)
}

// watchPage is how many keys one Resync event carries. The watch reads a page ahead of the one its
// consumer applies and no further, so a listing of a large cluster is never held in memory whole.
const watchPage = 1000

// Watch streams the contents of prefix and every later change, in order, until ctx ends. It starts with a
// Resync; after a dropped connection it resumes from the last revision seen, and if etcd has compacted that
// history it re-lists and sends a new Resync, so no change is ever lost. The channel closes when ctx ends.
func (s *Store) Watch(ctx context.Context, prefix string, log *slog.Logger) <-chan Event {
	out := make(chan Event, 64)
	go func() {
		defer close(out)
		send := func(ev Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		var rev int64 // last revision delivered; 0 = need a full listing
		delay := 100 * time.Millisecond
		for ctx.Err() == nil {
			if rev == 0 {
				listRev, err := s.listPages(ctx, prefix, watchPage, send)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					log.Warn("watch: listing failed, retrying", "prefix", prefix, "error", err.Error())
					if !sleep(ctx, delay) {
						return
					}
					delay = min(delay*2, 5*time.Second)
					continue
				}
				rev = listRev
			}
			delay = 100 * time.Millisecond
			var err error
			rev, err = s.follow(ctx, prefix, rev, send)
			if errors.Is(err, rpctypes.ErrCompacted) {
				log.Info("watch: history compacted, resyncing", "prefix", prefix)
				rev = 0
			} else if err != nil && ctx.Err() == nil {
				s.failed("watch", err)
				log.Warn("watch: stream broken, resuming", "prefix", prefix, "fromRevision", rev+1, "error", err.Error())
				if !sleep(ctx, delay) {
					return
				}
			}
		}
	}()
	return out
}

// listPages sends the contents of prefix as Resync events of up to size keys, every page read at the
// revision of the first, and returns that revision. Each page waits for its predecessor to be applied.
func (s *Store) listPages(ctx context.Context, prefix string, size int64, send func(Event) bool) (int64, error) {
	var rev int64
	var previous chan struct{} // closed once the consumer has applied the page sent last
	err := s.ListPages(ctx, prefix, size, func(page []KV, pageRev int64, more bool) error {
		if previous != nil {
			select {
			case <-previous:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		rev = pageRev
		ev := Event{Type: EventResync, Snapshot: page, More: more, Revision: rev}
		if more {
			applied := make(chan struct{})
			previous, ev.applied = applied, sync.OnceFunc(func() { close(applied) })
		}
		if !send(ev) {
			return ctx.Err()
		}
		return nil
	})
	return rev, err
}

// Listing gathers the keys of a paged listing, for its consumer to drop, after the last page, what the
// listing did not contain. The zero Listing is ready to use.
type Listing struct {
	rev  int64
	keys map[string]struct{}
}

// Add records a Resync page its consumer has applied, which lets the watch read on, and reports whether
// the page completed its listing. A page of a newer listing (after an interrupted one) starts afresh.
func (l *Listing) Add(ev Event) bool {
	if ev.applied != nil {
		ev.applied()
	}
	if l.keys == nil || l.rev != ev.Revision {
		l.rev, l.keys = ev.Revision, map[string]struct{}{}
	}
	for _, kv := range ev.Snapshot {
		l.keys[kv.Key] = struct{}{}
	}
	return !ev.More
}

// Has reports whether the listing contained key.
func (l *Listing) Has(key string) bool {
	_, ok := l.keys[key]
	return ok
}

// Reset forgets the listing once its consumer has pruned.
func (l *Listing) Reset() { l.keys = nil }

// follow delivers events after revision rev until the stream breaks; it returns the last revision delivered.
func (s *Store) follow(ctx context.Context, prefix string, rev int64, send func(Event) bool) (int64, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV()) {
		if err := resp.Err(); err != nil {
			return rev, err
		}
		for _, e := range resp.Events {
			ev := Event{Type: EventPut, Revision: e.Kv.ModRevision,
				KV: KV{Key: string(e.Kv.Key), Value: e.Kv.Value, Revision: e.Kv.ModRevision}}
			if e.Type == clientv3.EventTypeDelete {
				ev.Type = EventDelete
				if e.PrevKv != nil {
					ev.KV.Value = e.PrevKv.Value
				}
			}
			if !send(ev) {
				return rev, ctx.Err()
			}
			rev = e.Kv.ModRevision
		}
	}
	return rev, errors.New("watch channel closed")
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
