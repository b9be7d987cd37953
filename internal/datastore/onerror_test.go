package datastore

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOnError checks that every failed etcd operation is reported once, and that neither a successful one, a
// missing key nor a request its caller cancelled counts as a failure.
func TestOnError(t *testing.T) {
	p, cfg := newProxy(t, embedded.ClientConfig())
	var mu sync.Mutex
	var ops []string
	cfg.RequestTimeout = 500 * time.Millisecond
	cfg.OnError = func(op string) { mu.Lock(); defer mu.Unlock(); ops = append(ops, op) }
	s, err := Connect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reported := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(ops) }

	ctx := ctxT(t)
	waitPing(t, s)
	mu.Lock()
	ops = nil // a first ping may fail while the client connects
	mu.Unlock()
	if _, err := s.Get(ctx, "/calico/test/onerror/missing"); err == nil {
		t.Fatal("missing key found")
	}
	if got := reported(); len(got) != 0 {
		t.Fatalf("reported %q with etcd up", got)
	}

	p.Cut()
	if _, err := s.Get(ctx, "/calico/test/onerror/k"); err == nil {
		t.Fatal("get through a cut connection succeeded")
	}
	if _, _, err := s.List(ctx, "/calico/test/onerror/"); err == nil {
		t.Fatal("list through a cut connection succeeded")
	}
	if _, err := s.Txn(ctx, Put("/calico/test/onerror/k", []byte("v"), 0)); err == nil {
		t.Fatal("transaction through a cut connection succeeded")
	}
	if got := strings.Join(reported(), ","); got != "get,list,transaction" {
		t.Errorf("reported %q, want get,list,transaction", got)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(cancelled, "/calico/test/onerror/k"); err == nil {
		t.Fatal("cancelled get succeeded")
	}
	if got := len(reported()); got != 3 {
		t.Errorf("a cancelled request was reported as a failure (%d reports)", got)
	}
}
