package segments

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/custody-cdp/custody/policies"
)

// clock is the fixed evaluation time of the tests.
var clock = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// fakePerson is a Person (and FieldSource) held in memory.
type fakePerson struct {
	traits   map[string]any
	computed map[string]float64
	text     map[string]string
	events   map[string][]Event
	fields   map[string]any
}

func (p *fakePerson) Trait(name string) (any, bool) {
	v, ok := p.traits[name]
	return v, ok
}

func (p *fakePerson) Computed(name string) (float64, bool) {
	v, ok := p.computed[name]
	return v, ok
}

func (p *fakePerson) ComputedText(name string) (string, bool) {
	v, ok := p.text[name]
	return v, ok
}

func (p *fakePerson) Events(name string) []Event { return p.events[name] }

func (p *fakePerson) Field(name string) (any, bool) {
	v, ok := p.fields[name]
	return v, ok
}

func (p *fakePerson) add(name string, at time.Time, props map[string]any) {
	if p.events == nil {
		p.events = map[string][]Event{}
	}
	p.events[name] = append(p.events[name], Event{Time: at, Properties: props})
}

// standardComputed fills the computed values of ComputedNames from the
// person's events, as documented in computed.go.
func (p *fakePerson) standardComputed(now, firstSeen time.Time) {
	c := map[string]float64{}
	orders := p.events["Order Completed"]
	c[ComputedOrderCount] = float64(len(orders))
	c[ComputedDaysSinceFirstSeen] = math.Floor(now.Sub(firstSeen).Hours() / 24)
	if len(orders) > 0 {
		var total, y float64
		var discounted int
		var last time.Time
		anyY := false
		for _, o := range orders {
			rev, ok := o.Properties["revenue"].(float64)
			if !ok {
				rev, _ = o.Properties["total"].(float64)
			}
			total += rev
			if o.Time.After(now.Add(-365 * 24 * time.Hour)) {
				y += rev
				anyY = true
			}
			coupon, _ := o.Properties["coupon"].(string)
			disc, _ := o.Properties["discount"].(float64)
			if coupon != "" || disc > 0 {
				discounted++
			}
			if o.Time.After(last) {
				last = o.Time
			}
		}
		c[ComputedRevenueTotal] = total
		if anyY {
			c[ComputedRevenue365d] = y
		}
		c[ComputedDaysSinceLastOrder] = math.Floor(now.Sub(last).Hours() / 24)
		if len(orders) >= 2 {
			// Replenishment timing: the median gap between orders in time
			// order, from the last order.
			times := make([]time.Time, len(orders))
			for i, o := range orders {
				times[i] = o.Time
			}
			slices.SortFunc(times, time.Time.Compare)
			gaps := make([]float64, len(times)-1)
			for i := range gaps {
				gaps[i] = times[i+1].Sub(times[i]).Hours() / 24
			}
			slices.Sort(gaps)
			median := gaps[len(gaps)/2]
			if len(gaps)%2 == 0 {
				median = (gaps[len(gaps)/2-1] + gaps[len(gaps)/2]) / 2
			}
			next := last.Add(time.Duration(median * float64(24*time.Hour)))
			c[ComputedMedianDaysBetweenOrders] = median
			c[ComputedDaysUntilNextOrder] = math.Floor(next.Sub(now).Hours() / 24)
		}
		c[ComputedAvgOrderValue] = total / float64(len(orders))
		c[ComputedDiscountOrderShare] = float64(discounted) / float64(len(orders))
	}
	p.computed = c
}

// genPeople generates n deterministic fake shoppers as of now.
func genPeople(n int, seed uint64, now time.Time) []Candidate {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ctxRng := rand.New(rand.NewPCG(seed+1, seed))
	day := 24 * time.Hour
	ago := func(maxDays float64) time.Time {
		return now.Add(-time.Duration(rng.Float64() * maxDays * float64(day)))
	}
	countries := []string{"DE", "DE", "FR", "US", "US", "GB", "NL", "AT"}
	states := []string{"CA", "NY", "TX"}
	out := make([]Candidate, n)
	for i := range n {
		p := &fakePerson{traits: map[string]any{}, fields: map[string]any{}}
		age := 800.0
		if rng.IntN(100) < 15 {
			age = 10
		}
		firstSeen := ago(age)
		span := now.Sub(firstSeen)
		when := func(recent float64) time.Time {
			if rng.Float64() < recent {
				d := min(span, 6*day)
				return now.Add(-time.Duration(rng.Float64() * float64(d)))
			}
			return now.Add(-time.Duration(rng.Float64() * float64(span)))
		}
		if rng.IntN(100) < 70 {
			email := fmt.Sprintf("p%04d@example.com", i)
			p.traits["email"] = email
			p.fields["email"] = email
			p.fields["first_name"] = fmt.Sprintf("Name%d", i)
		}
		if rng.IntN(100) < 25 {
			p.traits["phone"] = fmt.Sprintf("+49 30 %07d", i)
		}
		if rng.IntN(100) < 90 {
			addr := map[string]any{"country": countries[rng.IntN(len(countries))]}
			if addr["country"] == "US" {
				addr["state"] = states[rng.IntN(len(states))]
			}
			p.traits["address"] = addr
		}
		for range rng.IntN(9) {
			p.add("Product Viewed", when(0.35), map[string]any{"product_id": fmt.Sprintf("sku-%d", rng.IntN(20)), "price": float64(5 + rng.IntN(100))})
		}
		for range rng.IntN(3) {
			p.add("Product Added", when(0.4), map[string]any{"product_id": fmt.Sprintf("sku-%d", rng.IntN(20))})
		}
		var orders int
		switch r := rng.IntN(100); {
		case r < 40:
		case r < 62:
			orders = 1
		case r < 80:
			orders = 2 + rng.IntN(2)
		default:
			orders = 4 + rng.IntN(7)
		}
		couponLover := rng.IntN(100) < 15
		for range orders {
			total := float64(10+rng.IntN(490)) + float64(rng.IntN(100))/100
			props := map[string]any{"total": total, "revenue": math.Round(total*90) / 100, "currency": "EUR"}
			switch {
			case couponLover || rng.IntN(100) < 15:
				props["coupon"] = "SAVE10"
				props["discount"] = 5.0
			case rng.IntN(100) < 10:
				props["discount"] = 0.0
			case rng.IntN(100) < 10:
				props["coupon"] = ""
			case rng.IntN(100) < 8:
				props["discount"] = 3.5
			}
			p.add("Order Completed", when(0.1), props)
		}
		p.standardComputed(now, firstSeen)
		// Landing pages with utm campaigns, from a generator of their own
		// so that the people above stay as they were.
		for range ctxRng.IntN(4) {
			medium := []string{"paid_social", "email", "cpc", "paid-social", "organic"}[ctxRng.IntN(5)]
			if p.events == nil {
				p.events = map[string][]Event{}
			}
			p.events["page"] = append(p.events["page"], Event{Time: now.Add(-time.Duration(ctxRng.Float64() * 90 * float64(day))),
				Properties: map[string]any{"path": "/"},
				Context:    map[string]any{"campaign": map[string]any{"source": "x", "medium": medium}}})
		}
		out[i] = Candidate{Ref: fmt.Sprintf("p%04d", i), Person: p}
	}
	return out
}

func peopleOf(list []Candidate) People {
	return func(yield func(Candidate) bool) {
		for _, c := range list {
			if !yield(c) {
				return
			}
		}
	}
}

// fakeGate is a hand-written Gate: it denies the refs in deny (for every
// purpose) and the purposes in denyPurpose, allows export of the fields in
// exportFields only, and records every call.
type fakeGate struct {
	deny         map[string]bool
	denyPurpose  map[string]bool
	denyExport   map[string]bool
	exportFields []string
	err          error

	mu    sync.Mutex
	calls []gateCall
}

type gateCall struct {
	ref, action, purpose string
}

func (g *fakeGate) Allow(ctx context.Context, s Subject, action, purpose string, dest policies.Destination) (policies.Decision, error) {
	g.mu.Lock()
	g.calls = append(g.calls, gateCall{s.Ref(), action, purpose})
	g.mu.Unlock()
	if g.err != nil {
		return policies.Decision{}, g.err
	}
	if g.deny[s.Ref()] || g.denyPurpose[purpose] {
		return policies.Decision{Allow: false, Reasons: []string{"denied by fake gate"}}, nil
	}
	if action == policies.ActionSegmentExport {
		if g.denyExport[s.Ref()] {
			return policies.Decision{Allow: false, Reasons: []string{"export denied"}}, nil
		}
		var fields []string
		for _, f := range dest.Fields {
			if g.exportFields == nil || slices.Contains(g.exportFields, f) {
				fields = append(fields, f)
			}
		}
		return policies.Decision{Allow: true, Reasons: []string{"ok"}, Fields: fields}, nil
	}
	return policies.Decision{Allow: true, Reasons: []string{"ok"}}, nil
}

func allowAll() *fakeGate { return &fakeGate{} }

func mustParse(t testing.TB, src string) *Definition {
	t.Helper()
	d, err := Parse([]byte(src), ParseOptions{})
	if err != nil {
		t.Fatalf("parse %s: %v", src, err)
	}
	return d
}

func mustCompile(t testing.TB, src string) *Compiled {
	t.Helper()
	c, err := Compile(mustParse(t, src), KnownNames{})
	if err != nil {
		t.Fatalf("compile %s: %v", src, err)
	}
	return c
}

// where wraps a condition into a definition.
func where(cond string) string {
	return `{"name": "t", "purpose": "marketing.communications.email", "where": ` + cond + `}`
}

func errorsAs(err error, list *ErrorList) bool {
	l, ok := err.(ErrorList)
	if ok {
		*list = l
	}
	return ok
}

// allowAllNoRecord allows everything without recording calls (benchmarks).
type allowAllNoRecord struct{}

func (allowAllNoRecord) Allow(context.Context, Subject, string, string, policies.Destination) (policies.Decision, error) {
	return policies.Decision{Allow: true, Reasons: []string{"ok"}}, nil
}
