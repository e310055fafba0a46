package segments

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Local definitions: RunLocal over any subset of people gives each of them
// the memberships a full Run gives; population-relative definitions (and
// those that refer to one) are not local and not in RunLocal's result.
func TestRunLocalEqualsRun(t *testing.T) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var defs []*Definition
	for _, tp := range Templates() {
		defs = append(defs, tp.Definition)
	}
	defs = append(defs, mustParse(t, `{"name":"vip_de","purpose":"marketing","where":{"all":[{"in_segment":"vip"},{"trait":"address.country","eq":"DE"}]}}`),
		mustParse(t, `{"name":"buyers_de","purpose":"marketing","where":{"all":[{"in_segment":"repeat_buyers"},{"trait":"address.country","eq":"DE"}]}}`))
	set, err := NewSet(KnownNames{}, defs...)
	if err != nil {
		t.Fatal(err)
	}
	people := genPeople(400, 7, now)
	gate := &fakeGate{deny: map[string]bool{}}
	for i, p := range people {
		if i%5 == 0 {
			gate.deny[p.Ref] = true
		}
	}
	full, err := Run(context.Background(), set, peopleOf(people), gate, now)
	if err != nil {
		t.Fatal(err)
	}
	subset := people[100:180]
	local, err := RunLocal(context.Background(), set, peopleOf(subset), gate, now)
	if err != nil {
		t.Fatal(err)
	}
	inSubset := map[string]bool{}
	for _, p := range subset {
		inSubset[p.Ref] = true
	}
	tests := []struct {
		name  string
		local bool
	}{
		{"repeat_buyers", true}, {"cart_abandoners", true}, {"at_risk", true}, {"buyers_de", true},
		{"vip", false}, {"champions", false}, {"vip_de", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := set.Local(tc.name); got != tc.local {
				t.Fatalf("Local = %v, want %v", got, tc.local)
			}
			lr := local.Segment(tc.name)
			if !tc.local {
				if lr != nil {
					t.Fatal("a population-relative definition in RunLocal's result")
				}
				return
			}
			var want, got []string
			for _, m := range full.Segment(tc.name).Members {
				if inSubset[m.Ref()] {
					want = append(want, m.Ref())
				}
			}
			for _, m := range lr.Members {
				got = append(got, m.Ref())
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("RunLocal members %v, Run's among the subset %v", got, want)
			}
			if len(want) == 0 && tc.name == "repeat_buyers" {
				t.Fatal("no repeat buyer in the subset: the fixture does not exercise the comparison")
			}
		})
	}
}

// NeedsProperties names the events whose properties a definition reads.
func TestNeedsProperties(t *testing.T) {
	tests := []struct {
		src   string
		event string
		want  bool
	}{
		{where(`{"event":"Order Completed","count":{"gte":2}}`), "Order Completed", false},
		{where(`{"event":"Order Completed","sum":{"property":"total","gte":100}}`), "Order Completed", true},
		{where(`{"event":"Product Viewed","where":{"properties.category":{"eq":"Kitchen"}}}`), "Product Viewed", true},
		{where(`{"event":"Product Viewed","where":{"properties.category":{"eq":"Kitchen"}}}`), "Order Completed", false},
		{where(`{"computed":"revenue_365d","gte":100}`), "Order Completed", false},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			if got := mustCompile(t, tc.src).NeedsProperties(tc.event); got != tc.want {
				t.Fatalf("NeedsProperties(%q) = %v, want %v", tc.event, got, tc.want)
			}
		})
	}
}
