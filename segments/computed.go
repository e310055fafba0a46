package segments

import (
	"slices"
	"strings"
)

// Computed traits core provides per person (Person.Computed for numbers,
// Person.ComputedText for texts and times). Each is computed at the time of
// evaluation from the person's events, all time (events dated after the
// evaluation time included) unless said otherwise:
//
//   - an order is an "Order Completed" event; its revenue is the "revenue"
//     property, else "total"; it is discounted when it has a non-empty
//     "coupon" or a "discount" > 0; its id is "order_id" (a string, or a
//     number written in the shortest decimal form).
//   - a refund is an "Order Refunded" event with the order_id of one of
//     the person's orders.
//   - a touch is an event with a context.campaign source, medium or name
//     (the utm fields), or a context.page.referrer whose host differs from
//     the host of context.page.url (a referral from elsewhere). Only the
//     referrer's host is ever kept (lowercase, without "www."), never its
//     path or query, which can hold personal data.
//
// "Absent" means the value is not there: every comparison but exists:false
// is then false, and the person is left out of top/bottom populations.
// Time-sensitive values change with the passing of time alone: segments
// that use them are kept current by the sweep, not by live updates.
const (
	// ComputedOrderCount is the number of orders; 0 when none (never
	// absent).
	ComputedOrderCount = "order_count"
	// ComputedRevenueTotal is the revenue of all orders; absent when none.
	ComputedRevenueTotal = "revenue_total"
	// ComputedRevenue365d is the revenue of the orders of the last 365 days,
	// (now-365d, now]; absent when the person has no order. Time-sensitive.
	ComputedRevenue365d = "revenue_365d"
	// ComputedDaysSinceLastOrder is the number of whole days (floor) since
	// the latest order at or before now; absent when none. Time-sensitive.
	ComputedDaysSinceLastOrder = "days_since_last_order"
	// ComputedDaysSinceFirstSeen is the number of whole days (floor) since
	// the person's first message of any type. Time-sensitive.
	ComputedDaysSinceFirstSeen = "days_since_first_seen"
	// ComputedAvgOrderValue is revenue_total / order_count; absent when no
	// order.
	ComputedAvgOrderValue = "avg_order_value"
	// ComputedDiscountOrderShare is the share, in [0, 1], of orders that
	// used a coupon or a discount; absent when no order.
	ComputedDiscountOrderShare = "discount_order_share"
	// ComputedFirstOrderAt is the time of the earliest order (a time);
	// absent when none.
	ComputedFirstOrderAt = "first_order_at"
	// ComputedLastOrderAt is the time of the latest order (a time); absent
	// when none.
	ComputedLastOrderAt = "last_order_at"
	// ComputedMedianDaysBetweenOrders is the median of the gaps, in days
	// (fractional), between consecutive orders in time order (the mean of
	// the two middle gaps when their number is even); absent with fewer
	// than two orders.
	ComputedMedianDaysBetweenOrders = "median_days_between_orders"
	// ComputedExpectedNextOrderAt is last_order_at + the median gap (a
	// time): when the person would reorder at their usual pace
	// (replenishment timing); absent with fewer than two orders.
	ComputedExpectedNextOrderAt = "expected_next_order_at"
	// ComputedDaysUntilNextOrder is expected_next_order_at - now in whole
	// days (floor): negative when the person is overdue; absent with fewer
	// than two orders. Time-sensitive.
	ComputedDaysUntilNextOrder = "days_until_next_order"
	// ComputedRefundRate is the share, in [0, 1], of orders that have a
	// refund (an Order Refunded event with their order_id; partial refunds
	// count, several refunds of one order count once); absent when no
	// order.
	ComputedRefundRate = "refund_rate"
	// ComputedTopCategory is the product category the person spent most
	// on (a text): over the products[] of every order, the category (a
	// non-empty string, trimmed) with the highest sum of price × quantity
	// (price 0 when missing, quantity 1 when missing or not > 0); ties go
	// to more items (sum of quantity), then to the lexically smallest
	// name. Absent when no ordered product has a category.
	ComputedTopCategory = "top_category"
	// ComputedFirstTouchSource is the source of the earliest touch (a
	// text): its utm source, else its referrer host. Absent without a
	// touch, or when the touch has neither. Ties in time go to the
	// lexically smallest (source, medium, campaign, referrer).
	ComputedFirstTouchSource = "first_touch_source"
	// ComputedFirstTouchMedium is the medium of the earliest touch: its
	// utm medium, else "referral" when it has a referrer host.
	ComputedFirstTouchMedium = "first_touch_medium"
	// ComputedFirstTouchCampaign is the utm campaign name of the earliest
	// touch.
	ComputedFirstTouchCampaign = "first_touch_campaign"
	// ComputedFirstTouchReferrer is the referrer host of the earliest
	// touch.
	ComputedFirstTouchReferrer = "first_touch_referrer"
	// ComputedLastTouchSource and the three below are the same for the
	// latest touch (ties in time go to the lexically largest tuple).
	ComputedLastTouchSource   = "last_touch_source"
	ComputedLastTouchMedium   = "last_touch_medium"
	ComputedLastTouchCampaign = "last_touch_campaign"
	ComputedLastTouchReferrer = "last_touch_referrer"
	// ComputedLifecycleStage is one of the Stage* values (a text), by the
	// first rule that holds:
	//
	//	no order:  subscriber with a non-empty email or phone trait, else visitor
	//	days_since_last_order >= LapsedDays (180):  lapsed
	//	days_since_last_order >= AtRiskDays (90):   at_risk
	//	order_count >= LoyalOrders (3):             loyal
	//	order_count >= 2:                           repeat
	//	otherwise (one order):                      first_time_buyer
	//
	// (A person whose orders are all dated after now skips the two
	// recency rules.) Never absent. Time-sensitive.
	ComputedLifecycleStage = "lifecycle_stage"
	// ComputedCLV is a simple customer lifetime value: avg_order_value ×
	// orders per year × CLVLifespanYears, where orders per year is
	// order_count / max(1, years since first_order_at) with a year of 365
	// days. So it equals revenue_total / max(1, years as a customer) × 3:
	// the yearly revenue so far, projected over three years, without
	// extrapolating a first year. Absent when no order. Time-sensitive.
	ComputedCLV = "clv"
)

// Lifecycle stages (ComputedLifecycleStage) and their thresholds.
const (
	StageVisitor        = "visitor"
	StageSubscriber     = "subscriber"
	StageFirstTimeBuyer = "first_time_buyer"
	StageRepeat         = "repeat"
	StageLoyal          = "loyal"
	StageAtRisk         = "at_risk"
	StageLapsed         = "lapsed"

	// AtRiskDays: no order for this many days makes a buyer at risk (as
	// the at_risk template).
	AtRiskDays = 90
	// LapsedDays: no order for this many days makes a buyer lapsed (as the
	// lapsed template).
	LapsedDays = 180
	// LoyalOrders: a buyer with this many orders, the last within
	// AtRiskDays, is loyal.
	LoyalOrders = 3
	// CLVLifespanYears is the expected customer lifespan of ComputedCLV.
	CLVLifespanYears = 3
)

// LifecycleStages returns the stages in lifecycle order. It returns a new
// slice on every call.
func LifecycleStages() []string {
	return []string{StageVisitor, StageSubscriber, StageFirstTimeBuyer, StageRepeat, StageLoyal, StageAtRisk, StageLapsed}
}

// ComputedKind is the type of a computed trait's value.
type ComputedKind string

// Kinds of computed traits.
const (
	// KindNumber: a float64 (Person.Computed). Comparisons eq, ne, in, gt,
	// gte, lt, lte, exists with numbers.
	KindNumber ComputedKind = "number"
	// KindText: a string (Person.ComputedText). Comparisons eq, ne, in,
	// exists, contains with strings (only eq, ne, in, exists with one of
	// the Values when the trait has a fixed set).
	KindText ComputedKind = "text"
	// KindTime: an RFC 3339 time in UTC (Person.ComputedText). Comparisons
	// eq, ne, gt, gte, lt, lte, exists with RFC 3339 times, compared as
	// instants.
	KindTime ComputedKind = "time"
)

// ComputedTrait describes one computed trait.
type ComputedTrait struct {
	Name string
	Kind ComputedKind
	// TimeSensitive: the value changes with the passing of time alone.
	TimeSensitive bool
	// Values is the fixed set of a text trait's values (lifecycle_stage);
	// nil when open.
	Values []string
	// Description is one line for listings.
	Description string
}

var catalog = []ComputedTrait{
	{Name: ComputedOrderCount, Kind: KindNumber, Description: "number of orders (Order Completed)"},
	{Name: ComputedRevenueTotal, Kind: KindNumber, Description: "revenue of all orders"},
	{Name: ComputedRevenue365d, Kind: KindNumber, TimeSensitive: true, Description: "revenue of the orders of the last 365 days"},
	{Name: ComputedAvgOrderValue, Kind: KindNumber, Description: "revenue_total / order_count"},
	{Name: ComputedFirstOrderAt, Kind: KindTime, Description: "time of the first order"},
	{Name: ComputedLastOrderAt, Kind: KindTime, Description: "time of the latest order"},
	{Name: ComputedDaysSinceLastOrder, Kind: KindNumber, TimeSensitive: true, Description: "whole days since the latest order"},
	{Name: ComputedDaysSinceFirstSeen, Kind: KindNumber, TimeSensitive: true, Description: "whole days since the first message"},
	{Name: ComputedMedianDaysBetweenOrders, Kind: KindNumber, Description: "median gap between consecutive orders, in days"},
	{Name: ComputedExpectedNextOrderAt, Kind: KindTime, Description: "last_order_at + the median gap"},
	{Name: ComputedDaysUntilNextOrder, Kind: KindNumber, TimeSensitive: true, Description: "whole days until expected_next_order_at (negative: overdue)"},
	{Name: ComputedRefundRate, Kind: KindNumber, Description: "share of orders with an Order Refunded event"},
	{Name: ComputedDiscountOrderShare, Kind: KindNumber, Description: "share of orders with a coupon or a discount"},
	{Name: ComputedTopCategory, Kind: KindText, Description: "product category with the most revenue"},
	{Name: ComputedFirstTouchSource, Kind: KindText, Description: "first touch: utm source, else referrer host"},
	{Name: ComputedFirstTouchMedium, Kind: KindText, Description: "first touch: utm medium, else referral"},
	{Name: ComputedFirstTouchCampaign, Kind: KindText, Description: "first touch: utm campaign name"},
	{Name: ComputedFirstTouchReferrer, Kind: KindText, Description: "first touch: referrer host"},
	{Name: ComputedLastTouchSource, Kind: KindText, Description: "last touch: utm source, else referrer host"},
	{Name: ComputedLastTouchMedium, Kind: KindText, Description: "last touch: utm medium, else referral"},
	{Name: ComputedLastTouchCampaign, Kind: KindText, Description: "last touch: utm campaign name"},
	{Name: ComputedLastTouchReferrer, Kind: KindText, Description: "last touch: referrer host"},
	{Name: ComputedLifecycleStage, Kind: KindText, TimeSensitive: true, Values: LifecycleStages(), Description: "visitor, subscriber, first_time_buyer, repeat, loyal, at_risk or lapsed"},
	{Name: ComputedCLV, Kind: KindNumber, TimeSensitive: true, Description: "avg_order_value × orders per year × 3 years"},
}

// ComputedTraits returns the built-in computed traits, in a fixed order
// (a deep copy: the caller may change it).
func ComputedTraits() []ComputedTrait {
	out := slices.Clone(catalog)
	for i := range out {
		out[i].Values = slices.Clone(out[i].Values)
	}
	return out
}

// LookupComputed returns the built-in computed trait of that name.
func LookupComputed(name string) (ComputedTrait, bool) {
	for _, t := range catalog {
		if t.Name == name {
			t.Values = slices.Clone(t.Values)
			return t, true
		}
	}
	return ComputedTrait{}, false
}

// computedKind is the kind of a computed value: the catalog's, else a
// number (a caller's own computed values, KnownNames.Computed, are numbers).
func computedKind(name string) ComputedKind {
	for i := range catalog {
		if catalog[i].Name == name {
			return catalog[i].Kind
		}
	}
	return KindNumber
}

// computedValues is the fixed value set of a computed text, or nil.
func computedValues(name string) []string {
	for i := range catalog {
		if catalog[i].Name == name {
			return catalog[i].Values
		}
	}
	return nil
}

// ComputedNames returns the names of the built-in computed traits: the
// default of KnownNames.Computed. It returns a new slice on every call.
func ComputedNames() []string {
	out := make([]string, len(catalog))
	for i, t := range catalog {
		out[i] = t.Name
	}
	return out
}

// timeSensitiveComputed reports whether a computed value changes with the
// passing of time alone: as the catalog says for built-in ones; for a
// caller's own, by convention every "days_since_*" value and every rolling
// window ending in _<digits><m|h|d|w>.
func timeSensitiveComputed(name string) bool {
	for i := range catalog {
		if catalog[i].Name == name {
			return catalog[i].TimeSensitive
		}
	}
	if strings.HasPrefix(name, "days_since_") {
		return true
	}
	i := strings.LastIndexByte(name, '_')
	if i < 0 {
		return false
	}
	_, ok := ParseDuration(name[i+1:])
	return ok
}

// testStr is test for a text value, without boxing it.
func (c *ccmp) testStr(s string, ok bool) bool {
	if c.op == cExists {
		return ok == c.exists
	}
	if !ok {
		return false
	}
	switch c.op {
	case cEq:
		return c.l.eqStr(s)
	case cNe:
		return !c.l.eqStr(s)
	case cIn:
		for i := range c.list {
			if c.list[i].eqStr(s) {
				return true
			}
		}
		return false
	case cGt, cGte, cLt, cLte:
		r, ok := c.l.orderStr(s)
		return ok && ordered(c.op, r)
	case cContains:
		return c.l.kind == litStr && strings.Contains(s, c.l.str)
	}
	return false
}

// eqStr is eq for a string value (times compare as instants).
func (l *lit) eqStr(s string) bool {
	if l.kind != litStr {
		return false
	}
	if s == l.str {
		return true
	}
	if l.isTime {
		if sec, nsec, ok := parseTime(s); ok {
			return sec == l.sec && nsec == l.nsec
		}
	}
	return false
}

// orderStr is order for a string value.
func (l *lit) orderStr(s string) (int, bool) {
	if l.kind != litStr {
		return 0, false
	}
	if l.isTime {
		if sec, nsec, ok := parseTime(s); ok {
			switch {
			case sec < l.sec || sec == l.sec && nsec < l.nsec:
				return -1, true
			case sec == l.sec && nsec == l.nsec:
				return 0, true
			}
			return 1, true
		}
	}
	return strings.Compare(s, l.str), true
}

func allTestStr(cmps []ccmp, s string, ok bool) bool {
	for i := range cmps {
		if !cmps[i].testStr(s, ok) {
			return false
		}
	}
	return true
}
