package readme

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The project's README: every code block is classified, and the marker grammar holds. (test/e2e TestREADME
// runs the blocks.)
func TestREADMEIsClassified(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := Parse(string(doc))
	if err != nil {
		t.Fatalf("README.md:\n%v", err)
	}
	counts := map[Kind]int{}
	for _, b := range blocks {
		counts[b.Kind]++
	}
	if counts[Daemon] != 1 || counts[Run] == 0 {
		t.Errorf("README.md has %d daemon and %d run blocks; want one daemon block and some to run", counts[Daemon], counts[Run])
	}
	t.Logf("README.md blocks by kind: %v", counts)
	// The Compose file the README shows is the one TestCompose runs.
	compose, err := os.ReadFile(filepath.Join("..", "testdata", "compose", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	shown := false
	for _, b := range blocks {
		if b.Kind == File && b.File == "compose.yaml" {
			shown = true
			if b.Text != string(compose) {
				t.Errorf("README.md:%d: the Compose file differs from test/e2e/testdata/compose/compose.yaml", b.Line)
			}
		}
	}
	if !shown {
		t.Error("README.md shows no Compose file (a block marked `file compose.yaml`)")
	}
}

func TestParse(t *testing.T) {
	doc := strings.Join([]string{
		"# Title",
		"<!-- test: daemon -->",
		"```sh",
		"make run-plugin",
		"```",
		"## Use",
		"<!-- test: run; replace \"...\" with \"true\"; replace \"a\\\"b\" with \"c\" -->",
		"```sh",
		"docker run busybox ... a\"b",
		"```",
		"- item:",
		"",
		"  <!-- test: skip (needs; several (hosts)) -->",
		"  ```sh",
		"  D=/x",
		"    indented",
		"  ```",
		"<!-- test: file compose.yaml -->",
		"~~~~yaml",
		"services: {}",
		"```",
		"~~~~",
		"<!-- test: transcript -->",
		"```",
		"# echo hi",
		"hi",
		"",
		"$ true",
		"```",
	}, "\n")
	blocks, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{
		{Line: 3, Heading: "Title", Lang: "sh", Kind: Daemon, Text: "make run-plugin\n"},
		{Line: 8, Heading: "Use", Lang: "sh", Kind: Run, Text: "docker run busybox true c\n"},
		{Line: 14, Heading: "Use", Lang: "sh", Kind: Skip, Reason: "needs; several (hosts)", Text: "D=/x\n  indented\n"},
		{Line: 19, Heading: "Use", Lang: "yaml", Kind: File, File: "compose.yaml", Text: "services: {}\n```\n"},
		{Line: 24, Heading: "Use", Lang: "", Kind: Transcript, Text: "# echo hi\nhi\n\n$ true\n"},
	}
	if len(blocks) != len(want) {
		t.Fatalf("got %d blocks, want %d: %+v", len(blocks), len(want), blocks)
	}
	for i := range want {
		if blocks[i] != want[i] {
			t.Errorf("block %d:\n got %+v\nwant %+v", i, blocks[i], want[i])
		}
	}
	cmds := blocks[4].Commands()
	if len(cmds) != 2 || cmds[0].Line != "echo hi" || strings.Join(cmds[0].Output, "|") != "hi" || cmds[1].Line != "true" || cmds[1].Output != nil {
		t.Errorf("transcript commands: %+v", cmds)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"text\n```sh\nls\n```\n", "line 2: code block (sh) under \"\" has no test marker"},
		{"<!-- test: run -->\n\n```sh\nls\n```\n", "line 1: a test marker must be on the line right before a code fence"},
		{"<!-- test: skip -->\n```sh\nls\n```\n", "skip needs a reason in parentheses"},
		{"<!-- test: multihost () -->\n```sh\nls\n```\n", "multihost needs a reason"},
		{"<!-- test: runn -->\n```sh\nls\n```\n", `unknown kind "runn"`},
		{"<!-- test: run -->\n```yaml\na: b\n```\n", "run needs a sh or bash block, not yaml"},
		{"<!-- test: file a/b -->\n```yaml\na: b\n```\n", "file needs a plain file name"},
		{"<!-- test: daemon -->\n```sh\nx\n```\n<!-- test: run; replace \"y\" with \"z\" -->\n```sh\nx\n```\n", `the block has no "y" to replace`},
		{"<!-- test: daemon -->\n```sh\nx\n```\n<!-- test: run; swap \"x\" -->\n```sh\nx\n```\n", `cannot read "; swap \"x\""`},
		{"<!-- test: run -->\n```sh\nx\n```\n", "line 2: a run block before the daemon block"},
		{"<!-- test: daemon -->\n```sh\nx\n```\n<!-- test: daemon -->\n```sh\nx\n```\n", "line 6: a second daemon block (the first is on line 2)"},
		{"<!-- test: daemon -->\n```sh\nx\n", "line 2: code block never closed"},
		{"<!--test: run-->\n```sh\nx\n```\n", "has no test marker"},
	} {
		if _, err := Parse(tc.doc); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): %v, want an error containing %q", tc.doc, err, tc.want)
		}
	}
}

func TestMissing(t *testing.T) {
	got := "HTTP/1.0 200 OK\r\nContent-Type: x\r\nDate: now\r\n\r\n{}\n"
	if w, ok := Missing([]string{"HTTP/1.0 200 OK", "Content-Type: x", "{}"}, got); ok {
		t.Errorf("Missing: %q, want none", w)
	}
	if w, ok := Missing([]string{"{}", "Content-Type: x"}, got); !ok || w != "Content-Type: x" {
		t.Errorf("Missing out of order: %q %v, want Content-Type: x", w, ok)
	}
}
