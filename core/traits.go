package core

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/event"
	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/segments"
)

// Computed traits (segments.ComputedTraits, where each is defined) are
// derived at evaluation time from what the event digests (aggregate.go)
// keep of each event: for orders also the order id and the spend per
// product category, for refunds the order id, and for touches (campaign or
// external referrer) the utm fields and the referrer's host. Like the rest
// of the digests this lives in memory only, kept current by the committer
// and dropped on erasure; a person's traits are computed over the union of
// their cluster's nodes, so merges and unmerges need nothing else.
//
// Three paths extract the same facts and must agree: summarise (raw
// messages, for the digests and for profile show / access reports), and
// the full-event reference (decoded properties and context, personView
// with evalFromEvents) that the property test compares them with.

const orderRefunded = "Order Refunded"

// maxTraitText bounds the texts a trait keeps (category, utm fields, host).
const maxTraitText = 200

// eventExtra is what a digest keeps of an event beyond its name, time and
// an order's revenue and discount: the order id of an order or a refund,
// an order's spend per category, and a touch. Nil for most events.
type eventExtra struct {
	id    string
	cats  []catAmount
	touch *touch
}

// catAmount is one ordered product with a category: price × quantity and
// the quantity.
type catAmount struct {
	cat   string
	rev   float64
	items float64
}

// touch is an event's traffic source: utm source, medium and campaign
// name, and the host of an external referrer.
type touch struct {
	source, medium, campaign, referrer string
}

type touchAt struct {
	at time.Time
	t  touch
}

// traitInput is what the computed traits are computed from.
type traitInput struct {
	orders  []order
	refunds []string // order ids of refunds
	touches []touchAt
	first   time.Time // the first message of any kind
	// reachable: a non-empty email or phone trait (lifecycle: subscriber).
	reachable bool
}

// add records one event of the digest form.
func (in *traitInput) add(name string, at time.Time, rev float64, disc bool, x *eventExtra) {
	if in.first.IsZero() || at.Before(in.first) {
		in.first = at
	}
	switch name {
	case orderCompleted:
		o := order{at: at, rev: rev, disc: disc}
		if x != nil {
			o.id, o.cats = x.id, x.cats
		}
		in.orders = append(in.orders, o)
	case orderRefunded:
		if x != nil && x.id != "" {
			in.refunds = append(in.refunds, x.id)
		}
	}
	if x != nil && x.touch != nil {
		in.touches = append(in.touches, touchAt{at: at, t: *x.touch})
	}
}

// addEvent records one full (decoded) event: the reference path.
func (in *traitInput) addEvent(name string, e segments.Event) {
	if in.first.IsZero() || e.Time.Before(in.first) {
		in.first = e.Time
	}
	switch name {
	case orderCompleted:
		in.orders = append(in.orders, orderOf(e))
	case orderRefunded:
		if id := orderID(e.Properties); id != "" {
			in.refunds = append(in.refunds, id)
		}
	}
	if t, ok := touchOfContext(e.Context); ok {
		in.touches = append(in.touches, touchAt{at: e.Time, t: t})
	}
}

// orderID reads the order_id property: a string (trimmed), or a number in
// its shortest decimal form.
func orderID(props map[string]any) string {
	switch v := props["order_id"].(type) {
	case string:
		return clipText(strings.TrimSpace(v))
	case float64, json.Number:
		f, _ := num(v)
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return ""
}

// categoriesOf reads the products[] of an order: for each product with a
// category, price × quantity (price 0 when missing, quantity 1 when
// missing or not > 0) and the quantity.
func categoriesOf(props map[string]any) []catAmount {
	list, _ := props["products"].([]any)
	var out []catAmount
	for _, x := range list {
		p, ok := x.(map[string]any)
		if !ok {
			continue
		}
		cat, _ := p["category"].(string)
		if cat = clipText(strings.TrimSpace(cat)); cat == "" {
			continue
		}
		qty, ok := num(p["quantity"])
		if !ok || !(qty > 0) {
			qty = 1
		}
		price, _ := num(p["price"])
		out = append(out, catAmount{cat: cat, rev: price * qty, items: qty})
	}
	return out
}

// touchOfMessage reads a message's touch from its raw context.
func touchOfMessage(m *event.Message) (touch, bool) {
	// Most contexts have neither (a key written with escapes is looked up
	// all the same).
	if len(m.Context) == 0 || !bytes.Contains(m.Context, []byte(`"campaign"`)) &&
		!bytes.Contains(m.Context, []byte(`"referrer"`)) && bytes.IndexByte(m.Context, '\\') < 0 {
		return touch{}, false
	}
	// Each object is looked up once: five walks from the top of every
	// page view's context were 4% of ingestion.
	c := m.ContextStrings("campaign", "source", "medium", "name")
	p := m.ContextStrings("page", "referrer", "url")
	return touchFrom(c[0], c[1], c[2], p[0], p[1])
}

// touchOfContext reads a decoded context's touch.
func touchOfContext(ctx map[string]any) (touch, bool) {
	campaign, _ := ctx["campaign"].(map[string]any)
	page, _ := ctx["page"].(map[string]any)
	str := func(m map[string]any, k string) string {
		s, _ := m[k].(string)
		return s
	}
	return touchFrom(str(campaign, "source"), str(campaign, "medium"), str(campaign, "name"), str(page, "referrer"), str(page, "url"))
}

// touchFrom makes a touch of utm fields and a referrer: the referrer
// counts when its host differs from the page's; only hosts are kept.
func touchFrom(source, medium, name, referrer, pageURL string) (touch, bool) {
	t := touch{source: clipText(strings.TrimSpace(source)), medium: clipText(strings.TrimSpace(medium)), campaign: clipText(strings.TrimSpace(name))}
	if ref := hostOf(referrer); ref != "" && ref != hostOf(pageURL) {
		t.referrer = ref
		if t.source == "" {
			t.source = ref
		}
		if t.medium == "" {
			t.medium = "referral"
		}
	}
	return t, t != touch{}
}

// hostOf is the host of an absolute URL, lowercase, without port and
// "www.", or "" (never a path or query: they can hold personal data).
func hostOf(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	h := strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.")
	return clipText(h)
}

// clipText cuts s to maxTraitText bytes at a rune boundary.
func clipText(s string) string {
	if len(s) <= maxTraitText {
		return s
	}
	s = s[:maxTraitText]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// traitValues are a person's computed traits at one time.
type traitValues struct {
	num  map[string]float64
	text map[string]string
}

// export is the traits as one map: numbers as float64, texts and times
// (RFC 3339) as strings.
func (v traitValues) export() map[string]any {
	out := make(map[string]any, len(v.num)+len(v.text))
	for k, x := range v.num {
		if !math.IsNaN(x) {
			out[k] = x
		}
	}
	for k, s := range v.text {
		out[k] = s
	}
	return out
}

func formatTraitTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// cmpOrder is a total order of orders by their values, so that sums do
// not depend on the order in which events were read.
func cmpOrder(a, b order) int {
	return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.rev, b.rev), strings.Compare(a.id, b.id), cmpBool(a.disc, b.disc))
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func cmpTouch(a, b touchAt) int {
	return cmp.Or(a.at.Compare(b.at), strings.Compare(a.t.source, b.t.source), strings.Compare(a.t.medium, b.t.medium),
		strings.Compare(a.t.campaign, b.t.campaign), strings.Compare(a.t.referrer, b.t.referrer))
}

// computeTraits derives every computed trait (segments.ComputedTraits) at
// now. It does not change in.
func computeTraits(in traitInput, now time.Time) traitValues {
	orders := slices.Clone(in.orders)
	slices.SortFunc(orders, cmpOrder)
	v := traitValues{num: computeValues(orders, in.first, now), text: map[string]string{}}
	n := len(orders)
	if n > 0 {
		firstAt, lastAt := orders[0].at, orders[n-1].at
		v.text[segments.ComputedFirstOrderAt] = formatTraitTime(firstAt)
		v.text[segments.ComputedLastOrderAt] = formatTraitTime(lastAt)
		if n >= 2 {
			gaps := make([]float64, n-1)
			for i := range gaps {
				gaps[i] = orders[i+1].at.Sub(orders[i].at).Hours() / 24
			}
			slices.Sort(gaps)
			median := gaps[len(gaps)/2]
			if len(gaps)%2 == 0 {
				median = (gaps[len(gaps)/2-1] + gaps[len(gaps)/2]) / 2
			}
			v.num[segments.ComputedMedianDaysBetweenOrders] = median
			if d := median * float64(24*time.Hour); d < 1<<62 {
				next := lastAt.Add(time.Duration(d))
				v.text[segments.ComputedExpectedNextOrderAt] = formatTraitTime(next)
				v.num[segments.ComputedDaysUntilNextOrder] = math.Floor(next.Sub(now).Hours() / 24)
			}
		}
		refunded := make(map[string]bool, len(in.refunds))
		for _, id := range in.refunds {
			refunded[id] = true
		}
		k := 0
		for _, o := range orders {
			if o.id != "" && refunded[o.id] {
				k++
			}
		}
		v.num[segments.ComputedRefundRate] = float64(k) / float64(n)
		if cat, ok := topCategory(orders); ok {
			v.text[segments.ComputedTopCategory] = cat
		}
		years := now.Sub(firstAt).Hours() / (24 * 365)
		v.num[segments.ComputedCLV] = v.num[segments.ComputedRevenueTotal] / max(1, years) * segments.CLVLifespanYears
	}
	if len(in.touches) > 0 {
		first := slices.MinFunc(in.touches, cmpTouch).t
		last := slices.MaxFunc(in.touches, cmpTouch).t
		for _, f := range []struct {
			name, value string
		}{
			{segments.ComputedFirstTouchSource, first.source}, {segments.ComputedFirstTouchMedium, first.medium},
			{segments.ComputedFirstTouchCampaign, first.campaign}, {segments.ComputedFirstTouchReferrer, first.referrer},
			{segments.ComputedLastTouchSource, last.source}, {segments.ComputedLastTouchMedium, last.medium},
			{segments.ComputedLastTouchCampaign, last.campaign}, {segments.ComputedLastTouchReferrer, last.referrer},
		} {
			if f.value != "" {
				v.text[f.name] = f.value
			}
		}
	}
	days, recent := v.num[segments.ComputedDaysSinceLastOrder]
	v.text[segments.ComputedLifecycleStage] = lifecycleStage(n, days, recent, in.reachable)
	return v
}

// lifecycleStage applies the rules of segments.ComputedLifecycleStage.
func lifecycleStage(orders int, daysSinceLast float64, hasLast, reachable bool) string {
	switch {
	case orders == 0 && reachable:
		return segments.StageSubscriber
	case orders == 0:
		return segments.StageVisitor
	case hasLast && daysSinceLast >= segments.LapsedDays:
		return segments.StageLapsed
	case hasLast && daysSinceLast >= segments.AtRiskDays:
		return segments.StageAtRisk
	case orders >= segments.LoyalOrders:
		return segments.StageLoyal
	case orders >= 2:
		return segments.StageRepeat
	}
	return segments.StageFirstTimeBuyer
}

// topCategory is the category with the most spend, then the most items,
// then the smallest name. Each category's amounts are summed in sorted
// order, so the result does not depend on the order of the orders.
func topCategory(orders []order) (string, bool) {
	type sums struct{ revs, items []float64 }
	by := map[string]*sums{}
	for _, o := range orders {
		for _, c := range o.cats {
			s := by[c.cat]
			if s == nil {
				s = &sums{}
				by[c.cat] = s
			}
			s.revs = append(s.revs, c.rev)
			s.items = append(s.items, c.items)
		}
	}
	total := func(xs []float64) float64 {
		slices.Sort(xs)
		t := 0.0
		for _, x := range xs {
			t += x
		}
		return t
	}
	best, bestRev, bestItems := "", 0.0, 0.0
	for cat, s := range by {
		rev, items := total(s.revs), total(s.items)
		if best == "" || rev > bestRev || rev == bestRev && (items > bestItems || items == bestItems && cat < best) {
			best, bestRev, bestItems = cat, rev, items
		}
	}
	return best, best != ""
}

// reachableTrait reports whether a trait value is a non-empty email or
// phone: present, not null, and not a blank string.
// reachableRaw is reachableTrait of a raw trait value, read as Trait reads it.
func reachableRaw(raw json.RawMessage) bool {
	// A string without escapes (an email, a phone number) reads as its
	// bytes: no decoding needed.
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' && bytes.IndexByte(raw[1:n-1], '\\') < 0 {
		return strings.TrimSpace(string(raw[1:n-1])) != ""
	}
	var v any
	if raw == nil || json.Unmarshal(raw, &v) != nil {
		return false
	}
	return reachableTrait(v, v != nil)
}

func reachableTrait(v any, ok bool) bool {
	if !ok || v == nil {
		return false
	}
	if s, isStr := v.(string); isStr {
		return strings.TrimSpace(s) != ""
	}
	return true
}

// ComputedTraits returns the computed traits (segments.ComputedTraits) of
// the person holding id, at the clock's time: numbers as float64, texts as
// strings and times as RFC 3339 strings in UTC; traits without a value are
// left out. They come from the in-memory event digests, so once a person's
// digests are cached no event is decrypted (only the profile record, for
// the email and phone that make a subscriber). It does not consult the
// policy gate: a caller that uses them for a purpose (personalisation)
// asks Decide first. ErrProfileNotFound when nobody holds id.
func (c *CDP) ComputedTraits(ctx context.Context, id identity.Identifier) (map[string]any, error) {
	return c.ComputedTraitsAt(ctx, id, time.Time{})
}

// ComputedTraitsAt is ComputedTraits at now (zero: the clock).
func (c *CDP) ComputedTraitsAt(ctx context.Context, id identity.Identifier, now time.Time) (map[string]any, error) {
	if now.IsZero() {
		now = c.now()
	}
	var out map[string]any
	err := c.withPerson(ctx, id, func(tx *store.Txn, root uuid.UUID, members []uuid.UUID) error {
		pv := c.newView(ctx, tx, root, members, now)
		v, err := pv.traitValues()
		if err != nil {
			return err
		}
		out = v.export()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// computedOfMessages computes the traits of a person from their decrypted
// messages (profile show, access reports), read as the digests read them.
func computedOfMessages(msgs []event.Message, traits map[string]json.RawMessage, now time.Time) map[string]any {
	var in traitInput
	for i := range msgs {
		s := summarise(&msgs[i])
		in.add(s.name, time.Unix(0, s.at).UTC(), s.rev, s.disc, s.x)
	}
	for _, k := range []string{"email", "phone"} {
		var v any
		raw, ok := traits[k]
		ok = ok && json.Unmarshal(raw, &v) == nil
		in.reachable = in.reachable || reachableTrait(v, ok)
	}
	return computeTraits(in, now).export()
}
