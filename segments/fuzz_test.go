package segments

import (
	"bytes"
	"reflect"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, tp := range Templates() {
		b, _ := tp.Definition.MarshalJSON()
		f.Add(b)
		f.Add([]byte(tp.source))
	}
	for _, s := range []string{
		example, exampleYAML,
		where(`{"event": "Order Completed", "after": "2026-01-01T00:00:00.5+02:00", "where": {"any": [{"properties.a.0.b": {"contains": "x"}}], "not": {"properties.c": {"exists": false}}}, "avg": {"property": "total", "in": [1, 2.5, -0]}, "first": {"older_than": "90d"}}`),
		where(`{"all": [{"trait": "address.country", "in": ["DE", "AT"]}, {"computed": "order_count", "gte": 2, "lt": 10}, {"bottom": {"percent": 0.5, "of": "revenue_total"}}, {"not": {"in_segment": "vip"}}]}`),
		where(`{"event": "Order Completed", "within": "90d", "count": {"eq": 0}}`),
		where(`{"trait": "created_at", "gte": "2026-01-01T00:00:00Z", "contains": "\u2028<&>"}`),
		where(`{"any": [{"computed": "lifecycle_stage", "in": ["repeat", "loyal"]}, {"computed": "top_category", "contains": "Kit"}, {"computed": "last_order_at", "gt": "2026-01-01T00:00:00+01:00"}, {"computed": "clv", "gte": 100}]}`),
		where(`{"event": "page", "within": "30d", "where": {"context.campaign.medium": {"in": ["paid_social"]}, "any": [{"context.page.referrer": {"contains": "google"}}, {"not": {"properties.path": {"eq": "/"}}}]}}`),
		where(`{"computed": "lifecycle_stage", "eq": "vip"}`),
		where(`{"computed": "first_order_at", "gt": 5}`),
		"name: y\npurpose: marketing\nwhere: {event: A, max: {property: total, gt: 1e3}}\n",
		`{"name": "a",, }`, `[]`, `{}`, "x: &a [*a]", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data, ParseOptions{})
		if err != nil {
			if _, ok := err.(ErrorList); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		b1, err := d.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := Parse(b1, ParseOptions{})
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, b1)
		}
		if !reflect.DeepEqual(d, d2) {
			t.Fatalf("re-parse differs:\n%#v\n%#v", d, d2)
		}
		b2, _ := d2.MarshalJSON()
		if !bytes.Equal(b1, b2) {
			t.Fatalf("canonical form not stable:\n%s\n%s", b1, b2)
		}
		c, err := Compile(d, KnownNames{})
		if err != nil {
			t.Fatalf("valid definition does not compile: %v", err)
		}
		c.Match(&fakePerson{}, clock, Env{})
	})
}
