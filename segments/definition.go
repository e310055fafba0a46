package segments

import (
	"strconv"
	"time"

	"github.com/custody-cdp/custody/policies"
)

// Definition is a segment definition: who is in the segment, and for which
// purpose its members may be used. Parse builds one from JSON or YAML;
// MarshalJSON writes its canonical JSON form, which Parse reads back to an
// equal Definition.
//
// A Definition is plain data: building or changing one in Go is allowed, and
// Compile (or NewSet) validates it again with exact paths.
type Definition struct {
	// Name matches [a-z0-9_-]{1,64}.
	Name string
	// Description is free text, optional, at most 1000 characters.
	Description string
	// Purpose is a purpose key of the policy taxonomy
	// (marketing.communications.email). Every use of the members is
	// gated for this purpose.
	Purpose string
	// Where is the condition a person must satisfy.
	Where Condition
	// Splits, when set, divide the members into groups (a holdout, A/B
	// variants) by a keyed hash (Splitter); sorted by name.
	Splits []Split
}

// Condition is one node of the condition tree. Exactly one operator is set:
// All, Any, Not, Trait, Computed, Event, Top, Bottom or InSegment.
type Condition struct {
	// All is true when every child is (JSON "all"; at least one child).
	All []Condition
	// Any is true when at least one child is (JSON "any"; at least one).
	Any []Condition
	// Not negates its child.
	Not *Condition
	// Trait is a dot path into the person's traits (address.country);
	// numeric segments index arrays (addresses.0.country). Compare holds
	// its comparisons, all of which must hold.
	Trait string
	// Computed names a computed value (ComputedNames); Compare holds its
	// comparisons, whose operands have the value's kind (ComputedKind:
	// numbers, strings, or RFC 3339 times).
	Computed string
	// Compare are the comparisons of Trait or Computed, in canonical order
	// (eq, ne, in, gt, gte, lt, lte, exists, contains), one per operator.
	Compare []Comparison
	// Event is an event condition.
	Event *EventCondition
	// Top is true when the person's metric is in the top Percent% of the
	// population (ties included; people without a value excluded).
	Top *Rank
	// Bottom is the same for the bottom Percent%.
	Bottom *Rank
	// InSegment is true when the person is a member of the named segment,
	// which must be in the same Set (or answered by Env.InSegment).
	InSegment string
}

// CmpOp is a comparison operator.
type CmpOp string

// Comparison operators.
const (
	// OpEq: equal. Numbers numerically, strings exactly or, when both are
	// RFC 3339 times, as instants; booleans.
	OpEq CmpOp = "eq"
	// OpNe: present and not equal (a missing value is neither eq nor ne).
	OpNe CmpOp = "ne"
	// OpIn: equal to one element of an array.
	OpIn CmpOp = "in"
	// OpGt, OpGte, OpLt, OpLte order numbers numerically and strings as
	// instants when both are RFC 3339 times, else lexically (byte order).
	OpGt  CmpOp = "gt"
	OpGte CmpOp = "gte"
	OpLt  CmpOp = "lt"
	OpLte CmpOp = "lte"
	// OpExists: true checks presence (JSON null counts as absent), false
	// absence.
	OpExists CmpOp = "exists"
	// OpContains: substring of a string value, or equal to an element of
	// an array value.
	OpContains CmpOp = "contains"
)

// cmpRank is the canonical order of comparison operators; -1 for unknown.
func cmpRank(op CmpOp) int {
	switch op {
	case OpEq:
		return 0
	case OpNe:
		return 1
	case OpIn:
		return 2
	case OpGt:
		return 3
	case OpGte:
		return 4
	case OpLt:
		return 5
	case OpLte:
		return 6
	case OpExists:
		return 7
	case OpContains:
		return 8
	}
	return -1
}

// Comparison is one comparison. Value is a float64, string or bool; a
// []any of those for OpIn; a bool for OpExists.
type Comparison struct {
	Op    CmpOp
	Value any
}

// EventCondition matches the person's events of one name. The window
// modifiers (Within, Before, After) and Where select events; all given
// modifiers must hold. Events later than the evaluation time are never
// selected. Without Aggregate, First or Last the condition means "at least
// one selected event".
type EventCondition struct {
	// Name is the event name (Order Completed).
	Name string
	// Within selects events in (now-Within, now].
	Within Duration
	// Before selects events at or before now-Before: the complement of
	// Within in the past, so the instant now-D belongs to before, not to
	// within.
	Before Duration
	// After selects events strictly after an instant, or strictly after
	// now-Ago.
	After *Instant
	// Where filters on the event's properties.
	Where *PropertyFilter
	// Aggregate is a count, sum, avg, min or max over the selected events.
	Aggregate *Aggregate
	// First constrains the earliest selected event; false when none.
	First *Recency
	// Last constrains the latest selected event; false when none.
	Last *Recency
}

// Instant is an absolute time (Time) or a time relative to the evaluation
// time (Ago before now). Exactly one is set.
type Instant struct {
	Time time.Time
	Ago  Duration
}

// PropertyFilter is the "where" of an event condition: every property test,
// every All child, at least one Any child and not the Not child must hold.
//
//	"where": {"properties.coupon": {"exists": true},
//	          "context.campaign.medium": {"in": ["paid_social"]},
//	          "any": [{"properties.total": {"gte": 50}}, {"properties.vip": {"eq": true}}]}
type PropertyFilter struct {
	// Props are tests of properties and context fields, sorted by Path.
	Props []PropertyTest
	All   []PropertyFilter
	Any   []PropertyFilter
	Not   *PropertyFilter
}

// PropertyTest compares one property or context field. Path starts with
// "properties." and continues as a dot path into the event's properties,
// or starts with "context." and continues into the event's context
// (context.campaign.source, context.page.referrer, context.locale).
type PropertyTest struct {
	Path    string
	Compare []Comparison
}

// AggFunc is an aggregate function.
type AggFunc string

// Aggregate functions. Sum, avg, min and max read a numeric property and
// skip events without one; the sum of nothing is 0, and avg, min and max of
// nothing are absent (every comparison false).
const (
	AggCount AggFunc = "count"
	AggSum   AggFunc = "sum"
	AggAvg   AggFunc = "avg"
	AggMin   AggFunc = "min"
	AggMax   AggFunc = "max"
)

// Aggregate compares an aggregate of the selected events.
type Aggregate struct {
	Func AggFunc
	// Property is the property path, relative to properties (total); a
	// leading "properties." is accepted and dropped. Empty for count.
	Property string
	// Compare are numeric comparisons (eq, ne, in, gt, gte, lt, lte).
	Compare []Comparison
}

// Recency constrains the time of the first or last selected event.
type Recency struct {
	// OlderThan: at or before now-OlderThan.
	OlderThan Duration
	// NewerThan: strictly after now-NewerThan.
	NewerThan Duration
}

// Rank selects the top or bottom Percent% of the population by a metric.
type Rank struct {
	// Percent is in (0, 100].
	Percent float64
	// Of names a computed value (revenue_365d).
	Of string
}

// Metric is a computed value a top or bottom condition ranks people by.
type Metric string

// Duration is a span written <n><unit>: 30m, 12h, 3d, 2w. The unit is kept
// so that a definition re-marshals as written. The zero Duration is "not
// set".
type Duration struct {
	N    int64
	Unit byte // 'm', 'h', 'd' or 'w'
}

// MaxDuration is the longest duration a definition may use.
const MaxDuration = 100 * 365 * 24 * time.Hour

// IsZero reports whether d is unset.
func (d Duration) IsZero() bool { return d.N == 0 && d.Unit == 0 }

// Std returns d as a time.Duration (0 for a malformed d).
func (d Duration) Std() time.Duration {
	u := unitDuration(d.Unit)
	if u == 0 || d.N <= 0 || d.N > int64(MaxDuration/u) {
		return 0
	}
	return time.Duration(d.N) * u
}

// String returns the canonical text: 3d.
func (d Duration) String() string {
	if d.Unit == 0 {
		return strconv.FormatInt(d.N, 10)
	}
	return strconv.FormatInt(d.N, 10) + string(rune(d.Unit))
}

func unitDuration(u byte) time.Duration {
	switch u {
	case 'm':
		return time.Minute
	case 'h':
		return time.Hour
	case 'd':
		return 24 * time.Hour
	case 'w':
		return 7 * 24 * time.Hour
	}
	return 0
}

// ParseDuration parses <positive integer><m|h|d|w>, at most MaxDuration.
func ParseDuration(s string) (Duration, bool) {
	if len(s) < 2 || len(s) > 12 {
		return Duration{}, false
	}
	u := s[len(s)-1]
	if unitDuration(u) == 0 {
		return Duration{}, false
	}
	digits := s[:len(s)-1]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return Duration{}, false
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n <= 0 {
		return Duration{}, false
	}
	d := Duration{N: n, Unit: u}
	if d.Std() == 0 {
		return Duration{}, false
	}
	return d, true
}

// KnownNames are the names a definition is checked against.
type KnownNames struct {
	// Purpose reports whether a purpose key is valid, e.g.
	// (*policies.Engine).ValidPurpose. Nil means policies.ValidPurpose,
	// the built-in taxonomy.
	Purpose func(string) bool
	// Computed are the computed values the caller provides per person.
	// Nil means ComputedNames(); an empty non-nil slice allows none.
	Computed []string
}

func (k KnownNames) purposeOK(p string) bool {
	if k.Purpose == nil {
		return policies.ValidPurpose(p)
	}
	return k.Purpose(p)
}

func (k KnownNames) computedOK(name string) bool {
	list := k.Computed
	if list == nil {
		list = ComputedNames()
	}
	for _, c := range list {
		if c == name {
			return true
		}
	}
	return false
}
