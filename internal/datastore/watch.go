package datastore

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EventType says what a watch event carries.
type EventType int

// Event types. A Resync carries the complete current contents of the prefix: consumers replace their view
// with it (it is sent first, and again whenever events may have been missed).
const (
	EventResync EventType = iota
	EventPut
	EventDelete
)

// Event is one change under a watched prefix.
type Event struct {
	Type     EventType
	KV       KV   // Put: the new value; Delete: the key (and the value before deletion, when known)
	Snapshot []KV // Resync: everything under the prefix
	Revision int64
}

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
				kvs, listRev, err := s.List(ctx, prefix)
				if err != nil {
					log.Warn("watch: listing failed, retrying", "prefix", prefix, "error", err.Error())
					if !sleep(ctx, delay) {
						return
					}
					delay = min(delay*2, 5*time.Second)
					continue
				}
				if !send(Event{Type: EventResync, Snapshot: kvs, Revision: listRev}) {
					return
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
