package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/custody-cdp/custody/core"
)

func segmentReportCommand() *cli.Command {
	return &cli.Command{
		Name: "report",
		Usage: "a segment's performance over a period: members vs non-members, split groups vs the holdout (95% intervals), " +
			"movement between segments, entered/exited per day (counts only)",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "since", Usage: "start of the period: a date (2006-01-02, UTC) or RFC3339 time (default: 30 days before --until)"},
			&cli.StringFlag{Name: "until", Usage: "end of the period, exclusive; a date includes that day (default: now)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("segment report needs exactly one NAME", exitUsage)
			}
			since, err := core.ParseReportTime(c.String("since"), false)
			if err != nil {
				return cli.Exit("--since: "+err.Error(), exitUsage)
			}
			until, err := core.ParseReportTime(c.String("until"), true)
			if err != nil {
				return cli.Exit("--until: "+err.Error(), exitUsage)
			}
			return withBackend(c, func(b backend) (core.SegmentReport, error) {
				return b.SegmentReport(c.Context, c.Args().First(), since, until)
			}, printSegmentReport)
		},
	}
}

// printSegmentReport renders a report for a terminal.
func printSegmentReport(w io.Writer, r core.SegmentReport) {
	last := r.Until
	if last.Equal(last.Truncate(24 * time.Hour)) {
		last = last.Add(-time.Nanosecond)
	}
	fmt.Fprintf(w, "%s (purpose %s), %s to %s UTC\n", r.Segment, r.Purpose, r.Since.Format("2006-01-02 15:04"), last.Format("2006-01-02 15:04"))
	fmt.Fprintf(w, "%d people allowed for the purpose; %d left out for lack of consent (in no figure)\n\n", r.People, r.NotConsented)
	printFigures(w, []string{"members", "non-members"}, []core.GroupFigures{r.Members, r.NonMembers})
	if s := r.Splits; s != nil {
		names := slices.Sorted(maps.Keys(s.Groups))
		// The baseline last, next to the groups compared with it.
		names = append(slices.DeleteFunc(names, func(n string) bool { return n == s.Baseline }), s.Baseline)
		figs := make([]core.GroupFigures, len(names))
		for i, n := range names {
			figs[i] = s.Groups[n]
		}
		fmt.Fprintf(w, "\nsplits (members of the period, by group):\n")
		printFigures(w, names, figs)
		for _, cmp := range s.Comparisons {
			fmt.Fprintf(w, "%s vs %s:\n", cmp.Group, cmp.Baseline)
			fmt.Fprintf(w, "  conversion rate     %s\n", formatDifference(cmp.ConversionRate, 100, " pts", 1))
			fmt.Fprintf(w, "  revenue per person  %s\n", formatDifference(cmp.RevenuePerPerson, 1, "", 2))
		}
		fmt.Fprintf(w, "(%s)\n", s.Method)
	}
	fmt.Fprintf(w, "\nmovement: came from %s; moved on to %s\n", formatCountMap(r.Movement.From), formatCountMap(r.Movement.To))
	fmt.Fprintln(w, "entered / left per day (days with changes):")
	any := false
	for _, d := range r.Days {
		if d.Entered+d.Exited > 0 {
			fmt.Fprintf(w, "  %s  +%d  -%d\n", d.Day, d.Entered, d.Exited)
			any = true
		}
	}
	if !any {
		fmt.Fprintln(w, "  none")
	}
}

func printFigures(w io.Writer, cols []string, figs []core.GroupFigures) {
	pct := func(x float64) string { return fmt.Sprintf("%.1f %%", 100*x) }
	rows := []struct {
		label string
		val   func(g core.GroupFigures) string
	}{
		{"people", func(g core.GroupFigures) string { return fmt.Sprint(g.People) }},
		{"buyers", func(g core.GroupFigures) string { return fmt.Sprint(g.Buyers) }},
		{"conversion rate", func(g core.GroupFigures) string { return pct(g.ConversionRate) }},
		{"orders", func(g core.GroupFigures) string { return fmt.Sprint(g.Orders) }},
		{"orders per person", func(g core.GroupFigures) string { return fmt.Sprintf("%.2f", g.OrdersPerPerson) }},
		{"revenue", func(g core.GroupFigures) string { return fmt.Sprintf("%.2f", g.Revenue) }},
		{"revenue per person", func(g core.GroupFigures) string { return fmt.Sprintf("%.2f", g.RevenuePerPerson) }},
		{"average order value", func(g core.GroupFigures) string { return fmt.Sprintf("%.2f", g.AverageOrderValue) }},
		{"repeat-purchase rate", func(g core.GroupFigures) string { return pct(g.RepeatPurchaseRate) }},
		{"refunds", func(g core.GroupFigures) string { return fmt.Sprintf("%d (%s)", g.Refunds, pct(g.RefundRate)) }},
	}
	fmt.Fprintf(w, "%-22s", "")
	for _, c := range cols {
		fmt.Fprintf(w, " %14s", c)
	}
	fmt.Fprintln(w)
	for _, row := range rows {
		fmt.Fprintf(w, "%-22s", row.label)
		for _, g := range figs {
			fmt.Fprintf(w, " %14s", row.val(g))
		}
		fmt.Fprintln(w)
	}
}

// formatDifference prints an estimate with its interval, scaled (100 for
// percentage points).
func formatDifference(d core.Difference, scale float64, unit string, prec int) string {
	f := func(x float64) string { return fmt.Sprintf("%+.*f", prec, x*scale) }
	if d.CI95 == nil {
		return fmt.Sprintf("%s%s (no interval: %s)", f(d.Estimate), unit, d.Note)
	}
	verdict := "not significant: the interval includes 0"
	if d.Significant {
		verdict = "significant at 95%"
	}
	return fmt.Sprintf("%s%s (95%% CI %s to %s%s; %s)", f(d.Estimate), unit, f(d.CI95[0]), f(d.CI95[1]), unit, verdict)
}

func formatCountMap(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	parts := []string{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
