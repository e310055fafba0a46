package core

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"slices"
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
	"discount_only_buyers", "browsers_without_purchase", "high_intent_shoppers", "new_visitors", "vip"}

// randomStream makes n messages for a small population: Californians
// (allowed by default), Europeans (denied unless they consented, which some
// do through the consent manager), devices linked to users (merges),
// browsing, carts, orders with and without coupons.
func randomStream(rng *rand.Rand, round, n int, now time.Time) []event.Message {
	var out []event.Message
	for i := 0; i < n; i++ {
		u := rng.Intn(25)
		ids := fmt.Sprintf(`"userId":"u%d"`, u)
		switch rng.Intn(4) {
		case 0:
			ids = fmt.Sprintf(`"anonymousId":"d%d-%d"`, u, rng.Intn(3))
		case 1:
			ids += fmt.Sprintf(`,"anonymousId":"d%d-%d"`, u, rng.Intn(3))
		}
		ts := now.Add(-time.Duration(rng.Intn(400*24)) * time.Hour).Format(time.RFC3339)
		ctx := `{}`
		if rng.Intn(6) == 0 {
			yes := rng.Intn(2) == 0
			ctx = fmt.Sprintf(`{"consent":{"categoryPreferences":{"marketing":%v,"advertising":%v,"analytics":%v}}}`, yes, yes, yes)
		}
		var body string
		mid := fmt.Sprintf("r%d-%d", round, i)
		switch k := rng.Intn(10); {
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
			body = fmt.Sprintf(`{"type":"track","messageId":%q,%s,"event":"Order Completed","properties":{"order_id":%q,"total":%d,"coupon":%q},"context":%s,"timestamp":%q}`,
				mid, ids, mid, 10+rng.Intn(200), coupon, ctx, ts)
		default:
			body = fmt.Sprintf(`{"type":"page","messageId":%q,%s,"name":"Home","context":%s,"timestamp":%q}`, mid, ids, ctx, ts)
		}
		m, err := event.DecodeMessage([]byte(body), "", now)
		if err != nil {
			panic(fmt.Sprintf("%s: %v", body, err))
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
	c.evalFromEvents = true
	defer func() { c.evalFromEvents = false }()
	var r *segments.SegmentResult
	err = c.store.View(context.Background(), func(tx *store.Txn) error {
		r, err = c.run(context.Background(), tx, set, name, now)
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
	for _, seed := range []int64{1, 2, 3} {
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
			rng := rand.New(rand.NewSource(seed))
			now := fixedNow
			local := 0
			for round := 0; round < 12; round++ {
				if round%4 == 3 {
					// Time passes: only the sweep sees what that changes.
					now = now.Add(time.Duration(1+rng.Intn(60)) * 24 * time.Hour)
					if _, err := c.RefreshAll(ctx, now); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := c.Ingest(ctx, randomStream(rng, round, 1+rng.Intn(40), now)); err != nil {
					t.Fatal(err)
				}
				if round%5 == 2 {
					consentSet(t, c, fmt.Sprintf("p%d@example.com", 3*rng.Intn(8)), "marketing.communications.email", "granted", now.Format(time.RFC3339), nil)
				}
				if _, err := c.UpdateMemberships(ctx, c.live.take(), now); err != nil {
					t.Fatal(err)
				}
				set, err := c.segmentSet(ctx, "vip")
				if err != nil {
					t.Fatal(err)
				}
				for _, name := range liveTemplates {
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
					local += len(want)
				}
			}
			if local == 0 {
				t.Fatal("no member in any round: the stream does not exercise the segments")
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
// key has been shredded".
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
				r, err := c.run(ctx, tx, set, "first_time_buyers", fixedNow)
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
			c.afterMemberRead = func() { erase(t, c) }
			if _, err := c.UpdateMemberships(ctx, c.live.take(), fixedNow); err != nil {
				t.Fatal(err)
			}
			noRecords(t, c)
		}},
		{"refresh", func(t *testing.T, c *CDP) {
			c.afterMemberRead = func() { erase(t, c) }
			if _, err := c.RefreshSegment(ctx, "first_time_buyers", fixedNow); err != nil {
				t.Fatal(err)
			}
			noRecords(t, c)
		}},
		{"exit from a refresh", func(t *testing.T, c *CDP) {
			if rep, err := c.RefreshSegment(ctx, "first_time_buyers", fixedNow); err != nil || rep.Entered != 1 {
				t.Fatalf("first refresh: %+v, %v", rep, err)
			}
			// A second order makes the person leave; they are erased
			// between the read and the write of the exit.
			ingestAll(t, c, `{"type":"track","messageId":"3","userId":"a","event":"Order Completed","properties":{"total":10},"timestamp":"2026-06-03T00:00:00Z"}`)
			c.afterMemberRead = func() { erase(t, c) }
			if _, err := c.RefreshSegment(ctx, "first_time_buyers", fixedNow); err != nil {
				t.Fatal(err)
			}
			noRecords(t, c)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, load(t)) })
	}
}
