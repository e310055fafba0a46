package mapping

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// codeBlocks returns the fenced blocks of README.md with the given language.
func codeBlocks(t *testing.T, lang string) []string {
	var out []string
	parts := strings.Split(readFile(t, "README.md"), "```")
	for i := 1; i < len(parts); i += 2 {
		if rest, ok := strings.CutPrefix(parts[i], lang+"\n"); ok {
			out = append(out, rest)
		}
	}
	return out
}

// The README's example mapping, input and output stay true.
func TestReadmeExample(t *testing.T) {
	yamls := codeBlocks(t, "yaml")
	m := mustParse(t, yamls[0])
	// It is the shipped example, up to comments.
	fixture := readFile(t, "testdata/online_retail.csv")
	a, b := run(t, m, fixture), run(t, retailMapping(t), fixture)
	for i := range a.msgs {
		if string(a.msgs[i].raw) != string(b.msgs[i].raw) {
			t.Fatalf("README mapping differs from examples/online_retail.yaml:\n%s\n%s", a.msgs[i].raw, b.msgs[i].raw)
		}
	}
	var csvBlock string
	for _, b := range codeBlocks(t, "") {
		if strings.HasPrefix(b, "InvoiceNo,") {
			csvBlock = b
		}
	}
	res := run(t, m, csvBlock)
	var got bytes.Buffer
	for _, e := range res.msgs {
		got.Write(e.raw)
		got.WriteByte('\n')
	}
	// The README shows the output indented over several lines.
	var want bytes.Buffer
	dec := json.NewDecoder(strings.NewReader(codeBlocks(t, "json")[0]))
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		json.Compact(&want, raw)
		want.WriteByte('\n')
	}
	if got.String() != want.String() {
		t.Errorf("README output is stale; got\n%s", got.String())
	}
}
