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
	c := openTest(t, cfg)
	ctx := context.Background()
	ingestAll(t, c,
		`{"type":"identify","messageId":"g1","userId":"gold","anonymousId":"gold-device","traits":{"email":"gold@example.com","first_name":"<b>Goldie</b>","address":{"country":"FR"}},"timestamp":"2026-10-01T09:00:00Z"}`,
		`{"type":"track","messageId":"g2","userId":"gold","event":"Order Completed","properties":{"order_id":"o-1","total":30},"timestamp":"2026-10-02T09:00:00Z"}`,
		`{"type":"page","messageId":"g3","anonymousId":"gold-device","name":"Home","timestamp":"2026-09-30T09:00:00Z"}`,
	)
	consentSet(t, c, "gold@example.com", "marketing.communications.email", "granted", "2026-10-01T10:00:00Z", nil)
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
	if strings.Contains(h, "<b>Goldie</b>") || !strings.Contains(h, "gold@example.com") || !strings.Contains(h, "Order Completed") ||
		!strings.Contains(h, "<td>lifecycle_stage</td><td>first_time_buyer</td>") {
		t.Fatalf("HTML rendering: escaped=%v\n%s", !strings.Contains(h, "<b>Goldie</b>"), h)
	}
}
