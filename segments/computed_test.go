package segments

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// Computed texts and times, and context filters, parse with errors that
// name the problem at its path.
func TestParseComputedKindsAndContext(t *testing.T) {
	cases := []struct {
		name string
		src  string
		path string
		err  error
		msg  string
	}{
		{"text with a number", where(`{"computed": "top_category", "eq": 3}`),
			"where.eq", ErrType, "expected string (top_category is a text)"},
		{"number with a text", where(`{"computed": "order_count", "eq": "repeat"}`),
			"where.eq", ErrType, "expected number (order_count is a number)"},
		{"stage not in the set", where(`{"computed": "lifecycle_stage", "eq": "vip"}`),
			"where.eq", ErrInvalidValue, `unknown lifecycle_stage "vip" (want visitor, subscriber, first_time_buyer, repeat, loyal, at_risk, lapsed)`},
		{"stage in list not in the set", where(`{"computed": "lifecycle_stage", "in": ["repeat", "Repeat"]}`),
			"where.in[1]", ErrInvalidValue, `unknown lifecycle_stage "Repeat"`},
		{"stage ordered", where(`{"computed": "lifecycle_stage", "gt": "repeat"}`),
			"where.gt", ErrUnknownField, "unknown comparison (want eq, ne, in, exists) (lifecycle_stage is a text)"},
		{"stage contains", where(`{"computed": "lifecycle_stage", "contains": "re"}`),
			"where.contains", ErrUnknownField, "want eq, ne, in, exists)"},
		{"text ordered", where(`{"computed": "first_touch_source", "lt": "m"}`),
			"where.lt", ErrUnknownField, "unknown comparison (want eq, ne, in, exists, contains)"},
		{"time with a date", where(`{"computed": "last_order_at", "gt": "2026-01-01"}`),
			"where.gt", ErrType, "expected an RFC 3339 time such as 2026-01-31T00:00:00Z (last_order_at is a time)"},
		{"time with a number", where(`{"computed": "first_order_at", "lt": 5}`),
			"where.lt", ErrType, "expected an RFC 3339 time"},
		{"time contains", where(`{"computed": "first_order_at", "contains": "2026"}`),
			"where.contains", ErrUnknownField, "unknown comparison"},
		{"rank by a text", where(`{"top": {"percent": 10, "of": "lifecycle_stage"}}`),
			"where.top.of", ErrType, `cannot rank by "lifecycle_stage": it is a text, not a number`},
		{"rank by a time", where(`{"bottom": {"percent": 10, "of": "last_order_at"}}`),
			"where.bottom.of", ErrType, "it is a time"},
		{"unknown name: only the name is reported", where(`{"computed": "lifecycle_stag", "eq": "repeat"}`),
			"where.computed", ErrUnknownComputed, `unknown computed value "lifecycle_stag"`},
		{"context without a path", where(`{"event": "page", "where": {"context.": {"eq": "x"}}}`),
			`where.where["context."]`, ErrUnknownField, `"context.<path>"`},
		{"context empty segment", where(`{"event": "page", "where": {"context.campaign..medium": {"eq": "x"}}}`),
			`where.where["context.campaign..medium"]`, ErrUnknownField, "unknown field"},
		{"context comparison type", where(`{"event": "page", "where": {"context.campaign.medium": {"in": "paid_social"}}}`),
			`where.where["context.campaign.medium"].in`, ErrType, "expected an array"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), ParseOptions{})
			var list ErrorList
			if !errorsAs(err, &list) || len(list) != 1 {
				t.Fatalf("want one error, got %v", err)
			}
			e := list[0]
			if e.Path != tc.path || !errors.Is(e, tc.err) || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("got %s (%v), want %s: %q (%v)", e, e.Err, tc.path, tc.msg, tc.err)
			}
		})
	}
}

// Every built-in computed trait parses with an operand of its kind, and
// the canonical form round-trips.
func TestComputedCatalogParses(t *testing.T) {
	operand := map[ComputedKind]string{KindNumber: `"gte": 1`, KindText: `"eq": "x"`, KindTime: `"lt": "2026-01-01T00:00:00Z"`}
	names := ComputedNames()
	if len(names) != len(ComputedTraits()) || !slices.Contains(names, ComputedLifecycleStage) {
		t.Fatalf("ComputedNames %v", names)
	}
	for _, ct := range ComputedTraits() {
		op := operand[ct.Kind]
		if ct.Values != nil {
			op = `"in": ["` + ct.Values[0] + `"]`
		}
		src := where(`{"computed": "` + ct.Name + `", ` + op + `}`)
		c := mustCompile(t, src)
		if c.TimeSensitive() != ct.TimeSensitive {
			t.Errorf("%s: TimeSensitive %v, catalog %v", ct.Name, c.TimeSensitive(), ct.TimeSensitive)
		}
		b, _ := c.MarshalJSON()
		if mustParse(t, string(b)) == nil {
			t.Fatal("nil")
		}
	}
	if _, ok := LookupComputed("nope"); ok {
		t.Fatal("LookupComputed found an unknown name")
	}
	// A deep copy: changing it leaves the catalog alone.
	list := ComputedTraits()
	for i := range list {
		if list[i].Values != nil {
			list[i].Values[0] = "changed"
		}
	}
	if ct, _ := LookupComputed(ComputedLifecycleStage); ct.Values[0] != StageVisitor {
		t.Fatal("ComputedTraits shares its Values with the catalog")
	}
	// A caller's own computed values are numbers; by convention days_since_*
	// and rolling windows are time-sensitive.
	known := KnownNames{Computed: []string{"days_since_signup", "spend_30d", "points"}}
	for name, ts := range map[string]bool{"days_since_signup": true, "spend_30d": true, "points": false} {
		d, err := Parse([]byte(where(`{"computed": "`+name+`", "gt": 1}`)), ParseOptions{KnownNames: known})
		if err != nil {
			t.Fatal(err)
		}
		c, err := Compile(d, known)
		if err != nil {
			t.Fatal(err)
		}
		if c.TimeSensitive() != ts {
			t.Errorf("%s: TimeSensitive %v", name, c.TimeSensitive())
		}
	}
}

func TestMatchComputedTexts(t *testing.T) {
	p := &fakePerson{
		computed: map[string]float64{ComputedOrderCount: 2},
		text: map[string]string{
			ComputedLifecycleStage:   StageRepeat,
			ComputedTopCategory:      "Kitchen & Dining",
			ComputedLastOrderAt:      "2026-10-20T08:00:00Z",
			ComputedFirstTouchMedium: "paid_social",
		},
	}
	matchTable(t, p, []struct {
		cond string
		want bool
	}{
		{`{"computed": "lifecycle_stage", "eq": "repeat"}`, true},
		{`{"computed": "lifecycle_stage", "eq": "loyal"}`, false},
		{`{"computed": "lifecycle_stage", "ne": "loyal"}`, true},
		{`{"computed": "lifecycle_stage", "in": ["loyal", "repeat"]}`, true},
		{`{"computed": "lifecycle_stage", "in": ["at_risk", "lapsed"]}`, false},
		{`{"computed": "lifecycle_stage", "exists": true}`, true},
		{`{"computed": "top_category", "contains": "Kitchen"}`, true},
		{`{"computed": "top_category", "contains": "kitchen"}`, false},
		{`{"computed": "first_touch_medium", "eq": "paid_social"}`, true},
		// Absent: every comparison but exists:false is false, ne included.
		{`{"computed": "last_touch_medium", "ne": "email"}`, false},
		{`{"computed": "last_touch_medium", "exists": false}`, true},
		{`{"not": {"computed": "last_touch_medium", "eq": "email"}}`, true},
		// Times compare as instants, whatever the operand's offset.
		{`{"computed": "last_order_at", "gt": "2026-10-20T09:59:59+02:00"}`, true},
		{`{"computed": "last_order_at", "eq": "2026-10-20T10:00:00+02:00"}`, true},
		{`{"computed": "last_order_at", "gte": "2026-10-20T08:00:00.000000001Z"}`, false},
		{`{"computed": "last_order_at", "in": ["2026-01-01T00:00:00Z", "2026-10-20T08:00:00Z"]}`, true},
		{`{"computed": "first_order_at", "lt": "2030-01-01T00:00:00Z"}`, false},
		{`{"all": [{"computed": "order_count", "eq": 2}, {"computed": "lifecycle_stage", "eq": "repeat"}]}`, true},
	})
}

func TestMatchContextFilter(t *testing.T) {
	p := &fakePerson{events: map[string][]Event{
		"page": {
			{Time: clock.Add(-time.Hour), Properties: map[string]any{"path": "/"},
				Context: map[string]any{"campaign": map[string]any{"source": "facebook", "medium": "paid_social", "name": "autumn"}}},
			{Time: clock.Add(-50 * 24 * time.Hour), Properties: map[string]any{"path": "/shoes"},
				Context: map[string]any{"page": map[string]any{"referrer": "https://www.google.com/"}, "locale": "de-DE"}},
		},
	}}
	matchTable(t, p, []struct {
		cond string
		want bool
	}{
		{`{"event": "page", "where": {"context.campaign.medium": {"in": ["paid_social"]}}}`, true},
		{`{"event": "page", "within": "30d", "where": {"context.campaign.medium": {"eq": "paid_social"}}}`, true},
		{`{"event": "page", "before": "30d", "where": {"context.campaign.medium": {"eq": "paid_social"}}}`, false},
		{`{"event": "page", "where": {"context.page.referrer": {"contains": "google"}}}`, true},
		{`{"event": "page", "where": {"context.locale": {"eq": "de-DE"}, "properties.path": {"eq": "/shoes"}}}`, true},
		{`{"event": "page", "where": {"context.locale": {"eq": "de-DE"}, "properties.path": {"eq": "/"}}}`, false},
		// properties.campaign is not context.campaign.
		{`{"event": "page", "where": {"properties.campaign.medium": {"exists": true}}}`, false},
		{`{"event": "page", "where": {"any": [{"context.campaign.source": {"eq": "tiktok"}}, {"not": {"context.campaign.source": {"exists": true}}}]}, "count": {"eq": 1}}`, true},
		{`{"event": "Order Completed", "where": {"context.campaign.medium": {"exists": false}}}`, false},
	})
}

func TestNeedsContext(t *testing.T) {
	tests := []struct {
		cond           string
		event          string
		props, context bool
	}{
		{`{"event": "page", "where": {"context.campaign.medium": {"eq": "paid_social"}}}`, "page", true, true},
		{`{"event": "page", "where": {"not": {"any": [{"context.campaign.medium": {"eq": "x"}}]}}}`, "page", true, true},
		{`{"event": "page", "where": {"properties.path": {"eq": "/"}}}`, "page", true, false},
		{`{"event": "page", "where": {"context.campaign.medium": {"eq": "paid_social"}}}`, "track", false, false},
		{`{"computed": "last_touch_medium", "eq": "paid_social"}`, "page", false, false},
	}
	for _, tc := range tests {
		c := mustCompile(t, where(tc.cond))
		if c.NeedsProperties(tc.event) != tc.props || c.NeedsContext(tc.event) != tc.context {
			t.Errorf("%s / %s: NeedsProperties %v NeedsContext %v, want %v %v", tc.cond, tc.event,
				c.NeedsProperties(tc.event), c.NeedsContext(tc.event), tc.props, tc.context)
		}
		set, err := NewSet(KnownNames{}, c.Definition())
		if err != nil {
			t.Fatal(err)
		}
		if set.NeedsContext(tc.event) != tc.context {
			t.Errorf("%s: Set.NeedsContext differs", tc.cond)
		}
	}
}

// Computed text conditions and context filters do not allocate either.
func TestMatchComputedTextDoesNotAllocate(t *testing.T) {
	p := &fakePerson{
		text: map[string]string{ComputedLifecycleStage: StageRepeat, ComputedLastOrderAt: "2026-10-20T08:00:00Z"},
		events: map[string][]Event{"page": {{Time: clock.Add(-time.Hour),
			Context: map[string]any{"campaign": map[string]any{"medium": "paid_social"}}}}},
	}
	var compiled []*Compiled
	for _, cond := range []string{
		`{"computed": "lifecycle_stage", "in": ["loyal", "repeat"]}`,
		`{"computed": "last_order_at", "gt": "2026-10-01T00:00:00Z"}`,
		`{"event": "page", "within": "3d", "where": {"context.campaign.medium": {"eq": "paid_social"}}}`,
	} {
		compiled = append(compiled, mustCompile(t, where(cond)))
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, c := range compiled {
			if !c.Match(p, clock, Env{}) {
				t.Fatal("no match")
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("Match allocates %v times per run", allocs)
	}
}
