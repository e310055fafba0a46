package core

import (
	"context"
	"strings"
	"testing"
)

func TestImportLines(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		accepted int
		errs     []string // per rejected line, a substring of its error
	}{
		{"valid", "{\"type\":\"track\",\"userId\":\"i1\",\"event\":\"E\"}\n", 1, nil},
		{"byte order mark on the first line", "\xEF\xBB\xBF{\"type\":\"track\",\"userId\":\"i2\",\"event\":\"E\"}\n", 1, nil},
		{"byte order mark on a later line", "{\"type\":\"track\",\"userId\":\"i3\",\"event\":\"E\"}\n\xEF\xBB\xBF{\"type\":\"track\",\"userId\":\"i3\",\"event\":\"E\"}\n", 1, []string{"malformed JSON"}},
		{"blank lines are not messages", "\n  \n{\"type\":\"page\",\"userId\":\"i4\"}\n\n", 1, nil},
		{"malformed", "{\"type\":\"track\",\nnull x\n", 0, []string{"malformed JSON", "malformed JSON"}},
		{"not an object", "[1]\n", 0, []string{"expected a JSON object"}},
		{"too long", "{\"type\":\"track\",\"userId\":\"i5\",\"event\":\"E\",\"properties\":{\"p\":\"" + strings.Repeat("y", 40<<10) + "\"}}\n", 0, []string{"line longer than"}},
	}
	c := openTest(t, testConfig(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := c.Import(context.Background(), strings.NewReader(tt.in), ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Accepted != tt.accepted || rep.Rejected != len(tt.errs) {
				t.Fatalf("accepted %d rejected %d, want %d and %d: %+v", rep.Accepted, rep.Rejected, tt.accepted, len(tt.errs), rep.Errors)
			}
			for i, want := range tt.errs {
				if !strings.Contains(rep.Errors[i].Error, want) {
					t.Errorf("line %d: %q does not say %q", rep.Errors[i].Line, rep.Errors[i].Error, want)
				}
			}
		})
	}
}
