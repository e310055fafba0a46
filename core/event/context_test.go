package event

import (
	"encoding/json"
	"testing"
)

func TestContextString(t *testing.T) {
	tests := []struct {
		context string
		path    []string
		want    string
	}{
		{`{"campaign":{"source":"facebook","medium":"paid_social"}}`, []string{"campaign", "medium"}, "paid_social"},
		{`{"campaign":{"medium":"a","medium":"b"}}`, []string{"campaign", "medium"}, "b"},
		{`{"campaign":{"Medium":"a"}}`, []string{"campaign", "medium"}, ""},
		{`{"campaign":{"medium":7}}`, []string{"campaign", "medium"}, ""},
		{`{"campaign":"paid_social"}`, []string{"campaign", "medium"}, ""},
		{`{"page":{"referrer":"https://x.example/a?b=c\u0026d"}}`, []string{"page", "referrer"}, "https://x.example/a?b=c&d"},
		{`{"camp\u0061ign":{"name":"autumn"}}`, []string{"campaign", "name"}, "autumn"},
		{`{"page":{}}`, []string{"page", "referrer"}, ""},
		{``, []string{"page"}, ""},
		{`{"locale":"de-DE"}`, []string{"locale"}, "de-DE"},
		{`{"locale":"de-DE"}`, nil, ""},
	}
	for _, tc := range tests {
		m := Message{Context: json.RawMessage(tc.context)}
		if got := m.ContextString(tc.path...); got != tc.want {
			t.Errorf("%s %v: got %q, want %q", tc.context, tc.path, got, tc.want)
		}
		// ContextStrings answers a two-level path alike.
		if len(tc.path) == 2 {
			if got := m.ContextStrings(tc.path[0], "other", tc.path[1]); got[1] != tc.want || got[0] != "" {
				t.Errorf("ContextStrings %s %v: got %q, want [\"\" %q]", tc.context, tc.path, got, tc.want)
			}
		}
	}
}
