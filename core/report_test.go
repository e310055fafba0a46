package core

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custody-cdp/custody/identity"
)

var update = flag.Bool("update", false, "rewrite golden files")

var uuidRe = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// stableIDs replaces profile ids (random UUIDv7s) by their order of
// appearance, so the golden file is stable.
func stableIDs(b []byte) []byte {
	seen := map[string]string{}
	return uuidRe.ReplaceAllFunc(b, func(m []byte) []byte {
		if _, ok := seen[string(m)]; !ok {
			seen[string(m)] = "<id-" + string(rune('a'+len(seen))) + ">"
		}
		return []byte(seen[string(m)])
	})
}

// The access report, golden, with a fixed clock; and its HTML rendering
// escapes what a person's data may contain.
func TestAccessReportGolden(t *testing.T) {
	cfg := testConfig(t)
	cfg.MasterKeyHex = strings.Repeat("6b", 32) // keyed hashes in the report are stable
	// The destination's directory is not in the report (only its name).
	cfg.Destinations = map[string]DestinationConfig{"newsletter": {Kind: "email", Format: "csv", Dir: t.TempDir(), Fields: []string{"email", "first_name"}}}
	c := openTest(t, cfg)
	ctx := context.Background()
	// Every section of the report has something in it, so the golden file
	// pins the shape of each: identifiers of four types (a phone among
	// them), traits and their history, consent, merges and an unmerge,
	// events, an export, a segment membership entered and exited, and an
	// earlier request.
	ingestAll(t, c,
		`{"type":"identify","messageId":"g1","userId":"gold","anonymousId":"gold-device","traits":{"email":"gold@example.com","phone":"+33 6 12 34 56 78","first_name":"<b>Goldie</b>","address":{"country":"FR"}},"timestamp":"2026-10-01T09:00:00Z"}`,
		`{"type":"track","messageId":"g2","userId":"gold","event":"Order Completed","properties":{"order_id":"o-1","total":30},"timestamp":"2026-10-02T09:00:00Z"}`,
		`{"type":"page","messageId":"g3","anonymousId":"gold-device","name":"Home","timestamp":"2026-09-30T09:00:00Z"}`,
	)
	consentSet(t, c, "gold@example.com", "marketing.communications.email", "granted", "2026-10-01T10:00:00Z", nil)
	// Recent buyers: they enter on 15 October and leave on 20 November,
	// when their order is more than 30 days old; they were exported while
	// members.
	if _, err := c.ApplySegmentData(ctx, []byte(`{"name":"recent_buyers","purpose":"marketing.communications.email","where":{"event":"Order Completed","within":"30d"}}`)); err != nil {
		t.Fatal(err)
	}
	inside, outside := time.Date(2026, 10, 15, 8, 0, 0, 0, time.UTC), time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	if rr, err := c.RefreshSegment(ctx, "recent_buyers", inside); err != nil || rr.Entered != 1 {
		t.Fatalf("refresh inside the window: %+v %v", rr, err)
	}
	if rep, err := c.ExportSegment(ctx, "recent_buyers", "newsletter", inside); err != nil || rep.Rows != 1 {
		t.Fatalf("export: %+v %v", rep, err)
	}
	if rr, err := c.RefreshSegment(ctx, "recent_buyers", outside); err != nil || rr.Exited != 1 {
		t.Fatalf("refresh outside the window: %+v %v", rr, err)
	}
	// A tablet wrongly merged into them, then split off again. It was
	// created after their profiles, so it is the side folded into them.
	ingestAll(t, c, `{"type":"identify","messageId":"g4","userId":"gold","anonymousId":"gold-tablet","timestamp":"2026-10-03T09:00:00Z"}`)
	tablet := person(t, c, identity.AnonymousID, "gold-tablet")
	if _, err := c.Unmerge(ctx, profileOf(tablet, identity.AnonymousID, "gold-tablet"), "shared tablet"); err != nil {
		t.Fatal(err)
	}
	// An earlier request made with another of their identifiers is listed.
	if _, _, err := c.HandleRequest(ctx, RequestAccess, "ccpa", identity.Identifier{Type: identity.Email, Value: "gold@example.com"}); err != nil {
		t.Fatal(err)
	}
	rep, err := c.Access(ctx, identity.Identifier{Type: identity.UserID, Value: "gold"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = stableIDs(got)
	path := filepath.Join("testdata", "access_report.golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run AccessReportGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		_ = os.WriteFile(path+".got", got, 0o644)
		t.Fatalf("access report differs from %s: see %s.got (rerun with -update if intended)", path, path)
	}
	var html bytes.Buffer
	if err := RenderAccessHTML(&html, rep); err != nil {
		t.Fatal(err)
	}
	h := html.String()
	if len(rep.Requests) != 1 || rep.Requests[0].Status != StatusCompleted {
		t.Fatalf("earlier requests: %+v", rep.Requests)
	}
	// The golden file is only as good as its fixture: every section holds
	// something.
	types := map[identity.Type]bool{}
	for _, idv := range rep.Person.Identifiers {
		types[idv.Type] = true
	}
	if !types[identity.Phone] || len(rep.Person.Unmerges) != 1 || len(rep.Exports) != 1 || len(rep.Memberships) != 1 ||
		rep.Memberships[0].ExitedAt == nil {
		t.Fatalf("fixture lost a section: identifier types %v, unmerges %d, exports %d, memberships %+v",
			types, len(rep.Person.Unmerges), len(rep.Exports), rep.Memberships)
	}
	if strings.Contains(h, "<b>Goldie</b>") || !strings.Contains(h, "gold@example.com") || !strings.Contains(h, "Order Completed") ||
		!strings.Contains(h, "<td>lifecycle_stage</td><td>first_time_buyer</td>") {
		t.Fatalf("HTML rendering: escaped=%v\n%s", !strings.Contains(h, "<b>Goldie</b>"), h)
	}
}
