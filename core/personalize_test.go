package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
)

const emptyAnswer = `{"segments":[],"traits":{}}`

func uid(v string) identity.Identifier { return identity.Identifier{Type: identity.UserID, Value: v} }
func anon(v string) identity.Identifier {
	return identity.Identifier{Type: identity.AnonymousID, Value: v}
}

// answer is the JSON of a lookup, as the HTTP API sends it.
func answer(t *testing.T, c *CDP, id identity.Identifier) string {
	t.Helper()
	p, err := c.Personalize(WithActor(context.Background(), "key-test"), id)
	if err != nil {
		t.Fatalf("personalize %s: %v", id.Type, err)
	}
	b, _ := json.Marshal(p)
	return string(b)
}

// personalizeConfig keeps live updates manual (FlushLive), so that each
// step's memberships are known.
func personalizeConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.Segments.LiveDelay = Duration(time.Hour)
	return cfg
}

// personalizeFixture: buyers in the EU with and without a personalisation
// grant, one who denied it, a Californian (opt-out model: allowed), and
// the segment "buyers" refreshed.
func personalizeFixture(t *testing.T, c *CDP) {
	t.Helper()
	ctx := context.Background()
	ingestAll(t, c,
		`{"type":"identify","messageId":"1","userId":"eu-yes","anonymousId":"dev-yes","traits":{"email":"yes@example.com","address":{"country":"DE"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"2","userId":"eu-yes","event":"Order Completed","properties":{"total":40},"timestamp":"2026-10-01T00:00:00Z"}`,
		`{"type":"track","messageId":"3","userId":"eu-yes","event":"Order Completed","properties":{"total":60},"timestamp":"2026-10-22T12:00:00Z"}`,
		`{"type":"identify","messageId":"4","userId":"eu-no","traits":{"email":"no@example.com","address":{"country":"FR"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"5","userId":"eu-no","event":"Order Completed","properties":{"total":50},"timestamp":"2026-10-01T00:00:00Z"}`,
		`{"type":"identify","messageId":"6","userId":"eu-denied","traits":{"email":"denied@example.com","address":{"country":"IT"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"7","userId":"eu-denied","event":"Order Completed","properties":{"total":50},"timestamp":"2026-10-01T00:00:00Z"}`,
		`{"type":"identify","messageId":"8","userId":"ca","traits":{"email":"ca@example.com","address":{"country":"US","state":"CA"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"9","userId":"ca","event":"Order Completed","properties":{"total":30},"timestamp":"2026-10-01T00:00:00Z"}`,
	)
	consentSet(t, c, "yes@example.com", PersonalizePurpose, "granted", "2026-09-01T00:00:00Z", nil)
	consentSet(t, c, "denied@example.com", PersonalizePurpose, "denied", "2026-09-01T00:00:00Z", nil)
	// Essential purpose: everyone who bought is a member, whatever they
	// allowed for personalisation; the lookup's own gate decides.
	if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"buyers","purpose":"essential.service.operations","where":{"event":"Order Completed"}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"big_spenders","purpose":"essential.service.operations","where":{"computed":"revenue_total","gte":100}}`)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"buyers", "big_spenders"} {
		if _, err := c.RefreshSegment(ctx, s, fixedNow); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPersonalizeAnswersOnlyWithConsent(t *testing.T) {
	c := openTest(t, personalizeConfig(t))
	personalizeFixture(t, c)
	// fixedNow is 2026-11-01T12:00Z: the last order of eu-yes was 10 days
	// before; two orders of 40 and 60.
	yes := `{"segments":["big_spenders","buyers"],"traits":{"avg_order_value":50,"days_since_last_order":10,"lifecycle_stage":"repeat","order_count":2}}`
	for _, tc := range []struct {
		name string
		id   identity.Identifier
		want string
	}{
		{"granted, by user id", uid("eu-yes"), yes},
		{"granted, by the anonymous id of the same person", anon("dev-yes"), yes},
		{"surrounding spaces are normalised away", uid("  eu-yes "), yes},
		{"EU without a record: opt-in missing", uid("eu-no"), emptyAnswer},
		{"denied", uid("eu-denied"), emptyAnswer},
		{"US-CA, opt-out model, no opt-out", uid("ca"), `{"segments":["buyers"],"traits":{"days_since_last_order":31,"avg_order_value":30,"lifecycle_stage":"first_time_buyer","order_count":1}}`},
		{"unknown user id", uid("nobody"), emptyAnswer},
		{"unknown anonymous id", anon("dev-nobody"), emptyAnswer},
		{"a blocklisted value identifies no one", anon("null"), emptyAnswer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 2 { // the second answer comes from the cache
				got := answer(t, c, tc.id)
				if !jsonEqual(t, got, tc.want) {
					t.Fatalf("round %d: %s, want %s", round, got, tc.want)
				}
				for _, leak := range []string{"eu-", "dev-", "@", "nobody", "ca\""} {
					if strings.Contains(got, leak) {
						t.Fatalf("answer carries %q: %s", leak, got)
					}
				}
			}
		})
	}
	// Never a profile id: none of the store's pids appears in any answer.
	var pids []string
	_ = c.store.View(context.Background(), func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixMember), store.ScanOptions{KeysOnly: true}, func(k, _ []byte) error {
			pids = append(pids, fmt.Sprintf("%x", k[len(store.PrefixMember):]))
			return nil
		})
	})
	for _, id := range []identity.Identifier{uid("eu-yes"), uid("ca")} {
		got := strings.ReplaceAll(answer(t, c, id), "-", "")
		for _, p := range pids {
			if strings.Contains(got, p) {
				t.Fatalf("answer carries profile id %s", p)
			}
		}
	}
	for _, bad := range []identity.Identifier{{Type: identity.Email, Value: "yes@example.com"}, uid(""), anon("   ")} {
		if _, err := c.Personalize(context.Background(), bad); !errors.Is(err, ErrInvalidInput) || strings.Contains(err.Error(), "yes@") {
			t.Errorf("%s %q: err = %v, want ErrInvalidInput without the value", bad.Type, bad.Value, err)
		}
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatal(err)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

// The index follows every change that alters an answer: after each change
// the (cached) answer equals what a fresh computation gives.
func TestPersonalizeIndexStaysCorrect(t *testing.T) {
	ctx := context.Background()
	yes := `{"segments":["big_spenders","buyers"],"traits":{"avg_order_value":50,"days_since_last_order":10,"lifecycle_stage":"repeat","order_count":2}}`
	cases := []struct {
		name   string
		lookup identity.Identifier
		before string
		change func(t *testing.T, c *CDP, clk *settable)
		after  string
	}{
		{"consent withdrawn through the API", uid("eu-yes"), yes, func(t *testing.T, c *CDP, _ *settable) {
			consentSet(t, c, "yes@example.com", PersonalizePurpose, "withdrawn", "2026-10-30T00:00:00Z", nil)
		}, emptyAnswer},
		{"consent withdrawn through the consent manager on an event", anon("dev-yes"), yes, func(t *testing.T, c *CDP, _ *settable) {
			ingestAll(t, c, `{"type":"page","messageId":"cm","anonymousId":"dev-yes","context":{"consent":{"categoryPreferences":{"personalization":false}}},"timestamp":"2026-10-31T00:00:00Z"}`)
		}, emptyAnswer},
		{"consent granted through the consent manager", uid("eu-no"), emptyAnswer, func(t *testing.T, c *CDP, _ *settable) {
			ingestAll(t, c, `{"type":"page","messageId":"cm2","userId":"eu-no","context":{"consent":{"categoryPreferences":{"personalization":true}}},"timestamp":"2026-10-31T00:00:00Z"}`)
		}, `{"segments":["buyers"],"traits":{"avg_order_value":50,"days_since_last_order":31,"lifecycle_stage":"first_time_buyer","order_count":1}}`},
		{"a grant that expires", uid("eu-no"), `{"segments":["buyers"],"traits":{"avg_order_value":50,"days_since_last_order":31,"lifecycle_stage":"first_time_buyer","order_count":1}}`,
			func(t *testing.T, c *CDP, clk *settable) { clk.add(48 * time.Hour) },
			emptyAnswer},
		{"erasure", uid("eu-yes"), yes, func(t *testing.T, c *CDP, _ *settable) {
			if _, _, err := c.HandleRequest(ctx, RequestDelete, "gdpr", uid("eu-yes")); err != nil {
				t.Fatal(err)
			}
		}, emptyAnswer},
		{"merge with a device that denied: the most restrictive consent wins", uid("eu-yes"), yes, func(t *testing.T, c *CDP, _ *settable) {
			ingestAll(t, c, `{"type":"page","messageId":"d1","anonymousId":"dev-denies","context":{"consent":{"categoryPreferences":{"personalization":false}}},"timestamp":"2026-09-15T00:00:00Z"}`,
				`{"type":"identify","messageId":"d2","userId":"eu-yes","anonymousId":"dev-denies","timestamp":"2026-09-16T00:00:00Z"}`)
			if _, err := c.FlushLive(ctx, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}, emptyAnswer},
		{"merge: a new device becomes the person", anon("dev-new"), emptyAnswer, func(t *testing.T, c *CDP, _ *settable) {
			ingestAll(t, c, `{"type":"identify","messageId":"m1","userId":"eu-yes","anonymousId":"dev-new","timestamp":"2026-10-30T00:00:00Z"}`)
			if _, err := c.FlushLive(ctx, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}, yes},
		{"a new order moves the person into a segment (live update)", uid("ca"), `{"segments":["buyers"],"traits":{"avg_order_value":30,"days_since_last_order":31,"lifecycle_stage":"first_time_buyer","order_count":1}}`,
			func(t *testing.T, c *CDP, _ *settable) {
				ingestAll(t, c, `{"type":"track","messageId":"o2","userId":"ca","event":"Order Completed","properties":{"total":90},"timestamp":"2026-10-31T12:00:00Z"}`)
				if _, err := c.FlushLive(ctx, time.Time{}); err != nil {
					t.Fatal(err)
				}
			}, `{"segments":["big_spenders","buyers"],"traits":{"avg_order_value":60,"days_since_last_order":1,"lifecycle_stage":"repeat","order_count":2}}`},
		{"a deleted segment is gone", uid("eu-yes"), yes, func(t *testing.T, c *CDP, _ *settable) {
			if err := c.DeleteSegment(ctx, "big_spenders"); err != nil {
				t.Fatal(err)
			}
		}, `{"segments":["buyers"],"traits":{"avg_order_value":50,"days_since_last_order":10,"lifecycle_stage":"repeat","order_count":2}}`},
		{"a refresh that drops the person", uid("eu-yes"), yes, func(t *testing.T, c *CDP, _ *settable) {
			d, err := c.ParseSegment([]byte(`{"name":"big_spenders","purpose":"essential.service.operations","where":{"computed":"revenue_total","gte":1000}}`))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.ApplySegment(ctx, d); err != nil {
				t.Fatal(err)
			}
			if _, err := c.RefreshSegment(ctx, "big_spenders", time.Time{}); err != nil {
				t.Fatal(err)
			}
		}, `{"segments":["buyers"],"traits":{"avg_order_value":50,"days_since_last_order":10,"lifecycle_stage":"repeat","order_count":2}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := &settable{t: fixedNow}
			c := openClocked(t, personalizeConfig(t), clk)
			personalizeFixture(t, c)
			if tc.name == "a grant that expires" {
				exp := fixedNow.Add(24 * time.Hour)
				consentSet(t, c, "no@example.com", PersonalizePurpose, "granted", "2026-10-30T00:00:00Z", &exp)
			}
			if got := answer(t, c, tc.lookup); !jsonEqual(t, got, tc.before) {
				t.Fatalf("before: %s, want %s", got, tc.before)
			}
			cached := c.personal.size()
			if !strings.Contains(tc.name, "new device") && cached == 0 {
				t.Fatal("the lookup cached nothing")
			}
			tc.change(t, c, clk)
			got := answer(t, c, tc.lookup)
			if !jsonEqual(t, got, tc.after) {
				t.Fatalf("after: %s, want %s", got, tc.after)
			}
			// The cached answer equals a fresh one.
			again := answer(t, c, tc.lookup)
			c.personal.flush()
			if fresh := answer(t, c, tc.lookup); again != fresh {
				t.Fatalf("cached %s, fresh %s", again, fresh)
			}
		})
	}
}

// Under concurrent ingestion (consent changes, merges, orders) and
// lookups, every answer the index holds at the end equals a fresh one.
func TestPersonalizeCacheEqualsUncachedUnderLoad(t *testing.T) {
	c := openTest(t, personalizeConfig(t))
	ctx := context.Background()
	for _, tmpl := range []string{"repeat_buyers", "first_time_buyers", "cart_abandoners"} {
		if _, err := c.ApplyTemplate(ctx, tmpl, nil); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewSource(7))
	var ids []identity.Identifier
	for u := range 20 {
		ids = append(ids, uid(fmt.Sprintf("u%d", u)))
		for d := range 2 {
			ids = append(ids, anon(fmt.Sprintf("d%d-%d", u, d)))
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Personalize(ctx, ids[r.Intn(len(ids))]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for round := range 30 {
		var msgs []event.Message
		for i := range 40 {
			u := rng.Intn(20)
			idf := fmt.Sprintf(`"userId":"u%d"`, u)
			if rng.Intn(3) == 0 {
				idf = fmt.Sprintf(`"anonymousId":"d%d-%d"`, u, rng.Intn(2))
			} else if rng.Intn(3) == 0 {
				idf += fmt.Sprintf(`,"anonymousId":"d%d-%d"`, u, rng.Intn(2))
			}
			cons := `{}`
			if rng.Intn(4) == 0 {
				cons = fmt.Sprintf(`{"consent":{"categoryPreferences":{"personalization":%v}}}`, rng.Intn(2) == 0)
			}
			country := []string{"DE", "US"}[u%2]
			ts := fixedNow.Add(-time.Duration(rng.Intn(100*24)) * time.Hour).Format(time.RFC3339)
			mid := fmt.Sprintf("L%d-%d", round, i)
			var body string
			switch rng.Intn(3) {
			case 0:
				body = fmt.Sprintf(`{"type":"identify","messageId":%q,%s,"traits":{"address":{"country":%q,"state":"CA"}},"context":%s,"timestamp":%q}`, mid, idf, country, cons, ts)
			case 1:
				body = fmt.Sprintf(`{"type":"track","messageId":%q,%s,"event":"Order Completed","properties":{"total":%d},"context":%s,"timestamp":%q}`, mid, idf, 5+rng.Intn(100), cons, ts)
			default:
				body = fmt.Sprintf(`{"type":"track","messageId":%q,%s,"event":"Product Added","context":%s,"timestamp":%q}`, mid, idf, cons, ts)
			}
			m, err := event.DecodeMessage([]byte(body), "", fixedNow)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, m)
		}
		if _, err := c.Ingest(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		if round%5 == 0 {
			if _, err := c.FlushLive(ctx, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := c.FlushLive(ctx, time.Time{}); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	cached := map[identity.Identifier]string{}
	answered := 0
	for _, id := range ids {
		cached[id] = answer(t, c, id)
		if cached[id] != emptyAnswer {
			answered++
		}
	}
	if answered == 0 || answered == len(ids) {
		t.Fatalf("%d of %d answered: the stream should leave some people allowed and some not", answered, len(ids))
	}
	c.personal.flush()
	for _, id := range ids {
		if fresh := answer(t, c, id); fresh != cached[id] {
			t.Errorf("%s %s: cached %s, fresh %s", id.Type, id.Value, cached[id], fresh)
		}
	}
}

// Lookups are audited as counts per API key, never one by one, and the
// segments served count as used.
func TestPersonalizeAuditCounts(t *testing.T) {
	c := openTest(t, personalizeConfig(t))
	personalizeFixture(t, c)
	ctx := context.Background()
	before, _ := c.AuditTail(ctx, 1)
	for i := range 5 {
		id := uid("eu-yes")
		if i%2 == 1 {
			id = uid("nobody")
		}
		if _, err := c.Personalize(WithActor(ctx, "key-shop"), id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Personalize(WithActor(ctx, "key-other"), uid("eu-no")); err != nil {
		t.Fatal(err)
	}
	if tail, _ := c.AuditTail(ctx, 1); tail[0].Seq != before[0].Seq {
		t.Fatalf("a lookup was audited one by one: %s", tail[0].Kind)
	}
	if err := c.flushPersonalizeAudit(ctx); err != nil {
		t.Fatal(err)
	}
	tail, _ := c.AuditTail(ctx, 2)
	got := map[string]string{}
	for _, e := range tail {
		if e.Kind != "personalize.lookups" {
			t.Fatalf("entry %s", e.Kind)
		}
		var d struct {
			Answered, Empty int
			Purpose         string
		}
		_ = json.Unmarshal(e.Data, &d)
		got[e.Actor] = fmt.Sprintf("%d/%d %s", d.Answered, d.Empty, d.Purpose)
	}
	if got["key-shop"] != "3/2 "+PersonalizePurpose || got["key-other"] != "0/1 "+PersonalizePurpose {
		t.Fatalf("counts %v", got)
	}
	// Nothing new: no entry.
	if err := c.flushPersonalizeAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := c.AuditTail(ctx, 1); again[0].Seq != tail[1].Seq {
		t.Fatalf("an empty flush wrote %s", again[0].Kind)
	}
	list, err := c.SegmentHygiene(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if _, ok := s.Uses[useServed]; !ok {
			t.Errorf("%s was served but is not recorded as used: %v", s.Name, s.Uses)
		}
	}
}
