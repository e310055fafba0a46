package segments

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseErrors(t *testing.T) {
	type want struct {
		path string
		err  error
		msg  string // substring of the message
	}
	long := strings.Repeat("x", 100)
	cases := []struct {
		name string
		src  string
		want []want
	}{
		{"count not a number", where(`{"all": [{"event": "Page"}, {"event": "Order Completed", "count": {"gte": "2"}}]}`),
			[]want{{"where.all[1].count.gte", ErrType, "expected number"}}},
		{"unknown operator", where(`{"any": [{"evnt": "Order Completed"}]}`),
			[]want{{"where.any[0]", ErrUnknownOperator, `unknown operator "evnt"`}}},
		{"unknown purpose", `{"name": "a", "purpose": "x", "where": {"trait": "a", "exists": true}}`,
			[]want{{"purpose", ErrUnknownPurpose, `unknown purpose "x"`}}},
		{"invalid duration", where(`{"all": [{"event": "Product Added", "within": "3x"}]}`),
			[]want{{"where.all[0].within", ErrInvalidDuration, `invalid duration "3x"`}}},
		{"zero duration", where(`{"event": "A", "before": "0d"}`),
			[]want{{"where.before", ErrInvalidDuration, `invalid duration "0d"`}}},
		{"duration too long", where(`{"event": "A", "within": "99999999d"}`),
			[]want{{"where.within", ErrInvalidDuration, "invalid duration"}}},
		{"bad after", where(`{"event": "A", "after": "yesterday"}`),
			[]want{{"where.after", ErrInvalidDuration, `invalid time or duration "yesterday"`}}},
		{"bad after date", where(`{"event": "A", "after": "2026-02-30T00:00:00Z"}`),
			[]want{{"where.after", ErrInvalidDuration, "invalid time or duration"}}},
		{"missing everything", `{}`,
			[]want{{"name", ErrRequired, "required"}, {"purpose", ErrRequired, "required"}, {"where", ErrRequired, "required"}}},
		{"unknown top-level field", `{"name": "a", "purpose": "marketing", "where": {"trait": "a", "exists": true}, "owner": "x"}`,
			[]want{{"owner", ErrUnknownField, "unknown field"}}},
		{"bad name", `{"name": "Cart Abandoners", "purpose": "marketing", "where": {"trait": "a", "exists": true}}`,
			[]want{{"name", ErrInvalidValue, `invalid name "Cart Abandoners"`}}},
		{"long name is clipped", `{"name": "` + long + `", "purpose": "marketing", "where": {"trait": "a", "exists": true}}`,
			[]want{{"name", ErrInvalidValue, `invalid name "` + strings.Repeat("x", 40) + `…"`}}},
		{"name not a string", `{"name": 3, "purpose": "marketing", "where": {"trait": "a", "exists": true}}`,
			[]want{{"name", ErrType, "expected string"}}},
		{"two operators", where(`{"event": "A", "trait": "b"}`),
			[]want{{"where", ErrConflict, `more than one operator: "event" and "trait"`}}},
		{"empty condition", where(`{}`),
			[]want{{"where", ErrUnknownOperator, "empty condition"}}},
		{"condition not an object", where(`{"all": [1]}`),
			[]want{{"where.all[0]", ErrType, "expected an object"}}},
		{"empty all", where(`{"all": []}`),
			[]want{{"where.all", ErrInvalidValue, "at least one"}}},
		{"any not an array", where(`{"any": {"trait": "a", "exists": true}}`),
			[]want{{"where.any", ErrType, "expected an array"}}},
		{"extra key on all", where(`{"all": [{"trait": "a", "exists": true}], "within": "3d"}`),
			[]want{{"where.within", ErrUnknownField, "unknown field"}}},
		{"trait without comparison", where(`{"trait": "a"}`),
			[]want{{"where", ErrRequired, "missing comparison"}}},
		{"trait unknown comparison", where(`{"trait": "a", "equals": 1}`),
			[]want{{"where.equals", ErrUnknownField, "unknown comparison"}}},
		{"trait bad path", where(`{"trait": "a..b", "exists": true}`),
			[]want{{"where.trait", ErrInvalidValue, `invalid trait path "a..b"`}}},
		{"in not an array", where(`{"trait": "a", "in": "DE"}`),
			[]want{{"where.in", ErrType, "expected an array"}}},
		{"in element", where(`{"trait": "a", "in": ["DE", {"x": 1}, null]}`),
			[]want{{"where.in[1]", ErrType, "expected string, number or boolean"}, {"where.in[2]", ErrType, "expected string, number or boolean"}}},
		{"exists not bool", where(`{"trait": "a", "exists": "yes"}`),
			[]want{{"where.exists", ErrType, "expected true or false"}}},
		{"gt on bool", where(`{"trait": "a", "gt": true}`),
			[]want{{"where.gt", ErrType, "expected number or string"}}},
		{"eq null", where(`{"trait": "a", "eq": null}`),
			[]want{{"where.eq", ErrType, "expected string, number or boolean"}}},
		{"unknown computed", where(`{"computed": "lifetime_value", "gt": 1}`),
			[]want{{"where.computed", ErrUnknownComputed, `unknown computed value "lifetime_value"`}}},
		{"computed string operand", where(`{"computed": "order_count", "gt": "1"}`),
			[]want{{"where.gt", ErrType, "expected number"}}},
		{"computed contains", where(`{"computed": "order_count", "contains": 1}`),
			[]want{{"where.contains", ErrUnknownField, "unknown comparison"}}},
		{"event unknown modifier", where(`{"event": "A", "withn": "3d"}`),
			[]want{{"where.withn", ErrUnknownField, "unknown field of an event condition"}}},
		{"event empty name", where(`{"event": ""}`),
			[]want{{"where.event", ErrInvalidValue, "event name"}}},
		{"two aggregates", where(`{"event": "A", "count": {"gte": 1}, "sum": {"property": "total", "gte": 1}}`),
			[]want{{"where", ErrConflict, `more than one aggregate: "count" and "sum"`}}},
		{"sum without property", where(`{"event": "A", "sum": {"gte": 1}}`),
			[]want{{"where.sum.property", ErrRequired, "required"}}},
		{"count with property", where(`{"event": "A", "count": {"property": "x", "gte": 1}}`),
			[]want{{"where.count.property", ErrUnknownField, "count takes no property"}}},
		{"count exists", where(`{"event": "A", "count": {"exists": true}}`),
			[]want{{"where.count.exists", ErrUnknownField, "unknown comparison"}}},
		{"count empty", where(`{"event": "A", "count": {}}`),
			[]want{{"where.count", ErrRequired, "missing comparison"}}},
		{"where key without prefix", where(`{"event": "A", "where": {"coupon": {"exists": true}}}`),
			[]want{{"where.where.coupon", ErrUnknownField, `want "properties.<path>"`}}},
		{"where comparison type", where(`{"event": "A", "where": {"properties.total": {"gte": [1]}}}`),
			[]want{{`where.where["properties.total"].gte`, ErrType, "expected number or string"}}},
		{"where comparisons not object", where(`{"event": "A", "where": {"properties.total": 5}}`),
			[]want{{`where.where["properties.total"]`, ErrType, "expected an object of comparisons"}}},
		{"where nested", where(`{"event": "A", "where": {"any": [{"properties.a": {"eq": 1}}, {"not": {"properties.b": {"gtee": 1}}}]}}`),
			[]want{{`where.where.any[1].not["properties.b"].gtee`, ErrUnknownField, "unknown comparison"}}},
		{"empty where", where(`{"event": "A", "where": {}}`),
			[]want{{"where.where", ErrInvalidValue, "at least one"}}},
		{"first unknown key", where(`{"event": "A", "first": {"older": "3d"}}`),
			[]want{{"where.first.older", ErrUnknownField, "unknown field"}}},
		{"last empty", where(`{"event": "A", "last": {}}`),
			[]want{{"where.last", ErrRequired, "older_than or newer_than"}}},
		{"last bad duration", where(`{"event": "A", "last": {"newer_than": "3"}}`),
			[]want{{"where.last.newer_than", ErrInvalidDuration, `invalid duration "3"`}}},
		{"top percent", where(`{"top": {"percent": 0, "of": "revenue_365d"}}`),
			[]want{{"where.top.percent", ErrInvalidValue, "(0, 100]"}}},
		{"top percent too big", where(`{"bottom": {"percent": 101, "of": "revenue_365d"}}`),
			[]want{{"where.bottom.percent", ErrInvalidValue, "(0, 100]"}}},
		{"top missing of", where(`{"top": {"percent": 10}}`),
			[]want{{"where.top.of", ErrRequired, "required"}}},
		{"top unknown metric", where(`{"top": {"percent": 10, "of": "ltv"}}`),
			[]want{{"where.top.of", ErrUnknownComputed, `unknown computed value "ltv"`}}},
		{"top extra", where(`{"top": {"percent": 10, "of": "revenue_365d", "by": "x"}}`),
			[]want{{"where.top.by", ErrUnknownField, "unknown field"}}},
		{"in_segment self", where(`{"not": {"in_segment": "t"}}`),
			[]want{{"where.not.in_segment", ErrCycle, "cycle: t -> t"}}},
		{"in_segment bad name", where(`{"in_segment": "Other Segment"}`),
			[]want{{"where.in_segment", ErrInvalidValue, "invalid segment name"}}},
		{"odd key quoted and clipped", where(`{"event": "A", "` + long + `": 1}`),
			[]want{{`where["` + strings.Repeat("x", 40) + `…"]`, ErrUnknownField, "unknown field"}}},
		{"several errors, all reported", `{"name": "a", "purpose": "x", "where": {"all": [{"evnt": 1}, {"event": "A", "within": "3x", "count": {"gte": "2"}}]}}`,
			[]want{
				{"purpose", ErrUnknownPurpose, "unknown purpose"},
				{"where.all[0]", ErrUnknownOperator, `unknown operator "evnt"`},
				{"where.all[1].count.gte", ErrType, "expected number"},
				{"where.all[1].within", ErrInvalidDuration, `invalid duration "3x"`},
			}},
		{"too deep", where(strings.Repeat(`{"not": `, 40) + `{"trait": "a", "exists": true}` + strings.Repeat(`}`, 40)),
			[]want{{"where" + strings.Repeat(".not", MaxDepth), ErrSyntax, "nested deeper"}}},
		{"duplicate key", where(`{"trait": "a", "eq": 1, "eq": 2}`),
			[]want{{"where.eq", ErrSyntax, "duplicate key"}}},
		{"json syntax", `{"name": "a",, }`,
			[]want{{"", ErrSyntax, "invalid JSON"}}},
		{"number out of range", where(`{"trait": "a", "gt": 1e999}`),
			[]want{{"where.gt", ErrSyntax, "number out of range"}}},
		{"trailing data", where(`{"trait": "a", "exists": true}`) + ` {}`,
			[]want{{"", ErrSyntax, "unexpected data"}}},
		{"empty", "  \n", []want{{"", ErrSyntax, "empty definition"}}},
		{"not an object", `[1, 2]`, []want{{"", ErrType, "expected an object"}}},
		{"yaml error", "name: a\npurpose: [\n", []want{{"", ErrSyntax, "invalid YAML"}}},
		{"yaml type", "name: a\npurpose: marketing\nwhere:\n  event: A\n  count:\n    gte: two\n",
			[]want{{"where.count.gte", ErrType, "expected number"}}},
		{"yaml duplicate", "name: a\nname: b\npurpose: marketing\nwhere: {trait: a, exists: true}\n",
			[]want{{"name", ErrSyntax, "duplicate key"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(tc.src), ParseOptions{})
			if err == nil {
				t.Fatalf("no error; got %+v", d)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not match ErrInvalid: %v", err)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList", err)
			}
			if len(list) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(list), len(tc.want), err)
			}
			for i, w := range tc.want {
				e := list[i]
				if e.Path != w.path {
					t.Errorf("error %d: path %q, want %q (%v)", i, e.Path, w.path, e)
				}
				if !errors.Is(e, w.err) || !errors.Is(err, w.err) {
					t.Errorf("error %d: sentinel %v, want %v", i, e.Err, w.err)
				}
				if !strings.Contains(e.Message, w.msg) {
					t.Errorf("error %d: message %q, want it to contain %q", i, e.Message, w.msg)
				}
				if strings.Contains(e.Error(), strings.Repeat("x", 41)) {
					t.Errorf("error %d echoes more than 40 characters: %v", i, e)
				}
			}
		})
	}
}

func TestErrorListFormat(t *testing.T) {
	_, err := Parse([]byte(`{"name": "a", "purpose": "x", "where": {"evnt": 1}}`), ParseOptions{})
	want := `2 errors: purpose: unknown purpose "x"; where: unknown operator "evnt"`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if !errors.Is(err, ErrUnknownOperator) || !errors.Is(err, ErrUnknownPurpose) || errors.Is(err, ErrCycle) {
		t.Error("sentinels not reachable through the list")
	}
}

func TestParseKnownNames(t *testing.T) {
	src := `{"name": "a", "purpose": "brand.loyalty", "where": {"computed": "ltv", "gt": 1}}`
	if _, err := Parse([]byte(src), ParseOptions{}); err == nil {
		t.Fatal("custom names accepted by default")
	}
	known := KnownNames{Purpose: func(p string) bool { return p == "brand.loyalty" }, Computed: []string{"ltv"}}
	if _, err := Parse([]byte(src), ParseOptions{KnownNames: known}); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse([]byte(src), ParseOptions{Structural: true}); err != nil {
		t.Fatalf("structural: %v", err)
	}
	_, err := Parse([]byte(`{"name": "a", "purpose": "Not A Purpose", "where": {"computed": "L T V", "gt": 1}}`), ParseOptions{Structural: true})
	if !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), "purpose: invalid purpose") || !strings.Contains(err.Error(), "where.computed: invalid computed value name") {
		t.Fatalf("structural parse of malformed names: %v", err)
	}
	if _, err := Parse([]byte(where(`{"computed": "order_count", "gt": 1}`)), ParseOptions{KnownNames: KnownNames{Computed: []string{}}}); !errors.Is(err, ErrUnknownComputed) {
		t.Fatalf("empty computed list: %v", err)
	}
}

const example = `{"name": "cart_abandoners", "description": "Left something in the cart", "purpose": "marketing.communications.email",
 "where": {"all": [
   {"event": "Product Added", "within": "3d"},
   {"not": {"event": "Order Completed", "within": "3d"}}]}}`

const exampleYAML = `# the same definition in YAML
name: cart_abandoners
description: Left something in the cart
purpose: marketing.communications.email
where:
  all:
    - event: Product Added
      within: 3d
    - not:
        event: Order Completed
        within: 3d
`

func TestParseYAMLEqualsJSON(t *testing.T) {
	a := mustParse(t, example)
	b := mustParse(t, exampleYAML)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("YAML and JSON differ:\n%+v\n%+v", a, b)
	}
	// A YAML flow mapping starts with "{" but is not JSON.
	c := mustParse(t, `{name: cart_abandoners, description: Left something in the cart, purpose: marketing.communications.email, where: {all: [{event: Product Added, within: 3d}, {not: {event: Order Completed, within: 3d}}]}}`)
	if !reflect.DeepEqual(a, c) {
		t.Fatalf("YAML flow differs:\n%+v\n%+v", a, c)
	}
	// YAML scalars: numbers, booleans, timestamps as strings.
	d := mustParse(t, "name: y\npurpose: marketing\nwhere:\n  event: A\n  after: 2026-01-01T00:00:00Z\n  where:\n    properties.total: {gte: 50}\n    properties.gift: {eq: true}\n  count: {gte: 2}\n")
	e := d.Where.Event
	if !e.After.Time.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) || e.Where.Props[0].Path != "properties.gift" || e.Where.Props[1].Compare[0].Value != 50.0 || e.Aggregate.Compare[0].Value != 2.0 {
		t.Fatalf("YAML values: %+v %+v", e, e.Where)
	}
}

func TestMarshalCanonical(t *testing.T) {
	src := where(`{"any": [
		{"event": "Order Completed", "last": {"newer_than": "3d", "older_than": "1h"}, "sum": {"gte": 100, "property": "properties.total", "lt": 1000},
		 "where": {"not": {"properties.coupon": {"exists": true}}, "properties.b": {"eq": "x"}, "properties.a": {"in": [1, "two", true]}},
		 "after": "2026-01-01T01:00:00+01:00", "before": "2w", "within": "52w"},
		{"lte": 5, "gte": 1, "trait": "n"},
		{"bottom": {"of": "revenue_total", "percent": 12.5}},
		{"in_segment": "vip"}]}`)
	d := mustParse(t, src)
	got, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"t","purpose":"marketing.communications.email","where":{"any":[` +
		`{"event":"Order Completed","within":"52w","before":"2w","after":"2026-01-01T00:00:00Z",` +
		`"where":{"properties.a":{"in":[1,"two",true]},"properties.b":{"eq":"x"},"not":{"properties.coupon":{"exists":true}}},` +
		`"sum":{"property":"total","gte":100,"lt":1000},"last":{"older_than":"1h","newer_than":"3d"}},` +
		`{"trait":"n","gte":1,"lte":5},{"bottom":{"percent":12.5,"of":"revenue_total"}},{"in_segment":"vip"}]}}`
	if string(got) != want {
		t.Fatalf("canonical form:\n got %s\nwant %s", got, want)
	}
	again := mustParse(t, string(got))
	if !reflect.DeepEqual(d, again) {
		t.Fatalf("re-parse differs:\n%+v\n%+v", d, again)
	}
	var u Definition
	if err := json.Unmarshal(got, &u); err != nil || !reflect.DeepEqual(&u, d) {
		t.Fatalf("UnmarshalJSON: %v %+v", err, u)
	}
}

func TestCompileRevalidatesGoDefinitions(t *testing.T) {
	d := &Definition{Name: "x", Purpose: "marketing", Where: Condition{All: []Condition{
		{Trait: "a", Compare: []Comparison{{Op: OpGt, Value: true}}},
		{Event: &EventCondition{Name: "A", Within: Duration{N: 3, Unit: 'y'}}},
		{Computed: "order_count", Event: &EventCondition{Name: "B"}},
		{Top: &Rank{Percent: 150, Of: "revenue_365d"}},
		{Event: &EventCondition{Name: "C", After: &Instant{Time: clock, Ago: Duration{N: 1, Unit: 'd'}}}},
	}}}
	_, err := Compile(d, KnownNames{})
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("got %v", err)
	}
	var paths []string
	for _, e := range list {
		paths = append(paths, e.Path)
	}
	want := []string{"where.all[0].gt", "where.all[1].within", "where.all[2]", "where.all[3].top.percent", "where.all[4].after"}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("paths %q, want %q\n%v", paths, want, err)
	}
	if _, err := Compile(nil, KnownNames{}); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("nil definition: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{"30m": 30 * time.Minute, "12h": 12 * time.Hour, "3d": 72 * time.Hour, "2w": 14 * 24 * time.Hour, "007d": 7 * 24 * time.Hour} {
		d, ok := ParseDuration(s)
		if !ok || d.Std() != want {
			t.Errorf("%s: %v %v", s, d, ok)
		}
	}
	for _, s := range []string{"", "d", "3", "3x", "-3d", "3.5d", "0m", "3D", " 3d", "36501d", "99999999999999d"} {
		if d, ok := ParseDuration(s); ok {
			t.Errorf("%q parsed as %v", s, d)
		}
	}
	if d, _ := ParseDuration("007d"); d.String() != "7d" {
		t.Errorf("canonical: %s", d)
	}
}

func TestParseTime(t *testing.T) {
	for _, s := range []string{"2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", "2025-12-31T19:00:00.000-05:00", "2024-02-29T12:30:45.123456789Z"} {
		sec, nsec, ok := parseTime(s)
		want, err := time.Parse(time.RFC3339Nano, s)
		if !ok || err != nil || sec != want.Unix() || int(nsec) != want.Nanosecond() {
			t.Errorf("%s: %d %d %v, want %v", s, sec, nsec, ok, want)
		}
	}
	for _, s := range []string{"2026-01-01", "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00", "2026-01-01T00:00:00+0100", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00Zx"} {
		if _, _, ok := parseTime(s); ok {
			t.Errorf("%q parsed", s)
		}
	}
}
