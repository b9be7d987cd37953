package readme

import (
	"reflect"
	"strings"
	"testing"
)

func TestSteps(t *testing.T) {
	text := strings.Join([]string{
		"# etcd1 and etcd2 (each its own NAME), left running:",
		"etcd --name NAME \\",
		"  --data-dir /d",
		"",
		"# host1, once for the cluster: the pool",
		"# (a second comment line)",
		"calicoctl apply -f pool.yaml",
		"# host1 and host2",
		"docker network create net",
		"",
		"host1$ docker inspect a   # say 10.0.0.1",
		"host2$ ping -c 1 10.0.0.1",
		"# not a heading: its first word names no machine",
	}, "\n")
	got, err := Steps(text, []string{"etcd1", "etcd2", "host1", "host2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Step{
		{Machines: []string{"etcd1", "etcd2"}, Text: "# etcd1 and etcd2 (each its own NAME), left running:\netcd --name NAME \\\n  --data-dir /d\n"},
		{Machines: []string{"host1"}, Text: "# host1, once for the cluster: the pool\n# (a second comment line)\ncalicoctl apply -f pool.yaml"},
		{Machines: []string{"host1", "host2"}, Text: "# host1 and host2\ndocker network create net\n"},
		{Machines: []string{"host1"}, Text: "docker inspect a   # say 10.0.0.1", Says: "10.0.0.1"},
		{Machines: []string{"host2"}, Text: "ping -c 1 10.0.0.1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Steps:\n got %q\nwant %q", got, want)
	}
}

func TestStepsRefuses(t *testing.T) {
	for text, want := range map[string]string{
		"docker ps":                   `"docker ps" runs on no machine`,
		"# host1:\nls\nhost3$ ls":     `a prompt for "host3"`,
		"# hosts (all):\ndocker ps\n": `"docker ps" runs on no machine`,
		"# host1 and host9:\nls\n":    `"ls" runs on no machine`,
	} {
		if _, err := Steps(text, []string{"host1", "host2"}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Steps(%q): %v, want an error saying %s", text, err, want)
		}
	}
}
