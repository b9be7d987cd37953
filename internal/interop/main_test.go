package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/projectcalico/calico-libnetwork/internal/calicoctl"
	"github.com/projectcalico/calico-libnetwork/internal/datastore"
	"github.com/projectcalico/calico-libnetwork/internal/datastore/datastoretest"
)

// The embedded etcd the tests share; each test loads the dump afresh.
var (
	testEtcd  *datastoretest.Etcd
	testStore *datastore.Store
)

func TestMain(m *testing.M) {
	os.Exit(datastoretest.Main(m, func(e *datastoretest.Etcd) { testEtcd, testStore = e, e.Store }))
}

// dumpEntry is one key of testdata/etcd-dump.json: what `etcdctl get --prefix /calico/` shows on a cluster
// written by upstream Calico's own binaries (testdata/record.sh, testdata/RECORDED), each value verbatim.
type dumpEntry struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// loadDump empties the datastore and writes the dump into it, returning the entries by key.
func loadDump(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	data, err := os.ReadFile("testdata/etcd-dump.json")
	if err != nil {
		t.Fatal(err)
	}
	var entries []dumpEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli := testStore.Client()
	if _, err := cli.Delete(ctx, "/calico/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	out := map[string]json.RawMessage{}
	for _, e := range entries {
		var compact bytes.Buffer
		if err := json.Compact(&compact, e.Value); err != nil {
			t.Fatalf("%s: %v", e.Key, err)
		}
		if _, err := cli.Put(ctx, e.Key, compact.String()); err != nil {
			t.Fatal(err)
		}
		out[e.Key] = compact.Bytes()
	}
	return out
}

// rawValue reads one key's stored bytes ("" when absent).
func rawValue(t *testing.T, key string) string {
	t.Helper()
	resp, err := testStore.Client().Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// calicoctlRun runs our calicoctl in-process against the test etcd.
func calicoctlRun(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	for k, v := range testEtcd.Env() {
		t.Setenv(k, v)
	}
	var out, errOut bytes.Buffer
	cmd := calicoctl.NewRootCommand("test", strings.NewReader(stdin), &out, &errOut)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}
