package core

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/custody-cdp/custody/core/store"
	"github.com/custody-cdp/custody/segments"
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

// TestDeleteSegmentWhileWriting deletes a segment while membership
// writers (a refresh, a live update, a sweep of every segment) and another
// definition change run:
// no record of a deleted segment is left behind, and the stored
// definitions never refer to one that is gone.
func TestDeleteSegmentWhileWriting(t *testing.T) {
	cfg := testConfig(t)
	cfg.Segments.LiveDelay = Duration(time.Hour) // only this test's writers write
	c := openTest(t, cfg)
	ctx := context.Background()
	rng := rand.New(rand.NewSource(5))
	for round := range 3 {
		if _, err := c.Ingest(ctx, randomStream(rng, round, 60, fixedNow)); err != nil {
			t.Fatal(err)
		}
	}
	roots, _ := storeClusters(t, c)
	var nodes []uuid.UUID
	for n := range roots {
		nodes = append(nodes, n)
	}
	const (
		base    = `{"name":"base","purpose":"essential.service","where":{"event":"Order Completed"}}`
		derived = `{"name":"derived","purpose":"essential.service","where":{"in_segment":"base"}}`
	)
	records := func(name string) int {
		n := 0
		_ = c.store.View(ctx, func(tx *store.Txn) error {
			for _, p := range [][]byte{store.MembershipPrefix(name), []byte(string(store.PrefixSizes) + name + "/"), store.FlowPrefix(name)} {
				_ = tx.Scan(p, store.ScanOptions{KeysOnly: true}, func(_, _ []byte) error { n++; return nil })
			}
			return nil
		})
		return n
	}
	// A use record that outlived a segment of the same name (markUsed
	// writing as the segment was deleted) is not the new segment's.
	if err := c.store.Update(ctx, func(tx *store.Txn) error {
		return tx.Set(store.SegmentUseKey("base"), []byte(`{"exported":"2026-01-01T00:00:00Z"}`))
	}); err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		if _, err := c.ApplySegmentData(ctx, []byte(base)); err != nil {
			t.Fatal(err)
		}
		if uses := segmentUses(t, c, "base"); len(uses) != 1 || uses[useApplied].IsZero() {
			t.Fatalf("round %d: a new segment's uses are %v, want only applied", round, uses)
		}
		if round == 0 {
			if _, err := c.RefreshSegment(ctx, "base", fixedNow); err != nil || records("base") == 0 {
				t.Fatalf("no records to delete: the fixture tests nothing (%v)", err)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, 5)
		wg.Go(func() { _, errs[0] = c.RefreshSegment(ctx, "base", fixedNow) })
		wg.Go(func() { _, errs[1] = c.UpdateMemberships(ctx, nodes, fixedNow) })
		wg.Go(func() { _, errs[2] = c.ApplySegmentData(ctx, []byte(derived)) })
		wg.Go(func() { errs[3] = c.DeleteSegment(ctx, "base") })
		wg.Go(func() { _, errs[4] = c.RefreshAll(ctx, fixedNow) }) // skips a segment deleted meanwhile
		wg.Wait()
		for i, err := range errs {
			// The refresh may find base gone; derived may find it gone, or
			// keep it from being deleted.
			if err != nil && !(i == 0 && errors.Is(err, ErrSegmentNotFound)) && !(i >= 2 && errors.Is(err, ErrInvalidInput)) {
				t.Fatalf("round %d, writer %d: %v", round, i, err)
			}
		}
		defs, err := c.Segments(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := segments.NewSet(c.known(), defs...); err != nil {
			t.Fatalf("round %d: the stored definitions are inconsistent: %v", round, err)
		}
		if _, err := c.ShowSegment(ctx, "base"); errors.Is(err, ErrSegmentNotFound) {
			if n := records("base"); n != 0 {
				t.Fatalf("round %d: %d records of the deleted segment left", round, n)
			}
		}
		// A use recorded as the segment goes can outlive it; the next
		// apply starts the record afresh (checked above).
		var use sync.WaitGroup
		use.Go(func() { c.markUsed(ctx, "base", useExported) })
		for _, name := range []string{"derived", "base"} {
			if err := c.DeleteSegment(ctx, name); err != nil && !errors.Is(err, ErrSegmentNotFound) {
				t.Fatal(err)
			}
			if n := records(name); n != 0 {
				t.Fatalf("round %d: %d records of %s left", round, n, name)
			}
		}
		use.Wait()
	}
}

// segmentUses reads a segment's use record (su/<name>), empty if none.
func segmentUses(t *testing.T, c *CDP, name string) map[string]time.Time {
	t.Helper()
	uses := map[string]time.Time{}
	err := c.store.View(context.Background(), func(tx *store.Txn) error {
		v, err := tx.Get(store.SegmentUseKey(name))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return json.Unmarshal(v, &uses)
	})
	if err != nil {
		t.Fatal(err)
	}
	return uses
}

// A sweep skips a segment deleted after it listed them, and goes on with
// the others.
func TestRefreshAllSkipsDeletedSegment(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	ingestAll(t, c, `{"type":"track","messageId":"1","userId":"a","event":"Order Completed","properties":{"total":1}}`)
	for _, n := range []string{"a", "b", "c"} {
		if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"`+n+`","purpose":"essential.service","where":{"event":"Order Completed"}}`)); err != nil {
			t.Fatal(err)
		}
	}
	// While a is refreshed (the sweep holds memberMu), b's definition goes.
	c.afterMemberRead = func() {
		c.afterMemberRead = nil
		if err := c.store.Update(ctx, func(tx *store.Txn) error {
			return tx.Delete([]byte(string(store.PrefixSegmentDef) + "b"))
		}); err != nil {
			t.Error(err)
		}
	}
	reps, err := c.RefreshAll(ctx, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range reps {
		names = append(names, r.Segment)
	}
	if !slices.Equal(names, []string{"a", "c"}) {
		t.Fatalf("refreshed %v, want [a c]", names)
	}
}
