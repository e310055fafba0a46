package core

import (
	"strings"
	"testing"

	"github.com/custody-cdp/custody/core/store"
)

// Completeness by construction: every prefix of the keyspace has exactly
// one rule, personal prefixes (store.PrefixInfo.PersonScoped) say how to
// find a person's records and which profile ids a record names, and every
// rule says where the access report shows its records. Adding a prefix to
// core/store without a rule here fails this test.
func TestKeyspaceRegistry(t *testing.T) {
	rules := map[store.Prefix]*prefixRule{}
	for i := range keyspace {
		r := &keyspace[i]
		if rules[r.prefix] != nil {
			t.Errorf("prefix %q has two rules", r.prefix)
		}
		rules[r.prefix] = r
	}
	declared := map[store.Prefix]bool{}
	for _, p := range store.Prefixes {
		declared[p.Prefix] = true
		r := rules[p.Prefix]
		if r == nil {
			t.Errorf("prefix %q (%s) has no rule in core/keyspace.go: say how access, deletion and restore treat it", p.Prefix, p.Doc)
			continue
		}
		if r.personal() != p.PersonScoped {
			t.Errorf("prefix %q: store says person-scoped=%v, its rule finds records=%v", p.Prefix, p.PersonScoped, r.personal())
		}
		if r.personal() && (r.pids == nil || r.report == "") {
			t.Errorf("personal prefix %q: its rule needs pids and report", p.Prefix)
		}
		if !r.personal() && r.why == "" {
			t.Errorf("prefix %q holds nothing about a person: its rule must say why", p.Prefix)
		}
		if r.report != "" && r.export == nil {
			via, ok := strings.CutPrefix(r.report[strings.Index(r.report, " via ")+1:], "via ")
			if !ok || rules[store.Prefix(strings.Fields(via)[0])] == nil || rules[store.Prefix(strings.Fields(via)[0])].export == nil {
				t.Errorf("prefix %q: report %q names no rule that exports", p.Prefix, r.report)
			}
		}
	}
	for p := range rules {
		if !declared[p] {
			t.Errorf("rule for %q, which core/store does not declare", p)
		}
	}
	if ruleFor([]byte("x-sup/email/abc")).prefix != store.PrefixSuppressed || ruleFor([]byte("x/0123")).prefix != store.PrefixExport {
		t.Error("ruleFor must pick the longest matching prefix")
	}
}
