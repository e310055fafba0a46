package core

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/custody-cdp/custody/privacy"
)

// TestGateTraitList: the gate traits and their times read back as given,
// whatever the time (zero, before 1970, beyond 2262), and other traits are
// not kept.
func TestGateTraitList(t *testing.T) {
	every := map[string]json.RawMessage{"jurisdiction": json.RawMessage(`"EU"`), "country": json.RawMessage(`"FR"`), "state": json.RawMessage(`null`),
		"phone": json.RawMessage(`""`), "email": json.RawMessage(`""`), "address": json.RawMessage(`{}`)}
	cases := []struct {
		name   string
		traits map[string]json.RawMessage
		times  map[string]time.Time
		want   map[string]json.RawMessage
	}{
		{"none", map[string]json.RawMessage{"plan": json.RawMessage(`"pro"`)}, nil, nil},
		{"email and address",
			map[string]json.RawMessage{"email": json.RawMessage(`"a@example.com"`), "address": json.RawMessage(`{"country":"DE"}`), "plan": json.RawMessage(`"pro"`)},
			map[string]time.Time{"email": time.Date(2026, 3, 1, 12, 0, 0, 999_999_999, time.UTC), "address": {}},
			map[string]json.RawMessage{"email": json.RawMessage(`"a@example.com"`), "address": json.RawMessage(`{"country":"DE"}`)}},
		{"every gate trait, odd times", every,
			map[string]time.Time{"jurisdiction": time.Date(1901, 1, 1, 0, 0, 0, 1, time.UTC), "country": time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)},
			every},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			l := makeGateTraits(tc.traits, tc.times)
			traits, times := l.maps()
			if len(want) == 0 {
				if len(l) != 0 || traits != nil {
					t.Fatalf("kept %q", l)
				}
				return
			}
			if !reflect.DeepEqual(traits, want) {
				t.Fatalf("traits %s, want %s", traits, want)
			}
			for k := range want {
				if !times[k].Equal(tc.times[k]) || times[k].IsZero() != tc.times[k].IsZero() {
					t.Fatalf("time of %s read back as %v, want %v", k, times[k], tc.times[k])
				}
			}
		})
	}
}

// Entries share one copy of each consent text: records decoded apart (as
// every commit and every read decodes them) end up pointing at the same
// bytes, the same as before in value.
func TestGateNodeTextsAreCanonical(t *testing.T) {
	const rec = `{"purpose":"marketing.email","status":"granted","lawful_basis":"consent","jurisdiction":"EU","source":"checkout","notice":"n-7","collected_at":"2026-01-02T03:04:05Z","recorded_at":"2026-01-02T03:04:06Z"}`
	decode := func() []privacy.Consent {
		var c privacy.Consent
		if err := json.Unmarshal([]byte(rec), &c); err != nil {
			t.Fatal(err)
		}
		return []privacy.Consent{c}
	}
	want := decode()[0]
	a, b := newGateNode(nil, nil, decode()), newGateNode(nil, nil, decode())
	if !reflect.DeepEqual(a.consents[0], want) {
		t.Fatalf("record changed: %+v, want %+v", a.consents[0], want)
	}
	ra, rb := a.consents[0], b.consents[0]
	for _, tc := range []struct{ name, x, y string }{
		{"purpose", ra.Purpose, rb.Purpose}, {"status", ra.Status, rb.Status}, {"lawful basis", ra.LawfulBasis, rb.LawfulBasis},
		{"jurisdiction", ra.Jurisdiction, rb.Jurisdiction}, {"source", ra.Source, rb.Source}, {"notice", ra.Notice, rb.Notice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if unsafe.StringData(tc.x) != unsafe.StringData(tc.y) {
				t.Fatalf("%q held twice", tc.x)
			}
		})
	}
}

// A node's jurisdiction is canonical too, whether built by concatenation
// (US states) or decoded from a trait.
func TestGateNodeJurisdictionIsCanonical(t *testing.T) {
	for _, tc := range []struct{ name, traits, want string }{
		{"US state from an address", `{"address":{"country":"US","state":"ca"}}`, "US-CA"},
		{"explicit trait", `{"jurisdiction":"uk"}`, "UK"},
		{"country and state traits", `{"country":"United States","state":"NY"}`, "US-NY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := func() *gateNode {
				var tm map[string]json.RawMessage
				if err := json.Unmarshal([]byte(tc.traits), &tm); err != nil {
					t.Fatal(err)
				}
				return gateNodeFrom(tm, nil)
			}
			a, b := node(), node()
			if a.jurisdiction != tc.want {
				t.Fatalf("jurisdiction %q, want %q", a.jurisdiction, tc.want)
			}
			if unsafe.StringData(a.jurisdiction) != unsafe.StringData(b.jurisdiction) {
				t.Fatalf("%q held twice", a.jurisdiction)
			}
		})
	}
}
