package core

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/event"
	"github.com/google/uuid"
)

// A scan hands released views to later people (personView.Release), with
// their arrays for members, digests and events: every segment's members
// and counts equal those of a scan of fresh views, over more people than
// a run holds in flight, of one node and of several, with and without
// consent, evaluated from digests and from full events.
func TestReusedViewsEqualFreshViews(t *testing.T) {
	cfg := testConfig(t)
	// No live updater: the test switches the CDP's evaluation paths
	// (evalFromEvents, freshViews), which the updater reads.
	cfg.Segments.LiveDelay = 0
	c := openTest(t, cfg)
	ctx := context.Background()
	names := []string{"cart_abandoners", "repeat_buyers", "vip", "at_risk", "discount_only_buyers", "browsers_without_purchase"}
	for _, tmpl := range names {
		if _, err := c.ApplyTemplate(ctx, tmpl, nil); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewSource(5))
	const people = 3000
	var batch []event.Message
	add := func(body string) {
		m, err := event.DecodeMessage([]byte(body), "", fixedNow)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if batch = append(batch, m); len(batch) == 1000 {
			if _, err := c.Ingest(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for u := 0; u < people; u++ {
		country, state := "US", "CA"
		if u%3 == 0 {
			country, state = "DE", "" // denied: no consent
		}
		ids := fmt.Sprintf(`"userId":"u%d"`, u)
		add(fmt.Sprintf(`{"type":"identify","messageId":"i%d",%s,"traits":{"email":"p%d@example.com","address":{"country":%q,"state":%q}}}`, u, ids, u, country, state))
		nodes := 1 + rng.Intn(3) // devices merged into the person
		for e := 0; e < 1+rng.Intn(8); e++ {
			who := ids
			if d := rng.Intn(nodes); d > 0 {
				who = fmt.Sprintf(`"anonymousId":"d%d-%d"`, u, d)
				if e == 0 {
					who += "," + ids
				}
			}
			ts := fixedNow.Add(-time.Duration(rng.Intn(400*24)) * time.Hour).Format(time.RFC3339)
			mid := fmt.Sprintf("e%d-%d", u, e)
			switch rng.Intn(4) {
			case 0:
				add(fmt.Sprintf(`{"type":"track","messageId":%q,%s,"event":"Product Viewed","timestamp":%q}`, mid, who, ts))
			case 1:
				add(fmt.Sprintf(`{"type":"track","messageId":%q,%s,"event":"Product Added","timestamp":%q}`, mid, who, ts))
			default:
				coupon := []string{"", "SAVE10"}[rng.Intn(2)]
				add(fmt.Sprintf(`{"type":"track","messageId":%q,%s,"event":"Order Completed","properties":{"order_id":%q,"total":%d,"coupon":%q},"timestamp":%q}`, mid, who, mid, 5+rng.Intn(300), coupon, ts))
			}
		}
	}
	if len(batch) > 0 {
		if _, err := c.Ingest(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for _, fromEvents := range []bool{false, true} {
		for _, name := range names {
			t.Run(fmt.Sprintf("%s/from events %v", name, fromEvents), func(t *testing.T) {
				c.evalFromEvents.Store(fromEvents)
				defer func() { c.evalFromEvents.Store(false) }()
				c.freshViews.Store(true)
				want := evaluateAt(t, c, name, fixedNow)
				c.freshViews.Store(false)
				before := c.viewSlabs.Load()
				got := evaluateAt(t, c, name, fixedNow)
				// Without reuse, every person takes a view of their own.
				if slabs := c.viewSlabs.Load() - before; slabs*64 >= people {
					t.Fatalf("%d slabs of 64 views for %d people: views are not reused", slabs, people)
				}
				if len(want.Members) == 0 || want.NotConsented == 0 {
					t.Fatalf("%d members, %d not consented: the comparison would prove little", len(want.Members), want.NotConsented)
				}
				if !slices.Equal(memberRefs(got), memberRefs(want)) || got.NotConsented != want.NotConsented || got.Evaluated != want.Evaluated {
					t.Fatalf("reused views: %d members (%d evaluated, %d not consented), fresh views: %d (%d, %d)",
						len(got.Members), got.Evaluated, got.NotConsented, len(want.Members), want.Evaluated, want.NotConsented)
				}
			})
		}
	}
}

func TestEncodeUUID(t *testing.T) {
	for _, u := range []uuid.UUID{uuid.Nil, uuid.Max, uuid.MustParse("0194f3a2-7b1c-7def-8a12-3456789abcde"), uuid.Must(uuid.NewV7())} {
		t.Run(u.String(), func(t *testing.T) {
			var b [36]byte
			encodeUUID(&b, u)
			if got := string(b[:]); got != u.String() {
				t.Fatalf("%s, want %s", got, u)
			}
		})
	}
}
