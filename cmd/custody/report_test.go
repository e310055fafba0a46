package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core"
)

func TestPrintSegmentReport(t *testing.T) {
	g := func(people, buyers int) core.GroupFigures {
		return core.GroupFigures{People: people, Buyers: buyers, ConversionRate: float64(buyers) / float64(people)}
	}
	r := core.SegmentReport{
		Segment: "winback", Purpose: "marketing.communications.email",
		Since: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		People: 10, NotConsented: 2, Members: g(8, 5), NonMembers: g(2, 1),
		Splits: &core.SplitReport{Baseline: "holdout", Groups: map[string]core.GroupFigures{"treatment": g(4, 3), "holdout": g(4, 2)},
			Comparisons: []core.SplitComparison{{Group: "treatment", Baseline: "holdout",
				ConversionRate:   core.Difference{Estimate: 0.25, CI95: &[2]float64{-0.398197, 0.898197}},
				RevenuePerPerson: core.Difference{Estimate: 32.5, Note: "too few people in a group for an interval (at least 2 each)"}}},
			Method: "test"},
		Movement: core.Movement{From: map[string]int{"repeat": 1}, To: map[string]int{}},
		Days:     []core.DayFlow{{Day: "2026-10-01"}, {Day: "2026-10-15", Entered: 1, Exited: 2}},
	}
	var b bytes.Buffer
	printSegmentReport(&b, r)
	out := b.String()
	for _, want := range []string{
		"winback (purpose marketing.communications.email), 2026-10-01 00:00 to 2026-10-31 23:59 UTC",
		"10 people allowed for the purpose; 2 left out for lack of consent",
		"conversion rate                62.5 %         50.0 %",
		"treatment        holdout",
		"conversion rate     +25.0 pts (95% CI -39.8 to +89.8 pts; not significant: the interval includes 0)",
		"revenue per person  +32.50 (no interval: too few people",
		"movement: came from repeat 1; moved on to none",
		"  2026-10-15  +1  -2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "2026-10-01  +0") {
		t.Errorf("days without changes are listed:\n%s", out)
	}
}
