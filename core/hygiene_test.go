package core

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// settable is a clock tests move by hand.
type settable struct {
	mu sync.Mutex
	t  time.Time
}

func (s *settable) now() time.Time      { s.mu.Lock(); defer s.mu.Unlock(); return s.t }
func (s *settable) set(t time.Time)     { s.mu.Lock(); defer s.mu.Unlock(); s.t = t }
func (s *settable) add(d time.Duration) { s.set(s.now().Add(d)) }

func openClocked(t *testing.T, cfg Config, clk *settable) *CDP {
	t.Helper()
	ctx := context.Background()
	if err := Init(ctx, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	c, err := Open(ctx, cfg, Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Hygiene warnings on a fixture whose figures are computed by hand:
// big = p1..p10, same = p1..p9 + p11 (9 shared, 11 in either: Jaccard
// 0.818), tiny = p10, p12 (2 members), stale = p1..p5 (applied 91 days
// ago and never used since).
func TestSegmentHygiene(t *testing.T) {
	t0 := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	clk := &settable{t: t0}
	cfg := testConfig(t)
	cfg.Segments.Hygiene = HygieneConfig{MinMembers: 3, MaxOverlap: 0.8, UnusedAfter: Duration(90 * 24 * time.Hour)}
	cfg.Destinations = map[string]DestinationConfig{"file": {Kind: "file", Format: "csv", Dir: t.TempDir(), Fields: []string{"tier"}}}
	c := openClocked(t, cfg, clk)
	ctx := context.Background()
	tags := func(i int) []string {
		var out []string
		if i <= 10 {
			out = append(out, "big")
		}
		if i <= 9 || i == 11 {
			out = append(out, "same")
		}
		if i == 10 || i == 12 {
			out = append(out, "tiny")
		}
		if i <= 5 {
			out = append(out, "stale")
		}
		return out
	}
	var bodies []string
	for i := 1; i <= 12; i++ {
		q, _ := json.Marshal(tags(i))
		bodies = append(bodies, fmt.Sprintf(`{"type":"identify","messageId":"h%d","userId":"p%d","traits":{"tags":%s,"address":{"country":"US","state":"CA"}},"timestamp":"2026-06-01T00:00:00Z"}`,
			i, i, q))
	}
	ingestAll(t, c, bodies...)
	for _, name := range []string{"big", "same", "tiny", "stale"} {
		d := fmt.Sprintf(`{"name":%q,"purpose":"marketing.communications.email","where":{"trait":"tags","contains":%q}}`, name, name)
		if _, err := c.ApplySegmentData(ctx, []byte(d)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.RefreshSegment(ctx, name, t0); err != nil { // not a use
			t.Fatal(err)
		}
	}
	clk.add(80 * 24 * time.Hour)
	for _, name := range []string{"big", "same", "tiny"} {
		if _, err := c.EvaluateSegment(ctx, name, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	clk.add(11 * 24 * time.Hour) // t0 + 91d

	type want struct {
		members  int
		warnings []string // code or code:other
		lastUsed time.Time
	}
	check := func(t *testing.T, wants map[string]want) {
		t.Helper()
		list, err := c.SegmentHygiene(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != len(wants) {
			t.Fatalf("%d segments listed, want %d", len(list), len(wants))
		}
		for _, s := range list {
			w, ok := wants[s.Name]
			if !ok {
				t.Fatalf("unexpected segment %s", s.Name)
			}
			var codes []string
			for _, x := range s.Warnings {
				code := x.Code
				if x.Other != "" {
					code += ":" + x.Other
				}
				codes = append(codes, code)
			}
			if s.Members != w.members || !slices.Equal(codes, w.warnings) || s.LastUsed == nil || !s.LastUsed.Equal(w.lastUsed) {
				t.Errorf("%s: members %d, warnings %v, last used %v; want %d, %v, %s\n%+v", s.Name, s.Members, codes, s.LastUsed, w.members, w.warnings, w.lastUsed, s.Warnings)
			}
			for _, x := range s.Warnings {
				if x.Code == "overlap" && x.Jaccard != 0.818 {
					t.Errorf("%s: Jaccard %v, want 0.818 (9/11)", s.Name, x.Jaccard)
				}
			}
		}
	}
	t80 := t0.Add(80 * 24 * time.Hour)
	t.Run("fixture", func(t *testing.T) {
		check(t, map[string]want{
			"big":   {10, []string{"overlap:same"}, t80},
			"same":  {10, []string{"overlap:big"}, t80},
			"tiny":  {2, []string{"too_small"}, t80},
			"stale": {5, []string{"unused"}, t0},
		})
	})
	t.Run("an export is a use", func(t *testing.T) {
		if _, err := c.ExportSegment(ctx, "stale", "file", time.Time{}); err != nil {
			t.Fatal(err)
		}
		check(t, map[string]want{
			"big":   {10, []string{"overlap:same"}, t80},
			"same":  {10, []string{"overlap:big"}, t80},
			"tiny":  {2, []string{"too_small"}, t80},
			"stale": {5, nil, clk.now()},
		})
	})
	t.Run("a performance report is a use", func(t *testing.T) {
		clk.add(time.Hour)
		if _, err := c.SegmentReport(ctx, "tiny", t0, clk.now()); err != nil {
			t.Fatal(err)
		}
		check(t, map[string]want{
			"big":   {10, []string{"overlap:same"}, t80},
			"same":  {10, []string{"overlap:big"}, t80},
			"tiny":  {2, []string{"too_small"}, clk.now()},
			"stale": {5, nil, clk.now().Add(-time.Hour)},
		})
	})
	t.Run("a deleted segment takes its record with it", func(t *testing.T) {
		if err := c.DeleteSegment(ctx, "same"); err != nil {
			t.Fatal(err)
		}
		clk.add(100 * 24 * time.Hour)
		check(t, map[string]want{
			"big":   {10, []string{"unused"}, t80},
			"tiny":  {2, []string{"too_small", "unused"}, clk.now().Add(-100 * 24 * time.Hour)},
			"stale": {5, []string{"unused"}, clk.now().Add(-100*24*time.Hour - time.Hour)},
		})
		// Re-applied under the old name: a new segment, no old uses.
		if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"same","purpose":"marketing.communications.email","where":{"trait":"tags","contains":"same"}}`)); err != nil {
			t.Fatal(err)
		}
		list, _ := c.SegmentHygiene(ctx, time.Time{})
		for _, s := range list {
			if s.Name == "same" && (len(s.Uses) != 1 || !s.Uses[useApplied].Equal(clk.now())) {
				t.Fatalf("re-applied segment uses %v", s.Uses)
			}
		}
	})
}

func TestHygieneConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		h   HygieneConfig
		key string
	}{
		{HygieneConfig{MinMembers: -1, MaxOverlap: 0.9}, "segments.hygiene.min_members"},
		{HygieneConfig{MaxOverlap: 0}, "segments.hygiene.max_overlap"},
		{HygieneConfig{MaxOverlap: 1.5}, "segments.hygiene.max_overlap"},
		{HygieneConfig{MaxOverlap: 0.9, UnusedAfter: -1}, "segments.hygiene.unused_after"},
	} {
		cfg := testConfig(t)
		cfg.Segments.Hygiene = tc.h
		if err := cfg.Validate(); err == nil || err.(*ConfigError).Key != tc.key {
			t.Errorf("%+v: %v, want an error naming %s", tc.h, err, tc.key)
		}
	}
}
