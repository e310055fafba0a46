package segments

import "strings"

// Computed values core provides per person (Person.Computed). Each is
// computed from the person's Order Completed events (revenue = the
// "revenue" property, else "total"; a discounted order has a non-empty
// "coupon" or a "discount" > 0) at the time of evaluation. "Absent" means
// Computed returns false: every comparison but exists:false is then false,
// and the person is left out of top/bottom populations.
const (
	// ComputedOrderCount is the number of orders, all time; 0 when none
	// (never absent).
	ComputedOrderCount = "order_count"
	// ComputedRevenueTotal is the revenue of all orders; absent when none.
	ComputedRevenueTotal = "revenue_total"
	// ComputedRevenue365d is the revenue of the orders of the last 365 days,
	// (now-365d, now]; absent when there is no such order. Time-sensitive.
	ComputedRevenue365d = "revenue_365d"
	// ComputedDaysSinceLastOrder is the number of whole days (floor) since
	// the latest order; absent when none. Time-sensitive.
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
)

// ComputedNames returns the computed values of the constants above: the
// default of KnownNames.Computed. It returns a new slice on every call.
func ComputedNames() []string {
	return []string{
		ComputedOrderCount,
		ComputedRevenueTotal,
		ComputedRevenue365d,
		ComputedDaysSinceLastOrder,
		ComputedDaysSinceFirstSeen,
		ComputedAvgOrderValue,
		ComputedDiscountOrderShare,
	}
}

// timeSensitiveComputed reports whether a computed value changes with the
// passing of time alone. By convention that is every "days_since_*" value
// and every rolling window ending in _<digits><m|h|d|w> (revenue_365d).
func timeSensitiveComputed(name string) bool {
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
