package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custody-cdp/custody/core/store"
)

// Segment evaluation goes through the gate: a person who matches but did
// not consent is never a member, only counted.
func TestSegmentEvalThroughTheGate(t *testing.T) {
	c := openTest(t, testConfig(t))
	ctx := context.Background()
	ingestAll(t, c,
		// Repeat buyer in the EU who consented to email marketing.
		`{"type":"identify","messageId":"1","userId":"eu-yes","traits":{"email":"yes@example.com","address":{"country":"DE"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"2","userId":"eu-yes","event":"Order Completed","properties":{"order_id":"a","total":50},"timestamp":"2026-09-02T00:00:00Z"}`,
		`{"type":"track","messageId":"3","userId":"eu-yes","event":"Order Completed","properties":{"order_id":"b","total":70},"timestamp":"2026-10-02T00:00:00Z"}`,
		// Repeat buyer in the EU with no consent: matches, must not be a member.
		`{"type":"identify","messageId":"4","userId":"eu-no","traits":{"email":"no@example.com","address":{"country":"FR"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"5","userId":"eu-no","event":"Order Completed","properties":{"order_id":"c","total":50},"timestamp":"2026-09-03T00:00:00Z"}`,
		`{"type":"track","messageId":"6","userId":"eu-no","event":"Order Completed","properties":{"order_id":"d","total":90},"timestamp":"2026-10-03T00:00:00Z"}`,
		// Repeat buyer in California (opt-out model).
		`{"type":"identify","messageId":"7","userId":"ca","traits":{"email":"ca@example.com","address":{"country":"US","state":"CA"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"8","userId":"ca","event":"Order Completed","properties":{"order_id":"e","total":20},"timestamp":"2026-09-04T00:00:00Z"}`,
		`{"type":"track","messageId":"9","userId":"ca","event":"Order Completed","properties":{"order_id":"f","total":25},"timestamp":"2026-09-05T00:00:00Z"}`,
		// One-time buyer in the UK who consented: not a repeat buyer.
		`{"type":"identify","messageId":"10","userId":"uk","traits":{"email":"uk@example.com","address":{"country":"GB"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"11","userId":"uk","event":"Order Completed","properties":{"order_id":"g","total":20},"timestamp":"2026-09-04T00:00:00Z"}`,
	)
	consentSet(t, c, "yes@example.com", "marketing.communications.email", "granted", "2026-09-01T00:00:00Z", nil)
	consentSet(t, c, "uk@example.com", "marketing.communications.email", "granted", "2026-09-01T00:00:00Z", nil)

	d, err := c.ParseSegment([]byte(`{"name":"repeat","purpose":"marketing.communications.email","where":{"event":"Order Completed","count":{"gte":2}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplySegment(ctx, d); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	ev, err := c.EvaluateSegment(ctx, "repeat", now)
	if err != nil {
		t.Fatal(err)
	}
	// Allowed and matching: eu-yes, ca. Denied by the gate: eu-no (and the
	// consent-created email profiles are part of the same people).
	if ev.Allowed != 2 || ev.NotConsented != 1 || ev.Evaluated != 3 {
		t.Fatalf("eval = %+v", ev)
	}
	if _, err := c.ApplyTemplate(ctx, "first_time_buyers", nil); err != nil {
		t.Fatal(err)
	}
	ft, err := c.EvaluateSegment(ctx, "first_time_buyers", now)
	if err != nil || ft.Allowed != 1 {
		t.Fatalf("first_time_buyers = %+v, %v", ft, err)
	}
	if _, err := c.EvaluateSegment(ctx, "nope", now); !errors.Is(err, ErrSegmentNotFound) {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.ParseSegment([]byte(`{"name":"x","purpose":"marketing","where":{"all":[{"evnt":"A"}]}}`)); err == nil ||
		!errors.Is(err, ErrInvalidInput) {
		t.Fatalf("bad definition: %v", err)
	}
	tail, _ := c.AuditTail(ctx, 1)
	if len(tail) != 1 || tail[0].Kind != "segment.evaluate" {
		t.Fatalf("no decision record: %+v", tail)
	}
}

// An export holds no denied person and no field outside what the policy
// allows for the destination; every exported person has a ledger entry.
func TestExportIsGatedAndMinimal(t *testing.T) {
	cfg := testConfig(t)
	out := t.TempDir()
	cfg.Destinations = map[string]DestinationConfig{
		"newsletter": {Kind: "email", Format: "csv", Dir: out, Fields: []string{"email", "first_name", "phone", "consent_at"}},
		"ads":        {Kind: "ads", Format: "jsonl", Dir: out, Fields: []string{"email", "email_sha256"}},
	}
	c := openTest(t, cfg)
	ctx := context.Background()
	ingestAll(t, c,
		`{"type":"identify","messageId":"1","userId":"yes","traits":{"email":"Yes@Example.com","first_name":"Ada","phone":"+4915112345678","address":{"country":"DE"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"2","userId":"yes","event":"Order Completed","properties":{"total":50},"timestamp":"2026-09-02T00:00:00Z"}`,
		`{"type":"identify","messageId":"3","userId":"no","traits":{"email":"denied@example.com","first_name":"Bob","address":{"country":"DE"}},"timestamp":"2026-09-01T00:00:00Z"}`,
		`{"type":"track","messageId":"4","userId":"no","event":"Order Completed","properties":{"total":50},"timestamp":"2026-09-02T00:00:00Z"}`,
	)
	consentSet(t, c, "yes@example.com", "marketing.communications.email", "granted", "2026-09-01T00:00:00Z", nil)
	consentSet(t, c, "yes@example.com", "marketing.advertising.third_party.targeted", "granted", "2026-09-01T00:00:00Z", nil)
	for _, d := range []string{
		`{"name":"buyers","purpose":"marketing.communications.email","where":{"event":"Order Completed"}}`,
		`{"name":"ad_buyers","purpose":"marketing.advertising.third_party.targeted","where":{"event":"Order Completed"}}`,
	} {
		if _, err := c.ApplySegmentData(ctx, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	rep, err := c.ExportSegment(ctx, "buyers", "newsletter", now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(rep.Path)
	if rep.Rows != 1 || rep.NotConsented != 1 || strings.Contains(string(b), "denied@") || strings.Contains(string(b), "Bob") {
		t.Fatalf("report %+v, file:\n%s", rep, b)
	}
	if strings.Contains(string(b), "+4915112345678") || !strings.HasPrefix(string(b), "email,first_name,consent_at\n") {
		t.Fatalf("fields outside the email destination's allowance:\n%s", b)
	}
	ads, err := c.ExportSegment(ctx, "ad_buyers", "ads", now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(ads.Path)
	if ads.Rows != 1 || strings.Contains(string(b), "@") || !strings.Contains(string(b), `"email_sha256"`) {
		t.Fatalf("ads export must carry hashes only:\n%s", b)
	}
	// The ledger: the exported person has entries, the denied one none.
	n := 0
	err = c.store.View(ctx, func(tx *store.Txn) error {
		return tx.Scan([]byte(store.PrefixExport), store.ScanOptions{KeysOnly: true}, func(_, _ []byte) error { n++; return nil })
	})
	if err != nil || n != 2 {
		t.Fatalf("ledger entries = %d, %v", n, err)
	}
	if _, err := c.ExportSegment(ctx, "buyers", "nowhere", now); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("unknown destination: %v", err)
	}
	tail, _ := c.AuditTail(ctx, 1)
	if tail[0].Kind != "segment.export" {
		t.Fatalf("no export record: %+v", tail)
	}
}

func TestDestinationInsideDataDirIsRefused(t *testing.T) {
	cfg := testConfig(t)
	cfg.Destinations = map[string]DestinationConfig{"x": {Kind: "file", Format: "csv", Dir: cfg.DataDir + "/exports", Fields: []string{"email"}}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "destinations.x.dir") {
		t.Fatalf("err = %v", err)
	}
}

// An export reports its stages in order, with exact counts at each change,
// and ends with every row written: to a file, to a webhook and for a
// population-relative segment (which reads everyone twice).
func TestExportProgress(t *testing.T) {
	t.Setenv("CUSTODY_TEST_HOOK_SECRET", "s")
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	defer hook.Close()
	cfg := testConfig(t)
	cfg.Destinations = map[string]DestinationConfig{
		"file": {Kind: "email", Format: "csv", Dir: t.TempDir(), Fields: []string{"email"}},
		"hook": {Kind: "email", URL: hook.URL, SecretEnv: "CUSTODY_TEST_HOOK_SECRET", BatchSize: 2, Fields: []string{"email"}},
	}
	c := openTest(t, cfg)
	ctx := context.Background()
	const people, consented = 7, 5
	for i := range people {
		ingestAll(t, c,
			fmt.Sprintf(`{"type":"identify","messageId":"i%d","userId":"u%d","traits":{"email":"p%d@example.com"},"timestamp":"2026-09-01T00:00:00Z"}`, i, i, i),
			fmt.Sprintf(`{"type":"track","messageId":"o%d","userId":"u%d","event":"Order Completed","properties":{"total":%d},"timestamp":"2026-09-02T00:00:00Z"}`, i, i, 10+i))
		if i < consented {
			consentSet(t, c, fmt.Sprintf("p%d@example.com", i), "marketing.communications.email", "granted", "2026-09-01T00:00:00Z", nil)
		}
	}
	for _, d := range []string{
		`{"name":"buyers","purpose":"marketing.communications.email","where":{"event":"Order Completed"}}`,
		`{"name":"top","purpose":"marketing.communications.email","where":{"top":{"percent":100,"of":"revenue_365d"}}}`,
	} {
		if _, err := c.ApplySegmentData(ctx, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		segment, dest string
		minPeople     int
	}{
		{"buyers", "file", people},
		{"buyers", "hook", people},
		{"top", "file", 2 * people}, // the population pass reads everyone first
	} {
		t.Run(tc.segment+" to "+tc.dest, func(t *testing.T) {
			var got []ExportProgress
			rep, err := c.ExportSegment(ctx, tc.segment, tc.dest, now, WithProgress(func(p ExportProgress) { got = append(got, p) }))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Rows != consented {
				t.Fatalf("rows = %d, want %d", rep.Rows, consented)
			}
			var stages []string
			for i, p := range got {
				if i == 0 || p.Stage != got[i-1].Stage {
					stages = append(stages, p.Stage)
				}
				if i > 0 && (p.People < got[i-1].People || p.Rows < got[i-1].Rows) {
					t.Fatalf("counts went back: %+v after %+v", p, got[i-1])
				}
			}
			if want := []string{"evaluating", "ledger", "writing", "done"}; !slices.Equal(stages, want) {
				t.Fatalf("stages %v, want %v", stages, want)
			}
			for _, p := range got {
				if p.Stage == "writing" && p.Rows == 0 && p.Total != consented {
					t.Fatalf("writing starts with total %d, want %d", p.Total, consented)
				}
			}
			last := got[len(got)-1]
			if last.Rows != consented || last.Total != consented || last.People < tc.minPeople {
				t.Fatalf("last report %+v: want %d rows of %d and at least %d people read", last, consented, consented, tc.minPeople)
			}
		})
	}
}
