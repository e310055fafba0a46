package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/segments"
)

// traitsChecked returns a person's computed traits at now from the event
// digests (CDP.ComputedTraitsAt), after checking that the full-event
// reference (decrypted, decoded events) and the profile view (raw
// messages) compute the same.
func traitsChecked(t *testing.T, c *CDP, id identity.Identifier, now time.Time) map[string]any {
	t.Helper()
	ctx := context.Background()
	got, err := c.ComputedTraitsAt(ctx, id, now)
	if err != nil {
		t.Fatalf("computed traits of %s: %v", id.Type, err)
	}
	c.evalFromEvents.Store(true)
	ref, err := c.ComputedTraitsAt(ctx, id, now)
	c.evalFromEvents.Store(false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ref) {
		t.Fatalf("digests and full events differ:\n digests %v\n events  %v", got, ref)
	}
	if now.Equal(fixedNow) {
		view, err := c.Profile(ctx, id, ShowOptions{EventLimit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, view.Computed) {
			t.Fatalf("digests and profile view differ:\n digests %v\n view    %v", got, view.Computed)
		}
	}
	return got
}

func diffTraits(got, want map[string]any) string {
	var out []string
	for _, k := range sortedKeys(got, want) {
		g, gok := got[k]
		w, wok := want[k]
		switch {
		case !gok:
			out = append(out, fmt.Sprintf("%s: missing, want %v", k, w))
		case !wok:
			out = append(out, fmt.Sprintf("%s: %v, want absent", k, g))
		case !reflect.DeepEqual(g, w):
			out = append(out, fmt.Sprintf("%s: %v (%T), want %v (%T)", k, g, g, w, w))
		}
	}
	return strings.Join(out, "\n")
}

func sortedKeys(ms ...map[string]any) []string {
	seen := map[string]bool{}
	for _, m := range ms {
		for k := range maps.Keys(m) {
			seen[k] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Computed traits against hand-computed values, at the fixed clock
// (2026-11-01T12:00:00Z). Each person's messages are ingested one by one,
// and the traits read after the first, so that the digests are built from
// the store and then kept current by the committer.
func TestComputedTraitsFixtures(t *testing.T) {
	tests := []struct {
		name  string
		id    identity.Identifier
		early *identity.Identifier // who to read after the first message, when not id
		msgs  []string
		want  map[string]any
	}{
		{
			name: "visitor",
			id:   identity.Identifier{Type: identity.AnonymousID, Value: "v1"},
			msgs: []string{`{"type":"page","messageId":"v1","anonymousId":"v1","name":"Home","timestamp":"2026-10-31T00:00:00Z"}`},
			want: map[string]any{"order_count": 0.0, "days_since_first_seen": 1.0, "lifecycle_stage": "visitor"},
		},
		{
			name: "subscriber: known email, no order",
			id:   identity.Identifier{Type: identity.UserID, Value: "s1"},
			msgs: []string{
				`{"type":"page","messageId":"s1","userId":"s1","name":"Home","timestamp":"2026-10-29T12:00:00Z"}`,
				`{"type":"identify","messageId":"s2","userId":"s1","traits":{"email":"s1@example.com"},"timestamp":"2026-10-30T12:00:00Z"}`,
			},
			want: map[string]any{"order_count": 0.0, "days_since_first_seen": 3.0, "lifecycle_stage": "subscriber"},
		},
		{
			// Two orders 20 days apart, one refunded twice (counted once),
			// a refund of an order that is not theirs; categories from
			// products[]: Shoes 30×2 = 60 (2 items), Socks 5×4 + 10×4 = 60
			// (8 items, wins the tie), Hats 40 (quantity missing: 1).
			name: "repeat buyer with a refund",
			id:   identity.Identifier{Type: identity.UserID, Value: "r1"},
			msgs: []string{
				`{"type":"track","messageId":"r1","userId":"r1","event":"Order Completed","properties":{"order_id":"A-1","revenue":80,"total":90,"products":[{"category":"Shoes","price":30,"quantity":2},{"category":"Socks","price":5,"quantity":4}]},"timestamp":"2026-10-01T12:00:00Z"}`,
				`{"type":"track","messageId":"r2","userId":"r1","event":"Order Completed","properties":{"order_id":1002,"total":40,"coupon":"SAVE","products":[{"category":" Socks ","price":10,"quantity":4},{"category":"Hats","price":40},{"price":100},"junk"]},"timestamp":"2026-10-21T12:00:00Z"}`,
				`{"type":"track","messageId":"r3","userId":"r1","event":"Order Refunded","properties":{"order_id":1002,"total":10},"timestamp":"2026-10-25T12:00:00Z"}`,
				`{"type":"track","messageId":"r4","userId":"r1","event":"Order Refunded","properties":{"order_id":"1002"},"timestamp":"2026-10-26T12:00:00Z"}`,
				`{"type":"track","messageId":"r5","userId":"r1","event":"Order Refunded","properties":{"order_id":"Z-9"},"timestamp":"2026-10-27T12:00:00Z"}`,
			},
			want: map[string]any{
				"order_count": 2.0, "revenue_total": 120.0, "revenue_365d": 120.0, "avg_order_value": 60.0,
				"discount_order_share": 0.5, "refund_rate": 0.5, "top_category": "Socks",
				"first_order_at": "2026-10-01T12:00:00Z", "last_order_at": "2026-10-21T12:00:00Z",
				"days_since_last_order": 11.0, "days_since_first_seen": 31.0,
				"median_days_between_orders": 20.0, "expected_next_order_at": "2026-11-10T12:00:00Z", "days_until_next_order": 9.0,
				"lifecycle_stage": "repeat",
				"clv":             360.0, // less than a year a customer: 120 / 1 × 3
			},
		},
		{
			// Gaps of 10, 20 and 30 days: median 20, so the next order
			// was expected on 2026-09-19, 43 days ago.
			name: "loyal buyer, overdue for replenishment",
			id:   identity.Identifier{Type: identity.UserID, Value: "l1"},
			msgs: []string{
				`{"type":"track","messageId":"l1","userId":"l1","event":"Order Completed","properties":{"total":50},"timestamp":"2026-07-01T12:00:00Z"}`,
				`{"type":"track","messageId":"l2","userId":"l1","event":"Order Completed","properties":{"total":50,"discount":5},"timestamp":"2026-07-11T12:00:00Z"}`,
				`{"type":"track","messageId":"l3","userId":"l1","event":"Order Completed","properties":{"total":100,"discount":0,"coupon":" "},"timestamp":"2026-07-31T12:00:00Z"}`,
				`{"type":"track","messageId":"l4","userId":"l1","event":"Order Completed","properties":{"total":100},"timestamp":"2026-08-30T12:00:00Z"}`,
			},
			want: map[string]any{
				"order_count": 4.0, "revenue_total": 300.0, "revenue_365d": 300.0, "avg_order_value": 75.0,
				"discount_order_share": 0.25, "refund_rate": 0.0,
				"first_order_at": "2026-07-01T12:00:00Z", "last_order_at": "2026-08-30T12:00:00Z",
				"days_since_last_order": 63.0, "days_since_first_seen": 123.0,
				"median_days_between_orders": 20.0, "expected_next_order_at": "2026-09-19T12:00:00Z", "days_until_next_order": -43.0,
				"lifecycle_stage": "loyal", "clv": 900.0,
			},
		},
		{
			name: "at risk: last order 100 days ago",
			id:   identity.Identifier{Type: identity.UserID, Value: "a1"},
			msgs: []string{
				`{"type":"track","messageId":"a1","userId":"a1","event":"Order Completed","properties":{"total":10},"timestamp":"2026-06-01T12:00:00Z"}`,
				`{"type":"track","messageId":"a2","userId":"a1","event":"Order Completed","properties":{"total":20},"timestamp":"2026-07-24T12:00:00Z"}`,
			},
			want: map[string]any{
				"order_count": 2.0, "revenue_total": 30.0, "revenue_365d": 30.0, "avg_order_value": 15.0,
				"discount_order_share": 0.0, "refund_rate": 0.0,
				"first_order_at": "2026-06-01T12:00:00Z", "last_order_at": "2026-07-24T12:00:00Z",
				"days_since_last_order": 100.0, "days_since_first_seen": 153.0,
				"median_days_between_orders": 53.0, "expected_next_order_at": "2026-09-15T12:00:00Z", "days_until_next_order": -47.0,
				"lifecycle_stage": "at_risk", "clv": 90.0,
			},
		},
		{
			// A customer for two years: CLV = 300 / 2 years × 3.
			name: "lapsed: last order 549 days ago",
			id:   identity.Identifier{Type: identity.UserID, Value: "p1"},
			msgs: []string{
				`{"type":"track","messageId":"p1","userId":"p1","event":"Order Completed","properties":{"total":100},"timestamp":"2024-11-01T12:00:00Z"}`,
				`{"type":"track","messageId":"p2","userId":"p1","event":"Order Completed","properties":{"total":200},"timestamp":"2025-05-01T12:00:00Z"}`,
			},
			want: map[string]any{
				"order_count": 2.0, "revenue_total": 300.0, "revenue_365d": 0.0, "avg_order_value": 150.0,
				"discount_order_share": 0.0, "refund_rate": 0.0,
				"first_order_at": "2024-11-01T12:00:00Z", "last_order_at": "2025-05-01T12:00:00Z",
				"days_since_last_order": 549.0, "days_since_first_seen": 730.0,
				"median_days_between_orders": 181.0, "expected_next_order_at": "2025-10-29T12:00:00Z", "days_until_next_order": -368.0,
				"lifecycle_stage": "lapsed", "clv": 450.0,
			},
		},
		{
			// Touches on a device, then the device is linked to the user
			// (a merge): a paid social campaign first (its referrer is
			// Facebook's link shim), a Google referral last; a referral
			// from the shop itself is no touch. Only hosts are kept: no
			// path, no query.
			name:  "first and last touch across a merge",
			id:    identity.Identifier{Type: identity.UserID, Value: "t1"},
			early: &identity.Identifier{Type: identity.AnonymousID, Value: "dev-t"},
			msgs: []string{
				`{"type":"page","messageId":"t1","anonymousId":"dev-t","context":{"campaign":{"source":"facebook","medium":"paid_social","name":"autumn"},"page":{"url":"https://shop.example/landing?email=t1%40example.com","referrer":"https://l.facebook.com/l.php?u=secret"}},"timestamp":"2026-09-01T08:00:00Z"}`,
				`{"type":"page","messageId":"t2","anonymousId":"dev-t","context":{"page":{"url":"https://shop.example/","referrer":"https://www.Google.com/search?q=my+name"}},"timestamp":"2026-09-05T08:00:00Z"}`,
				`{"type":"page","messageId":"t3","anonymousId":"dev-t","context":{"page":{"url":"https://www.shop.example/checkout","referrer":"https://shop.example/cart"}},"timestamp":"2026-09-06T08:00:00Z"}`,
				`{"type":"identify","messageId":"t4","userId":"t1","anonymousId":"dev-t","traits":{"email":"t1@example.com"},"timestamp":"2026-09-06T10:00:00Z"}`,
				`{"type":"track","messageId":"t5","userId":"t1","event":"Order Completed","properties":{"total":25},"timestamp":"2026-09-06T10:05:00Z"}`,
			},
			want: map[string]any{
				"order_count": 1.0, "revenue_total": 25.0, "revenue_365d": 25.0, "avg_order_value": 25.0,
				"discount_order_share": 0.0, "refund_rate": 0.0,
				"first_order_at": "2026-09-06T10:05:00Z", "last_order_at": "2026-09-06T10:05:00Z",
				"days_since_last_order": 56.0, "days_since_first_seen": 61.0,
				"lifecycle_stage": "first_time_buyer", "clv": 75.0,
				"first_touch_source": "facebook", "first_touch_medium": "paid_social", "first_touch_campaign": "autumn", "first_touch_referrer": "l.facebook.com",
				"last_touch_source": "google.com", "last_touch_medium": "referral", "last_touch_referrer": "google.com",
			},
		},
	}
	c := openTest(t, testConfig(t))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i, m := range tc.msgs {
				ingestAll(t, c, m)
				if i == 0 {
					early := &tc.id
					if tc.early != nil {
						early = tc.early
					}
					traitsChecked(t, c, *early, fixedNow) // builds the digests
				}
			}
			got := traitsChecked(t, c, tc.id, fixedNow)
			if d := diffTraits(got, tc.want); d != "" {
				t.Fatal(d)
			}
			for k, v := range got {
				if s, ok := v.(string); ok && strings.ContainsAny(s, "?/@=") {
					t.Errorf("%s = %q: a URL part or an address leaked into a trait", k, s)
				}
			}
		})
	}

}

// Time passing alone moves the time-sensitive traits, from the same
// digests: a week later the repeat buyer above is 18 days from their last
// order and 2 days from their expected next one.
func TestComputedTraitsLater(t *testing.T) {
	c := openTest(t, testConfig(t))
	ingestAll(t, c,
		`{"type":"track","messageId":"r1","userId":"r1","event":"Order Completed","properties":{"total":10},"timestamp":"2026-10-01T12:00:00Z"}`,
		`{"type":"track","messageId":"r2","userId":"r1","event":"Order Completed","properties":{"total":10},"timestamp":"2026-10-21T12:00:00Z"}`,
	)
	id := identity.Identifier{Type: identity.UserID, Value: "r1"}
	later := fixedNow.Add(7 * 24 * time.Hour)
	got := traitsChecked(t, c, id, later)
	for k, want := range map[string]any{"days_since_last_order": 18.0, "days_until_next_order": 2.0, "lifecycle_stage": "repeat", "expected_next_order_at": "2026-11-10T12:00:00Z"} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	// 90 days after the last order: at risk; 180: lapsed.
	for days, want := range map[int]string{89: "repeat", 90: "at_risk", 179: "at_risk", 180: "lapsed"} {
		at := time.Date(2026, 10, 21, 12, 0, 0, 0, time.UTC).Add(time.Duration(days) * 24 * time.Hour)
		if got := traitsChecked(t, c, id, at)["lifecycle_stage"]; got != want {
			t.Errorf("%d days after the last order: %v, want %s", days, got, want)
		}
	}
}

// Unmerging takes the device's touches back out of the user's traits, and
// an erasure drops the digests the traits come from.
func TestComputedTraitsUnmergeAndErasure(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	ingestAll(t, c,
		`{"type":"page","messageId":"1","anonymousId":"dev","context":{"campaign":{"source":"tiktok","medium":"paid_social"}},"timestamp":"2026-10-01T08:00:00Z"}`,
		`{"type":"track","messageId":"2","userId":"u","event":"Order Completed","properties":{"order_id":"o1","total":30},"timestamp":"2026-10-02T08:00:00Z"}`,
	)
	user := identity.Identifier{Type: identity.UserID, Value: "u"}
	device := identity.Identifier{Type: identity.AnonymousID, Value: "dev"}
	if got := traitsChecked(t, c, user, fixedNow); got["first_touch_source"] != nil {
		t.Fatalf("touch before the merge: %v", got)
	}
	ingestAll(t, c, `{"type":"identify","messageId":"3","userId":"u","anonymousId":"dev","timestamp":"2026-10-03T08:00:00Z"}`)
	if got := traitsChecked(t, c, user, fixedNow); got["first_touch_source"] != "tiktok" || got["days_since_first_seen"] != 31.0 {
		t.Fatalf("after the merge: %v", got)
	}
	view := person(t, c, identity.UserID, "u")
	if len(view.Merges) != 1 {
		t.Fatalf("merges %+v", view.Merges)
	}
	if _, err := c.Unmerge(ctx, view.Merges[0].From, "test"); err != nil {
		t.Fatal(err)
	}
	u, d := traitsChecked(t, c, user, fixedNow), traitsChecked(t, c, device, fixedNow)
	if u["first_touch_source"] != nil || u["order_count"] != 1.0 || d["first_touch_source"] != "tiktok" || d["order_count"] != 0.0 {
		t.Fatalf("after the unmerge: user %v, device %v", u, d)
	}

	pids := person(t, c, identity.UserID, "u").Profiles
	for _, p := range pids {
		if _, _, ok := c.aggs.get(p); !ok {
			t.Fatalf("no digest of %s before the erasure", p)
		}
	}
	if _, err := c.Delete(ctx, user); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ComputedTraits(ctx, user); !errors.Is(err, ErrProfileNotFound) {
		t.Fatalf("computed traits after the erasure: %v", err)
	}
	for _, p := range pids {
		if _, _, ok := c.aggs.get(p); ok {
			t.Fatalf("the digest of erased profile %s is still in memory", p)
		}
	}
	if got := traitsChecked(t, c, device, fixedNow); got["first_touch_source"] != "tiktok" {
		t.Fatalf("the device after the user's erasure: %v", got)
	}
}

func TestLifecycleStageRules(t *testing.T) {
	tests := []struct {
		orders    int
		days      float64
		hasLast   bool
		reachable bool
		want      string
	}{
		{0, 0, false, false, segments.StageVisitor},
		{0, 0, false, true, segments.StageSubscriber},
		{1, 0, true, false, segments.StageFirstTimeBuyer},
		{1, 89, true, true, segments.StageFirstTimeBuyer},
		{1, 90, true, true, segments.StageAtRisk},
		{2, 10, true, false, segments.StageRepeat},
		{3, 10, true, false, segments.StageLoyal},
		{30, 179, true, false, segments.StageAtRisk},
		{30, 180, true, false, segments.StageLapsed},
		{2, 0, false, false, segments.StageRepeat}, // every order after now: no recency rule
	}
	for _, tc := range tests {
		if got := lifecycleStage(tc.orders, tc.days, tc.hasLast, tc.reachable); got != tc.want {
			t.Errorf("%+v: %s", tc, got)
		}
	}
}

func TestTouchFrom(t *testing.T) {
	tests := []struct {
		source, medium, name, referrer, url string
		want                                touch
		ok                                  bool
	}{
		{"", "", "", "", "", touch{}, false},
		{" google ", "cpc", "brand", "", "", touch{source: "google", medium: "cpc", campaign: "brand"}, true},
		{"", "", "", "https://WWW.Example.org:8443/a/b?c=d#e", "https://shop.example/", touch{source: "example.org", medium: "referral", referrer: "example.org"}, true},
		{"newsletter", "", "", "https://mail.example/inbox?id=1", "", touch{source: "newsletter", medium: "referral", referrer: "mail.example"}, true},
		{"", "", "", "https://shop.example/cart", "https://www.shop.example/", touch{}, false},
		{"", "", "", "not a url", "", touch{}, false},
		{"", "", "", "android-app://com.google.android.gm/", "", touch{source: "com.google.android.gm", medium: "referral", referrer: "com.google.android.gm"}, true},
		{strings.Repeat("é", 150), "", "", "", "", touch{source: strings.Repeat("é", 100)}, true},
	}
	for _, tc := range tests {
		got, ok := touchFrom(tc.source, tc.medium, tc.name, tc.referrer, tc.url)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q %q %q %q %q: %+v %v, want %+v %v", tc.source, tc.medium, tc.name, tc.referrer, tc.url, got, ok, tc.want, tc.ok)
		}
	}
}

// Sums do not depend on the order events are read in; ties in time are
// broken by the values.
func TestComputeTraitsOrderIndependent(t *testing.T) {
	at := fixedNow.Add(-24 * time.Hour)
	in := traitInput{
		orders: []order{
			{at: at, rev: 0.1, cats: []catAmount{{"A", 0.1, 1}, {"B", 0.3, 1}}},
			{at: at, rev: 0.2, cats: []catAmount{{"A", 0.2, 1}}},
			{at: at.Add(time.Hour), rev: 0.3, id: "x", cats: []catAmount{{"A", 0.3, 1}}},
		},
		touches: []touchAt{{at, touch{source: "b"}}, {at, touch{source: "a"}}, {at.Add(time.Hour), touch{source: "z"}}, {at.Add(time.Hour), touch{source: "y"}}},
		first:   at,
	}
	want := computeTraits(in, fixedNow).export()
	if want["first_touch_source"] != "a" || want["last_touch_source"] != "z" || want["top_category"] != "A" {
		t.Fatalf("ties: %v", want)
	}
	for range 20 {
		for i := range in.orders {
			j := (i*7 + 3) % len(in.orders)
			in.orders[i], in.orders[j] = in.orders[j], in.orders[i]
		}
		in.touches[0], in.touches[3] = in.touches[3], in.touches[0]
		if got := computeTraits(in, fixedNow).export(); !reflect.DeepEqual(got, want) {
			t.Fatalf("order-dependent:\n%v\n%v", got, want)
		}
	}
}

// reachableRaw's shortcut for plain strings agrees with decoding.
func TestReachableRaw(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		{`"p@example.com"`, true}, {`"+49 30 1234567"`, true}, {`""`, false}, {`"   "`, false},
		{`" \t "`, false}, {`"\u0020"`, false}, {`"\u0041"`, true}, {`"a\"b"`, true},
		{`null`, false}, {`0`, true}, {`false`, true}, {`{"x":1}`, true}, {`"`, false}, {``, false},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			var raw json.RawMessage
			if tc.raw != "" {
				raw = json.RawMessage(tc.raw)
			}
			if got := reachableRaw(raw); got != tc.want {
				t.Errorf("reachableRaw(%s) = %v, want %v", tc.raw, got, tc.want)
			}
		})
	}
}
