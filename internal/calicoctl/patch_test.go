package calicoctl

import (
	"encoding/json"
	"testing"
)

// patch: a JSON or YAML merge patch on the stored resource, checked like apply's input, with upstream's
// messages.
func TestPatch(t *testing.T) {
	h := newHarness(t, testEtcd.Env())
	h.expect(0, labelFixtures, "create", "-f", "-")
	h.expect(0, "", "label", "ippool", "pool1", "p=q")
	h.expect(0, "", "patch", "ippool", "pool1", "-p", `{"spec":{"disabled":true}}`)
	h.expect(0, "", "patch", "ippool", "pool1", "-p", "spec: {natOutgoing: true}", "--type", "merge")
	h.expect(0, "", "patch", "ippool", "pool1", "-p", `{"metadata":{"labels":{"p":null,"n":"m"}},"spec":{"nodeSelector":null,"allowedUses":["Workload"]}}`)
	h.expect(0, "", "get", "ippool", "pool1", "-o", "yaml")

	h.expect(1, "", "patch", "ippool", "pool1", "-p", `{"spec":{"cidr":"10.10.0.1/16"}}`)
	h.expect(1, "", "patch", "ippool", "pool1", "-p", `{"spec":{"bogus":1}}`)
	h.expect(1, "", "patch", "ippool", "pool1", "-p", `{"kind":"Profile"}`)
	h.expect(1, "", "patch", "ippool", "nosuch", "-p", `{"spec":{"disabled":false}}`)
	h.expect(1, "", "patch", "ippool", "pool1", "-p", `{bad`)
	h.expect(1, "", "patch", "ippool", "pool1")
	h.expect(1, "", "patch", "ippool", "pool1", "-t", "json", "-p", `[{"op":"remove","path":"/spec/disabled"}]`)
	h.expect(1, "", "patch", "widgets", "w", "-p", `{}`)
	h.expect(1, "", "patch", "clusterinformation", "default", "-p", `{"spec":{"clusterType":"x"}}`)
	h.expect(1, "", "patch", "networkpolicy", "np1", "-p", `{"spec":{"order":5}}`)
	h.expect(0, "", "patch", "networkpolicy", "np1", "-n", "libnetwork", "-p", `{"spec":{"order":5}}`)
	h.expect(0, "", "get", "networkpolicy", "np1", "-n", "libnetwork", "-o", "yaml")
	h.check("patch")
}

// RFC 7386's own examples (appendix A).
func TestMergePatch(t *testing.T) {
	for _, c := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	} {
		var target, patch any
		mustUnmarshal(t, c.target, &target)
		mustUnmarshal(t, c.patch, &patch)
		got, err := json.Marshal(mergePatch(target, patch))
		if err != nil || string(got) != c.want {
			t.Errorf("merge %s into %s: got %s (%v), want %s", c.patch, c.target, got, err, c.want)
		}
	}
}

func mustUnmarshal(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatal(err)
	}
}
