package segments

import (
	"math"
	"reflect"
	"testing"
	"time"
)

func matchTable(t *testing.T, p Person, cases []struct {
	cond string
	want bool
}) {
	t.Helper()
	for _, tc := range cases {
		c := mustCompile(t, where(tc.cond))
		if got := c.Match(p, clock, Env{}); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.cond, got, tc.want)
		}
	}
}

func TestMatchTraits(t *testing.T) {
	p := &fakePerson{traits: map[string]any{
		"country":    "DE",
		"age":        42.0,
		"score":      7, // not a float64: still a number
		"vip":        true,
		"tags":       []any{"a", "b", 3.0},
		"created_at": "2026-01-01T01:00:00+01:00",
		"name":       "Ada Lovelace",
		"address":    map[string]any{"country": "FR", "city": "Lyon"},
		"addresses":  []any{map[string]any{"country": "US"}},
		"nothing":    nil,
		"num_str":    "42",
		"date":       "2026-03-01",
	}}
	matchTable(t, p, []struct {
		cond string
		want bool
	}{
		// eq, ne, in
		{`{"trait": "country", "eq": "DE"}`, true},
		{`{"trait": "country", "eq": "de"}`, false},
		{`{"trait": "age", "eq": 42}`, true},
		{`{"trait": "score", "eq": 7}`, true},
		{`{"trait": "num_str", "eq": 42}`, false},
		{`{"trait": "age", "eq": "42"}`, false},
		{`{"trait": "vip", "eq": true}`, true},
		{`{"trait": "vip", "eq": "true"}`, false},
		{`{"trait": "country", "ne": "FR"}`, true},
		{`{"trait": "country", "ne": "DE"}`, false},
		{`{"trait": "num_str", "ne": 42}`, true},
		{`{"trait": "missing", "ne": "x"}`, false},
		{`{"not": {"trait": "missing", "eq": "x"}}`, true},
		{`{"trait": "country", "in": ["FR", "DE"]}`, true},
		{`{"trait": "age", "in": ["42"]}`, false},
		{`{"trait": "age", "in": [1, 42]}`, true},
		// order: numbers
		{`{"trait": "age", "gt": 41}`, true},
		{`{"trait": "age", "gt": 42}`, false},
		{`{"trait": "age", "gte": 42}`, true},
		{`{"trait": "age", "lt": 43}`, true},
		{`{"trait": "age", "lt": 42}`, false},
		{`{"trait": "age", "lte": 42}`, true},
		{`{"trait": "age", "gte": 40, "lte": 50}`, true},
		{`{"trait": "age", "gte": 43, "lte": 50}`, false},
		{`{"trait": "age", "gt": "4"}`, false},
		{`{"trait": "num_str", "gt": 5}`, false},
		// order: strings, lexically
		{`{"trait": "name", "gt": "Ada"}`, true},
		{`{"trait": "name", "lt": "B"}`, true},
		{`{"trait": "num_str", "gt": "5"}`, false},
		{`{"trait": "date", "gt": "2026-02-15"}`, true},
		// order: RFC 3339 times as instants (2026-01-01T00:00:00Z)
		{`{"trait": "created_at", "eq": "2026-01-01T00:00:00Z"}`, true},
		{`{"trait": "created_at", "gt": "2025-12-31T23:59:59Z"}`, true},
		{`{"trait": "created_at", "lt": "2026-01-01T00:00:00.000000001Z"}`, true},
		{`{"trait": "created_at", "gt": "2026-01-01T00:30:00Z"}`, false}, // lexically it would be greater
		{`{"trait": "created_at", "lt": "2026-01-01T00:30:00Z"}`, true},
		{`{"trait": "created_at", "gte": "2026-01-01T00:00:00Z", "lte": "2026-01-01T00:00:00Z"}`, true},
		// exists, missing, null
		{`{"trait": "country", "exists": true}`, true},
		{`{"trait": "missing", "exists": true}`, false},
		{`{"trait": "missing", "exists": false}`, true},
		{`{"trait": "nothing", "exists": false}`, true},
		{`{"trait": "missing", "lt": 5}`, false},
		{`{"trait": "missing", "in": ["x"]}`, false},
		// contains
		{`{"trait": "name", "contains": "Love"}`, true},
		{`{"trait": "name", "contains": "love"}`, false},
		{`{"trait": "tags", "contains": "b"}`, true},
		{`{"trait": "tags", "contains": 3}`, true},
		{`{"trait": "tags", "contains": "c"}`, false},
		{`{"trait": "age", "contains": 4}`, false},
		// paths
		{`{"trait": "address.country", "eq": "FR"}`, true},
		{`{"trait": "address.zip", "exists": false}`, true},
		{`{"trait": "address.country.x", "exists": true}`, false},
		{`{"trait": "addresses.0.country", "eq": "US"}`, true},
		{`{"trait": "addresses.1.country", "exists": false}`, true},
		{`{"trait": "tags.1", "eq": "b"}`, true},
		// boolean operators
		{`{"all": [{"trait": "country", "eq": "DE"}, {"trait": "vip", "eq": true}]}`, true},
		{`{"all": [{"trait": "country", "eq": "DE"}, {"trait": "vip", "eq": false}]}`, false},
		{`{"any": [{"trait": "country", "eq": "FR"}, {"trait": "vip", "eq": true}]}`, true},
		{`{"any": [{"trait": "country", "eq": "FR"}, {"trait": "vip", "eq": false}]}`, false},
		{`{"not": {"trait": "country", "eq": "DE"}}`, false},
	})
}

func TestMatchComputed(t *testing.T) {
	p := &fakePerson{computed: map[string]float64{"order_count": 3, "revenue_total": 120.5, "avg_order_value": math.NaN()}}
	matchTable(t, p, []struct {
		cond string
		want bool
	}{
		{`{"computed": "order_count", "eq": 3}`, true},
		{`{"computed": "order_count", "ne": 3}`, false},
		{`{"computed": "order_count", "gt": 2, "lt": 4}`, true},
		{`{"computed": "order_count", "in": [1, 3]}`, true},
		{`{"computed": "order_count", "in": [1, 2]}`, false},
		{`{"computed": "revenue_total", "gte": 120.5}`, true},
		{`{"computed": "revenue_total", "gt": 120.5}`, false},
		{`{"computed": "order_count", "exists": true}`, true},
		{`{"computed": "days_since_last_order", "exists": false}`, true},
		{`{"computed": "days_since_last_order", "lt": 5}`, false},
		{`{"computed": "days_since_last_order", "ne": 5}`, false},
		{`{"computed": "avg_order_value", "exists": false}`, true}, // NaN reads as absent
		{`{"computed": "avg_order_value", "gte": 0}`, false},
	})
}

func TestMatchEvents(t *testing.T) {
	day := 24 * time.Hour
	p := &fakePerson{}
	p.add("Order Completed", clock.Add(-day), map[string]any{"total": 50.0, "coupon": "X", "products": []any{map[string]any{"sku": "A"}}})
	p.add("Order Completed", clock.Add(-3*day), map[string]any{"total": 30.0})
	p.add("Order Completed", clock.Add(-10*day), map[string]any{"total": 100.0, "coupon": ""})
	p.add("Order Completed", clock.Add(time.Hour), map[string]any{"total": 999.0}) // the future: never selected
	p.add("Product Added", clock.Add(-2*day), map[string]any{"price": "n/a"})
	p.add("Login", clock, nil)
	at := func(d time.Duration) string { return clock.Add(d).Format(time.RFC3339) }
	matchTable(t, p, []struct {
		cond string
		want bool
	}{
		{`{"event": "Order Completed"}`, true},
		{`{"event": "Nope"}`, false},
		{`{"not": {"event": "Nope"}}`, true},
		{`{"event": "Order Completed", "count": {"eq": 3}}`, true}, // the future order is not counted
		// within: (now-D, now]
		{`{"event": "Order Completed", "within": "3d", "count": {"eq": 1}}`, true}, // now-3d is out
		{`{"event": "Order Completed", "within": "4321m", "count": {"eq": 2}}`, true},
		{`{"event": "Login", "within": "1m"}`, true}, // now is in
		{`{"event": "Order Completed", "within": "12h"}`, false},
		{`{"event": "Order Completed", "within": "12h", "count": {"eq": 0}}`, true},
		{`{"not": {"event": "Order Completed", "within": "12h"}}`, true},
		{`{"event": "Nope", "within": "90d", "count": {"eq": 0}}`, true},
		// before: <= now-D
		{`{"event": "Order Completed", "before": "3d", "count": {"eq": 2}}`, true}, // now-3d is in
		{`{"event": "Order Completed", "before": "10d", "count": {"eq": 1}}`, true},
		{`{"event": "Order Completed", "before": "11d"}`, false},
		{`{"event": "Order Completed", "within": "11d", "before": "2d", "count": {"eq": 2}}`, true},
		// after: > T, or > now-D
		{`{"event": "Order Completed", "after": "` + at(-3*day) + `", "count": {"eq": 1}}`, true},
		{`{"event": "Order Completed", "after": "` + at(-3*day-time.Second) + `", "count": {"eq": 2}}`, true},
		{`{"event": "Order Completed", "after": "3d", "count": {"eq": 1}}`, true},
		{`{"event": "Order Completed", "after": "` + at(-100*day) + `", "within": "2d", "count": {"eq": 1}}`, true},
		// where
		{`{"event": "Order Completed", "where": {"properties.coupon": {"exists": true}}, "count": {"eq": 2}}`, true},
		{`{"event": "Order Completed", "where": {"properties.coupon": {"ne": ""}}, "count": {"eq": 1}}`, true},
		{`{"event": "Order Completed", "where": {"properties.total": {"gte": 50}}, "count": {"eq": 2}}`, true},
		{`{"event": "Order Completed", "where": {"properties.total": {"gte": 50}, "properties.coupon": {"eq": "X"}}}`, true},
		{`{"event": "Order Completed", "where": {"properties.total": {"gte": 60}, "properties.coupon": {"eq": "X"}}}`, false},
		{`{"event": "Order Completed", "where": {"any": [{"properties.total": {"gt": 99}}, {"properties.coupon": {"eq": "X"}}]}, "count": {"eq": 2}}`, true},
		{`{"event": "Order Completed", "where": {"not": {"properties.coupon": {"exists": true}}}, "count": {"eq": 1}}`, true},
		{`{"event": "Order Completed", "where": {"all": [{"properties.total": {"lt": 60}}, {"properties.total": {"gt": 40}}]}, "count": {"eq": 1}}`, true},
		{`{"event": "Order Completed", "where": {"properties.products.0.sku": {"eq": "A"}}}`, true},
		{`{"event": "Login", "where": {"properties.x": {"exists": false}}}`, true}, // nil properties
		// aggregates
		{`{"event": "Order Completed", "sum": {"property": "total", "eq": 180}}`, true},
		{`{"event": "Order Completed", "sum": {"property": "properties.total", "eq": 180}}`, true},
		{`{"event": "Order Completed", "within": "3d", "sum": {"property": "total", "eq": 50}}`, true},
		{`{"event": "Order Completed", "avg": {"property": "total", "eq": 60}}`, true},
		{`{"event": "Order Completed", "min": {"property": "total", "eq": 30}}`, true},
		{`{"event": "Order Completed", "max": {"property": "total", "eq": 100}}`, true},
		{`{"event": "Order Completed", "max": {"property": "total", "gte": 100, "lt": 101}}`, true},
		{`{"event": "Order Completed", "count": {"gte": 2, "lte": 3}}`, true},
		{`{"event": "Order Completed", "count": {"in": [1, 2]}}`, false},
		{`{"event": "Product Added", "sum": {"property": "price", "eq": 0}}`, true}, // non-numeric skipped; empty sum is 0
		{`{"event": "Product Added", "avg": {"property": "price", "gte": 0}}`, false},
		{`{"event": "Product Added", "min": {"property": "price", "ne": 1}}`, false},
		{`{"event": "Nope", "sum": {"property": "total", "eq": 0}}`, true},
		{`{"event": "Nope", "max": {"property": "total", "lt": 1}}`, false},
		// first and last: older_than is <= now-D, newer_than is > now-D
		{`{"event": "Order Completed", "first": {"older_than": "9d"}}`, true},
		{`{"event": "Order Completed", "first": {"older_than": "10d"}}`, true},
		{`{"event": "Order Completed", "first": {"older_than": "11d"}}`, false},
		{`{"event": "Order Completed", "last": {"newer_than": "1d"}}`, false},
		{`{"event": "Order Completed", "last": {"newer_than": "2d"}}`, true},
		{`{"event": "Order Completed", "last": {"older_than": "1d", "newer_than": "2d"}}`, true},
		{`{"event": "Order Completed", "where": {"properties.coupon": {"eq": "X"}}, "first": {"older_than": "2d"}}`, false},
		{`{"event": "Order Completed", "before": "2d", "last": {"newer_than": "4d"}}`, true},
		{`{"event": "Order Completed", "first": {"older_than": "9d"}, "count": {"gte": 3}}`, true},
		{`{"event": "Order Completed", "first": {"older_than": "9d"}, "count": {"gte": 4}}`, false},
		{`{"event": "Nope", "first": {"older_than": "1d"}}`, false},
		{`{"event": "Nope", "last": {"newer_than": "1d"}, "count": {"eq": 0}}`, false},
	})
}

func TestMatchInSegmentStandalone(t *testing.T) {
	c := mustCompile(t, where(`{"all": [{"in_segment": "vip"}, {"not": {"in_segment": "blocked"}}]}`))
	p := &fakePerson{}
	if c.Match(p, clock, Env{}) {
		t.Error("in_segment without a lookup must be false")
	}
	env := Env{InSegment: func(_ Person, s string) bool { return s == "vip" }}
	if !c.Match(p, clock, env) {
		t.Error("lookup ignored")
	}
	if got := c.References(); !reflect.DeepEqual(got, []string{"vip", "blocked"}) {
		t.Errorf("references %v", got)
	}
}

func TestTimeSensitiveAndPopulation(t *testing.T) {
	for cond, want := range map[string]bool{
		`{"event": "A"}`:                                  false,
		`{"event": "A", "within": "3d"}`:                  true,
		`{"event": "A", "before": "3d"}`:                  true,
		`{"event": "A", "after": "3d"}`:                   true,
		`{"event": "A", "after": "2026-01-01T00:00:00Z"}`: false,
		`{"event": "A", "last": {"newer_than": "1d"}}`:    true,
		`{"computed": "order_count", "gt": 1}`:            false,
		`{"computed": "days_since_last_order", "gt": 1}`:  true,
		`{"computed": "revenue_365d", "gt": 1}`:           true,
		`{"top": {"percent": 5, "of": "revenue_total"}}`:  false,
		`{"top": {"percent": 5, "of": "revenue_365d"}}`:   true,
		`{"trait": "a", "exists": true}`:                  false,
	} {
		if got := mustCompile(t, where(cond)).TimeSensitive(); got != want {
			t.Errorf("%s: TimeSensitive %v, want %v", cond, got, want)
		}
	}
	c := mustCompile(t, where(`{"any": [{"top": {"percent": 5, "of": "revenue_total"}}, {"bottom": {"percent": 5, "of": "order_count"}}, {"top": {"percent": 1, "of": "revenue_total"}}]}`))
	if got := c.NeedsPopulation(); !reflect.DeepEqual(got, []Metric{"order_count", "revenue_total"}) {
		t.Errorf("NeedsPopulation %v", got)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	people := genPeople(50, 7, clock)
	var pop Population
	for _, m := range []Metric{"revenue_365d"} {
		pop.index(m)
	}
	for _, c := range people {
		pop.Add(c.Person)
	}
	env := Env{Thresholds: pop.Thresholds(), InSegment: func(Person, string) bool { return false }}
	var compiled []*Compiled
	for _, cond := range []string{
		`{"all": [{"event": "Product Added", "within": "3d"}, {"not": {"event": "Order Completed", "within": "3d"}}]}`,
		`{"event": "Order Completed", "where": {"properties.coupon": {"ne": ""}, "properties.total": {"gte": 50}}, "sum": {"property": "total", "gte": 100}, "last": {"newer_than": "30d"}}`,
		`{"event": "Order Completed", "where": {"not": {"any": [{"properties.coupon": {"ne": ""}}, {"properties.discount": {"gt": 0}}]}}, "count": {"eq": 0}}`,
		`{"trait": "address.country", "in": ["DE", "AT"]}`,
		`{"trait": "email", "contains": "@example"}`,
		`{"trait": "created_at", "gt": "2026-01-01T00:00:00+01:00"}`,
		`{"computed": "order_count", "gte": 2}`,
		`{"top": {"percent": 10, "of": "revenue_365d"}}`,
		`{"in_segment": "x"}`,
	} {
		compiled = append(compiled, mustCompile(t, where(cond)))
	}
	for _, p := range people[:10] {
		p.Person.(*fakePerson).traits["created_at"] = "2026-02-01T00:00:00+02:00"
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, c := range compiled {
			for _, p := range people {
				c.Match(p.Person, clock, env)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("Match allocates %v times per run", allocs)
	}
}
