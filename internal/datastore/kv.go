package datastore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// KV is one stored key with the revision it was last modified at.
type KV struct {
	Key      string
	Value    []byte
	Revision int64
}

// Store is a handle on the etcd datastore. It is safe for concurrent use.
type Store struct {
	cli *clientv3.Client
	// timeout bounds every single request so that an unreachable etcd turns into a clear error quickly
	// instead of blocking a Docker driver call.
	timeout time.Duration
	// tls is the client's TLS configuration (nil without TLS), kept so that WaitReady can diagnose
	// certificate failures, which the etcd client itself only ever reports as timeouts.
	tls *tls.Config
	// onError is ClientConfig.OnError (nil: nobody counts failures).
	onError func(op string)
}

// NewStore wraps an etcd client; timeout bounds each request (0 means 5 s).
func NewStore(cli *clientv3.Client, timeout time.Duration) *Store {
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	return &Store{cli: cli, timeout: timeout}
}

// Client exposes the underlying etcd client (for watches and the embedded-server plumbing).
func (s *Store) Client() *clientv3.Client { return s.cli }

// Close releases the client connection.
func (s *Store) Close() error { return s.cli.Close() }

func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

func (s *Store) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	s.failed(op, err)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (no answer from etcd at %s within %s)", err, strings.Join(s.cli.Endpoints(), ","), s.timeout)
	}
	return &KeyError{Key: key, Err: fmt.Errorf("etcd %s failed: %w", op, err)}
}

// failed reports a failed etcd operation to onError.
func (s *Store) failed(op string, err error) {
	if s.onError != nil && !errors.Is(err, context.Canceled) {
		s.onError(op)
	}
}

// Get reads one key; ErrNotFound if absent.
func (s *Store) Get(ctx context.Context, key string) (KV, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return KV{}, s.wrap("get", key, err)
	}
	if len(resp.Kvs) == 0 {
		return KV{}, &KeyError{Key: key, Err: ErrNotFound}
	}
	kv := resp.Kvs[0]
	return KV{Key: string(kv.Key), Value: kv.Value, Revision: kv.ModRevision}, nil
}

// List reads every key under prefix, with the store revision the listing is consistent at.
func (s *Store) List(ctx context.Context, prefix string) ([]KV, int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, s.wrap("list", prefix, err)
	}
	out := make([]KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = KV{Key: string(kv.Key), Value: kv.Value, Revision: kv.ModRevision}
	}
	return out, resp.Header.Revision, nil
}

// ListPages reads every key under prefix in pages of up to size keys, all at the revision of the first
// page, and hands each page to fn in key order (more: pages follow), stopping at fn's first error. Unlike
// List it never holds a large prefix whole.
func (s *Store) ListPages(ctx context.Context, prefix string, size int64, fn func(page []KV, rev int64, more bool) error) error {
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(size)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		rctx, cancel := s.bound(ctx)
		resp, err := s.cli.Get(rctx, from, opts...)
		cancel()
		if err != nil {
			return s.wrap("list", prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		page := make([]KV, len(resp.Kvs))
		for i, kv := range resp.Kvs {
			page[i] = KV{Key: string(kv.Key), Value: kv.Value, Revision: kv.ModRevision}
		}
		if err := fn(page, rev, resp.More); err != nil || !resp.More {
			return err
		}
		from = page[len(page)-1].Key + "\x00"
	}
}

// Op is one write of an atomic transaction. Revision 0 on a put means "must not exist yet"; otherwise the
// key must still be at that revision. A delete with Revision 0 is unconditional. An Unchanged op writes
// nothing: it is a condition on every key under Key.
type Op struct {
	Key      string
	Value    []byte
	Revision int64
	Delete   bool
	Prefix   bool
}

// Put is an Op creating (rev 0) or updating (rev > 0) a key.
func Put(key string, value []byte, rev int64) Op { return Op{Key: key, Value: value, Revision: rev} }

// Del is an Op deleting a key (at rev, or unconditionally with rev 0).
func Del(key string, rev int64) Op { return Op{Key: key, Revision: rev, Delete: true} }

// Unchanged is an Op that writes nothing and holds while no key under prefix was created or modified
// after revision rev (deletions pass): what was decided from a list at rev is still true.
func Unchanged(prefix string, rev int64) Op { return Op{Key: prefix, Revision: rev, Prefix: true} }

// Txn applies all ops atomically or none. If a condition fails it returns a *KeyError naming the first key
// whose condition failed, wrapping ErrExists (a create found the key), ErrNotFound (an update or delete found
// it gone) or ErrConflict (it changed). It returns the revision of the write.
func (s *Store) Txn(ctx context.Context, ops ...Op) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var conds []clientv3.Cmp
	var thens, elses []clientv3.Op
	for _, op := range ops {
		if op.Prefix {
			conds = append(conds, clientv3.Compare(clientv3.ModRevision(op.Key), "<", op.Revision+1).WithPrefix())
			elses = append(elses, clientv3.OpGet(op.Key, clientv3.WithPrefix(), clientv3.WithMinModRev(op.Revision+1), clientv3.WithLimit(1)))
			continue
		}
		switch {
		case !op.Delete && op.Revision == 0:
			conds = append(conds, clientv3.Compare(clientv3.Version(op.Key), "=", 0))
		case op.Revision != 0:
			conds = append(conds, clientv3.Compare(clientv3.ModRevision(op.Key), "=", op.Revision))
		}
		if op.Delete {
			thens = append(thens, clientv3.OpDelete(op.Key))
		} else {
			thens = append(thens, clientv3.OpPut(op.Key, string(op.Value)))
		}
		elses = append(elses, clientv3.OpGet(op.Key))
	}
	resp, err := s.cli.Txn(ctx).If(conds...).Then(thens...).Else(elses...).Commit()
	if err != nil {
		return 0, s.wrap("transaction", ops[0].Key, err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	for i, op := range ops {
		kvs := resp.Responses[i].GetResponseRange().Kvs
		switch {
		case op.Prefix:
			if len(kvs) > 0 {
				return 0, &KeyError{Key: string(kvs[0].Key), Err: ErrConflict}
			}
		case !op.Delete && op.Revision == 0 && len(kvs) > 0:
			return 0, &KeyError{Key: op.Key, Err: ErrExists}
		case op.Revision != 0 && len(kvs) == 0:
			return 0, &KeyError{Key: op.Key, Err: ErrNotFound}
		case op.Revision != 0 && kvs[0].ModRevision != op.Revision:
			return 0, &KeyError{Key: op.Key, Err: ErrConflict}
		}
	}
	return 0, &KeyError{Key: ops[0].Key, Err: ErrConflict}
}

// DeleteKey removes a key if it is still at rev (any revision when rev is 0); ErrNotFound if absent.
func (s *Store) DeleteKey(ctx context.Context, key string, rev int64) error {
	if rev != 0 {
		_, err := s.Txn(ctx, Del(key, rev))
		return err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.cli.Delete(ctx, key)
	if err != nil {
		return s.wrap("delete", key, err)
	}
	if resp.Deleted == 0 {
		return &KeyError{Key: key, Err: ErrNotFound}
	}
	return nil
}
