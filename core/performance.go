package core

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/policies"
	"github.com/custody-cdp/custody/segments"
)

// Segment performance reports: how a segment's members did over a period
// compared with everyone else, and, for a segment with splits, how each
// group did compared with the holdout. Counts and sums only: a report names
// no one.
//
// Who is counted. Every person is read through the policy gate for the
// segment's purpose as of now (segments.Measure); those it denies are only
// counted (NotConsented) and are in no figure. Of the allowed people, a
// person is a member for the period when one of their membership intervals
// of the segment, [entered, exited) as recorded by the live updater and
// the refreshes (s/ records, with up to 8 earlier intervals: flow.go),
// overlaps [since, until); everyone else allowed is a non-member. So the
// figures depend on the refreshes made: membership is what was recorded,
// not what a new evaluation would say today.
//
// What is counted, per person, from events with since <= time < until:
// orders (Order Completed) and their revenue (the "revenue" property, else
// "total", as sent: currencies are not converted), refunds (Order Refunded
// events). Buyers are people with at least one order; conversion rate is
// buyers / people; orders and revenue per person divide by people; average
// order value is revenue / orders; repeat-purchase rate is the share of
// buyers with two or more orders in the period; refund rate is refunds /
// orders.
//
// Entered and exited per day and movements between segments come from the
// per-day flow counters (flow.go) of the UTC days the period touches.

// MaxReportDays bounds a report's period.
const MaxReportDays = 3660

// SegmentReport is a segment's performance over [Since, Until).
type SegmentReport struct {
	Segment     string    `json:"segment"`
	Purpose     string    `json:"purpose"`
	Since       time.Time `json:"since"`
	Until       time.Time `json:"until"`
	GeneratedAt time.Time `json:"generated_at"`
	// People counts everyone the gate allowed for the purpose: members
	// plus non-members.
	People int `json:"people"`
	// NotConsented counts the people the gate denied: in no figure.
	NotConsented int          `json:"not_consented"`
	Members      GroupFigures `json:"members"`
	NonMembers   GroupFigures `json:"non_members"`
	// Splits compares the members' groups (absent without splits).
	Splits *SplitReport `json:"splits,omitempty"`
	// Movement: people entering this segment who came from another one,
	// and people entering another segment who came from this one (flow.go).
	Movement Movement `json:"movement"`
	// Days are the UTC days the period touches, with the people who
	// entered and left the segment that day.
	Days       []DayFlow `json:"days"`
	BundleHash string    `json:"bundle_hash"`
}

// GroupFigures are the figures of one group of people over the period.
type GroupFigures struct {
	People             int     `json:"people"`
	Buyers             int     `json:"buyers"`
	ConversionRate     float64 `json:"conversion_rate"`
	Orders             int     `json:"orders"`
	OrdersPerPerson    float64 `json:"orders_per_person"`
	Revenue            float64 `json:"revenue"`
	RevenuePerPerson   float64 `json:"revenue_per_person"`
	AverageOrderValue  float64 `json:"average_order_value"`
	RepeatBuyers       int     `json:"repeat_buyers"`
	RepeatPurchaseRate float64 `json:"repeat_purchase_rate"`
	Refunds            int     `json:"refunds"`
	RefundRate         float64 `json:"refund_rate"`

	rev running // revenue per person, for Welch's interval
}

// SplitReport compares the groups of a segment's splits, among the
// members of the period.
type SplitReport struct {
	// Baseline is the group the others are compared with
	// (segments.BaselineGroup: holdout, else control, else the first).
	Baseline    string                  `json:"baseline"`
	Groups      map[string]GroupFigures `json:"groups"`
	Comparisons []SplitComparison       `json:"comparisons"`
	Method      string                  `json:"method"`
}

// SplitComparison is one group against the baseline.
type SplitComparison struct {
	Group    string `json:"group"`
	Baseline string `json:"baseline"`
	// ConversionRate is the group's conversion rate minus the baseline's.
	ConversionRate Difference `json:"conversion_rate_difference"`
	// RevenuePerPerson is the group's revenue per person minus the
	// baseline's.
	RevenuePerPerson Difference `json:"revenue_per_person_difference"`
}

// Difference is an estimate with its 95% confidence interval.
type Difference struct {
	Estimate float64 `json:"estimate"`
	// CI95 is [low, high]; absent when it cannot be computed (Note says
	// why).
	CI95 *[2]float64 `json:"ci95,omitempty"`
	// Significant: the interval excludes zero.
	Significant bool   `json:"significant"`
	Note        string `json:"note,omitempty"`
}

// Movement counts moves between segments in the period (flow.go).
type Movement struct {
	// From: segment -> people who entered this segment from it.
	From map[string]int `json:"from"`
	// To: segment -> people who entered it from this segment.
	To map[string]int `json:"to"`
}

// DayFlow is one UTC day of a segment's flow.
type DayFlow struct {
	Day     string `json:"day"` // 2006-01-02
	Entered int    `json:"entered"`
	Exited  int    `json:"exited"`
}

const splitMethod = "conversion rate: normal approximation (Wald) for the difference of two proportions; " +
	"revenue per person: Welch's t interval for the difference of two means (Welch–Satterthwaite degrees of freedom); 95%"

// SegmentReport reports the named segment's performance over [since,
// until) (zero until: now; zero since: 30 days before until).
func (c *CDP) SegmentReport(ctx context.Context, name string, since, until time.Time) (SegmentReport, error) {
	now := c.now().UTC()
	if until.IsZero() {
		until = now
	}
	if since.IsZero() {
		since = until.AddDate(0, 0, -30)
	}
	since, until = since.UTC(), until.UTC()
	if !since.Before(until) {
		return SegmentReport{}, fmt.Errorf("%w: the period's start (%s) must be before its end (%s)", ErrInvalidInput,
			since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	if until.Sub(since) > MaxReportDays*24*time.Hour {
		return SegmentReport{}, fmt.Errorf("%w: a report covers at most %d days", ErrInvalidInput, MaxReportDays)
	}
	set, err := c.segmentSet(ctx, name)
	if err != nil {
		return SegmentReport{}, err
	}
	def := set.Get(name).Definition()
	split, err := c.splitter(def)
	if err != nil {
		return SegmentReport{}, err
	}
	rep := SegmentReport{Segment: name, Purpose: def.Purpose, Since: since, Until: until, GeneratedAt: now,
		Movement: Movement{From: map[string]int{}, To: map[string]int{}}, Days: []DayFlow{}, BundleHash: c.engine.BundleHash()}
	groups := map[string]*GroupFigures{}
	if split != nil {
		for _, g := range split.Groups() {
			groups[g] = &GroupFigures{}
		}
	}
	var members, others GroupFigures
	err = c.store.View(ctx, func(tx *store.Txn) error {
		recs, err := membershipRecords(tx, name)
		if err != nil {
			return err
		}
		var scanErr error
		res, err := segments.Measure(ctx, def.Purpose, c.people(ctx, tx, until, set, def.Purpose, nil, &scanErr),
			gate{c: c, role: policies.RoleMarketer}, func(cand segments.Candidate) error {
				pv, ok := cand.Person.(*personView)
				if !ok {
					return errors.New("report: unknown person type")
				}
				member := false
				for _, m := range pv.members {
					if r, ok := recs[m]; ok && r.overlaps(since, until) {
						member = true
						break
					}
				}
				var p personPeriod
				for _, m := range pv.members {
					d, names, err := c.digestOf(ctx, m)
					if err != nil {
						return err
					}
					p.add(d, names, since, until)
				}
				if !member {
					others.add(p)
					return nil
				}
				members.add(p)
				if split != nil {
					groups[split.Group(pv.root[:])].add(p)
				}
				return nil
			})
		if err = errors.Join(err, scanErr); err != nil {
			return err
		}
		rep.People, rep.NotConsented = res.Allowed, res.Denied
		return c.readFlow(tx, name, since, until, &rep)
	})
	if err != nil {
		return SegmentReport{}, fmt.Errorf("report %s: %w", name, err)
	}
	rep.Members, rep.NonMembers = members.finish(), others.finish()
	if split != nil {
		rep.Splits = compareGroups(groups, segments.BaselineGroup(def.Splits), split.Groups())
	}
	c.markUsed(ctx, name, useReported)
	return rep, c.record(ctx, "segment.report", map[string]any{"segment": name, "purpose": rep.Purpose,
		"since": since, "until": until, "people": rep.People, "members": rep.Members.People,
		"not_consented": rep.NotConsented, "bundle_hash": rep.BundleHash})
}

// membershipRecords reads every record of a segment, by profile id.
func membershipRecords(tx *store.Txn, seg string) (map[uuid.UUID]membershipRecord, error) {
	out := map[uuid.UUID]membershipRecord{}
	prefix := store.MembershipPrefix(seg)
	err := tx.Scan(prefix, store.ScanOptions{}, func(k, v []byte) error {
		if len(k) != len(prefix)+16 {
			return nil
		}
		var m membershipRecord
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("membership record: %w", err)
		}
		out[uuid.UUID(k[len(prefix):])] = m
		return nil
	})
	return out, err
}

// personPeriod is one person's orders and refunds in the period.
type personPeriod struct {
	orders, refunds int
	revenue         float64
}

func (p *personPeriod) add(d digest, names []string, since, until time.Time) {
	s, u := since.UnixNano(), until.UnixNano()
	for e := d.iter(); e.next(); {
		if e.at < s || e.at >= u {
			continue
		}
		switch names[e.name] {
		case orderCompleted:
			p.orders++
			p.revenue += e.rev
		case orderRefunded:
			p.refunds++
		}
	}
}

func (g *GroupFigures) add(p personPeriod) {
	g.People++
	g.Orders += p.orders
	g.Revenue += p.revenue
	g.Refunds += p.refunds
	if p.orders > 0 {
		g.Buyers++
	}
	if p.orders > 1 {
		g.RepeatBuyers++
	}
	g.rev.add(p.revenue)
}

// finish fills the rates (0 where the denominator is 0), rounded to six
// decimals so that reports compare exactly across machines.
func (g GroupFigures) finish() GroupFigures {
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return round6(a / b)
	}
	g.ConversionRate = div(float64(g.Buyers), float64(g.People))
	g.OrdersPerPerson = div(float64(g.Orders), float64(g.People))
	g.RevenuePerPerson = div(g.Revenue, float64(g.People))
	g.AverageOrderValue = div(g.Revenue, float64(g.Orders))
	g.RepeatPurchaseRate = div(float64(g.RepeatBuyers), float64(g.Buyers))
	g.RefundRate = div(float64(g.Refunds), float64(g.Orders))
	g.Revenue = round6(g.Revenue)
	return g
}

func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }

// compareGroups compares every group with the baseline.
func compareGroups(groups map[string]*GroupFigures, baseline string, order []string) *SplitReport {
	out := &SplitReport{Baseline: baseline, Groups: map[string]GroupFigures{}, Comparisons: []SplitComparison{}, Method: splitMethod}
	for n, g := range groups {
		out.Groups[n] = g.finish()
	}
	b := groups[baseline]
	for _, n := range order {
		if n == baseline {
			continue
		}
		g := groups[n]
		cmp := SplitComparison{Group: n, Baseline: baseline}
		d, lo, hi, ok := proportionDiffCI(g.Buyers, g.People, b.Buyers, b.People)
		cmp.ConversionRate = difference(d, lo, hi, ok, g.People, b.People)
		d, lo, hi, ok = meanDiffCI(g.rev, b.rev)
		cmp.RevenuePerPerson = difference(d, lo, hi, ok, g.People, b.People)
		out.Comparisons = append(out.Comparisons, cmp)
	}
	return out
}

func difference(d, lo, hi float64, ok bool, n1, n2 int) Difference {
	out := Difference{Estimate: round6(d)}
	switch {
	case ok:
		out.CI95 = &[2]float64{round6(lo), round6(hi)}
		out.Significant = lo > 0 || hi < 0
	case n1 < 2 || n2 < 2:
		out.Note = "too few people in a group for an interval (at least 2 each)"
	default:
		out.Note = "no variation in either group: no interval"
	}
	return out
}

// readFlow fills the days and movements from the sf/ records of the UTC
// days of [since, until).
func (c *CDP) readFlow(tx *store.Txn, name string, since, until time.Time, rep *SegmentReport) error {
	first, last := unixDay(since), unixDay(until.Add(-time.Nanosecond))
	days := map[int64]flowDay{}
	err := tx.Scan([]byte(store.PrefixFlow), store.ScanOptions{}, func(k, v []byte) error {
		rest := k[len(store.PrefixFlow):]
		if len(rest) < 6 || rest[len(rest)-5] != '/' {
			return nil
		}
		seg := string(rest[:len(rest)-5])
		day := int64(binary.BigEndian.Uint32(rest[len(rest)-4:]))
		if day < first || day > last {
			return nil
		}
		var f flowDay
		if err := json.Unmarshal(v, &f); err != nil {
			return fmt.Errorf("segment flow record: %w", err)
		}
		if seg == name {
			days[day] = f
			for a, n := range f.From {
				rep.Movement.From[a] += n
			}
		} else if n := f.From[name]; n > 0 {
			rep.Movement.To[seg] += n
		}
		return nil
	})
	if err != nil {
		return err
	}
	for d := first; d <= last; d++ {
		f := days[d]
		rep.Days = append(rep.Days, DayFlow{Day: time.Unix(d*86400, 0).UTC().Format("2006-01-02"), Entered: f.Entered, Exited: f.Exited})
	}
	return nil
}

// ParseReportTime reads a report bound: an RFC 3339 time, or a date
// (2006-01-02, UTC). A date as the end of a period (end) includes that
// whole day: it means the next midnight.
func ParseReportTime(s string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return t, fmt.Errorf("%w: %q is neither a date (2006-01-02) nor an RFC 3339 time", ErrInvalidInput, clipInput(s))
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}

// clipInput bounds input quoted back in an error.
func clipInput(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
