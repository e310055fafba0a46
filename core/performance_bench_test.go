package core

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/event"
)

// BenchmarkSegmentReport times a segment report (members vs non-members,
// a 90/10 split compared, movement, days) over a store of
// CUSTODY_REPORT_PEOPLE people (default 20,000; make bench uses 200,000,
// the figure is 1,000,000) with about 4 orders and refunds each
// over 400 days, in mixed jurisdictions and consent states. "cold" starts
// with no event digest in memory (every event decrypted once), "warm"
// reads the digests the previous pass built. Prints the size used,
// seconds per report and people/s.
func BenchmarkSegmentReport(b *testing.B) {
	people := 20000
	if v, err := strconv.Atoi(os.Getenv("CUSTODY_REPORT_PEOPLE")); err == nil && v > 0 {
		people = v
	}
	cfg := DefaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.Segments.LiveDelay = 0 // memberships from the refreshes below
	ctx := context.Background()
	if err := Init(ctx, cfg, Options{}); err != nil {
		b.Fatal(err)
	}
	c, err := Open(ctx, cfg, Options{Now: func() time.Time { return fixedNow }})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	rng := rand.New(rand.NewSource(5))
	countries := []string{`"DE"`, `"FR"`, `"GB"`, `"US","state":"CA"`, `"US","state":"NY"`, `"JP"`}
	var batch []event.Message
	msgs := 0
	add := func(body string) {
		m, err := event.DecodeMessage([]byte(body), "", fixedNow)
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, m)
		msgs++
		if len(batch) >= 2000 {
			if _, err := c.Ingest(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for i := 0; i < people; i++ {
		prefs := ""
		if rng.Intn(2) == 0 {
			prefs = `,"context":{"consent":{"categoryPreferences":{"email":true}}}`
		}
		add(fmt.Sprintf(`{"type":"identify","messageId":"i%d","userId":"u%d","traits":{"email":"p%d@example.com","address":{"country":%s}}%s,"timestamp":"2025-09-01T00:00:00Z"}`,
			i, i, i, countries[rng.Intn(len(countries))], prefs))
		for o, n := 0, rng.Intn(9); o < n; o++ {
			at := fixedNow.Add(-time.Duration(rng.Int63n(int64(400 * 24 * time.Hour))))
			add(fmt.Sprintf(`{"type":"track","messageId":"o%d-%d","userId":"u%d","event":"Order Completed","properties":{"revenue":%d},"timestamp":%q}`,
				i, o, i, 10+rng.Intn(200), at.Format(time.RFC3339)))
			if rng.Intn(20) == 0 {
				add(fmt.Sprintf(`{"type":"track","messageId":"r%d-%d","userId":"u%d","event":"Order Refunded","timestamp":%q}`, i, o, i, at.Add(72*time.Hour).Format(time.RFC3339)))
			}
		}
	}
	if len(batch) > 0 {
		if _, err := c.Ingest(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"winback","purpose":"marketing.communications.email",
		"where":{"all":[{"event":"Order Completed"},{"not":{"event":"Order Completed","within":"60d"}}]},
		"splits":{"treatment":90,"holdout":10}}`)); err != nil {
		b.Fatal(err)
	}
	since := fixedNow.AddDate(0, 0, -30)
	for _, at := range []time.Time{since, fixedNow} {
		if _, err := c.RefreshSegment(ctx, "winback", at); err != nil {
			b.Fatal(err)
		}
	}
	fmt.Printf("segment report store: %d people (CUSTODY_REPORT_PEOPLE), %d messages, built and refreshed twice in %.1fs\n", people, msgs, time.Since(start).Seconds())
	for _, mode := range []string{"cold", "warm"} {
		b.Run(mode, func(b *testing.B) {
			var rep SegmentReport
			for i := 0; i < b.N; i++ {
				if mode == "cold" {
					b.StopTimer()
					dropNodeEntries(c, false, true)
					b.StartTimer()
				}
				if rep, err = c.SegmentReport(ctx, "winback", since, fixedNow); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(sec, "s/report")
			b.ReportMetric(float64(rep.People+rep.NotConsented)/sec, "people/s")
			b.Logf("%s: %d people (%d allowed, %d members, %d not consented): %.2fs a report", mode,
				rep.People+rep.NotConsented, rep.People, rep.Members.People, rep.NotConsented, sec)
		})
	}
}
