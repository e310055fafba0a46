package core

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/policies"
	"github.com/custody-cdp/custody/privacy"
)

// classPopulation ingests n people of varied gate inputs: jurisdictions,
// consent from the consent manager (marketing), records of other
// purposes with either lawful basis and every status, records that
// expire (one passed, one not), GPC, and people whose inputs are on two
// nodes (a device that consented before it was linked).
func classPopulation(t *testing.T, c *CDP, n int, seed int64) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewSource(seed))
	places := [][2]string{{"DE", ""}, {"FR", ""}, {"GB", ""}, {"US", "CA"}, {"US", "NY"}, {"JP", ""}, {"", ""}}
	var batch []event.Message
	for i := range n {
		pl := places[rng.Intn(len(places))]
		ctxJSON := "{}"
		switch rng.Intn(3) {
		case 0:
			ctxJSON = `{"consent":{"categoryPreferences":{"marketing":true}}}`
		case 1:
			ctxJSON = `{"consent":{"categoryPreferences":{"marketing":false}}}`
		}
		batch = append(batch, msg(t, event.Identify, fmt.Sprintf(
			`{"messageId":"id-%d","userId":"u%d","traits":{"email":"p%d@example.com","address":{"country":%q,"state":%q}},"context":%s,"timestamp":"2026-09-01T10:00:00Z"}`,
			i, i, i, pl[0], pl[1], ctxJSON)))
		if rng.Intn(6) == 0 {
			// A device with its own consent, linked to the user later.
			batch = append(batch,
				msg(t, event.Track, fmt.Sprintf(`{"messageId":"dev-%d","anonymousId":"d%d","event":"Product Viewed","context":{"consent":{"categoryPreferences":{"marketing":%v}}},"timestamp":"2026-09-02T10:00:00Z"}`, i, i, rng.Intn(2) == 0)),
				msg(t, event.Track, fmt.Sprintf(`{"messageId":"link-%d","anonymousId":"d%d","userId":"u%d","event":"Product Added","timestamp":"2026-09-03T10:00:00Z"}`, i, i, i)))
		}
	}
	if _, err := c.Ingest(ctx, batch); err != nil {
		t.Fatal(err)
	}
	past, future := fixedNow.Add(-24*time.Hour), fixedNow.Add(30*24*time.Hour)
	for i := range n {
		if rng.Intn(2) == 0 {
			continue
		}
		// Mostly on the user's node, where the consent manager's are; a
		// few on the email's, which gives the person inputs on two nodes.
		id := identity.Identifier{Type: identity.UserID, Value: fmt.Sprintf("u%d", i)}
		if rng.Intn(10) == 0 {
			id = identity.Identifier{Type: identity.Email, Value: fmt.Sprintf("p%d@example.com", i)}
		}
		req := ConsentRequest{Identifier: id,
			Purpose:     []string{"analytics.reporting", "personalize.content", "marketing.communications.email", "marketing.advertising.third_party.targeted"}[rng.Intn(4)],
			Status:      []string{policies.StatusGranted, policies.StatusDenied, policies.StatusWithdrawn}[rng.Intn(3)],
			CollectedAt: fixedNow.Add(-time.Duration(1+rng.Intn(100)) * time.Hour)}
		if req.Status == policies.StatusGranted && rng.Intn(2) == 0 {
			req.LawfulBasis = policies.BasisLegitimateInterests
		}
		switch rng.Intn(8) {
		case 0:
			req.ExpiresAt = &past
			req.CollectedAt = past.Add(-time.Hour)
		case 1:
			req.ExpiresAt = &future
		case 2:
			req.Source = "gpc"
		}
		if _, err := c.RecordConsent(ctx, req); err != nil {
			t.Fatalf("consent %+v: %v", req, err)
		}
	}
}

// Deciding by class (gateclass.go) gives every person the decision the
// engine gives them from their own records, for every purpose; the
// engine is asked about once per class, not once per person; and a class's
// answers are not used after the bundle is reloaded.
func TestGateClassesDecideAsTheEngine(t *testing.T) {
	ctx := context.Background()
	// Without the live updater, which would ask the engine about the
	// same people while the test counts the questions.
	cfg := testConfig(t)
	cfg.Segments.LiveDelay = 0
	c := openTest(t, cfg)
	const people = 400
	classPopulation(t, c, people, 1)
	purposes := []string{"marketing.communications.email", "analytics.reporting", "personalize.content", "marketing.advertising.third_party.targeted"}
	for i, p := range purposes {
		if _, err := c.ApplySegmentData(ctx, []byte(fmt.Sprintf(`{"name":"everyone_%d","purpose":%q,"where":{"trait":"email","exists":true}}`, i, p))); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range purposes {
		name := fmt.Sprintf("everyone_%d", i)
		t.Run(p, func(t *testing.T) {
			// The reference: every person's view made from their records,
			// decided one by one.
			c.evalFromEvents.Store(true)
			want := evaluateAt(t, c, name, fixedNow)
			c.evalFromEvents.Store(false)
			got := evaluateAt(t, c, name, fixedNow)
			if want.Evaluated+want.NotConsented < people || len(want.Members) == 0 || want.NotConsented == 0 {
				t.Fatalf("%d evaluated, %d members, %d not consented: the comparison would prove little", want.Evaluated, len(want.Members), want.NotConsented)
			}
			if !slices.Equal(memberRefs(got), memberRefs(want)) || got.NotConsented != want.NotConsented {
				t.Fatalf("by class: %d members, %d not consented; one by one: %d, %d", len(got.Members), got.NotConsented, len(want.Members), want.NotConsented)
			}
			// Once every class has its answer, the engine is asked only
			// about people of no class. (The first evaluation asks about
			// each class once per worker at most: two workers may miss
			// the same class at once.)
			before := c.engine.CacheStats()
			evaluateAt(t, c, name, fixedNow)
			after := c.engine.CacheStats()
			asked := (after.Hits + after.Misses) - (before.Hits + before.Misses)
			if others := unclassed(t, c); asked > uint64(others) || others > people/2 {
				t.Fatalf("the engine was asked %d times for %d people, %d of no class: the classes are not shared", asked, people, others)
			}
		})
	}
	// A node has no class exactly when a latest record of it expires: its
	// people are decided one by one, so a record that lapses takes effect
	// at once.
	expiring := 0
	for _, id := range c.nodes.ids() {
		n, ok := c.gates.get(id)
		if !ok {
			continue
		}
		expires := false
		for _, i := range n.states {
			expires = expires || n.consents[i].ExpiresAt != nil
		}
		if expires {
			expiring++
		}
		if (n.class == noClass) != expires {
			t.Fatalf("node of %d records, one expiring %v, has class %d", len(n.consents), expires, n.class)
		}
	}
	if expiring == 0 {
		t.Fatal("no node with a record that expires: the rule is not exercised")
	}
}

// unclassed is how many people are decided one by one: those whose
// inputs are on several nodes or on a node of no class.
func unclassed(t *testing.T, c *CDP) int {
	t.Helper()
	others := 0
	eachPersonView(t, c, fixedNow, func(pv *personView) error {
		gi, err := pv.gateInputs()
		if err == nil && (gi.only == nil || gi.only.class == noClass) {
			others++
		}
		return err
	})
	return others
}

func TestGateClassesFollowReload(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(allow bool) {
		src := fmt.Sprintf("package custody.gate\n\ndecision := {\"allow\": %v, \"reasons\": [\"test\"], \"fields\": []}\n", allow)
		if err := os.WriteFile(filepath.Join(dir, "gate.rego"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(true)
	cfg := testConfig(t)
	cfg.Policies.Dir = dir
	cfg.Segments.LiveDelay = 0
	c := openTest(t, cfg)
	classPopulation(t, c, 40, 2)
	if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"everyone","purpose":"marketing.communications.email","where":{"trait":"email","exists":true}}`)); err != nil {
		t.Fatal(err)
	}
	for _, allow := range []bool{true, false, true} {
		write(allow)
		if err := c.engine.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		r, err := c.EvaluateSegment(ctx, "everyone", fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		if allowed := r.Allowed > 0 && r.NotConsented == 0; allowed != allow || (!allow && r.Allowed != 0) {
			t.Fatalf("policy allows: %v; %d allowed, %d not consented", allow, r.Allowed, r.NotConsented)
		}
	}
}

func TestClassKeys(t *testing.T) {
	future := fixedNow.Add(time.Hour)
	rec := func(purpose, status, basis string) privacy.Consent {
		return privacy.Consent{Purpose: purpose, Status: status, LawfulBasis: basis, CollectedAt: fixedNow}
	}
	node := func(jur string, recs ...privacy.Consent) *gateNode {
		n := newGateNode(nil, nil, recs)
		n.jurisdiction = jur
		return n
	}
	key := func(n *gateNode) (string, bool) {
		k, ok := classKey(nil, n)
		return string(k), ok
	}
	a := node("EU", rec("marketing", "granted", "consent"), rec("analytics", "denied", ""))
	b := node("EU", rec("analytics", "denied", ""), rec("marketing", "granted", "consent"))
	b.consents[0].CollectedAt = fixedNow.Add(-time.Hour) // no decision depends on it
	ka, _ := key(a)
	if kb, _ := key(b); ka != kb {
		t.Fatal("the same records in another order make another class")
	}
	for name, n := range map[string]*gateNode{
		"jurisdiction": node("UK", rec("marketing", "granted", "consent"), rec("analytics", "denied", "")),
		"status":       node("EU", rec("marketing", "withdrawn", "consent"), rec("analytics", "denied", "")),
		"basis":        node("EU", rec("marketing", "granted", "legitimate_interests"), rec("analytics", "denied", "")),
		"purpose":      node("EU", rec("marketing.advertising", "granted", "consent"), rec("analytics", "denied", "")),
		"fewer":        node("EU", rec("marketing", "granted", "consent")),
	} {
		if k, ok := key(n); !ok || k == ka {
			t.Errorf("%s: a different subject has the same class (or none)", name)
		}
	}
	gpc := node("EU", rec("marketing", "granted", "consent"), rec("analytics", "denied", ""))
	gpc.gpc = true
	if k, _ := key(gpc); k == ka {
		t.Error("GPC: a different subject has the same class")
	}
	exp := rec("marketing", "granted", "consent")
	exp.ExpiresAt = &future
	if _, ok := key(node("EU", exp)); ok {
		t.Error("a node with a record that expires has a class")
	}
	// Interning: equal keys, one id; the class of no inputs is the first.
	g := newGateClasses()
	g.classify(a)
	g.classify(b)
	if a.class == noClass || a.class != b.class || a.class == noInputsClass {
		t.Fatalf("classes %d and %d", a.class, b.class)
	}
	empty := newGateNode(nil, nil, nil)
	g.classify(empty)
	if empty.class != noInputsClass {
		t.Fatalf("a node without inputs has class %d, want %d", empty.class, noInputsClass)
	}
}
