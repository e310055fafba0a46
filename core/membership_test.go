package core

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/store"
)

func TestSegmentMembershipOverTime(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	ingestAll(t, c,
		`{"type":"identify","messageId":"1","userId":"a","traits":{"email":"a@example.com","address":{"country":"US","state":"CA"}},"timestamp":"2026-06-01T00:00:00Z"}`,
		`{"type":"track","messageId":"2","userId":"a","event":"Order Completed","properties":{"total":10},"timestamp":"2026-06-02T00:00:00Z"}`,
		`{"type":"identify","messageId":"3","userId":"b","traits":{"email":"b@example.com","address":{"country":"US","state":"CA"}},"timestamp":"2026-06-01T00:00:00Z"}`,
		`{"type":"track","messageId":"4","userId":"b","event":"Order Completed","properties":{"total":10},"timestamp":"2026-09-20T00:00:00Z"}`,
	)
	for _, tmpl := range []string{"at_risk", "first_time_buyers"} {
		if _, err := c.ApplyTemplate(ctx, tmpl, nil); err != nil {
			t.Fatal(err)
		}
	}
	day := func(s string) time.Time { t, _ := time.Parse("2006-01-02", s); return t }
	steps := []struct {
		now              string
		members, entered int
		exited           int
	}{
		{"2026-09-25", 1, 1, 0}, // a: last order 115 days ago
		{"2026-09-26", 1, 0, 0}, // nothing changes
		{"2026-12-20", 2, 1, 0}, // b too: 91 days
	}
	for _, st := range steps {
		rep, err := c.RefreshSegment(ctx, "at_risk", day(st.now))
		if err != nil || rep.Allowed != st.members || rep.Entered != st.entered || rep.Exited != st.exited {
			t.Fatalf("%s: %+v %v", st.now, rep, err)
		}
	}
	// b opts out of email marketing (California): b leaves the segment.
	consentSet(t, c, "b@example.com", "marketing.communications.email", "denied", "2026-12-21T00:00:00Z", nil)
	rep, err := c.RefreshSegment(ctx, "at_risk", day("2026-12-22"))
	if err != nil || rep.Allowed != 1 || rep.Exited != 1 || rep.NotConsented != 1 {
		t.Fatalf("after opt-out: %+v %v", rep, err)
	}
	// The sweep at the same instant rewrites the same history point.
	if _, err := c.RefreshAll(ctx, day("2026-12-22")); err != nil {
		t.Fatal(err)
	}
	show, err := c.ShowSegment(ctx, "at_risk")
	if err != nil || show.Members != 1 || len(show.History) != 4 || show.Overlap["first_time_buyers"] != 1 {
		t.Fatalf("show: %+v %v", show, err)
	}
	if show.History[2].Members != 2 || show.History[3].NotConsented != 1 {
		t.Fatalf("history: %+v", show.History)
	}
}

func TestDeleteSegment(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	ingestAll(t, c, `{"type":"track","messageId":"1","userId":"a","event":"Order Completed","properties":{"total":1}}`)
	for _, d := range []string{
		`{"name":"base","purpose":"essential.service","where":{"event":"Order Completed"}}`,
		`{"name":"derived","purpose":"essential.service","where":{"in_segment":"base"}}`,
	} {
		if _, err := c.ApplySegmentData(ctx, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.RefreshAll(ctx, fixedNow); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSegment(ctx, "base"); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("deleting a referenced segment: %v", err)
	}
	for _, n := range []string{"derived", "base"} {
		if err := c.DeleteSegment(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.ShowSegment(ctx, "base"); !errors.Is(err, ErrSegmentNotFound) {
		t.Fatal(err)
	}
	n := 0
	_ = c.store.View(ctx, func(tx *store.Txn) error {
		for _, p := range []store.Prefix{store.PrefixMembership, store.PrefixSizes, store.PrefixSegmentDef, store.PrefixFlow} {
			_ = tx.Scan([]byte(p), store.ScanOptions{KeysOnly: true}, func(_, _ []byte) error { n++; return nil })
		}
		return nil
	})
	if n != 0 {
		t.Fatalf("%d keys left", n)
	}
}
