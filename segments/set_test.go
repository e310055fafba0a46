package segments

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func def(t testing.TB, name, purpose, cond string) *Definition {
	t.Helper()
	return mustParse(t, `{"name": "`+name+`", "purpose": "`+purpose+`", "where": `+cond+`}`)
}

const email = "marketing.communications.email"

func TestSetCycles(t *testing.T) {
	type want struct{ def, path, msg string }
	cases := []struct {
		name string
		defs []*Definition
		err  error
		want []want
	}{
		{"two", []*Definition{
			def(t, "a", email, `{"in_segment": "b"}`),
			def(t, "b", email, `{"all": [{"trait": "x", "exists": true}, {"in_segment": "a"}]}`),
		}, ErrCycle, []want{{"b", "where.all[1].in_segment", "cycle: a -> b -> a"}}},
		{"three", []*Definition{
			def(t, "a", email, `{"any": [{"trait": "x", "exists": true}, {"in_segment": "b"}]}`),
			def(t, "b", email, `{"not": {"in_segment": "c"}}`),
			def(t, "c", email, `{"in_segment": "a"}`),
			def(t, "d", email, `{"in_segment": "a"}`),
		}, ErrCycle, []want{{"c", "where.in_segment", "cycle: a -> b -> c -> a"}}},
		{"self", []*Definition{
			{Name: "a", Purpose: email, Where: Condition{Not: &Condition{InSegment: "a"}}},
		}, ErrCycle, []want{{"a", "where.not.in_segment", "cycle: a -> a"}}},
		{"unknown", []*Definition{
			def(t, "a", email, `{"all": [{"in_segment": "b"}, {"in_segment": "zz"}]}`),
			def(t, "b", email, `{"trait": "x", "exists": true}`),
		}, ErrUnknownSegment, []want{{"a", "where.all[1].in_segment", `unknown segment "zz"`}}},
		{"duplicate", []*Definition{
			def(t, "a", email, `{"trait": "x", "exists": true}`),
			def(t, "a", email, `{"trait": "y", "exists": true}`),
		}, ErrDuplicate, []want{{"a", "name", `duplicate segment name "a"`}}},
		{"definition errors are labelled", []*Definition{
			def(t, "a", email, `{"trait": "x", "exists": true}`),
			{Name: "b", Purpose: "nope", Where: Condition{Trait: "x"}},
			nil,
		}, ErrInvalid, []want{{"b", "purpose", `unknown purpose "nope"`}, {"b", "where", "missing comparison"}, {"#2", "", "nil definition"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSet(KnownNames{}, tc.defs...)
			if !errors.Is(err, tc.err) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			var list ErrorList
			errors.As(err, &list)
			if len(list) != len(tc.want) {
				t.Fatalf("got %d errors, want %d: %v", len(list), len(tc.want), err)
			}
			for i, w := range tc.want {
				if e := list[i]; e.Definition != w.def || e.Path != w.path || !strings.Contains(e.Message, w.msg) {
					t.Errorf("error %d: %q %q %q, want %q %q %q", i, e.Definition, e.Path, e.Message, w.def, w.path, w.msg)
				}
			}
		})
	}
}

func TestSetInSegment(t *testing.T) {
	defs := []*Definition{
		def(t, "buyers_de", email, `{"all": [{"in_segment": "buyers"}, {"in_segment": "germans"}]}`),
		def(t, "buyers", email, `{"event": "Order Completed"}`),
		def(t, "germans", "analytics.reporting", `{"trait": "country", "eq": "DE"}`),
		def(t, "not_buyers", email, `{"not": {"in_segment": "buyers"}}`),
		def(t, "recent", email, `{"event": "Order Completed", "within": "7d"}`),
		def(t, "recent_de", email, `{"all": [{"in_segment": "recent"}, {"in_segment": "germans"}]}`),
	}
	set, err := NewSet(KnownNames{}, defs...)
	if err != nil {
		t.Fatal(err)
	}
	names := set.Names()
	pos := func(n string) int { return slices.Index(names, n) }
	for _, dep := range [][2]string{{"buyers", "buyers_de"}, {"germans", "buyers_de"}, {"buyers", "not_buyers"}, {"recent", "recent_de"}} {
		if pos(dep[0]) > pos(dep[1]) {
			t.Errorf("order %v: %s must come before %s", names, dep[0], dep[1])
		}
	}
	if set.Len() != 6 || set.Get("buyers") == nil || set.Get("nope") != nil {
		t.Error("Len/Get")
	}
	if !set.Get("recent_de").TimeSensitive() || set.Get("buyers_de").TimeSensitive() {
		t.Error("time sensitivity is not transitive")
	}

	mk := func(ref, country string, order bool) Candidate {
		p := &fakePerson{traits: map[string]any{"country": country}}
		if order {
			p.add("Order Completed", clock.Add(-time.Hour), nil)
		}
		return Candidate{Ref: ref, Person: p}
	}
	people := []Candidate{mk("de-buyer", "DE", true), mk("fr-buyer", "FR", true), mk("de-browser", "DE", false), mk("de-buyer-no-analytics", "DE", true)}
	gate := &fakeGate{deny: map[string]bool{}}
	res, err := Run(context.Background(), set, peopleOf(people), gate, clock)
	if err != nil {
		t.Fatal(err)
	}
	members := func(r *Result, name string) []string {
		var out []string
		for _, m := range r.Segment(name).Members {
			out = append(out, m.Ref())
		}
		return out
	}
	if got := members(res, "buyers_de"); !slices.Equal(got, []string{"de-buyer", "de-buyer-no-analytics"}) {
		t.Errorf("buyers_de %v", got)
	}
	if got := members(res, "not_buyers"); !slices.Equal(got, []string{"de-browser"}) {
		t.Errorf("not_buyers %v", got)
	}
	if got := members(res, "recent_de"); !slices.Equal(got, []string{"de-buyer", "de-buyer-no-analytics"}) {
		t.Errorf("recent_de %v", got)
	}

	// in_segment is membership: a referenced segment whose purpose the
	// person denied is not a membership, whatever the data says.
	gate = &fakeGate{denyPurpose: map[string]bool{"analytics.reporting": true}}
	res, err = Run(context.Background(), set, peopleOf(people), gate, clock)
	if err != nil {
		t.Fatal(err)
	}
	if got := members(res, "buyers_de"); got != nil {
		t.Errorf("buyers_de with germans denied: %v", got)
	}
	if r := res.Segment("germans"); r.NotConsented != 4 || r.Evaluated != 0 {
		t.Errorf("germans counts %+v", r)
	}
	if r := res.Segment("buyers_de"); r.NotConsented != 0 || r.Evaluated != 4 {
		t.Errorf("buyers_de counts %+v", r)
	}

	sub, err := set.Subset("buyers_de")
	if err != nil {
		t.Fatal(err)
	}
	got := sub.Names()
	slices.Sort(got)
	if !reflect.DeepEqual(got, []string{"buyers", "buyers_de", "germans"}) {
		t.Errorf("subset %v", got)
	}
	if _, err := set.Subset("nope"); !errors.Is(err, ErrNotInSet) {
		t.Errorf("subset of unknown: %v", err)
	}
}
