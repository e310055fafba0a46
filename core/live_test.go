package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/segments"
)

// liveTemplates are the templates the property test applies: person-local
// ones (updated live) and VIP (population-relative, left to the sweep).
var liveTemplates = []string{"cart_abandoners", "first_time_buyers", "repeat_buyers", "at_risk", "lapsed",
	"discount_only_buyers", "browsers_without_purchase", "high_intent_shoppers", "new_visitors", "vip",
	"replenishment_due", "paid_social_visitors"}

// liveDefinitions are the other segments it applies: computed texts and
// times, and context filters.
var liveDefinitions = []string{
	`{"name": "stage_repeat_or_loyal", "purpose": "marketing.communications.email", "where": {"computed": "lifecycle_stage", "in": ["repeat", "loyal"]}}`,
	`{"name": "stage_not_visitor", "purpose": "marketing.communications.email", "where": {"computed": "lifecycle_stage", "ne": "visitor"}}`,
	`{"name": "first_touch_paid_social", "purpose": "marketing.communications.email", "where": {"computed": "first_touch_medium", "eq": "paid_social"}}`,
	`{"name": "last_touch_referral", "purpose": "marketing.communications.email", "where": {"all": [{"computed": "last_touch_medium", "eq": "referral"}, {"computed": "last_touch_referrer", "contains": "google"}]}}`,
	`{"name": "refunders", "purpose": "marketing.communications.email", "where": {"computed": "refund_rate", "gt": 0}}`,
	`{"name": "shoe_people", "purpose": "marketing.communications.email", "where": {"computed": "top_category", "eq": "Shoes"}}`,
	`{"name": "reorder_expected_soon", "purpose": "marketing.communications.email", "where": {"all": [{"computed": "expected_next_order_at", "gt": "2026-10-01T00:00:00Z"}, {"computed": "clv", "gte": 150}]}}`,
	`{"name": "recent_first_order", "purpose": "marketing.communications.email", "where": {"computed": "first_order_at", "gte": "2026-06-01T00:00:00Z"}}`,
	`{"name": "email_campaign_pages", "purpose": "marketing.communications.email", "where": {"event": "Product Viewed", "where": {"any": [{"context.campaign.medium": {"eq": "email"}}, {"context.page.referrer": {"contains": "mail"}}]}, "count": {"gte": 2}}}`,
}

// liveSegments are the names of everything the property test applies.
func liveSegments() []string {
	out := slices.Clone(liveTemplates)
	for _, d := range liveDefinitions {
		var v struct{ Name string }
		_ = json.Unmarshal([]byte(d), &v)
		out = append(out, v.Name)
	}
	return out
}

// contextFor makes a message's context: sometimes consent, sometimes a
// campaign (utm fields) and a landing page, sometimes a referrer (the
// shop itself, or another site).
func contextFor(rng *rand.Rand) string {
	parts := []string{}
	if rng.Intn(6) == 0 {
		yes := rng.Intn(2) == 0
		parts = append(parts, fmt.Sprintf(`"consent":{"categoryPreferences":{"marketing":%v,"advertising":%v,"analytics":%v}}`, yes, yes, yes))
	}
	if rng.Intn(4) == 0 {
		medium := []string{"paid_social", "email", "cpc", "paid-social"}[rng.Intn(4)]
		source := []string{"facebook", "newsletter", "google", ""}[rng.Intn(4)]
		parts = append(parts, fmt.Sprintf(`"campaign":{"source":%q,"medium":%q,"name":"c%d"}`, source, medium, rng.Intn(3)))
	}
	if rng.Intn(3) == 0 {
		ref := []string{"https://www.google.com/search?q=x", "https://shop.example/cart", "https://mail.example/inbox?id=7", ""}[rng.Intn(4)]
		parts = append(parts, fmt.Sprintf(`"page":{"url":"https://www.shop.example/p?a=%d","referrer":%q}`, rng.Intn(9), ref))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// randomStream makes n messages for a small population: Californians
// (allowed by default), Europeans (denied unless they consented, which some
// do through the consent manager), devices linked to users (merges),
// browsing, carts, orders with and without coupons.
func randomStream(rng *rand.Rand, round, n int, now time.Time) []event.Message {
	var out []event.Message
	orders := map[int][]string{} // order ids by user
	for i := 0; i < n; i++ {
		u := rng.Intn(25)
		ids := fmt.Sprintf(`"userId":"u%d"`, u)
		switch rng.Intn(4) {
		case 0:
			ids = fmt.Sprintf(`"anonymousId":"d%d-%d"`, u, rng.Intn(3))
		case 1:
			ids += fmt.Sprintf(`,"anonymousId":"d%d-%d"`, u, rng.Intn(3))
		}
		span := 400 * 24
		if rng.Intn(4) == 0 {
			span = 30 * 24 // recent: windows and replenishment timing
		}
		ts := now.Add(-time.Duration(rng.Intn(span)) * time.Hour).Format(time.RFC3339)
		ctx := contextFor(rng)
		var body string
		mid := fmt.Sprintf("r%d-%d", round, i)
		switch k := rng.Intn(12); {
		case k == 0:
			state := "CA"
			country := "US"
			if u%3 == 0 {
				state, country = "", "DE"
			}
			body = fmt.Sprintf(`{"type":"identify","messageId":%q,%s,"traits":{"email":"p%d@example.com","address":{"country":%q,"state":%q}},"context":%s,"timestamp":%q}`,
				mid, ids, u, country, state, ctx, ts)
		case k <= 4:
			body = fmt.Sprintf(`{"type":"track","messageId":%q,%s,"event":"Product Viewed","properties":{"product_id":"p%d"},"context":%s,"timestamp":%q}`,
				mid, ids, rng.Intn(4), ctx, ts)
		case k <= 6:
			body = fmt.Sprintf(`{"type":"track","messageId":%q,%s,"event":"Product Added","properties":{"product_id":"p%d"},"context":%s,"timestamp":%q}`,
				mid, ids, rng.Intn(4), ctx, ts)
		case k <= 8:
			coupon := ""
			if rng.Intn(2) == 0 {
				coupon = "SAVE10"
			}
			cats := []string{"Shoes", "Socks", "Hats"}
			products := fmt.Sprintf(`[{"category":%q,"price":%d,"quantity":%d},{"category":%q,"price":%d}]`,
				cats[rng.Intn(3)], 5+rng.Intn(50), rng.Intn(3), cats[rng.Intn(3)], 5+rng.Intn(50))
			body = fmt.Sprintf(`{"type":"track","messageId":%q,%s,"event":"Order Completed","properties":{"order_id":%q,"total":%d.%02d,"coupon":%q,"products":%s},"context":%s,"timestamp":%q}`,
				mid, ids, mid, 10+rng.Intn(200), rng.Intn(100), coupon, products, ctx, ts)
			orders[u] = append(orders[u], mid)
		case k == 10:
			// A refund of one of the person's orders of this round (maybe
			// of another node of theirs), or of something that is not
			// their order.
			target := fmt.Sprintf("r%d-%d", round, rng.Intn(i+1))
			if len(orders[u]) > 0 && rng.Intn(3) > 0 {
				target = orders[u][rng.Intn(len(orders[u]))]
			}
			body = fmt.Sprintf(`{"type":"track","messageId":%q,%s,"event":"Order Refunded","properties":{"order_id":%q},"context":%s,"timestamp":%q}`,
				mid, ids, target, ctx, ts)
		default:
			body = fmt.Sprintf(`{"type":"page","messageId":%q,%s,"name":"Home","context":%s,"timestamp":%q}`, mid, ids, ctx, ts)
		}
		m, err := event.DecodeMessage([]byte(body), "", now)
		if err != nil {
			panic(fmt.Sprintf("%s: %v", body, err))
		}
		out = append(out, m)
	}
	if round == 0 {
		out = append(out, scriptedStream(now)...)
	}
	return out
}

// scriptedStream adds what random streams rarely make, for two
// Californians: a buyer due to reorder (orders 85, 55 and 25 days ago, so
// the next one is expected in 5 days) with a refund, and a visitor who
// came from paid social yesterday and twice from an email campaign.
func scriptedStream(now time.Time) []event.Message {
	ago := func(days int) string { return now.Add(-time.Duration(days) * 24 * time.Hour).Format(time.RFC3339) }
	bodies := []string{
		fmt.Sprintf(`{"type":"identify","messageId":"s1","userId":"u23","traits":{"email":"p23@example.com","address":{"country":"US","state":"CA"}},"timestamp":%q}`, ago(90)),
		fmt.Sprintf(`{"type":"identify","messageId":"s2","userId":"u22","traits":{"email":"p22@example.com","address":{"country":"US","state":"CA"}},"timestamp":%q}`, ago(90)),
	}
	for i, d := range []int{85, 55, 25} {
		bodies = append(bodies, fmt.Sprintf(`{"type":"track","messageId":"s-o%d","userId":"u23","event":"Order Completed","properties":{"order_id":"s-o%d","total":60,"products":[{"category":"Shoes","price":60}]},"timestamp":%q}`, i, i, ago(d)))
	}
	bodies = append(bodies,
		fmt.Sprintf(`{"type":"track","messageId":"s3","userId":"u23","event":"Order Refunded","properties":{"order_id":"s-o0"},"timestamp":%q}`, ago(80)),
		fmt.Sprintf(`{"type":"page","messageId":"s4","userId":"u22","context":{"campaign":{"source":"facebook","medium":"paid_social"}},"timestamp":%q}`, ago(1)),
		fmt.Sprintf(`{"type":"track","messageId":"s5","userId":"u22","event":"Product Viewed","context":{"campaign":{"medium":"email"}},"timestamp":%q}`, ago(2)),
		fmt.Sprintf(`{"type":"track","messageId":"s6","userId":"u22","event":"Product Viewed","context":{"page":{"referrer":"https://mail.example/"}},"timestamp":%q}`, ago(3)),
	)
	var out []event.Message
	for _, b := range bodies {
		m, err := event.DecodeMessage([]byte(b), "", now)
		if err != nil {
			panic(fmt.Sprintf("%s: %v", b, err))
		}
		out = append(out, m)
	}
	return out
}

// activeMembers reads the recorded memberships of a segment.
func activeMembers(t *testing.T, c *CDP, name string) []string {
	t.Helper()
	var out []string
	prefix := store.MembershipPrefix(name)
	err := c.store.View(context.Background(), func(tx *store.Txn) error {
		return tx.Scan(prefix, store.ScanOptions{}, func(k, v []byte) error {
			var m membershipRecord
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			if m.ExitedAt == nil {
				out = append(out, uuid.UUID(k[len(prefix):]).String())
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// fullMembers evaluates a segment from scratch over everyone, from full
// (decrypted) events only: no digest, no recorded membership.
func fullMembers(t *testing.T, c *CDP, name string, now time.Time) []string {
	t.Helper()
	set, err := c.segmentSet(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	c.evalFromEvents.Store(true)
	defer func() { c.evalFromEvents.Store(false) }()
	var r *segments.SegmentResult
	err = c.store.View(context.Background(), func(tx *store.Txn) error {
		r, err = c.run(context.Background(), tx, set, name, now, nil) // from the store's n/, not memory
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, m := range r.Members {
		out = append(out, m.Ref())
	}
	slices.Sort(out)
	return out
}

// Incremental membership (live updates after each ingested batch, the
// sweep when time passes) equals a full re-evaluation from the sealed
// events, after random event streams, for every person-local template.
// The population-relative VIP template is not updated live (its members
// move when anyone's revenue moves) and must match after the sweep.
func TestLiveMembershipEqualsFullEvaluation(t *testing.T) {
	// Seed 4's rounds are long enough that a live update touches more
	// than 64 nodes, and reads them on every core (readRoots).
	for _, tc := range []struct {
		seed     int64
		messages int
	}{{1, 40}, {2, 40}, {3, 40}, {4, 300}} {
		seed := tc.seed
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Segments.LiveDelay = Duration(time.Hour) // driven by hand below
			c := openTest(t, cfg)
			ctx := context.Background()
			for _, tmpl := range liveTemplates {
				if _, err := c.ApplyTemplate(ctx, tmpl, nil); err != nil {
					t.Fatal(err)
				}
			}
			for _, d := range liveDefinitions {
				if _, err := c.ApplySegmentData(ctx, []byte(d)); err != nil {
					t.Fatal(err)
				}
			}
			// Loaded here too (Open started it beside the updater), so
			// that every round's full evaluation can take the clusters
			// from memory (checkClusterList).
			if err := c.warmClusters(ctx); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewSource(seed))
			now := fixedNow
			local, unmerges, maxTouched := 0, 0, 0
			seen := map[string]int{}
			for round := 0; round < 12; round++ {
				if round%4 == 3 {
					// Time passes: only the sweep sees what that changes.
					now = now.Add(time.Duration(1+rng.Intn(60)) * 24 * time.Hour)
					if _, err := c.RefreshAll(ctx, now); err != nil {
						t.Fatal(err)
					}
				}
				var opts []IngestOption
				if round%4 == 1 {
					opts = append(opts, WithGPC(true)) // Sec-GPC: opt-out records on whoever is seen
				}
				if _, err := c.Ingest(ctx, randomStream(rng, round, 1+rng.Intn(tc.messages), now), opts...); err != nil {
					t.Fatal(err)
				}
				if round%5 == 2 {
					consentSet(t, c, fmt.Sprintf("p%d@example.com", 3*rng.Intn(8)), "marketing.communications.email", "granted", now.Format(time.RFC3339), nil)
				}
				if round%6 == 4 {
					// An erasure, and an unmerge (which the sweep applies).
					if _, err := c.Delete(ctx, identity.Identifier{Type: identity.UserID, Value: fmt.Sprintf("u%d", rng.Intn(25))}); err != nil && !errors.Is(err, ErrProfileNotFound) {
						t.Fatal(err)
					}
					if unmergeOne(t, c, rng) {
						unmerges++
						if _, err := c.RefreshAll(ctx, now); err != nil {
							t.Fatal(err)
						}
					}
				}
				touched := c.live.take()
				maxTouched = max(maxTouched, len(touched))
				if _, err := c.UpdateMemberships(ctx, touched, now); err != nil {
					t.Fatal(err)
				}
				set, err := c.segmentSet(ctx, "vip")
				if err != nil {
					t.Fatal(err)
				}
				checkTraitPaths(t, c, now)
				checkGatePaths(t, c)
				checkClusterCache(t, c, true)
				checkClusterList(t, c, true)
				checkActiveSets(t, c)
				for _, name := range liveSegments() {
					if name == "vip" {
						if set.Local(name) {
							t.Fatal("vip is population-relative, not local")
						}
						continue
					}
					got, want := activeMembers(t, c, name), fullMembers(t, c, name, now)
					if !slices.Equal(got, want) {
						t.Fatalf("round %d, %s: live members %v, full evaluation %v", round, name, got, want)
					}
					// Evaluated with the clusters from memory.
					if got := memberRefs(evaluateAt(t, c, name, now)); !slices.Equal(got, want) {
						t.Fatalf("round %d, %s: evaluated from memory %v, full evaluation %v", round, name, got, want)
					}
					local += len(want)
					seen[name] += len(want)
				}
			}
			if local == 0 {
				t.Fatal("no member in any round: the stream does not exercise the segments")
			}
			if tc.messages > 40 && maxTouched < 64 {
				t.Fatalf("at most %d nodes touched in a round: the reads on every core are not exercised", maxTouched)
			}
			t.Logf("%d local memberships checked, %d unmerges; by segment %v", local, unmerges, seen)
			for _, name := range liveSegments()[len(liveTemplates)-2:] {
				// The segments of computed traits and context filters.
				if seen[name] == 0 {
					t.Errorf("segment %s never had a member: the stream does not exercise it", name)
				}
			}
			if _, err := c.RefreshAll(ctx, now); err != nil {
				t.Fatal(err)
			}
			if got, want := activeMembers(t, c, "vip"), fullMembers(t, c, "vip", now); !slices.Equal(got, want) {
				t.Fatalf("vip after the sweep: %v, full evaluation %v", got, want)
			}
		})
	}
}

// The live updater runs by itself after ingestion (no refresh).
func TestLiveUpdaterRuns(t *testing.T) {
	cfg := testConfig(t)
	cfg.Segments.LiveDelay = Duration(10 * time.Millisecond)
	c := openTest(t, cfg)
	ctx := context.Background()
	if _, err := c.ApplyTemplate(ctx, "first_time_buyers", nil); err != nil {
		t.Fatal(err)
	}
	ingestAll(t, c,
		`{"type":"identify","messageId":"1","userId":"a","traits":{"email":"a@example.com","address":{"country":"US","state":"CA"}},"timestamp":"2026-06-01T00:00:00Z"}`,
		`{"type":"track","messageId":"2","userId":"a","event":"Order Completed","properties":{"total":10},"timestamp":"2026-06-02T00:00:00Z"}`,
	)
	deadline := time.Now().Add(30 * time.Second)
	for len(activeMembers(t, c, "first_time_buyers")) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the live updater did not record the new member")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A second order: no longer a first-time buyer.
	ingestAll(t, c, `{"type":"track","messageId":"3","userId":"a","event":"Order Completed","properties":{"total":10},"timestamp":"2026-07-02T00:00:00Z"}`)
	for len(activeMembers(t, c, "first_time_buyers")) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the live updater did not record the exit")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A membership writer that read a person just before their erasure must
// neither fail (their key is gone while its snapshot still holds their
// records) nor write an s/ record back after erasure removed it. The soak
// test found the first as "live segment membership update ... profile data
// key has been shredded". An erasure asked for between a writer's read and
// its write waits for the writer (memberMu), then removes what it wrote.
func TestMembershipWritersRaceErasure(t *testing.T) {
	person := identity.Identifier{Type: identity.UserID, Value: "a"}
	load := func(t *testing.T) *CDP {
		cfg := testConfig(t)
		cfg.Segments.LiveDelay = Duration(time.Hour) // driven by hand below
		c := openTest(t, cfg)
		if _, err := c.ApplyTemplate(context.Background(), "first_time_buyers", nil); err != nil {
			t.Fatal(err)
		}
		ingestAll(t, c,
			`{"type":"identify","messageId":"1","userId":"a","traits":{"email":"a@example.com","address":{"country":"US","state":"CA"}},"timestamp":"2026-06-01T00:00:00Z"}`,
			`{"type":"track","messageId":"2","userId":"a","event":"Order Completed","properties":{"total":10},"timestamp":"2026-06-02T00:00:00Z"}`,
		)
		return c
	}
	erase := func(t *testing.T, c *CDP) {
		t.Helper()
		if _, err := c.Delete(context.Background(), person); err != nil {
			t.Fatal(err)
		}
	}
	// eraseDuring has the erasure asked for from inside the next writer,
	// between its read and its write, and checks that it does not start
	// its transaction there; wait waits for the erasure.
	eraseDuring := func(t *testing.T, c *CDP) (wait func()) {
		started := erasureStarts(c)
		done := make(chan error, 1)
		c.afterMemberRead = func() {
			c.afterMemberRead = nil
			go func() { _, err := c.Delete(context.Background(), person); done <- err }()
			select {
			case <-started:
				t.Error("the erasure ran between a membership writer's read and its write")
			case <-time.After(100 * time.Millisecond): // it waits: the writer goes on
			}
		}
		return func() {
			t.Helper()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	noRecords := func(t *testing.T, c *CDP) {
		t.Helper()
		n := 0
		err := c.store.View(context.Background(), func(tx *store.Txn) error {
			return tx.Scan(store.MembershipPrefix("first_time_buyers"), store.ScanOptions{}, func(k, v []byte) error { n++; return nil })
		})
		if err != nil || n != 0 {
			t.Fatalf("%d membership records after the erasure (%v), want none", n, err)
		}
	}
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, c *CDP)
	}{
		{"evaluation from a snapshot taken before", func(t *testing.T, c *CDP) {
			set, err := c.segmentSet(ctx, "first_time_buyers")
			if err != nil {
				t.Fatal(err)
			}
			err = c.store.View(ctx, func(tx *store.Txn) error {
				erase(t, c)
				r, err := c.run(ctx, tx, set, "first_time_buyers", fixedNow, nil)
				if err == nil && len(r.Members) != 0 {
					t.Errorf("members %v: the erased person is still one", r.Members)
				}
				return err
			})
			if err != nil {
				t.Fatalf("evaluation failed on the erased person: %v", err)
			}
		}},
		{"live update", func(t *testing.T, c *CDP) {
			wait := eraseDuring(t, c)
			if _, err := c.UpdateMemberships(ctx, c.live.take(), fixedNow); err != nil {
				t.Fatal(err)
			}
			wait()
			noRecords(t, c)
		}},
		{"refresh", func(t *testing.T, c *CDP) {
			wait := eraseDuring(t, c)
			if _, err := c.RefreshSegment(ctx, "first_time_buyers", fixedNow); err != nil {
				t.Fatal(err)
			}
			wait()
			noRecords(t, c)
		}},
		{"exit from a refresh", func(t *testing.T, c *CDP) {
			if rep, err := c.RefreshSegment(ctx, "first_time_buyers", fixedNow); err != nil || rep.Entered != 1 {
				t.Fatalf("first refresh: %+v, %v", rep, err)
			}
			// A second order makes the person leave; they are erased
			// between the read and the write of the exit.
			ingestAll(t, c, `{"type":"track","messageId":"3","userId":"a","event":"Order Completed","properties":{"total":10},"timestamp":"2026-06-03T00:00:00Z"}`)
			wait := eraseDuring(t, c)
			if _, err := c.RefreshSegment(ctx, "first_time_buyers", fixedNow); err != nil {
				t.Fatal(err)
			}
			wait()
			noRecords(t, c)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, load(t)) })
	}
}

// unmergeOne undoes the latest merge of a random user, if they have one.
func unmergeOne(t *testing.T, c *CDP, rng *rand.Rand) bool {
	t.Helper()
	for range 25 {
		v, err := c.Profile(context.Background(), identity.Identifier{Type: identity.UserID, Value: fmt.Sprintf("u%d", rng.Intn(25))}, ShowOptions{EventLimit: 1})
		if errors.Is(err, ErrProfileNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for i := len(v.Merges) - 1; i >= 0; i-- {
			if v.Merges[i].Merged {
				if _, err := c.Unmerge(context.Background(), v.Merges[i].From, "property test"); err != nil {
					t.Fatal(err)
				}
				return true
			}
		}
	}
	return false
}

// checkGatePaths compares, for every person, the consent view the gate
// evaluates from the in-memory gate inputs (written through by ingestion,
// or read lazily) with the one resolved from the records themselves, and
// again after the cache is emptied (every input read lazily).
func checkGatePaths(t *testing.T, c *CDP) {
	t.Helper()
	for _, pass := range []string{"written through", "read lazily"} {
		people := 0
		err := c.store.View(context.Background(), func(tx *store.Txn) error {
			return tx.Scan([]byte(store.PrefixCluster), store.ScanOptions{}, func(k, v []byte) error {
				ms, err := decodeMembers(v)
				if err != nil {
					return err
				}
				root := uuid.UUID(k[len(store.PrefixCluster):])
				var members []uuid.UUID
				for _, m := range ms {
					members = append(members, m.pid)
				}
				ctx := context.Background()
				traits, err := c.traitsOf(ctx, tx, members)
				if err != nil {
					return err
				}
				want, err := c.consentOf(ctx, tx, root, members, traits)
				if err != nil {
					return err
				}
				g, err := c.newView(ctx, tx, root, members, fixedNow).gateInputs()
				if err != nil {
					return err
				}
				if got := g.view(); !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: person %s (%d nodes): gate inputs give\n%+v\nthe records give\n%+v", pass, root, len(members), got, want)
				}
				if got, want := g.subject(nil), subjectOf(want); !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: person %s: policy subject from the gate inputs\n%+v\nfrom the records\n%+v", pass, root, got, want)
				}
				if want := reachableRaw(traits["email"]) || reachableRaw(traits["phone"]); g.reachable != want {
					t.Fatalf("%s: person %s: reachable %v from the gate inputs, %v from the records", pass, root, g.reachable, want)
				}
				people++
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if people == 0 {
			t.Fatal("no person to compare")
		}
		dropNodeEntries(c, true, false)
	}
}

// checkTraitPaths compares every person's computed traits from the event
// digests with the full-event computation, at now.
func checkTraitPaths(t *testing.T, c *CDP, now time.Time) {
	t.Helper()
	read := func() map[uuid.UUID]map[string]any {
		out := map[uuid.UUID]map[string]any{}
		eachPersonView(t, c, now, func(pv *personView) error {
			tv, err := pv.traitValues()
			if err != nil {
				return err
			}
			out[pv.root] = tv.export()
			return nil
		})
		return out
	}
	digests := read()
	c.evalFromEvents.Store(true)
	events := read()
	c.evalFromEvents.Store(false)
	if len(digests) == 0 || len(digests) != len(events) {
		t.Fatalf("%d people from digests, %d from events", len(digests), len(events))
	}
	for root, want := range events {
		if got := digests[root]; !reflect.DeepEqual(got, want) {
			t.Fatalf("person %s: computed traits from digests differ from full events:\n%s", root, diffTraits(got, want))
		}
	}
	// Computed's quick path (numbers of computeValues, asked first, before
	// any other trait) gives the same values, to the bit.
	eachPersonView(t, c, now, func(pv *personView) error {
		for _, name := range segments.ComputedNames() {
			if !isQuick(name) {
				continue
			}
			x, ok := pv.Computed(name)
			want, has := events[pv.root][name]
			if ok != has || (ok && want != x) {
				t.Fatalf("person %s: quick %s = %v (%v), full events give %v (%v)", pv.root, name, x, ok, want, has)
			}
		}
		if pv.derived != nil || !pv.quickOK {
			t.Fatalf("person %s: the quick path was not taken", pv.root)
		}
		return nil
	})
}

// eachPersonView calls f with a fresh view of every person in the store, at
// now.
func eachPersonView(t *testing.T, c *CDP, now time.Time, f func(pv *personView) error) {
	t.Helper()
	err := c.store.View(context.Background(), func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixCluster), store.ScanOptions{}, func(k, v []byte) error {
			ms, err := decodeMembers(v)
			if err != nil {
				return err
			}
			pv := c.newView(context.Background(), tx, uuid.UUID(k[len(store.PrefixCluster):]), nil, now)
			for _, m := range ms {
				pv.members = append(pv.members, m.pid)
			}
			return f(pv)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
